package engine

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/clock"
	"github.com/pluto-sched/pluto/internal/store"
)

// dispatcher is the state of dispatch: the groups with their ready queues
// and claims in flight, the sessions of the connected workers, and the
// runs this server holds. Its lock, mu, guards all of it and every
// Session's and group's fields: assigning a run changes a group's queue, a
// session's credits and the run's flight at once, and a result changes
// them back. Lock order: the other components' locks (the promoter's, the
// cron loop's, the deliverer's, the unblocker's, the waiters') may be
// taken while holding it; they never take it while holding their own.
type dispatcher struct {
	mu       sync.Mutex
	groups   map[string]*group
	sessions map[string]*Session // current session per worker id
	flights  map[string]*flight  // current attempt of each run this server holds
	orphans  map[string]*flight  // active runs found at start, not yet reclaimed
	settling map[string]int      // runs with a finish queued and not yet done (reconcile.go)
	dispSeq  uint64              // dispatch counter for least-recent routing
}

// flight is the engine's memory of a run's current attempt while this
// server holds it: claimed and waiting for a worker slot (session nil), or
// on a worker.
type flight struct {
	id          string
	attempt     int
	group       string
	typ         string
	job         string
	parent      string    // its fan-out's parent ("" for none)
	shard       int       // its index among its parent's children
	shardCount  int       // its parent's children (0: not a child)
	logicalTime time.Time // the run's slot (zero: none)
	createdAt   time.Time
	payload     json.RawMessage // dropped once sent
	priority    int
	runAt       time.Time
	seq         int64
	maxAttempts int
	failures    int
	lost        int // attempts lost with their worker so far
	timeout     time.Duration
	routing     string
	routingKey  string

	session   *Session
	started   bool
	startedAt time.Time // when the worker started it, if it did
	// orphanedAt is when the run became an orphan: active in the store,
	// held by no session here (recovered at start, or its result did not
	// commit); the reconciler requeues orphans no worker reclaims.
	orphanedAt time.Time
	timer      clock.Timer // timeout
	longTimer  clock.Timer // the alert rules' max_duration (alerts_sweep.go)
	// merge: the run merges a fan-out's results (Task.Merge).
	merge bool
	// mapped: the attempt made children (Session.Map); its success makes
	// it their parent, any other end cancels them (fanout_map.go).
	mapped bool
	// logsTold is the session told that this attempt's log is capped
	// (LogsCapped); a reconnected worker's new session is told again.
	logsTold *Session
}

func newFlight(r *store.Run) *flight {
	shard := 0
	if r.Shard != nil {
		shard = *r.Shard
	}
	return &flight{
		shard: shard,
		id:    r.ID, attempt: r.Attempt, group: r.Group, typ: r.Type, job: r.Job, parent: r.ParentID, shardCount: r.ShardCount,
		logicalTime: r.LogicalTime, createdAt: r.CreatedAt,
		payload: r.Payload, priority: r.Priority, runAt: r.RunAt, seq: r.Seq,
		maxAttempts: r.MaxAttempts, failures: r.Failures, lost: r.Lost, timeout: r.Timeout,
		routing: r.Routing, routingKey: r.RoutingKey,
		started: r.Status == store.StatusRunning, startedAt: r.StartedAt,
		merge: r.ParentID != "" && r.ShardCount == 0,
	}
}

// ranFor is how long f's attempt has run at now (0 if it never started).
func (f *flight) ranFor(now time.Time) time.Duration {
	if !f.started || f.startedAt.IsZero() {
		return 0
	}
	return max(0, now.Sub(f.startedAt))
}

func (f *flight) ref() RunRef { return RunRef{RunID: f.id, Attempt: f.attempt} }

// size is the most bytes f's task takes in a dispatch (Task.Size).
func (f *flight) size() int {
	t := Task{RunID: f.id, Type: f.typ, Group: f.group, Job: f.job, Payload: f.payload}
	return t.Size()
}

func (f *flight) stopTimer() {
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	if f.longTimer != nil {
		f.longTimer.Stop()
		f.longTimer = nil
	}
}

