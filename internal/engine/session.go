package engine

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/clock"
	"github.com/pluto-sched/pluto/internal/store"
)

// maxWindow bounds a worker's capacity and window: more runs than this on
// one connection is a bug or an attack, not a worker.
const maxWindow = 100000

// Session is one connected worker as the engine sees it. The transport
// calls its methods as messages arrive; they are safe for concurrent use.
type Session struct {
	e     *Engine
	hello Hello
	conn  Conn
	g     *group

	window       int
	held         map[string]int // run id → attempt the worker holds
	outbox       []Task         // scratch for assign
	lastDispatch uint64
	dispatched   dispatchRate // for least-frequent routing
	load         Load
	loads        loadRing // the last heartbeats' loads, for the console's sparklines
	connectedAt  time.Time
	lastSeen     time.Time
	state        WorkerState
	closed       bool // the stream is gone
	draining     bool
	deadTimer    clock.Timer
	heartbeat    time.Duration  // the interval the worker was told at connect
	ctl          sessionControl // remote control (control_workers.go)

	// recent are the attempts this session reported last (a ring; next is
	// where the next one goes), whose late log lines are still taken.
	recent     []RunRef
	recentNext int
	// logBytes are this session's log lines queued and not yet committed;
	// Logs waits on logSpace while they exceed maxSessionLogBytes.
	logBytes int
	logSpace *sync.Cond
}

// Log intake limits: a worker's log lines wait for the committer at most
// maxSessionLogBytes at a time (more blocks the worker's stream, and gRPC
// flow control pushes back on the worker), and lines are taken only for
// the attempts it holds or the last recentResults it reported.
const (
	maxSessionLogBytes = 4 << 20
	recentResults      = 256
)

// HeartbeatInterval is the interval to tell the worker in the welcome.
func (s *Session) HeartbeatInterval() time.Duration { return s.heartbeat }

func (s *Session) serves(typ string) bool { return slices.Contains(s.hello.Types, typ) }

// free is how many more runs may be sent to the worker now.
func (s *Session) free() int {
	if !s.healthy() {
		return 0
	}
	return max(0, s.window-len(s.held))
}

// healthy: the worker is connected, alive and takes new runs.
func (s *Session) healthy() bool { return !s.closed && !s.draining && s.state == WorkerAlive }

// candidate is s as routing strategy sees it at now.
func (s *Session) candidate(strategy string, now time.Time) candidate {
	c := candidate{ID: s.hello.WorkerID, Free: s.free() > 0, Held: len(s.held), Capacity: s.hello.Capacity, CPU: s.load.CPU, LastDispatch: s.lastDispatch}
	if strategy == RoutingLeastFrequent {
		c.Recent = s.dispatched.count(now)
	}
	return c
}

func (s *Session) stopTimers() {
	if s.deadTimer != nil {
		s.deadTimer.Stop()
	}
}

