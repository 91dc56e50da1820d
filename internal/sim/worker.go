package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// The worker side: a simulated transport (conn, the engine.Conn of one
// stream) and simulated worker processes that follow the worker SDK's
// protocol — Hello with held runs, acks, results kept until acknowledged
// and resent on every new stream, heartbeats, reconnect with jittered
// back-off — and misbehave as their quirks say.
//
// The engine calls a conn from its own goroutines, with its lock held, so
// a conn only queues; the driver goroutine drains the queues every tick.
// Everything a worker does happens on the driver goroutine.

// Message kinds the engine sends.
const (
	msgDispatch = iota + 1
	msgCancel
	msgAcks
	msgClose
	msgOther
)

type connMsg struct {
	kind   int
	tasks  []engine.Task
	ref    engine.RunRef
	acks   []engine.ResultAck
	reason string
}

// conn is one stream as the engine sees it.
type conn struct {
	wk  *worker
	gen int

	mu     sync.Mutex
	msgs   []connMsg
	closed bool
}

var _ engine.Conn = (*conn)(nil)

func (c *conn) push(m connMsg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
}

func (c *conn) take() []connMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	ms := c.msgs
	c.msgs = nil
	return ms
}

func (c *conn) Dispatch(tasks []engine.Task) {
	refs := make([]attemptRef, len(tasks))
	for i, t := range tasks {
		refs[i] = attemptRef{t.RunID, t.Attempt}
	}
	c.wk.w.hist.sent(c.wk.id, refs)
	c.push(connMsg{kind: msgDispatch, tasks: slices.Clone(tasks)})
}

func (c *conn) Cancel(ref engine.RunRef, reason string) {
	c.push(connMsg{kind: msgCancel, ref: ref, reason: reason})
}

func (c *conn) ResultAcks(acks []engine.ResultAck) {
	for _, a := range acks {
		if !a.Accepted {
			continue
		}
		ref := attemptRef{a.RunID, a.Attempt}
		if n := c.wk.w.hist.acked(ref); n > 1 {
			c.wk.w.violate(invOnce, a.RunID, "the engine told workers %d times that a result for attempt %s was accepted", n, ref)
		}
	}
	c.push(connMsg{kind: msgAcks, acks: slices.Clone(acks)})
}

// LogsCapped is not acted on: the simulated workers print a few lines, far
// below any cap.
func (c *conn) LogsCapped([]engine.RunRef) { c.push(connMsg{kind: msgOther, reason: "logs capped"}) }
func (c *conn) Drain(bool)                 { c.push(connMsg{kind: msgOther, reason: "drain"}) }

// MapAck is not acted on: the simulated workers do not map.
func (c *conn) MapAck(engine.MapAck) { c.push(connMsg{kind: msgOther, reason: "map ack"}) }
func (c *conn) Shutdown(bool)        { c.push(connMsg{kind: msgOther, reason: "shutdown"}) }
func (c *conn) Command(id, name string, _ json.RawMessage, _ time.Duration) {
	c.push(connMsg{kind: msgOther, reason: "command " + name})
}

func (c *conn) Close(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	c.msgs = append(c.msgs, connMsg{kind: msgClose, reason: reason})
}

// quirks say how a worker misbehaves. Crash and freeze are chances per
// second of the fault phase; the others are what the worker is.
type quirks struct {
	crash        float64 // the stream breaks (see crashKind)
	freeze       float64 // stops sending anything for a few seconds, then resumes with late reports
	garbage      float64 // chance per second of a garbage message
	refuseCancel bool    // never acts on CancelRun
	noDeadline   bool    // does not enforce run timeouts itself
	window0      bool    // announces window 0 in its Hello
	resultDir    bool    // keeps unacknowledged results across a process restart
	badOutput    bool    // results that are not JSON, invalid UTF-8 and NULs in errors and logs
}

func (q quirks) String() string {
	s := ""
	add := func(b bool, n string) {
		if b {
			s += " " + n
		}
	}
	add(q.crash > 0, "crashy")
	add(q.freeze > 0, "freezy")
	add(q.garbage > 0, "garbage")
	add(q.refuseCancel, "refuses-cancel")
	add(q.noDeadline, "no-deadline")
	add(q.window0, "window0")
	add(q.resultDir, "result-dir")
	add(q.badOutput, "bad-output")
	if s == "" {
		return "healthy"
	}
	return s[1:]
}

type workerState int

