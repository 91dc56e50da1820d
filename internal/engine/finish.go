package engine

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// finishParams turns a worker's result into the run's next state.
//
//	succeeded                          → succeeded
//	cancelled by the worker on its own → queued (lost attempt, e.g. drain deadline)
//	failed / timed out, attempts left  → pending until now + backoff
//	failed / timed out, none left      → failed / timed_out
//	poke (a sensor: not yet)           → pending until now + its delay, no attempt used
//
// A cancel the server asked for was committed before the worker was told,
// so the worker's "cancelled" result for it is rejected by fencing.
func (e *Engine) finishParams(f *flight, r *Result, s *Session, now time.Time) store.RunFinishParams {
	p := store.RunFinishParams{
		ID: f.id, Attempt: f.attempt, Result: r.Result, Error: r.Error,
		StartedAt: r.StartedAt.Truncate(time.Microsecond), WorkerID: s.hello.WorkerID,
		ServerID: e.fence(), Now: now,
	}
	switch r.Outcome {
	case OutcomeSucceeded:
		p.Status = store.StatusSucceeded
		p.Error = ""
	case OutcomeCancelled:
		p.Status = store.StatusQueued
	case OutcomeTimedOut:
		e.failure(&p, f, store.StatusTimedOut, r.NoRetry, now)
	case OutcomePoke:
		p.Status, p.Error = store.StatusPending, ""
		p.RunAt = now.Add(min(max(r.PokeAfter, minPoke), maxPoke)).Truncate(time.Microsecond)
	default:
		if p.Error == "" {
			p.Error = "failed"
		}
		e.failure(&p, f, store.StatusFailed, r.NoRetry, now)
	}
	return p
}

// A poke waits at least minPoke and at most maxPoke.
const (
	minPoke = time.Second
	maxPoke = 24 * time.Hour
)

// failure fills p for a failed attempt: a retry after backoff while
// attempts are left, otherwise the terminal status.
func (e *Engine) failure(p *store.RunFinishParams, f *flight, terminal store.RunStatus, noRetry bool, now time.Time) {
	p.Failure = true
	p.TimedOut = terminal == store.StatusTimedOut // a retry records the attempt as timed out
	failures := f.failures + 1
	if !noRetry && failures < f.maxAttempts {
		p.Status = store.StatusPending
		p.RunAt = now.Add(e.backoff(failures))
		return
	}
	p.Status = terminal
}

// backoff is the delay before retry n (1-based): RetryBase·2^(n−1), capped
// at RetryMax, with equal jitter (half fixed, half random) so that runs
// failing together do not retry together.
func (e *Engine) backoff(n int) time.Duration {
	live := e.live()
	d := live.RetryBase
	for i := 1; i < n && d < live.RetryMax; i++ {
		d *= 2
	}
	d = min(d, live.RetryMax)
	half := d / 2
	return (half + time.Duration(rand.Int64N(int64(half)+1))).Truncate(time.Microsecond)
}

// finished runs after a batch of results committed: it acknowledges them
// to the worker and wakes waiters, the promoter and the queue.
func (e *Engine) finished(s *Session, fs []*flight, o *finishOp) {
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	if o.err != nil {
		e.notCommitted(s, fs, o.err)
		return
	}
	acks := make([]ResultAck, len(fs))
	for i, res := range o.res {
		acks[i] = ResultAck{RunID: fs[i].id, Attempt: fs[i].attempt, Accepted: res.Accepted}
		if res.Accepted {
			e.settled(fs[i], o.params[i])
		}
	}
	s.conn.ResultAcks(acks)
}

// notCommitted reacts to results whose commit failed: the attempts stay
// reclaimable and the worker is made to reconnect; it resends the results
// it holds, and they are accepted then. Called with e.disp.mu held.
func (e *Engine) notCommitted(s *Session, fs []*flight, err error) {
	e.log.Error("results not committed", "worker", s.hello.WorkerID, "runs", len(fs), "err", err)
	now := e.now()
	for _, f := range fs {
		f.session, f.orphanedAt = nil, now
		e.disp.orphans[f.id] = f
	}
	s.conn.Close("store error")
}

