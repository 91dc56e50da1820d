package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pluto-sched/pluto/internal/clock"
	"github.com/pluto-sched/pluto/internal/store"
)

// Leadership
//
// Every server renews two leases every RenewInterval: its registration
// (store.ServerHeartbeat), under which it holds its runs, and — if it can
// get it — the leader lease (store.LeaderElect), a row with a term. The
// leader runs the singleton loops: the promoter (pending → queued), the
// cron loop (cron.go), retention (retention.go) and the reaper (runs of servers whose registration went stale go back to the
// queue). They start when a term is won and stop the moment it is lost:
// when a renewal names another holder, fails until the lease would have
// expired, or the engine stops.
//
// Why two leaders at once are harmless: a server can believe it leads for
// at most LeaseTTL after its last successful renewal while another takes a
// new term. Every leader-only write is a conditional, idempotent state
// change in the store — promote moves only pending runs whose time has
// come; the reaper requeues only active runs whose server is stale — so
// running it twice, or on two servers, has the same effect as once. A cron
// slot's run is unique per job and logical time, and a job's next fire
// time advances by compare-and-set, so a slot fires once however many
// servers tick.

// leadership is the state of this server's lease, with locks of its own.
// Lock order: elect, then mu. Neither is taken with the dispatcher's lock
// held, and the leader loops never take them.
type leadership struct {
	// elect is held across a lease renewal and across the resignation
	// when a graceful stop begins, so no renewal in flight takes the
	// lease back after it was given up.
	elect sync.Mutex

	mu sync.Mutex
	// term is the term this server leads in; 0 when not leading. Written
	// with mu held; atomic so that Leading and the reconciler read it
	// without.
	term      atomic.Int64
	expiresAt time.Time // of the lease as last renewed
	leader    store.Leader
	stopLoops func() // stops the leader loops of the current term
	timer     clock.Timer
}

// Leading reports whether this server holds the leader lease now.
func (e *Engine) Leading() bool { return e.lead.term.Load() != 0 }

// leaseLoop renews the registration and the leader lease until stop.
func (e *Engine) leaseLoop() {
	defer e.wg.Done()
	defer close(e.leaseDone)
	started := e.now()
	for {
		e.renew(started)
		tick := make(chan struct{})
		t := e.clk.AfterFunc(e.cfg.RenewInterval, func() { close(tick) })
		select {
		case <-e.stopMon:
			t.Stop()
			return
		case <-tick:
		}
	}
}

func (e *Engine) renew(started time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.LeaseTTL/2)
	defer cancel()
	now := e.now()
	if err := e.st.ServerHeartbeat(ctx, store.ServerInfo{
		ID: e.cfg.ServerID, HTTP: e.cfg.AdvertiseHTTP, GRPC: e.cfg.AdvertiseGRPC, StartedAt: started, LastSeen: now,
	}); err != nil {
		e.log.Error("renew server registration", "err", err)
	}
	if e.cfg.Standby {
		return
	}
	e.lead.elect.Lock()
	defer e.lead.elect.Unlock()
	if e.quiescing.Load() {
		return // stopping: the lease was given up (resignLeadership)
	}
	l, err := e.st.LeaderElect(ctx, store.LeaderElectParams{ServerID: e.cfg.ServerID, TTL: e.cfg.LeaseTTL, Now: now})
	e.lead.mu.Lock()
	defer e.lead.mu.Unlock()
	if err != nil {
		// Keep leading until the lease we hold would expire; the expiry
		// timer steps down if no renewal succeeds before then.
		e.log.Error("renew leader lease", "err", err)
		return
	}
	e.lead.leader = l // resign reads it, even if we are stopping
	if !e.running() {
		return
	}
	term := e.lead.term.Load()
	switch {
	case l.ServerID == e.cfg.ServerID && l.Term == term:
		e.lead.expiresAt = l.ExpiresAt
		e.armLeaseExpiry()
	case l.ServerID == e.cfg.ServerID:
		if term != 0 {
			e.stepDown("lease lapsed and was taken again")
		}
		e.becomeLeader(l)
	case term != 0:
		e.stepDown("another server holds the lease: " + l.ServerID)
	}
}

// becomeLeader starts the leader loops for term l. Called with e.lead.mu
// held.
func (e *Engine) becomeLeader(l store.Leader) {
	e.lead.term.Store(l.Term)
	e.lead.expiresAt = l.ExpiresAt
	e.armLeaseExpiry()
	e.log.Info("leading", "term", l.Term)
	ctx, cancel := context.WithCancel(context.Background())
	var loops sync.WaitGroup
	e.lead.stopLoops = func() { cancel(); loops.Wait() }
	e.feedback.activate()
	e.alerts.activate()
	e.promote.activate()
	e.cron.activate()
	e.wg.Add(2)
	loops.Add(2)
	go func() {
		defer e.wg.Done()
		defer loops.Done()
		e.promote.arm(ctx)
		e.cron.arm(ctx)
		e.feedback.arm(ctx, time.Time{})
		e.alerts.deliv.arm(ctx, time.Time{})
		e.reapLoop(ctx)
	}()
	go func() {
		defer e.wg.Done()
		defer loops.Done()
		e.retentionLoop(ctx) // retention.go
	}()
	e.backfill.wake() // the backfills a previous leader was driving
}

