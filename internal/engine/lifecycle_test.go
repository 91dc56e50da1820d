package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

func TestLifeStartsOnceAndStopsIdempotently(t *testing.T) {
	var l life
	l.Stop() // before Start: nothing to do
	var ran, stopped atomic.Int32
	err := l.start(context.Background(), func(ctx context.Context) {
		ran.Add(1)
		<-ctx.Done()
		stopped.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.start(context.Background(), func(context.Context) {}); !errors.Is(err, errStartedTwice) {
		t.Fatalf("second start: %v", err)
	}
	l.Stop()
	if ran.Load() != 1 || stopped.Load() != 1 {
		t.Fatalf("ran %d stopped %d, want 1 and 1 (Stop waits)", ran.Load(), stopped.Load())
	}
	l.Stop()
}

// A component's goroutines outlive the context Start was called with
// (a request's): only Stop ends them.
func TestLifeIgnoresTheStartersCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l life
		ctx, cancel := context.WithCancel(context.Background())
		var ended atomic.Bool
		if err := l.start(ctx, func(ctx context.Context) { <-ctx.Done(); ended.Store(true) }); err != nil {
			t.Fatal(err)
		}
		cancel()
		synctest.Wait() // a goroutine that would end has ended
		if ended.Load() {
			t.Fatal("the component stopped with its starter's context")
		}
		l.Stop()
		if !ended.Load() {
			t.Fatal("Stop returned before the goroutine ended")
		}
	})
}