// settled reacts to a committed finish. Called with e.disp.mu held.
func (e *Engine) settled(f *flight, p store.RunFinishParams) {
	switch {
	case p.Status.Terminal():
		e.cfg.Observer.Finished(f.group, f.typ, p.Status, f.ranFor(p.Now))
		e.terminal(p.ID, f.job, f.logicalTime, p.Status)
		e.alerts.ended(p.ID, f.job, f.group, p.Status, nil)
		e.joins.note(f.parent)
		if f.mapped && p.Status != store.StatusSucceeded {
			e.cancelChildren(&store.Run{ID: f.id}, "the run that mapped them ended "+string(p.Status))
		}
	case p.Status == store.StatusQueued:
		e.wake(f.group)
	case p.Status == store.StatusPending:
		e.notePending(p.RunAt)
	}
}

// timedOut ends an attempt that ran past its timeout: the outcome is
// committed (retry or timed_out) and the worker is told to cancel it.
func (e *Engine) timedOut(f *flight) {
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	if e.disp.flights[f.id] != f || !e.serving() {
		return
	}
	delete(e.disp.flights, f.id)
	f.timer = nil
	f.stopTimer() // the long-run timer
	now := e.now()
	p := store.RunFinishParams{ID: f.id, Attempt: f.attempt, Error: fmt.Sprintf("timed out after %s", f.timeout), ServerID: e.fence(), Now: now}
	if f.session != nil {
		p.WorkerID = f.session.hello.WorkerID
		e.cancelOnWorker(f, "timed out")
	}
	e.failure(&p, f, store.StatusTimedOut, false, now)
	o := &finishOp{params: []store.RunFinishParams{p}, groups: []string{f.group}}
	o.done = func() {
		if o.err != nil || !o.res[0].Accepted {
			return
		}
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		e.settled(f, p)
	}
	e.pushFinishes(o)
}

// armTimeout arms the server-side timeout of a started attempt that this
// engine did not see start: recovered after a restart, or adopted from
// another server with its worker. It fires when the attempt's time is up
// counted from its recorded start (at once if that has passed). Called
// with e.disp.mu held.
func (e *Engine) armTimeout(f *flight, now time.Time) {
	e.armLongRun(f, now)
	if !f.started || f.timeout <= 0 || f.timer != nil {
		return
	}
	start := f.startedAt
	if start.IsZero() {
		start = now
	}
	f.timer = e.clk.AfterFunc(max(0, start.Add(f.timeout).Sub(now)), func() { e.timedOut(f) })
}

// cancelOnWorker tells the worker holding f to cancel it. Every CancelRun
// is answered with a Result, which frees the worker's slot; a worker that
// does not answer within the dead timeout gets the slot back anyway (its
// handler ignores cancellation, or the worker is broken) and a warning is
// logged, so a misbehaving worker cannot hold slots forever. Called with
// e.disp.mu held.
func (e *Engine) cancelOnWorker(f *flight, reason string) {
	s := f.session
	s.conn.Cancel(f.ref(), reason)
	id, attempt := f.id, f.attempt
	e.clk.AfterFunc(e.live().deadAfter(s.heartbeat), func() {
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		if s.closed || s.held[id] != attempt {
			return
		}
		delete(s.held, id)
		e.log.Warn("worker did not answer a cancel; its slot is freed", "worker", s.hello.WorkerID, "run", id, "attempt", attempt)
		e.kick(s.g) // assigns waiting runs first
	})
}

// failTooLarge ends runs whose task no worker of their group takes in one
// message: retrying cannot help. Called with e.disp.mu held.
func (e *Engine) failTooLarge(fs []*flight, limit int) {
	e.failNow(fs, func(f *flight) string {
		return fmt.Sprintf("the task is %d bytes; no worker of group %q serving %q takes messages over %d bytes", f.size(), f.group, f.typ, limit)
	})
}

// failNow fails claimed runs that no worker here may take, for good, each
// with the error why gives it. Called with e.disp.mu held.
func (e *Engine) failNow(fs []*flight, why func(*flight) string) {
	now := e.now()
	params := make([]store.RunFinishParams, len(fs))
	groups := make([]string, len(fs))
	for i, f := range fs {
		f.stopTimer()
		if e.disp.flights[f.id] == f {
			delete(e.disp.flights, f.id)
		}
		params[i] = store.RunFinishParams{
			ID: f.id, Attempt: f.attempt, Status: store.StatusFailed, Failure: true, ServerID: e.fence(), Now: now, Error: why(f),
		}
		groups[i] = f.group
	}
	o := &finishOp{params: params, groups: groups}
	o.done = func() {
		if o.err != nil {
			return
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