const (
	offline workerState = iota
	connected
	gone // crashed for good
)

// payload is what a simulated run's payload tells the worker to do.
type payload struct {
	MS     int  `json:"ms"`               // how long the handler runs
	Fail   int  `json:"fail,omitempty"`   // percent chance an attempt fails
	Hang   bool `json:"hang,omitempty"`   // the handler hangs until cancelled
	Poison bool `json:"poison,omitempty"` // starting it crashes the worker process
	Logs   int  `json:"logs,omitempty"`   // log lines per attempt
	Probe  bool `json:"probe,omitempty"`
}

// task is an attempt the worker holds.
type task struct {
	ref      attemptRef
	typ      string
	p        payload
	timeout  time.Duration
	startAt  time.Time // when the handler starts (ack)
	endAt    time.Time // when it returns; zero while hung
	timesOut bool      // endAt is the worker-side deadline
	started  bool
}

type worker struct {
	w        *world
	idx      int
	id, name string
	group    string
	types    []string
	capacity int
	window   int
	q        quirks
	rng      *rand.Rand
	spare    bool // connected for the quiet phase

	state       workerState
	sess        *engine.Session
	c           *conn
	gen         int
	nextTry     time.Time
	backoff     time.Duration
	frozenUntil time.Time
	noWindow0   bool // the engine refused window 0; announce the real window
	process     int  // incremented when the process restarts (Hello.Instance)

	tasks   map[attemptRef]*task
	unacked map[attemptRef]engine.Result // sent or to send, not yet acknowledged
	outAcks []engine.Ack
	outLogs []store.LogLine
	outRes  []engine.Result
	nextHB  time.Time
	reports int
	since   time.Time // connected since (this stream)
	closes  []string  // why the server closed its stream in the quiet phase
}

// SDK back-off: jittered, 100 ms doubling to 5 s, reset once welcomed.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

func (wk *worker) jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(wk.rng.Int64N(int64(d/2)+1))
}

func (wk *worker) trace(format string, args ...any) {
	wk.w.tr.add("%s %s", wk.name, fmt.Sprintf(format, args...))
}

// held lists what the worker would announce as held in a Hello: its
// attempts and the results no server acknowledged.
func (wk *worker) held() []engine.RunRef {
	var refs []attemptRef
	for r := range wk.tasks {
		refs = append(refs, r)
	}
	for r := range wk.unacked {
		if wk.tasks[r] == nil {
			refs = append(refs, r)
		}
	}
	slices.SortFunc(refs, func(a, b attemptRef) int {
		if a.run != b.run {
			if a.run < b.run {
				return -1
			}
			return 1
		}
		return a.attempt - b.attempt
	})
	out := make([]engine.RunRef, len(refs))
	for i, r := range refs {
		out[i] = engine.RunRef{RunID: r.run, Attempt: r.attempt}
		if t := wk.tasks[r]; t != nil && t.started {
			out[i].StartedAt = t.startAt // as the SDK does: the Ack may be lost
		}
	}
	return out
}

// connect tries to open a stream to the current engine.
func (wk *worker) connect(now time.Time) {
	eng := wk.w.engine()
	if eng == nil {
		wk.retryLater(now, "no server")
		return
	}
	win := wk.window
	if wk.q.window0 && !wk.noWindow0 {
		win = 0
	}
	held := wk.held()
	wk.gen++
	c := &conn{wk: wk, gen: wk.gen}
	h := engine.Hello{
		WorkerID: wk.id, Group: wk.group, Capacity: wk.capacity, Window: win,
		Types: wk.types, Version: "sim", Hostname: wk.name, Held: held,
	}
	h.Instance = fmt.Sprintf("%s/p%d", wk.name, wk.process) // the same process reconnecting replaces its session
	sess, stale, err := eng.Connect(context.Background(), h, c)
	if err != nil {
		var fe *engine.FieldError
		if errors.As(err, &fe) && wk.q.window0 && !wk.noWindow0 {
			wk.noWindow0 = true // refused, as it should be: announce the real window
		}
		wk.retryLater(now, "connect: "+err.Error())
		return
	}
	wk.state, wk.sess, wk.c, wk.since = connected, sess, c, now
	wk.backoff = minBackoff
	wk.nextHB = now.Add(wk.w.hbEvery)
	wk.trace("connected gen %d window %d held %v stale %v", wk.gen, win, held, stale)
	for _, r := range stale {
		ref := attemptRef{r.RunID, r.Attempt}
		delete(wk.tasks, ref) // the SDK cancels stale attempts and forgets their results
		delete(wk.unacked, ref)
	}
	// Every unacknowledged result is sent again on the new stream.
	wk.outRes = wk.outRes[:0]
	for _, ref := range sortedRefs(wk.unacked) {
		wk.outRes = append(wk.outRes, wk.unacked[ref])
	}
}