// Connect registers a worker. It returns the session and the runs the
// worker listed as held whose attempt is no longer current: the transport
// tells the worker to cancel those. When a worker reconnects, the runs it
// still holds at their current attempt move to the new session; runs the
// old session held that the worker no longer lists are requeued.
func (e *Engine) Connect(ctx context.Context, h Hello, c Conn) (*Session, []RunRef, error) {
	switch {
	case h.WorkerID == "":
		return nil, nil, &FieldError{Field: "worker_id", Message: "is required"}
	case h.Group == "":
		return nil, nil, &FieldError{Field: "group", Message: "is required"}
	case h.Capacity <= 0:
		return nil, nil, &FieldError{Field: "capacity", Message: "must be positive"}
	case h.Window < 0:
		return nil, nil, &FieldError{Field: "window", Message: "must not be negative"}
	case h.Capacity > maxWindow || h.Window > maxWindow:
		return nil, nil, &FieldError{Field: "window", Message: fmt.Sprintf("capacity and window must be at most %d", maxWindow)}
	}
	if h.Window == 0 && !h.Draining {
		h.Window = h.Capacity // a worker that names no window gets its capacity, not nothing
	}
	if h.MaxMessage <= 0 {
		h.MaxMessage = DefaultMaxMessage
	}
	e.disp.mu.Lock()
	up, dup := e.running(), e.duplicate(h)
	e.disp.mu.Unlock()
	if !up { // before adoptHeld: a stopping server must not take runs over
		return nil, nil, ErrStopped
	}
	if dup {
		return nil, nil, ErrDuplicateWorker
	}
	adopted, err := e.adoptHeld(ctx, h.Held)
	if err != nil {
		return nil, nil, err
	}
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	if !e.running() {
		return nil, nil, ErrStopped
	}
	now := e.now()
	g := e.group(h.Group)
	s := &Session{
		e: e, hello: h, conn: c, g: g, window: h.Window, held: make(map[string]int),
		connectedAt: now, lastSeen: now, state: WorkerAlive, heartbeat: e.live().HeartbeatInterval,
		logSpace: sync.NewCond(&e.disp.mu),
	}
	old := e.disp.sessions[h.WorkerID]
	if e.duplicate(h) {
		return nil, nil, ErrDuplicateWorker
	}
	if old != nil && old.hello.Instance != h.Instance {
		e.log.Warn("worker id taken over by another process", "worker", h.WorkerID, "host", h.Hostname, "old_host", old.hello.Hostname)
	}
	var stale []RunRef
	for _, ref := range h.Held {
		if f := e.disp.flights[ref.RunID]; f != nil && f.attempt == ref.Attempt && (f.session == nil || f.session == old) {
			f.session = s
			s.held[f.id] = f.attempt
			continue
		}
		f := e.disp.orphans[ref.RunID]
		if f == nil {
			f = adopted[ref.RunID]
		}
		if f != nil && f.attempt == ref.Attempt {
			delete(e.disp.orphans, f.id)
			f.session = s
			e.disp.flights[f.id] = f
			s.held[f.id] = f.attempt
			e.armTimeout(f, now)
			continue
		}
		stale = append(stale, RunRef{RunID: ref.RunID, Attempt: ref.Attempt})
	}
	// In service before the old session leaves, so that its group is not
	// forgotten in between and its waiting runs stay served.
	e.disp.sessions[h.WorkerID] = s
	g.sessions = append(g.sessions, s)
	if old != nil {
		var lost []*flight
		for id, att := range old.held {
			if f := e.disp.flights[id]; f != nil && f.attempt == att && f.session == old {
				lost = append(lost, f)
			}
		}
		e.removeSession(old, "replaced by a new connection")
		if len(lost) > 0 {
			e.handBack(lost, "worker reconnected without it", true)
		}
	}
	s.inheritControl(old)
	var late []Ack
	for _, ref := range h.Held {
		if !ref.StartedAt.IsZero() {
			late = append(late, Ack{RunID: ref.RunID, Attempt: ref.Attempt, StartedAt: ref.StartedAt})
		}
	}
	e.pushStarts(s.started(late, true))
	e.wakeGroup(g)
	return s, stale, nil
}

// duplicate reports (and logs) whether h's worker id is connected from
// another live process. Called with e.disp.mu held.
func (e *Engine) duplicate(h Hello) bool {
	old := e.disp.sessions[h.WorkerID]
	if old == nil || old.closed || old.hello.Instance == h.Instance || old.hello.Instance == "" || h.Instance == "" {
		return false
	}
	e.log.Warn("refused a worker whose id is connected from another process", "worker", h.WorkerID,
		"group", h.Group, "host", h.Hostname, "connected_host", old.hello.Hostname)
	return true
}

