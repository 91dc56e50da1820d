package engine

import (
	"context"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// promoteBatch caps the runs one promotion moves to queued.
const promoteBatch = 1000

// promoter moves pending runs (delayed, or waiting out a retry backoff) to
// queued when their run_at comes. It keeps one timer, armed for the
// earliest run_at it knows of; the store is the source of truth, so after
// each promotion it asks the store for the next run_at instead of keeping
// every pending run in memory.
type promoter struct {
	wake     wakeTimer
	inflight bool
	again    bool
	stopped  bool
}

func (p *promoter) stop() {
	p.stopped = true
	p.wake.stop()
}

// armPromoter arms the promoter from the store (at start).
func (e *Engine) armPromoter(ctx context.Context) {
	at, err := e.st.RunNextPendingAt(ctx)
	if err != nil {
		e.log.Error("read next pending run", "err", err)
		return
	}
	if !at.IsZero() {
		e.mu.Lock()
		e.notePending(at)
		e.mu.Unlock()
	}
}

// notePending makes sure the promoter fires by at. Only the leader
// promotes; other servers publish the time (TopicPending) and the leader
// hears it. Called with e.mu held.
func (e *Engine) notePending(at time.Time) {
	p := &e.promote
	if p.stopped || !e.running() || e.lead.term == 0 {
		return
	}
	p.wake.arm(e.clk, at, e.promoteDue)
}

func (e *Engine) promoteDue() {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := &e.promote
	p.wake.fired()
	e.startPromotion()
}

// startPromotion queues one promotion unless one is in flight. Called with
// e.mu held.
func (e *Engine) startPromotion() {
	p := &e.promote
	if p.stopped || !e.running() || e.lead.term == 0 {
		return
	}
	if p.inflight {
		p.again = true
		return
	}
	p.inflight = true
	o := &op{promote: &store.RunPromoteParams{Now: e.now(), Limit: promoteBatch}}
	o.done = e.promoted
	if !e.ops.push(o) {
		p.inflight = false
	}
}

func (e *Engine) promoted(o *op) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := &e.promote
	p.inflight = false
	if o.err != nil {
		e.log.Error("promote pending runs", "err", o.err)
		// Try again in a second rather than losing the timer.
		e.notePending(e.now().Add(time.Second))
		return
	}
	for _, r := range o.promoted {
		e.wake(r.Group)
	}
	if len(o.promoted) == promoteBatch || p.again {
		p.again = false
		e.startPromotion()
		return
	}
	if p.stopped || !e.running() {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.armPromoter(context.Background())
	}()
}
