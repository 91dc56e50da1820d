package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Fencing in the engine, not only in the store: a report for an attempt
// that is not the run's current one is rejected and changes nothing, even
// from the worker that holds the current attempt.
func TestStaleAttemptFromTheSameWorkerIsRejected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{})[0]
		first := c.Tasks()[0]
		finish(s, OutcomeCancelled, first) // the worker gave it back (drain)
		if ts := c.Tasks(); len(ts) != 2 || ts[1].Attempt != 2 {
			t.Fatalf("tasks %+v, want the run again at attempt 2", ts)
		}
		finish(s, OutcomeSucceeded, first) // a duplicate of attempt 1's report
		if acks := c.Acks(); len(acks) != 2 || acks[1].Accepted {
			t.Fatalf("acks %+v, want the stale report rejected", acks)
		}
		if r := en.wantStatus(run.ID, store.StatusDispatched); r.Attempt != 2 {
			t.Fatalf("attempt %d, want 2", r.Attempt)
		}
		ack(s, first) // a stale ack does not start attempt 2 either
		en.wantStatus(run.ID, store.StatusDispatched)
	})
}

// ... and from a worker that does not hold the run, even naming its
// current attempt.
func TestReportFromAnotherWorkerIsRejected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, c1 := en.connect("w1", 1)
		run := en.submit(SubmitSpec{})[0]
		s2, c2 := en.connect("w2", 1)
		task := c1.Tasks()[0]
		ack(s2, task)
		en.wantStatus(run.ID, store.StatusDispatched)
		finish(s2, OutcomeSucceeded, task)
		if acks := c2.Acks(); len(acks) != 1 || acks[0].Accepted {
			t.Fatalf("acks %+v, want rejected", acks)
		}
		en.wantStatus(run.ID, store.StatusDispatched)
	})
}

// A run cancelled after it was sent but before the worker started it: the
// worker must still be told, or it runs a cancelled run.
func TestCancelOfASentRunIsToldToTheWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{})[0]
		if len(c.Tasks()) != 1 {
			t.Fatal("not dispatched")
		}
		if _, err := en.e.Cancel(en.ctx, run.ID, "stop"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if cs := c.Cancels(); len(cs) != 1 || cs[0] != (RunRef{run.ID, 1}) {
			t.Fatalf("cancels %v, want the sent attempt", cs)
		}
	})
}

// Retry delays are jittered (half fixed, half random) so runs that failed
// together do not retry together.
func TestBackoffIsJittered(t *testing.T) {
	e, err := New(Config{Store: nopStore{}, RetryBase: time.Second, RetryMax: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := e.backoff(3) // 4 s nominal
		if d < 2*time.Second || d > 4*time.Second {
			t.Fatalf("backoff(3) = %v, want within [2s, 4s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 50 {
		t.Fatalf("%d distinct delays in 200, want them spread", len(seen))
	}
	if d := e.backoff(100); d > time.Minute || d < 30*time.Second {
		t.Fatalf("backoff(100) = %v, want capped at RetryMax with jitter", d)
	}
}

// nopStore is a store that is never used (tests of pure engine logic).
type nopStore struct{ store.Store }

// A leader whose renewals start failing steps down when its lease
// expires — also after several successful renewals moved the expiry on.
func TestLeaderStepsDownWhenRenewalsStopAfterSomeSucceeded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newEnv(t, nil)
		base.e.Stop(context.Background())
		st := &electFails{Store: base.st}
		en := &env{t: t, ctx: context.Background(), st: base.st}
		en.e = en.start(st, func(c *Config) {
			c.ExclusiveStore, c.LeaseTTL, c.RenewInterval = false, 5*time.Second, time.Second
		})
		time.Sleep(4500 * time.Millisecond) // four renewals moved the expiry on
		synctest.Wait()
		if !en.e.Leading() {
			t.Fatal("not leading")
		}
		st.failing.Store(true)
		time.Sleep(6 * time.Second) // past the last renewal's expiry
		synctest.Wait()
		if en.e.Leading() {
			t.Fatal("still leading after the lease expired unrenewed: two leaders")
		}
	})
}

type electFails struct {
	store.Store
	failing atomic.Bool
}

func (s *electFails) LeaderElect(ctx context.Context, p store.LeaderElectParams) (store.Leader, error) {
	if s.failing.Load() {
		return store.Leader{}, errors.New("cut off from the store")
	}
	return s.Store.LeaderElect(ctx, p)
}