// adoptHeld makes this server the holder of runs a reconnecting worker
// holds that another server handed out (the worker failed over). Each is
// adopted only if it is still active at the worker's attempt; the store
// fences that. It returns the adopted runs as flights.
func (e *Engine) adoptHeld(ctx context.Context, held []RunRef) (map[string]*flight, error) {
	if e.cfg.ExclusiveStore || len(held) == 0 {
		return nil, nil
	}
	e.disp.mu.Lock()
	var ps []store.RunAdoptParams
	for _, ref := range held {
		if e.disp.flights[ref.RunID] == nil && e.disp.orphans[ref.RunID] == nil {
			ps = append(ps, store.RunAdoptParams{ID: ref.RunID, Attempt: ref.Attempt, ServerID: e.cfg.ServerID})
		}
	}
	e.disp.mu.Unlock()
	if len(ps) == 0 {
		return nil, nil
	}
	o := &adoptOp{params: ps}
	if err := e.do(ctx, o, nil); err != nil {
		return nil, fmt.Errorf("engine: adopt held runs: %w", err)
	}
	out := make(map[string]*flight)
	for i, ok := range o.res {
		if !ok {
			continue
		}
		r, err := e.st.RunGet(ctx, ps[i].ID)
		if err != nil {
			return nil, fmt.Errorf("engine: adopt held runs: %w", err)
		}
		f := newFlight(r)
		f.attempt = ps[i].Attempt
		out[r.ID] = f
	}
	if len(out) > 0 {
		e.log.Info("adopted runs from another server", "runs", len(out))
	}
	return out, nil
}

// removeSession takes s out of service. Called with e.disp.mu held.
func (e *Engine) removeSession(s *Session, why string) {
	s.stopTimers()
	s.closed = true
	s.failCommands()
	if e.disp.sessions[s.hello.WorkerID] == s {
		delete(e.disp.sessions, s.hello.WorkerID)
	}
	s.g.sessions = slices.DeleteFunc(s.g.sessions, func(x *Session) bool { return x == s })
	s.conn.Close(why)
	s.logSpace.Broadcast()
	e.dropUnserved(s.g)
	e.dropIdleGroup(s.g)
}

// dropUnserved hands back claimed runs that no remaining worker of the
// group can run. Called with e.disp.mu held.
func (e *Engine) dropUnserved(g *group) {
	var keep readyQueue
	var lost []*flight
	for _, f := range g.ready {
		if e.disp.flights[f.id] != f {
			continue
		}
		served := false
		for _, s := range g.sessions {
			if s.serves(f.typ) {
				served = true
				break
			}
		}
		if served {
			keep = append(keep, f)
		} else {
			lost = append(lost, f)
		}
	}
	g.ready = keep
	heap.Init(&g.ready)
	if len(lost) > 0 {
		e.handBack(lost, "no live worker serves this type", false)
	}
}

// Heartbeat records the worker's load.
func (s *Session) Heartbeat(l Load) {
	e := s.e
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	s.load = l
	s.loads.add(l)
	s.touch()
}

// loadHistory is how many heartbeats' loads a session keeps.
const loadHistory = 30

// loadRing holds the last loadHistory loads.
type loadRing struct {
	buf  [loadHistory]Load
	next int
	n    int
}

func (r *loadRing) add(l Load) {
	r.buf[r.next] = l
	r.next = (r.next + 1) % loadHistory
	r.n = min(r.n+1, loadHistory)
}

// list returns the loads, oldest first.
func (r *loadRing) list() []Load {
	out := make([]Load, 0, r.n)
	for i := range r.n {
		out = append(out, r.buf[(r.next-r.n+i+loadHistory)%loadHistory])
	}
	return out
}

// touch marks the worker seen. Called with e.disp.mu held.
func (s *Session) touch() {
	s.lastSeen = s.e.now()
	if s.state == WorkerSuspect && !s.closed {
		s.state = WorkerAlive
		s.e.kick(s.g)
	}
}

// SetWindow changes how many runs the worker accepts at once (0 pauses).
func (s *Session) SetWindow(n int) {
	e := s.e
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	s.window = max(0, n)
	s.touch()
	e.kick(s.g) // assigns waiting runs first
}

// Ack records that the worker started attempts. The running state is
// written in the next batch; the run's timeout starts now.
func (s *Session) Ack(acks []Ack) {
	e := s.e
	e.disp.mu.Lock()
	s.touch()
	starts := s.started(acks, false)
	e.disp.mu.Unlock()
	e.pushStarts(starts)
}

