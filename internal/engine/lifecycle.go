package engine

import (
	"context"
	"errors"
	"sync"
	"time"
)

// The lifecycle of the engine's components
//
// Every component with goroutines of its own — the committer, the liveness
// monitor, the reconciler — follows one contract, modelled on River's
// startstop: Start begins its goroutines and returns at once; Stop ends
// them and returns when they have exited; Stop is safe to call twice, and
// before Start. A component's goroutines run on the context Start got,
// cancelled by Stop. The engine starts its components in dependency order
// (the committer first, since the others write through it) and stops them
// in reverse.
//
//	New ──▶ Start ──▶ running ──▶ Stop ──▶ stopped
//	                     │                   ▲
//	                     └── Start again: error (one life per value)

// component is the lifecycle contract.
type component interface {
	Start(ctx context.Context) error
	Stop()
}

// errStartedTwice is Start on a component that has already started.
var errStartedTwice = errors.New("engine: component started twice")

// life runs a component's goroutines and implements its Start and Stop.
type life struct {
	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// beforeWait, if set, runs in Stop after the context is cancelled and
	// before waiting (the committer closes its queue here, so its
	// goroutines drain what is queued and exit).
	beforeWait func()
}

// start runs each fn in a goroutine on a context that Stop cancels.
func (l *life) start(ctx context.Context, fns ...func(ctx context.Context)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return errStartedTwice
	}
	l.started = true
	ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, fn := range fns {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			fn(ctx)
		}()
	}
	return nil
}

// Stop cancels the goroutines' context and waits for them.
func (l *life) Stop() {
	l.mu.Lock()
	cancel := l.cancel
	l.cancel = nil
	before := l.beforeWait
	l.mu.Unlock()
	if cancel == nil {
		return // not started, or stopped already
	}
	cancel()
	if before != nil {
		before()
	}
	l.wg.Wait()
}

// sleep waits d on the engine's clock, or until ctx ends; false if ctx
// ended.
func (e *Engine) sleep(ctx context.Context, d time.Duration) bool {
	tick := make(chan struct{})
	t := e.clk.AfterFunc(d, func() { close(tick) })
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-tick:
		return true
	}
}