// group is one worker pool: its sessions and the runs this server claimed
// for it that wait for a slot, in priority order.
type group struct {
	name     string
	sessions []*Session
	ready    readyQueue
	// empty are the handler types known to have nothing claimable: a
	// claim for them came back short. Claims are made per kind of worker,
	// so what one kind's short claim says holds for its types only (runs
	// of a type whose workers were all busy may still be queued). Anything
	// that may have made runs of the group claimable clears the set —
	// and a claim's answer is not recorded if a wake arrived while it was
	// in flight: wakeGen counts wakes, and a claim remembers the count it
	// was prepared at. (With several transactions in flight, a claim can
	// miss a run another transaction committed meanwhile; its wake must not
	// be erased.)
	empty    map[string]bool
	wakeGen  uint64
	claiming bool

	// turn is the worker that got the group's last round-robin run: the
	// next one goes to the worker after it in id order.
	turn string

	cands []candidate // scratch for assign
	csess []*Session
}

// free is the credits g's workers have free. Called with e.disp.mu held.
func (g *group) free() int {
	n := 0
	for _, s := range g.sessions {
		n += s.free()
	}
	return n
}

func (e *Engine) group(name string) *group {
	g := e.disp.groups[name]
	if g == nil {
		g = &group{name: name, empty: make(map[string]bool)}
		e.disp.groups[name] = g
	}
	return g
}

// wake notes that a group may have claimable runs and kicks it. A group
// with no worker connected here has no entry (a new group starts out
// assuming work), so names that clients invent cost no memory.
func (e *Engine) wake(name string) {
	if g := e.disp.groups[name]; g != nil {
		e.wakeGroup(g)
	}
}

// dropIdleGroup forgets a group with no workers, no waiting runs and no
// claim in flight. Called with e.disp.mu held.
func (e *Engine) dropIdleGroup(g *group) {
	if len(g.sessions) == 0 && g.ready.Len() == 0 && !g.claiming && e.disp.groups[g.name] == g {
		delete(e.disp.groups, g.name)
	}
}

// wakeGroup: called with e.disp.mu held.
func (e *Engine) wakeGroup(g *group) {
	clear(g.empty)
	g.wakeGen++
	e.kick(g)
}

// kick first hands waiting runs to free workers (assign), then queues a
// claim for g when its workers still have free credits and the store may
// hold queued runs. At most one claim per group is in flight. Called with
// e.disp.mu held.
//
// Assigning first keeps an invariant the claim sizing relies on: no run
// waits in the ready queue while a worker that could take it has a free
// credit, so every free credit may be claimed for — except runs of the
// turn-taking strategies (round-robin, failover) waiting for the worker
// whose turn it is. Those are bounded instead: claims stop while the
// ready queue holds as many runs as the group's workers have credits.
func (e *Engine) kick(g *group) {
	e.assign(g)
	if !e.running() || g.claiming || len(e.claimParams(g)) == 0 {
		return
	}
	o := &claimOp{}
	o.prepare = func() []store.RunClaimParams {
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		o.gen = g.wakeGen
		return e.claimParams(g)
	}
	o.done = func() { e.claimed(g, o) }
	if e.ops.push(o) {
		g.claiming = true
	}
}

// claimParams sizes the claims for g from the credits free now: one claim
// per kind of worker (the handler types it serves), for as many runs as
// those workers have free credits. Sizing by kind keeps a busy worker's
// types from eating an idle worker's credits: runs that only a busy worker
// serves are not claimed for the idle one, and runs waiting for the busy
// one do not count against it (after assign, no waiting run is one a free
// worker could take; see kick). Nil when nothing is free. Called with e.disp.mu
// held.
func (e *Engine) claimParams(g *group) []store.RunClaimParams {
	if !e.running() {
		return nil
	}
	// Room: runs waiting for their turn take credits too, so that a busy
	// worker in turn does not make the others claim without end; the runs
	// this server holds for the group stay within its workers' windows.
	room := g.free() - g.ready.Len()
	if room <= 0 {
		return nil
	}
	var out []store.RunClaimParams
	for _, s := range g.sessions {
		f := s.free()
		if f <= 0 {
			continue
		}
		i := slices.IndexFunc(out, func(c store.RunClaimParams) bool { return slices.Equal(c.Types, s.hello.Types) })
		if i < 0 {
			out = append(out, store.RunClaimParams{Group: g.name, Types: s.hello.Types, ServerID: e.cfg.ServerID})
			i = len(out) - 1
		}
		out[i].Limit += f
	}
	// Kinds whose every type is known to be empty are not asked again
	// until a wake.
	out = slices.DeleteFunc(out, func(c store.RunClaimParams) bool {
		return !slices.ContainsFunc(c.Types, func(t string) bool { return !g.empty[t] })
	})
	if len(out) == 0 {
		return nil
	}
	now := e.now()
	for i := range out {
		out[i].Limit, out[i].Now = min(out[i].Limit, e.cfg.ClaimBatch, room), now
	}
	return out
}

