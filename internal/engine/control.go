package engine

import (
	"context"

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
		e.mu.Lock()
		defer e.mu.Unlock()
		e.cancelled(o.res, reason)
	})
	if err != nil {
		return nil, err
	}
	return o.res.Run, nil
}

// cancelled reacts to a committed cancel: the worker holding the run is
// told and its handler's context is cancelled. Called with e.mu held.
func (e *Engine) cancelled(res store.RunCancelResult, reason string) {
	if !res.Changed {
		return
	}
	id := res.Run.ID
	if f := e.flights[id]; f != nil {
		delete(e.flights, id)
		f.stopTimer()
		if f.session != nil {
			e.cancelOnWorker(f, reason)
		}
	}
	delete(e.orphans, id)
	e.terminal(id, res.Run.Job, store.StatusCancelled)
}

// Retry puts a failed, cancelled or timed-out run back in the queue with a
// fresh attempt budget.
func (e *Engine) Retry(ctx context.Context, id string) (*store.Run, error) {
	o := &retryOp{params: store.RunRetryParams{ID: id, Now: e.now()}}
	err := e.do(ctx, o, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.created(o.run)
	})
	if err != nil {
		return nil, err
	}
	return o.run, nil
}

// Wait blocks until the run is terminal and returns it. If ctx ends first
// it returns the run as it is now together with ctx.Err().
func (e *Engine) Wait(ctx context.Context, id string) (*store.Run, error) {
	ch := make(chan struct{}, 1)
	e.mu.Lock()
	e.waiters[id] = append(e.waiters[id], ch)
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		ws := e.waiters[id]
		for i, w := range ws {
			if w == ch {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(e.waiters, id)
		} else {
			e.waiters[id] = ws
		}
		e.mu.Unlock()
	}()
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
// for a one-shot run). Called with e.mu held.
func (e *Engine) terminal(id, job string, st store.RunStatus) {
	e.notify(id)
	if job != "" {
		e.jobRunEnded(job)
	}
	if e.cfg.OnTerminal != nil {
		e.cfg.OnTerminal(id, st)
	}
}

// notify wakes the waiters of a run that reached a terminal state. Called
// with e.mu held.
func (e *Engine) notify(id string) {
	for _, ch := range e.waiters[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