// started marks acked attempts started and arms their timeouts. An Ack
// arrives as the run starts, so its timeout runs from now (the worker's
// clock is not trusted for it). A start learned late — from a reconnecting
// worker's held list, its Ack lost with the old stream — runs from the
// worker's start time, never later than now: the run has used that time
// already. Called with e.disp.mu held; returns the starts to commit.
func (s *Session) started(acks []Ack, late bool) []store.RunStartParams {
	e := s.e
	now := e.now()
	starts := make([]store.RunStartParams, 0, len(acks))
	for _, a := range acks {
		f := e.disp.flights[a.RunID]
		if f == nil || f.attempt != a.Attempt || f.session != s || f.started {
			continue
		}
		at := a.StartedAt.Truncate(time.Microsecond)
		if at.IsZero() || at.After(now) {
			at = now
		}
		f.started, f.startedAt = true, now
		if late {
			f.startedAt = at
		}
		e.armTimeout(f, now)
		if !late {
			e.cfg.Observer.Started(f.group, f.typ, max(0, now.Sub(f.runAt)))
		}
		starts = append(starts, store.RunStartParams{ID: a.RunID, Attempt: a.Attempt, WorkerID: s.hello.WorkerID, ServerID: e.fence(), Now: at})
	}
	return starts
}

// pushStarts queues the running state of started attempts for the next
// batch.
func (e *Engine) pushStarts(starts []store.RunStartParams) {
	if len(starts) > 0 {
		e.ops.push(&startOp{params: starts})
	}
}

// Results records finished attempts. The worker's slots are free at once;
// the outcome is committed in the next batch and only then acknowledged to
// the worker and to waiters.
func (s *Session) Results(rs []Result) {
	e := s.e
	e.disp.mu.Lock()
	s.touch()
	now := e.now()
	var (
		params  []store.RunFinishParams
		groups  []string
		flights []*flight
		rejects []ResultAck
	)
	for i := range rs {
		r := &rs[i]
		if att, ok := s.held[r.RunID]; ok && att == r.Attempt {
			delete(s.held, r.RunID)
			s.remember(RunRef{RunID: r.RunID, Attempt: r.Attempt})
		}
		r.Result = jsonResult(r.Result)
		f := e.disp.flights[r.RunID]
		if f == nil || f.attempt != r.Attempt || f.session != s {
			rejects = append(rejects, ResultAck{RunID: r.RunID, Attempt: r.Attempt})
			continue
		}
		delete(e.disp.flights, r.RunID)
		f.stopTimer()
		if !f.started {
			// A result implies the start (its Ack may not have been sent).
			e.cfg.Observer.Started(f.group, f.typ, max(0, now.Sub(f.runAt)))
		}
		f.mapped = f.mapped || r.Mapped
		if f.mapped && r.Outcome == OutcomeSucceeded {
			e.release(s, f)
			continue
		}
		params = append(params, e.finishParams(f, r, s, now))
		groups = append(groups, f.group)
		flights = append(flights, f)
	}
	if len(rejects) > 0 {
		s.conn.ResultAcks(rejects)
	}
	if len(params) > 0 {
		o := &finishOp{params: params, groups: groups}
		o.done = func() { e.finished(s, flights, o) }
		e.pushFinishes(o)
	}
	e.kick(s.g) // assigns waiting runs first
	e.disp.mu.Unlock()
}

// Logs stores log lines the worker sent for attempts it holds or just
// reported; lines for any other run are dropped (a worker writes only its
// own runs' logs), and so are those of runs known to be past their log
// cap. It blocks while the session's lines waiting for the log writer
// exceed maxSessionLogBytes, so a worker printing faster than the store
// writes is slowed down instead of growing the server's memory.
func (s *Session) Logs(lines []store.LogLine) {
	e := s.e
	// Lines of capped runs go first, without the dispatcher's lock: a run
	// printing without end must not hold up dispatch.
	lines = e.logw.filter(lines)
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	s.touch()
	keep, size := lines[:0], 0
	var last RunRef // the last attempt found held: a run's lines come together
	for _, l := range lines {
		ref := RunRef{RunID: l.RunID, Attempt: l.Attempt}
		if ref == last || s.held[l.RunID] == l.Attempt && l.Attempt > 0 || slices.Contains(s.recent, ref) {
			last = ref
			keep = append(keep, l)
			size += len(l.Text) + len(l.RunID) + 32
		}
	}
	if dropped := len(lines) - len(keep); dropped > 0 {
		e.log.Debug("dropped log lines for runs the worker does not hold", "worker", s.hello.WorkerID, "lines", dropped)
	}
	if len(keep) == 0 {
		return
	}
	for s.logBytes > 0 && s.logBytes+size > maxSessionLogBytes && !s.closed && e.serving() {
		s.logSpace.Wait()
	}
	s.logBytes += size
	done := func() {
		e.disp.mu.Lock()
		s.logBytes -= size
		s.logSpace.Broadcast()
		e.disp.mu.Unlock()
	}
	if !e.logw.add(keep, done) {
		s.logBytes -= size
	}
}