// WaitingForTurn reports whether this server stopped claiming for group
// because the runs it holds waiting for a busy worker's turn (round-robin,
// failover) fill its workers' free credits: the other workers may then sit
// idle beside queued runs, by design.
func (e *Engine) WaitingForTurn(group string) bool {
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	g := e.disp.groups[group]
	return g != nil && g.ready.Len() > 0 && g.ready.Len() >= g.free()
}

// claimed runs after a claim committed: the runs are now dispatched with a
// new attempt in the store and go to workers.
func (e *Engine) claimed(g *group, o *claimOp) {
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	g.claiming = false
	// Whatever the outcome, a group whose last worker left while the claim
	// was in flight is forgotten now (it was kept only for the claim).
	defer e.dropIdleGroup(g)
	if o.err != nil {
		e.log.Error("claim failed", "group", g.name, "err", o.err)
		return // the next event (a submit, a freed slot) tries again
	}
	if len(o.claims) == 0 {
		e.kick(g) // nothing was free when it applied; maybe now
		return
	}
	if g.wakeGen == o.gen {
		for i, c := range o.claims {
			if o.short[i] {
				for _, t := range c.Types {
					g.empty[t] = true
				}
			}
		}
	}
	if !e.running() || e.disp.groups[g.name] != g {
		// Stopping, or the group was forgotten when its last worker left: a
		// claim that committed meanwhile goes back to the queue instead of
		// to a worker.
		if len(o.runs) > 0 {
			back := make([]*flight, len(o.runs))
			for i, r := range o.runs {
				back[i] = newFlight(r)
			}
			e.handBack(back, "server stopping", false)
		}
		return
	}
	var splits []*store.Run
	for _, r := range o.runs {
		if r.Split != nil {
			splits = append(splits, r) // a parent now, not a task
			continue
		}
		f := newFlight(r)
		e.disp.flights[r.ID] = f
		heap.Push(&g.ready, f)
	}
	if len(splits) > 0 {
		e.expandSplits(g, splits)
	}
	e.kick(g) // assigns them first
}

