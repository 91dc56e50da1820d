package engine

import (
	"context"
	"errors"
)

// Graceful stop
//
// A server stops in two steps: Quiesce, then Stop. Quiesce stops taking
// work and waits for the runs already on this server's workers:
//
//   - No new work: the engine refuses worker connections (ErrStopped),
//     claims no more queued runs, and gives the leader lease up at once so
//     another server (PostgreSQL) runs cron, promotion and reaping. The
//     transports refuse submissions themselves (503 / Unavailable).
//   - Runs this server claimed that no worker has yet go back to the queue
//     (committed), for another server or the next start.
//   - Runs already sent to a worker — running, or prefetched and waiting
//     on the worker for a slot — are waited for: their results are
//     committed as they arrive, timeouts and cancels still apply, and a
//     worker that dies or leaves meanwhile has its runs requeued as usual.
//   - Optionally every connected worker is told to shut down: it drains
//     (takes nothing new, finishes what it holds, reports) and exits.
//
// The wait ends when no live worker stream holds a run of this server, or
// when ctx ends. What is left then stays dispatched/running in the store:
// the worker keeps running it and reports it when it reconnects, to this
// server after a restart (the run is recovered and reclaimed) or to
// another server on a shared store (which adopts it, fenced by attempt).
// Stop then flushes every queued write and stops the loops.

// QuiesceOptions tune Quiesce.
type QuiesceOptions struct {
	// StopWorkers tells every connected worker to shut down (drain and
	// exit) — Pluto's stop-workers-on-exit.
	StopWorkers bool
}

// QuiesceResult says how a quiesce went.
type QuiesceResult struct {
	// HandedBack runs were claimed but not yet sent to a worker; they went
	// back to the queue.
	HandedBack int
	// InFlight runs were on workers when the quiesce began.
	InFlight int
	// Left runs were still on live workers when ctx ended (0: every
	// in-flight run finished or went back to the queue).
	Left int
	// Workers told to shut down.
	StoppedWorkers int
}

// Quiesce begins a graceful stop: it stops taking work and waits until
// the runs already on this server's workers have finished (their results
// committed) or ctx ends. See "Graceful stop" above. It returns
// ErrStopped unless the engine is running; call Stop afterwards either
// way.
func (e *Engine) Quiesce(ctx context.Context, opts QuiesceOptions) (QuiesceResult, error) {
	var res QuiesceResult
	e.disp.mu.Lock()
	if !e.running() {
		e.disp.mu.Unlock()
		return res, ErrStopped
	}
	e.setState(stateDraining)
	e.quiescing.Store(true)
	var back []*flight
	for _, g := range e.disp.groups {
		for _, f := range g.ready {
			if e.disp.flights[f.id] == f {
				back = append(back, f)
			}
		}
		g.ready = nil
	}
	if len(back) > 0 {
		e.handBack(back, "server stopping", false)
	}
	res.HandedBack = len(back)
	res.InFlight = e.heldByWorkers(true)
	if opts.StopWorkers {
		for _, s := range e.disp.sessions {
			if !s.closed {
				s.conn.Shutdown(false)
				res.StoppedWorkers++
			}
		}
	}
	e.disp.mu.Unlock()
	e.log.Info("graceful stop: taking no new work", "in_flight", res.InFlight, "handed_back", res.HandedBack, "workers_told_to_stop", res.StoppedWorkers)

	e.resignLeadership(ctx)

	for {
		e.disp.mu.Lock()
		res.Left = e.heldByWorkers(true)
		e.disp.mu.Unlock()
		if res.Left == 0 {
			return res, nil
		}
		select {
		case <-e.drainSig:
		case <-ctx.Done():
			return res, nil
		}
	}
}

// heldByWorkers counts the runs this server has on workers; with liveOnly
// only those on workers whose stream is still up. Called with e.disp.mu held.
func (e *Engine) heldByWorkers(liveOnly bool) int {
	n := 0
	for _, f := range e.disp.flights {
		if f.session != nil && (!liveOnly || !f.session.closed) {
			n++
		}
	}
	return n
}

// noteDrain wakes a Quiesce waiting for in-flight runs. Cheap enough for
// the commit path: one atomic load unless a quiesce is under way.
func (e *Engine) noteDrain() {
	if !e.quiescing.Load() {
		return
	}
	select {
	case e.drainSig <- struct{}{}:
	default:
	}
}

// resignLeadership gives the leader lease up when a graceful stop begins,
// so another server takes over at once instead of after this one stops.
// The lease loop keeps renewing the server's registration (its runs on
// workers are still its own) but no longer asks for the lease.
func (e *Engine) resignLeadership(ctx context.Context) {
	if e.cfg.Standby {
		return
	}
	e.lead.elect.Lock() // waits out a renewal in flight
	defer e.lead.elect.Unlock()
	e.lead.mu.Lock()
	l := e.lead.leader
	e.stepDown("stopping")
	e.lead.mu.Unlock()
	if l.ServerID != e.cfg.ServerID {
		return
	}
	if err := e.st.LeaderResign(ctx, e.cfg.ServerID, l.Term); err != nil && !errors.Is(err, context.Canceled) {
		e.log.Error("resign leadership", "err", err)
	}
}
