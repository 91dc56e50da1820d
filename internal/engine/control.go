package engine

import (
	"context"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/clock"

	"github.com/pluto-sched/pluto/internal/store"
)

// do queues o and waits for its commit.
func (e *Engine) do(ctx context.Context, o op, after func()) error {
	done := make(chan struct{})
	b := o.base()
	b.done = func() {
		if b.err == nil && after != nil {
			after()
		}
		close(done)
	}
	e.submitOp(o)
	return e.await(ctx, o, done)
}

// Cancel cancels a run wherever it is. A run a worker holds is cancelled
// in the store first; then the worker is told, and its handler's context
// is cancelled. Cancelling a finished run returns it unchanged.
func (e *Engine) Cancel(ctx context.Context, id, reason string) (*store.Run, error) {
	if reason == "" {
		reason = "cancelled"
	}
	o := &cancelOp{params: store.RunCancelParams{ID: id, Reason: reason, Now: e.now()}}
	err := e.do(ctx, o, func() {
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		e.cancelled(o.res, reason)
	})
	if err != nil {
		return nil, err
	}
	return o.res.Run, nil
}

// cancelled reacts to a committed cancel: the worker holding the run is
// told and its handler's context is cancelled. Called with e.disp.mu held.
func (e *Engine) cancelled(res store.RunCancelResult, reason string) {
	if !res.Changed {
		return
	}
	id := res.Run.ID
	var ran time.Duration
	f := e.disp.flights[id]
	if mayHaveMapped(res, f) {
		e.cancelChildren(res.Run, reason)
	}
	if f != nil {
		delete(e.disp.flights, id)
		f.stopTimer()
		if f.session != nil {
			e.cancelOnWorker(f, reason)
		}
		ran = f.ranFor(e.now())
	}
	delete(e.disp.orphans, id)
	e.cfg.Observer.Finished(res.Run.Group, res.Run.Type, store.StatusCancelled, ran)
	e.terminal(id, res.Run.Job, res.Run.LogicalTime, store.StatusCancelled)
	e.alerts.ended(id, res.Run.Job, res.Run.Group, store.StatusCancelled, res.Run)
	e.joins.note(res.Run.ParentID)
	if isParent(res.Run) {
		e.cancelChildren(res.Run, reason)
	}
}

// mayHaveMapped reports whether a cancelled run may have made children
// (Session.Map), which are then cancelled too: its flight here says so; a
// run held on another server (no flight here) that a worker held is
// looked up (cancelChildren finds no fan-out for most).
func mayHaveMapped(res store.RunCancelResult, f *flight) bool {
	if f != nil {
		return f.mapped
	}
	held := res.Prev == store.StatusDispatched || res.Prev == store.StatusRunning
	return held && res.Run.ParentID == "" && !isParent(res.Run)
}

// Retry puts a failed, cancelled or timed-out run back in the queue with a
// fresh attempt budget. A fan-out's parent runs again with only its
// children that did not succeed (retryFanout).
func (e *Engine) Retry(ctx context.Context, id string) (*store.Run, error) {
	if r, err := e.st.RunGet(ctx, id); err == nil && isParent(r) {
		return e.retryFanout(ctx, id)
	}
	o := &retryOp{params: store.RunRetryParams{ID: id, Now: e.now()}}
	err := e.do(ctx, o, func() {
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		e.created(o.run)
		if o.run.Job != "" && !o.run.LogicalTime.IsZero() {
			// The runs its end skipped for their dependencies wait again.
			e.gate.note(gateNote{job: o.run.Job, at: o.run.LogicalTime, reopen: true})
		}
	})
	if err != nil {
		return nil, err
	}
	return o.run, nil
}

// Wait blocks until the run is terminal and returns it. If ctx ends first
// it returns the run as it is now together with ctx.Err().
func (e *Engine) Wait(ctx context.Context, id string) (*store.Run, error) {
	ch := e.waiters.add(id)
	defer e.waiters.remove(id, ch)
	shared := !e.cfg.ExclusiveStore
	watched := false
	for {
		// Registered before reading, so a finish between the read and the
		// select still wakes us.
		r, err := e.st.RunGet(ctx, id)
		if err != nil {
			return nil, err
		}
		if r.Status.Terminal() {
			return r, nil
		}
		var (
			recheck <-chan struct{}
			timer   clock.Timer
		)
		if shared {
			if !watched {
				// Another server may finish it: ask to be told.
				watched = true
				if err := e.do(ctx, &notifyOp{notes: []store.Notification{{Topic: store.TopicWatch, Payload: id}}}, nil); err != nil {
					return r, err
				}
				continue // read again: it may have finished before the watch was heard
			}
			c := make(chan struct{})
			timer = e.clk.AfterFunc(watchRecheck, func() { close(c) })
			recheck = c
		}
		select {
		case <-ch:
		case <-recheck:
		case <-ctx.Done():
			return r, ctx.Err()
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// terminal reports a committed terminal status of run id of job (""
// for a one-shot run) for logical time at (zero: none). Called with
// e.disp.mu held.
func (e *Engine) terminal(id, job string, at time.Time, st store.RunStatus) {
	e.waiters.wake(id)
	if job != "" {
		e.jobRunEnded(job)
	}
	if job != "" && !at.IsZero() {
		if e.gate.mayHaveDependents(job) {
			e.gate.note(gateNote{job: job, at: at})
		}
		e.backfill.noteJob(job)
	}
	if e.cfg.OnTerminal != nil {
		e.cfg.OnTerminal(id, st)
	}
}

// waiters are the Wait calls on this server, by run id. Their lock is a
// leaf: taken with or without the engine's, never while taking another.
type waiters struct {
	mu sync.Mutex
	m  map[string][]chan struct{}
}

// add registers a waiter for run id; its channel is signalled when the run
// ends.
func (w *waiters) add(id string) chan struct{} {
	ch := make(chan struct{}, 1)
	w.addChan(id, ch)
	return ch
}

// addChan registers ch (1-buffered) as a waiter for run id.
func (w *waiters) addChan(id string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = make(map[string][]chan struct{})
	}
	w.m[id] = append(w.m[id], ch)
}

// remove forgets the waiter ch of run id.
func (w *waiters) remove(id string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws := w.m[id]
	for i, x := range ws {
		if x == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(w.m, id)
	} else {
		w.m[id] = ws
	}
}

// wakeAll wakes the waiters of each run of ids.
func (w *waiters) wakeAll(ids []string) {
	for _, id := range ids {
		w.wake(id)
	}
}

// wake signals the waiters of a run that reached a terminal state.
func (w *waiters) wake(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.m[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