// assign hands waiting runs to workers with free credits, in priority
// order, choosing each worker with the run's routing strategy; a run whose
// strategy names a busy worker (its turn) waits for it. Runs whose type no
// live worker of the group serves go back to the queue. Called with
// e.disp.mu held.
func (e *Engine) assign(g *group) {
	if g.ready.Len() == 0 {
		return
	}
	free := g.free()
	live, now := e.live(), e.now()
	var waiting, orphaned, tooLarge, strays []*flight
	largest := 0 // the largest message limit of a worker serving a too-large run
	for g.ready.Len() > 0 && free > 0 {
		f := heap.Pop(&g.ready).(*flight)
		if e.disp.flights[f.id] != f {
			continue // cancelled or timed out while waiting
		}
		routing := f.routing
		if routing == "" {
			routing = e.cfg.DefaultRouting
		}
		g.cands, g.csess = g.cands[:0], g.csess[:0]
		size := f.size()
		served, limit := false, 0
		for _, s := range g.sessions {
			if !s.serves(f.typ) {
				continue
			}
			served, limit = true, max(limit, s.hello.MaxMessage)
			if s.healthy() && s.hello.MaxMessage >= size {
				g.cands = append(g.cands, s.candidate(routing, now))
				g.csess = append(g.csess, s)
			}
		}
		if !served {
			orphaned = append(orphaned, f)
			continue
		}
		if limit < size {
			tooLarge, largest = append(tooLarge, f), max(largest, limit)
			continue
		}
		var i int
		if isBroadcast(routing) {
			var here bool
			if i, here = pinnedTo(g, f.routingKey); !here {
				strays = append(strays, f)
				continue
			}
			i = freeOrWait(g.cands, i)
		} else {
			i = route(routing, f.routingKey, g.cands, g.turn, nil)
		}
		if i < 0 {
			waiting = append(waiting, f)
			continue
		}
		s := g.csess[i]
		if routing == RoutingRoundRobin {
			g.turn = s.hello.WorkerID
		}
		e.disp.dispSeq++
		s.lastDispatch = e.disp.dispSeq
		s.dispatched.add(now)
		s.held[f.id] = f.attempt
		f.session = s
		s.outbox = append(s.outbox, Task{
			RunID: f.id, Attempt: f.attempt, Type: f.typ, Group: f.group, Job: f.job,
			Payload: f.payload, Timeout: f.timeout, MaxAttempts: f.maxAttempts,
			LogMaxLines: live.LogMaxLines, LogMaxBytes: live.LogMaxBytes,
			LogicalTime: f.logicalTime, CreatedAt: f.createdAt,
			Parent: f.parent, Shard: f.shard, ShardCount: f.shardCount, Merge: f.merge,
		})
		if routing == store.RoutingBroadcast {
			// A plain broadcast's handler is not told a shard (a
			// shard-broadcast's is).
			t := &s.outbox[len(s.outbox)-1]
			t.Shard, t.ShardCount = 0, 0
		}
		f.payload = nil
		free--
	}
	for _, f := range waiting {
		heap.Push(&g.ready, f)
	}
	for _, s := range g.sessions {
		if len(s.outbox) > 0 {
			s.conn.Dispatch(s.outbox)
			s.outbox = nil
		}
	}
	if len(orphaned) > 0 {
		e.handBack(orphaned, "no live worker serves this type", false)
	}
	if len(tooLarge) > 0 {
		e.failTooLarge(tooLarge, largest)
	}
	if len(strays) > 0 {
		e.failStrays(strays)
	}
}

// handBack returns claimed attempts to the queue without counting a
// failure (the attempt was lost, not failed). lost says the worker holding
// them died or went away: that counts toward MaxLostAttempts, and a run
// lost that often fails instead, so that a run that kills its worker (or
// makes it crash) is not handed from worker to worker forever. Called with
// e.disp.mu held.
func (e *Engine) handBack(fs []*flight, why string, lost bool) {
	now := e.now()
	params := make([]store.RunFinishParams, 0, len(fs))
	groups := make([]string, 0, len(fs))
	for _, f := range fs {
		f.stopTimer()
		if e.disp.flights[f.id] == f {
			delete(e.disp.flights, f.id)
		}
		p := store.RunFinishParams{ID: f.id, Attempt: f.attempt, Status: store.StatusQueued, Lost: lost, ServerID: e.fence(), Now: now}
		if lost && f.lost+1 >= e.cfg.MaxLostAttempts {
			p.Status = store.StatusFailed
			p.Error = fmt.Sprintf("lost with its worker %d times (%s); not retried again: a run that kills or crashes its worker would do it to every worker", f.lost+1, why)
		}
		params = append(params, p)
		groups = append(groups, f.group)
	}
	e.log.Debug("requeueing lost attempts", "runs", len(fs), "why", why)
	o := &finishOp{params: params, groups: groups}
	o.done = func() {
		if o.err != nil {
			return // the engine is stopping: the next start recovers the runs
		}
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		for i, res := range o.res {
			if res.Accepted {
				e.settled(fs[i], params[i])
			}
		}
	}
	e.pushFinishes(o)
}

// readyQueue orders claimed runs: higher priority, then earlier run_at,
// then insertion order.
type readyQueue []*flight

func (q readyQueue) Len() int { return len(q) }
func (q readyQueue) Less(i, j int) bool {
	a, b := q[i], q[j]
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	if !a.runAt.Equal(b.runAt) {
		return a.runAt.Before(b.runAt)
	}
	return a.seq < b.seq
}
func (q readyQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *readyQueue) Push(x any)   { *q = append(*q, x.(*flight)) }
func (q *readyQueue) Pop() any {
	old := *q
	n := len(old) - 1
	f := old[n]
	old[n] = nil
	*q = old[:n]
	return f
}