func (wk *worker) retryLater(now time.Time, why string) {
	if wk.backoff == 0 {
		wk.backoff = minBackoff
	}
	d := wk.jitter(wk.backoff)
	wk.backoff = min(2*wk.backoff, maxBackoff)
	wk.nextTry = now.Add(d)
	wk.w.tr.add("%s offline (%s); retry in %v", wk.name, why, d.Round(time.Millisecond))
}

// disconnect ends the stream from the worker's side, as the transport
// does when it breaks: the session is closed with err.
func (wk *worker) disconnect(now time.Time, err error) {
	if wk.state != connected {
		return
	}
	wk.sess.Close(err)
	wk.state, wk.sess, wk.c = offline, nil, nil
	wk.outAcks, wk.outLogs, wk.outRes = nil, nil, nil
}

// streamLost: the server went away (it stopped); nothing to tell it.
func (wk *worker) streamLost(now time.Time) {
	if wk.state != connected {
		return
	}
	wk.state, wk.sess, wk.c = offline, nil, nil
	wk.outAcks, wk.outLogs, wk.outRes = nil, nil, nil
	wk.backoff = minBackoff
	wk.retryLater(now, "server stopped")
}

// crash kills the worker process: the stream breaks; it comes back as a
// new process after restartIn (nothing held, unless it keeps a result
// directory), or never (restartIn < 0).
func (wk *worker) crash(now time.Time, why string, restartIn time.Duration) {
	wk.trace("crashes (%s)", why)
	wk.disconnect(now, errors.New("connection reset by peer"))
	wk.tasks = make(map[attemptRef]*task)
	if !wk.q.resultDir {
		wk.unacked = make(map[attemptRef]engine.Result)
	}
	wk.frozenUntil = time.Time{}
	if restartIn < 0 {
		wk.state = gone
		wk.trace("is gone for good")
		return
	}
	wk.state = offline
	wk.backoff = minBackoff
	wk.nextTry = now.Add(restartIn)
	wk.process++
}

// tick runs one step of the worker at time now.
func (wk *worker) tick(now time.Time) {
	if wk.state == gone {
		return
	}
	if now.Before(wk.frozenUntil) {
		return
	}
	if !wk.frozenUntil.IsZero() {
		wk.frozenUntil = time.Time{}
		wk.trace("resumes after a freeze")
	}
	if wk.state == connected {
		wk.inbox(now)
	}
	if wk.state == offline && !now.Before(wk.nextTry) {
		wk.connect(now)
	}
	wk.runTasks(now)
	if wk.state == gone {
		return
	}
	if wk.w.chaos() {
		wk.chaos(now)
	}
	if wk.state == connected {
		wk.send(now)
	}
}

// inbox handles what the engine sent on the current stream.
func (wk *worker) inbox(now time.Time) {
	c := wk.c
	for _, m := range c.take() {
		switch m.kind {
		case msgDispatch:
			for _, t := range m.tasks {
				wk.accept(now, t)
			}
		case msgCancel:
			ref := attemptRef{m.ref.RunID, m.ref.Attempt}
			t := wk.tasks[ref]
			switch {
			case t == nil:
			case wk.q.refuseCancel:
				wk.trace("ignores CancelRun %s (%s)", ref, m.reason)
			default:
				wk.finish(now, t, engine.OutcomeCancelled, "cancelled: "+m.reason)
			}
		case msgAcks:
			for _, a := range m.acks {
				delete(wk.unacked, attemptRef{a.RunID, a.Attempt})
			}
		case msgClose:
			wk.trace("stream closed by the server: %s", m.reason)
			if wk.w.phase == phaseQuiet {
				wk.closes = append(wk.closes, m.reason)
			}
			// The transport ends the session as it ends the stream.
			wk.disconnect(now, errors.New(m.reason))
			wk.backoff = minBackoff
			wk.retryLater(now, "closed by the server")
			return
		}
	}
}

