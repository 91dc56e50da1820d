package engine

import (
	"context"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// promoteBatch caps the runs one promotion moves to queued.
const promoteBatch = 1000

// promoter moves pending runs (delayed, or waiting out a retry backoff) to
// queued when their run_at comes. It is a component with its own state and
// lock: one timer, armed for the earliest run_at it knows of, and at most
// one promotion in flight. The store is the source of truth, so after each
// promotion it asks the store for the next run_at instead of keeping every
// pending run in memory. Only the leader promotes: the promoter is
// activated when a term is won and deactivated when it is lost; other
// servers publish pending times (TopicPending) and the leader hears them.
//
// Lock order: the dispatcher's lock may be held when calling note; the
// promoter never takes the dispatcher's lock while holding its own.
type promoter struct {
	e *Engine

	mu       sync.Mutex
	active   bool // leading and running
	wake     wakeTimer
	inflight bool
	again    bool
	arming   sync.WaitGroup // arm goroutines in flight
}

// activate starts promoting (a won term); arm then reads the first time
// from the store.
func (p *promoter) activate() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active = true
}

// deactivate stops promoting (a lost term, the engine stopping).
func (p *promoter) deactivate() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active = false
	p.wake.stop()
}

// arm reads the earliest run_at of a pending run and notes it.
func (p *promoter) arm(ctx context.Context) {
	at, err := p.e.st.RunNextPendingAt(ctx)
	if err != nil {
		p.e.log.Error("read next pending run", "err", err)
		at = p.e.now().Add(time.Second) // try again rather than lose the timer
	}
	if !at.IsZero() {
		p.note(at)
	}
}

// rearm arms from the store in the background (after a promotion, or when
// notifications were lost).
func (p *promoter) rearm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.active {
		return
	}
	p.arming.Add(1)
	go func() {
		defer p.arming.Done()
		p.arm(context.Background())
	}()
}

// note makes sure a promotion happens by at.
func (p *promoter) note(at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.active {
		p.wake.arm(p.e.clk, at, p.due)
	}
}

func (p *promoter) due() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wake.fired()
	p.startLocked()
}

// startLocked queues one promotion unless one is in flight. Called with
// p.mu held.
func (p *promoter) startLocked() {
	if !p.active {
		return
	}
	if p.inflight {
		p.again = true
		return
	}
	p.inflight = true
	o := &promoteOp{params: store.RunPromoteParams{Now: p.e.now(), Limit: promoteBatch}}
	o.done = func() { p.promoted(o) }
	if !p.e.ops.push(o) {
		p.inflight = false
	}
}

func (p *promoter) promoted(o *promoteOp) {
	e := p.e
	if o.err == nil && (len(o.runs) > 0 || o.tries > 0) {
		e.disp.mu.Lock()
		if o.tries > 0 {
			// An earlier try may have committed with its answer lost: the
			// runs it promoted are not in o.runs (this try found them
			// queued already), so every group is woken.
			for _, g := range e.disp.groups {
				e.wakeGroup(g)
			}
		}
		for _, r := range o.runs {
			e.wake(r.Group)
		}
		e.disp.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight = false
	switch {
	case o.err != nil:
		// Only when the engine stops (failed writes are retried): keep a
		// timer anyway in case it is still active.
		e.log.Error("promote pending runs", "err", o.err)
		if p.active {
			p.wake.arm(e.clk, e.now().Add(time.Second), p.due)
		}
	case len(o.runs) == promoteBatch || p.again:
		p.again = false
		p.startLocked()
	case p.active:
		p.arming.Add(1)
		go func() {
			defer p.arming.Done()
			p.arm(context.Background())
		}()
	}
}

// notePending makes sure the promoter fires by at; a no-op on a server
// that does not lead. Called with or without e.disp.mu held.
func (e *Engine) notePending(at time.Time) { e.promote.note(at) }