// jsonResult returns a worker's result as valid JSON: a result that is not
// JSON is kept as a JSON string of its text, so that no worker can store a
// run that the API cannot print.
func jsonResult(b json.RawMessage) json.RawMessage {
	if len(b) == 0 || json.Valid(b) {
		return b
	}
	out, _ := json.Marshal(strings.ToValidUTF8(string(b), "\uFFFD"))
	return out
}

// remember notes an attempt the worker reported, for its late log lines.
// Called with e.disp.mu held.
func (s *Session) remember(ref RunRef) {
	if len(s.recent) < recentResults {
		s.recent = append(s.recent, ref)
		return
	}
	s.recent[s.recentNext] = ref
	s.recentNext = (s.recentNext + 1) % recentResults
}

// Close tells the engine the worker's stream ended. The worker becomes
// suspect; if it does not reconnect before it is declared dead, its runs
// are requeued with a new attempt.
func (s *Session) Close(err error) {
	e := s.e
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.failCommands()
	s.logSpace.Broadcast()
	defer e.noteDrain()
	if s.state == WorkerAlive {
		s.state = WorkerSuspect
	}
	if !e.serving() {
		return
	}
	if errors.Is(err, ErrWorkerLeft) {
		if e.disp.sessions[s.hello.WorkerID] == s {
			e.declareDead(s, "left")
		}
		return
	}
	// Dead DeadAfter after the worker was last heard from, or two thirds
	// of that (two heartbeat intervals by default) after its stream broke,
	// whichever comes first: a broken stream is stronger evidence than
	// silence (a killed process closes its connections at once), and a
	// worker that is alive reconnects within a second or two.
	dead := e.live().deadAfter(s.heartbeat)
	at := s.lastSeen.Add(dead)
	if closed := e.now().Add(dead * 2 / 3); closed.Before(at) {
		at = closed
	}
	wait := max(0, at.Sub(e.now()))
	s.deadTimer = e.clk.AfterFunc(wait, func() {
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		if e.disp.sessions[s.hello.WorkerID] == s && e.serving() {
			e.declareDead(s, fmt.Sprintf("stream closed (%v) and no reconnect", err))
		}
	})
}

// declareDead requeues everything the worker held with a new attempt and
// removes it. Called with e.disp.mu held.
func (e *Engine) declareDead(s *Session, why string) {
	s.state = WorkerDead
	var lost []*flight
	for id, att := range s.held {
		if f := e.disp.flights[id]; f != nil && f.attempt == att && f.session == s {
			lost = append(lost, f)
		}
	}
	level := slog.LevelWarn
	if why == "left" {
		level = slog.LevelInfo
	}
	e.log.Log(context.Background(), level, "worker gone", "worker", s.hello.WorkerID, "group", s.hello.Group, "runs", len(lost), "why", why)
	e.removeSession(s, "declared dead: "+why)
	if len(lost) > 0 {
		// A worker that left on purpose (it drained and closed its stream)
		// did not crash: what it gives back is not counted as lost.
		e.handBack(lost, "worker "+why, why != "left")
	}
}

// Drain stops dispatching to a worker and asks it to finish what it holds
// (resume undoes it). See DrainWorker.
func (e *Engine) Drain(workerID string, resume bool) error {
	_, err := e.DrainWorker(workerID, resume)
	return err
}

// Workers lists connected (and suspect) workers, by id.
func (e *Engine) Workers() []WorkerInfo {
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	out := make([]WorkerInfo, 0, len(e.disp.sessions))
	for _, s := range e.disp.sessions {
		out = append(out, s.info())
	}
	slices.SortFunc(out, func(a, b WorkerInfo) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}