// accept takes a dispatched attempt.
func (wk *worker) accept(now time.Time, t engine.Task) {
	ref := attemptRef{t.RunID, t.Attempt}
	if wk.tasks[ref] != nil {
		return
	}
	var p payload
	_ = json.Unmarshal(t.Payload, &p)
	tk := &task{ref: ref, typ: t.Type, p: p, timeout: t.Timeout, startAt: now.Add(time.Duration(wk.rng.IntN(150)) * time.Millisecond)}
	wk.tasks[ref] = tk
}

// runTasks starts and ends handlers whose time has come.
func (wk *worker) runTasks(now time.Time) {
	for _, ref := range sortedRefs(wk.tasks) {
		t := wk.tasks[ref]
		if t == nil {
			continue
		}
		if !t.started && !now.Before(t.startAt) {
			if t.p.Poison {
				wk.crash(now, "poison run "+ref.String(), wk.restartDelay())
				return
			}
			t.started = true
			wk.outAcks = append(wk.outAcks, engine.Ack{RunID: ref.run, Attempt: ref.attempt, StartedAt: now})
			d := time.Duration(t.p.MS) * time.Millisecond
			d += time.Duration(wk.rng.IntN(int(d/10) + 1)) // jitter
			if !t.p.Hang {
				t.endAt = now.Add(d)
			}
			if t.timeout > 0 && !wk.q.noDeadline && (t.p.Hang || d > t.timeout) {
				t.endAt, t.timesOut = now.Add(t.timeout), true
			}
			for i := range t.p.Logs {
				wk.log(now, ref, fmt.Sprintf("line %d of %s", i, ref))
			}
		}
		if t.started && !t.endAt.IsZero() && !now.Before(t.endAt) {
			switch {
			case t.timesOut:
				wk.finish(now, t, engine.OutcomeTimedOut, "deadline exceeded")
			case t.p.Fail > 0 && wk.rng.IntN(100) < t.p.Fail:
				wk.finish(now, t, engine.OutcomeFailed, "boom")
			default:
				wk.finish(now, t, engine.OutcomeSucceeded, "")
			}
		}
	}
}

func (wk *worker) restartDelay() time.Duration {
	return time.Second + time.Duration(wk.rng.Int64N(int64(3*time.Second)))
}

func (wk *worker) log(now time.Time, ref attemptRef, text string) {
	if wk.q.badOutput && wk.rng.IntN(3) == 0 {
		text += " \xff\xfe bad \x00 bytes"
	}
	wk.outLogs = append(wk.outLogs, store.LogLine{RunID: ref.run, Attempt: ref.attempt, Time: now, Stream: "stdout", Text: logTag(wk.id) + text})
}

// finish ends an attempt with an outcome; the result is kept until the
// server acknowledges it.
func (wk *worker) finish(now time.Time, t *task, o engine.Outcome, errText string) {
	delete(wk.tasks, t.ref)
	wk.reports++
	n := wk.reports
	res := engine.Result{RunID: t.ref.run, Attempt: t.ref.attempt, Outcome: o, StartedAt: t.startAt, FinishedAt: now}
	res.Result = fmt.Appendf(nil, `{"by":%q,"n":%d,"run":%q,"attempt":%d}`, wk.name, n, t.ref.run, t.ref.attempt)
	if wk.q.badOutput {
		switch wk.rng.IntN(3) {
		case 0:
			res.Result = fmt.Appendf(nil, "not json { %s %d", wk.name, n)
		case 1:
			res.Result = fmt.Appendf(nil, "\xff\xfe\x00 binary %s %d", wk.name, n)
		}
	}
	if errText != "" {
		res.Error = fmt.Sprintf("%s from %s #%d", errText, wk.name, n)
		if wk.q.badOutput && wk.rng.IntN(2) == 0 {
			res.Error += " \xc3\x28 invalid \x00 utf8"
		}
	}
	wk.w.hist.noteReport(string(res.Result), &report{worker: wk.id, name: wk.name, run: t.ref.run, attempt: t.ref.attempt, outcome: outcomeName(o)})
	wk.unacked[t.ref] = res
	wk.outRes = append(wk.outRes, res)
}

func outcomeName(o engine.Outcome) string {
	switch o {
	case engine.OutcomeSucceeded:
		return "succeeded"
	case engine.OutcomeFailed:
		return "failed"
	case engine.OutcomeCancelled:
		return "cancelled"
	case engine.OutcomeTimedOut:
		return "timed_out"
	}
	return "?"
}

