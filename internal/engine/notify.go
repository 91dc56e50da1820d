package engine

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Notifications between servers sharing a store
//
// A server that commits a change other servers must act on publishes it in
// the same transaction (store.Tx.Notify: delivered on commit, never on
// rollback):
//
//	queued   a group has new queued runs (submit, requeue, retry,
//	         promotion): servers with workers of that group claim
//	pending  a pending run's run_at: the leader's promoter re-arms
//	watch    a client waits, on some server, for a run that another
//	         server may finish
//	finished ids of watched runs that reached a terminal status: the
//	         waiters wake
//	jobs     a job was saved, paused or resumed: the leader re-reads the
//	         next fire time of its cron timer
//	callback a run with a callback URL ended: the leader's deliverer
//	         re-arms (feedback.go)
//	logwatch a client follows a run's log on some server
//	logs     ids of followed runs that have new log lines: the
//	         followers wake (published by the log writer, logfollow.go)
//
// Completions are published only for watched runs: announcing every one
// would cost a fifth of the throughput on PostgreSQL for waits that are
// rare. A watch can cross the completion it waits for; waiters on a shared
// store therefore also re-read the run every watchRecheck.
//
// Nothing polls: a server hears about work the moment it is committed.

// maxNotifyPayload keeps payloads under PostgreSQL's 8,000-byte limit.
const maxNotifyPayload = 7000

// watchTTL bounds how long a watch is remembered; watchRecheck is how often
// a waiter on a shared store re-reads its run.
const (
	watchTTL     = 10 * time.Minute
	watchRecheck = 2 * time.Second
)

// watchSet is the runs some server announced it waits for (or follows
// the log of), each until its announcement expires. It is bounded: past
// watchSetPrune entries an announcement first drops the expired ones.
// Callers hold e.wmu.
type watchSet map[string]time.Time

const watchSetPrune = 10000

func (w watchSet) add(id string, now time.Time) {
	if len(w) > watchSetPrune {
		for k, until := range w {
			if now.After(until) {
				delete(w, k)
			}
		}
	}
	w[id] = now.Add(watchTTL)
}

// has reports whether id is announced and not expired.
func (w watchSet) has(id string, now time.Time) bool {
	until, ok := w[id]
	return ok && !now.After(until)
}

// watch remembers that some server waits for run id.
func (e *Engine) watch(id string) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.watched.add(id, e.clk.Now())
}

// takeWatched reports whether id is watched and forgets it.
func (e *Engine) takeWatched(id string) bool {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if _, ok := e.watched[id]; ok {
		delete(e.watched, id)
		return true
	}
	return false
}