// stepDown stops the leader loops at once. Called with e.lead.mu held.
func (e *Engine) stepDown(why string) {
	term := e.lead.term.Load()
	if term == 0 {
		return
	}
	e.log.Warn("no longer leading", "term", term, "why", why)
	e.lead.term.Store(0)
	if e.lead.timer != nil {
		e.lead.timer.Stop()
		e.lead.timer = nil
	}
	e.promote.deactivate()
	e.cron.deactivate()
	e.feedback.deactivate()
	e.alerts.deactivate()
	if stop := e.lead.stopLoops; stop != nil {
		e.lead.stopLoops = nil
		// Let go of the lease's lock while they finish: a loop may wait
		// for a write that waits for the store, and renewals (or, under
		// fake time, the clock) must not wait for that.
		e.lead.mu.Unlock()
		stop()
		e.lead.mu.Lock()
	}
}

// armLeaseExpiry steps down when the lease runs out unrenewed. Called with
// e.lead.mu held.
func (e *Engine) armLeaseExpiry() {
	if e.lead.timer != nil {
		e.lead.timer.Stop()
	}
	term := e.lead.term.Load()
	e.lead.timer = e.clk.AfterFunc(max(0, e.lead.expiresAt.Sub(e.clk.Now())), func() {
		e.lead.mu.Lock()
		defer e.lead.mu.Unlock()
		if e.lead.term.Load() == term && !e.clk.Now().Before(e.lead.expiresAt) {
			e.stepDown("lease expired without renewal")
		}
	})
}

// reapLoop requeues, every renew interval, the runs held by servers whose
// registration is older than the lease TTL.
func (e *Engine) reapLoop(ctx context.Context) {
	for {
		e.reap(ctx)
		tick := make(chan struct{})
		t := e.clk.AfterFunc(e.cfg.RenewInterval, func() { close(tick) })
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-tick:
		}
	}
}

func (e *Engine) reap(ctx context.Context) {
	for {
		now := e.now()
		o := &requeueLostOp{params: store.RunRequeueLostParams{StaleBefore: now.Add(-e.cfg.LeaseTTL), Limit: 1000, Now: now}}
		if err := e.do(ctx, o, nil); err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, ErrStopped) {
				e.log.Error("requeue runs of lost servers", "err", err)
			}
			return
		}
		if len(o.runs) == 0 {
			return
		}
		e.log.Warn("requeued runs of servers that are gone", "runs", len(o.runs))
		e.disp.mu.Lock()
		for _, r := range o.runs {
			e.wake(r.Group)
		}
		e.disp.mu.Unlock()
		if len(o.runs) < 1000 {
			return
		}
	}
}

// resign gives the lease up on a graceful stop so another server takes
// over at once instead of after the TTL, and removes the server's
// registration unless keepRegistration (workers still hold its runs: the
// registration then expires after the lease TTL, and only then does the
// leader requeue them).
// Called after the lease loop exited, so no renewal races it.
func (e *Engine) resign(ctx context.Context, keepRegistration bool) {
	e.lead.mu.Lock()
	l := e.lead.leader
	e.stepDown("stopping")
	e.lead.mu.Unlock()
	if l.ServerID == e.cfg.ServerID {
		if err := e.st.LeaderResign(ctx, e.cfg.ServerID, l.Term); err != nil {
			e.log.Error("resign leadership", "err", err)
		}
	}
	if keepRegistration && !e.cfg.ExclusiveStore {
		e.log.Info("workers still hold runs of this server: its registration expires instead of being removed", "ttl", e.cfg.LeaseTTL)
		return
	}
	if err := e.st.ServerRemove(ctx, e.cfg.ServerID); err != nil {
		e.log.Error("remove server registration", "err", err)
	}
}

// ClusterInfo describes the servers sharing this store.
type ClusterInfo struct {
	Store   string
	Leader  string
	Term    int64
	Servers []ServerStatus
}

// ServerStatus is one registered server.
type ServerStatus struct {
	store.ServerInfo
	Leader bool
	Alive  bool // seen within the lease TTL
}

// Cluster reports the leader and the registered servers.
func (e *Engine) Cluster(ctx context.Context) (ClusterInfo, error) {
	l, err := e.st.LeaderGet(ctx)
	if err != nil {
		return ClusterInfo{}, err
	}
	servers, err := e.st.ServerList(ctx)
	if err != nil {
		return ClusterInfo{}, err
	}
	now := e.now()
	info := ClusterInfo{Store: e.st.Name(), Term: l.Term}
	if now.Before(l.ExpiresAt) {
		info.Leader = l.ServerID
	}
	for _, s := range servers {
		info.Servers = append(info.Servers, ServerStatus{
			ServerInfo: s, Leader: s.ID == info.Leader, Alive: now.Sub(s.LastSeen) <= e.cfg.LeaseTTL,
		})
	}
	return info, nil
}