// send flushes what the worker queued and heartbeats.
func (wk *worker) send(now time.Time) {
	s := wk.sess
	if len(wk.outAcks) > 0 {
		acks := wk.outAcks
		wk.outAcks = nil
		s.Ack(acks)
	}
	if len(wk.outLogs) > 0 {
		lines := wk.outLogs
		wk.outLogs = nil
		s.Logs(lines)
	}
	if len(wk.outRes) > 0 {
		rs := wk.outRes
		wk.outRes = nil
		for _, r := range rs {
			wk.trace("result %s/%d %s", r.RunID, r.Attempt, outcomeName(r.Outcome))
		}
		s.Results(rs)
	}
	if !now.Before(wk.nextHB) {
		s.Heartbeat(engine.Load{Running: len(wk.tasks), Capacity: wk.capacity})
		wk.nextHB = now.Add(wk.w.hbEvery)
	}
}

// chaos: the misbehaviour of the fault phase.
func (wk *worker) chaos(now time.Time) {
	per := wk.w.tick.Seconds()
	if wk.q.crash > 0 && wk.state != gone && wk.rng.Float64() < wk.q.crash*per {
		switch x := wk.rng.IntN(10); {
		case x == 0 && !wk.spare:
			wk.crash(now, "chaos", -1)
		case x < 5:
			wk.crash(now, "chaos", wk.restartDelay())
		default:
			// A network blip: the stream breaks, the process lives on and
			// reconnects with what it holds.
			if wk.state == connected {
				wk.trace("stream breaks (network)")
				wk.disconnect(now, errors.New("transport is closing"))
				wk.retryLater(now, "network")
			}
		}
		return
	}
	if wk.q.freeze > 0 && wk.rng.Float64() < wk.q.freeze*per {
		d := time.Duration(500+wk.rng.IntN(8000)) * time.Millisecond
		wk.frozenUntil = now.Add(d)
		wk.trace("freezes for %v", d)
		return
	}
	if wk.q.garbage > 0 && wk.state == connected && wk.rng.Float64() < wk.q.garbage*per {
		wk.sendGarbage(now)
	}
}

// sendGarbage sends a report about something the worker does not hold.
func (wk *worker) sendGarbage(now time.Time) {
	run, attempt, other := wk.w.randomAttempt(wk.rng)
	if run == "" {
		return
	}
	ref := attemptRef{run, attempt}
	if wk.tasks[ref] != nil || wk.unacked[ref].RunID != "" {
		return // it does hold that one
	}
	switch wk.rng.IntN(4) {
	case 0:
		wk.reports++
		res := engine.Result{
			RunID: run, Attempt: attempt, Outcome: engine.Outcome(1 + wk.rng.IntN(4)),
			Result: fmt.Appendf(nil, `{"garbage":%q,"n":%d}`, wk.name, wk.reports), FinishedAt: now,
		}
		wk.w.hist.noteReport(string(res.Result), &report{worker: wk.id, name: wk.name, run: run, attempt: attempt, outcome: outcomeName(res.Outcome), garbage: true})
		wk.trace("garbage: result for %s it never held", ref)
		wk.sess.Results([]engine.Result{res})
	case 1:
		wk.trace("garbage: ack for %s it never held", ref)
		wk.sess.Ack([]engine.Ack{{RunID: run, Attempt: attempt, StartedAt: now}})
	case 2:
		wk.trace("garbage: log line for %s (a run of %s)", ref, other)
		wk.sess.Logs([]store.LogLine{{RunID: run, Attempt: attempt, Time: now, Stream: "stderr", Text: logTag(wk.id) + "not my run"}})
	default:
		wk.trace("garbage: ack and result for an unknown run")
		wk.sess.Ack([]engine.Ack{{RunID: "r_unknown", Attempt: 1}})
		wk.sess.Results([]engine.Result{{RunID: "r_unknown", Attempt: 1, Outcome: engine.OutcomeSucceeded, Result: []byte("\x00")}})
	}
}

// sortedRefs returns m's keys by run, then attempt: a seed's steps must not
// depend on map iteration order.
func sortedRefs[V any](m map[attemptRef]V) []attemptRef {
	refs := make([]attemptRef, 0, len(m))
	for r := range m {
		refs = append(refs, r)
	}
	slices.SortFunc(refs, func(a, b attemptRef) int {
		if c := strings.Compare(a.run, b.run); c != 0 {
			return c
		}
		return a.attempt - b.attempt
	})
	return refs
}