// publish adds the notifications for a batch's committed effects.
func (e *Engine) publish(ctx context.Context, tx store.Tx, batch []op) error {
	var h heardOf
	h.queued = map[string]bool{}
	var ns []store.Notification
	for _, o := range batch {
		if n, ok := o.(*notifyOp); ok {
			ns = append(ns, n.notes...)
			continue
		}
		e.effects(o, &h)
	}
	for g := range h.queued {
		ns = append(ns, store.Notification{Topic: store.TopicQueued, Payload: g})
	}
	if !h.pending.IsZero() {
		ns = append(ns, store.Notification{Topic: store.TopicPending, Payload: strconv.FormatInt(h.pending.UnixMicro(), 10)})
	}
	if n, ok := callbackNotification(batch); ok {
		ns = append(ns, n)
	}
	for finished := h.finished; len(finished) > 0; {
		var b strings.Builder
		n := 0
		for n < len(finished) && b.Len()+len(finished[n])+1 <= maxNotifyPayload {
			if n > 0 {
				b.WriteByte(',')
			}
			b.WriteString(finished[n])
			n++
		}
		ns = append(ns, store.Notification{Topic: store.TopicFinished, Payload: b.String()})
		finished = finished[n:]
	}
	for _, n := range ns {
		if err := tx.Notify(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// heardOf is what other servers must hear about a batch: groups with new
// queued runs, the earliest new pending time, watched runs that ended.
type heardOf struct {
	queued   map[string]bool
	pending  time.Time
	finished []string
}

func (h *heardOf) notePending(at time.Time) {
	if h.pending.IsZero() || at.Before(h.pending) {
		h.pending = at
	}
}

// noteRun notes a run that a committed change created or queued.
func (h *heardOf) noteRun(r *store.Run) {
	switch r.Status {
	case store.StatusQueued:
		h.queued[r.Group] = true
	case store.StatusPending:
		h.notePending(r.RunAt)
	}
}

// noteCancel notes a committed cancel of a watched run.
func (e *Engine) noteCancel(h *heardOf, c store.RunCancelResult) {
	if c.Changed && e.takeWatched(c.Run.ID) {
		h.finished = append(h.finished, c.Run.ID)
	}
}

// effects adds what o's committed changes mean to other servers to h.
func (e *Engine) effects(o op, h *heardOf) {
	switch o := o.(type) {
	case *insertOp:
		for _, r := range o.res {
			if !r.Existing {
				h.noteRun(r.Run)
			}
		}
	case *finishOp:
		for i, res := range o.res {
			if !res.Accepted {
				continue
			}
			p := o.params[i]
			switch {
			case p.Status.Terminal():
				if e.takeWatched(p.ID) {
					h.finished = append(h.finished, p.ID)
				}
			case p.Status == store.StatusQueued && i < len(o.groups):
				h.queued[o.groups[i]] = true
			case p.Status == store.StatusPending:
				h.notePending(p.RunAt)
			}
		}
	case *cancelOp:
		e.noteCancel(h, o.res)
	case *retryOp:
		if o.run != nil {
			h.queued[o.run.Group] = true
		}
	case *txOp:
		for _, r := range o.made {
			h.noteRun(r)
		}
		for _, c := range o.cancels {
			e.noteCancel(h, c)
		}
	case *promoteOp:
		for _, r := range o.runs {
			h.queued[r.Group] = true
		}
	case *requeueLostOp:
		for _, r := range o.runs {
			h.queued[r.Group] = true
		}
	}
}

// listenLoop delivers other servers' notifications to the engine until
// stop, re-listening after a lost connection.
func (e *Engine) listenLoop(ctx context.Context) {
	defer e.wg.Done()
	for {
		err := e.st.Listen(ctx, e.heard)
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			e.log.Warn("listening for notifications", "err", err)
		}
		tick := make(chan struct{})
		t := e.clk.AfterFunc(time.Second, func() { close(tick) })
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-tick:
		}
		e.relisten()
	}
}

// relisten re-reads the leader's timers from the store before listening
// again: notifications published while the connection was down (a pending
// run's time, a saved job, an owed callback on another server) are lost,
// and the store has what they said.
func (e *Engine) relisten() {
	if e.cfg.OnRelisten != nil {
		e.cfg.OnRelisten()
	}
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	if !e.running() {
		return
	}
	// Any server: runs queued meanwhile were announced to nobody here.
	for _, g := range e.disp.groups {
		e.wakeGroup(g)
	}
	if e.lead.term.Load() == 0 {
		return
	}
	e.relistenTimers()
}

// relistenTimers re-reads the leader's timers from the store. Called with
// e.disp.mu held, on the leader.
func (e *Engine) relistenTimers() {
	e.rearmCron()
	e.feedback.rearm()
	e.alerts.deliv.rearm()
	e.alerts.slaRulesChanged()
	e.promote.rearm()
}

// heard acts on one notification.
func (e *Engine) heard(n store.Notification) {
	if e.cfg.OnNotify != nil {
		e.cfg.OnNotify(n)
	}
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	if !e.running() {
		return
	}
	switch n.Topic {
	case store.TopicQueued:
		if g := e.disp.groups[n.Payload]; g != nil {
			e.wakeGroup(g)
		}
	case store.TopicPending:
		if us, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
			e.notePending(time.UnixMicro(us).UTC())
		}
	case store.TopicFinished:
		ids := strings.Split(n.Payload, ",")
		for _, id := range ids {
			e.waiters.wake(id)
		}
		e.backfill.finished(ids)
	case store.TopicWatch:
		e.watch(n.Payload)
	case store.TopicJobs:
		e.gate.jobsChanged()
		e.alerts.rulesChanged()
		e.rearmCron()
		e.backfill.wake() // a backfill created or changed on another server
	case store.TopicCallback:
		e.heardCallback(n.Payload)
	case store.TopicAlert:
		if us, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
			e.alerts.deliv.note(time.UnixMicro(us).UTC())
		}
	case store.TopicLogWatch:
		e.logWatch(n.Payload)
	case store.TopicLogs:
		e.heardLogs(n.Payload)
	}
}
