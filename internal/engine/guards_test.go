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
		if cs := c.Cancels(); len(cs) != 1 || cs[0] != (RunRef{RunID: run.ID, Attempt: 1}) {
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

// A stale ack (an earlier attempt's) must not start the current attempt:
// its server-side timeout would then run although the worker never
// started it.
func TestStaleAckDoesNotStartTheCurrentAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{Timeout: 2 * time.Second})[0]
		first := c.Tasks()[0]
		finish(s, OutcomeCancelled, first) // given back; attempt 2 follows
		ack(s, first)                      // a late duplicate of attempt 1's ack
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if r := en.get(run.ID); r.Status != store.StatusDispatched || r.Attempt != 2 {
			t.Fatalf("run %s at attempt %d, want attempt 2 dispatched and not timed out", r.Status, r.Attempt)
		}
	})
}

// On a shared store a result reaching the server that no longer holds the
// run (its worker failed over, the other server adopted the run) is
// rejected by the store's server fence.
func TestResultOnTheOldServerAfterAdoptionIsRejected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en1, en2, _ := shared(t)
		s1w, c1 := en1.connect("w1", 1)
		run := en1.submit(SubmitSpec{})[0]
		task := c1.Tasks()[0]
		ack(s1w, task)
		en2.connectHeld("w1", 1, []RunRef{{RunID: run.ID, Attempt: 1}}) // adopted by s2
		finish(s1w, OutcomeSucceeded, task)                             // a late message on the old stream
		if acks := c1.Acks(); len(acks) != 1 || acks[0].Accepted {
			t.Fatalf("the old server's acks %+v, want the result rejected", acks)
		}
		en2.wantStatus(run.ID, store.StatusRunning)
	})
}

// Claims take only as many runs as the workers have free credits: the
// rest stay queued in the store, where any server can claim them.
func TestClaimsTakeOnlyFreeCredits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, c := en.connect("w1", 2)
		var specs []SubmitSpec
		for range 10 {
			specs = append(specs, SubmitSpec{})
		}
		runs := en.submit(specs...)
		dispatched := 0
		for _, r := range runs {
			if en.get(r.ID).Status == store.StatusDispatched {
				dispatched++
			}
		}
		if dispatched != 2 || len(c.Tasks()) != 2 {
			t.Fatalf("%d runs dispatched in the store, %d sent, want 2 and 2", dispatched, len(c.Tasks()))
		}
	})
}

// parkTwoRuns leaves two claimed runs waiting in the ready queue: worker w1
// asks for them, and pauses while their claim's transaction commits. It
// returns w1 and the runs.
func parkTwoRuns(t *testing.T) (*env, *Session, *fakeConn, []*store.Run) {
	en, fl := newFlakyEnv(t, nil)
	s, c, err := en.hello(Hello{WorkerID: "w1", Capacity: 2, Draining: true})
	if err != nil {
		t.Fatal(err)
	}
	en.keepAlive(s)
	runs := en.submit(SubmitSpec{}, SubmitSpec{})
	fl.set("slowCommit", 1)
	s.SetWindow(2) // the claim's transaction takes five seconds to commit
	time.Sleep(time.Second)
	s.SetWindow(0) // meanwhile the worker pauses: the claimed runs wait
	time.Sleep(5 * time.Second)
	synctest.Wait()
	if n := len(c.Tasks()); n != 0 {
		t.Fatalf("setup: %d tasks sent to a paused worker", n)
	}
	return en, s, c, runs
}

// A run cancelled while it waits in the ready queue (claimed, no free
// slot yet) is never sent.
func TestRunCancelledWhileWaitingIsNotSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, s, c, runs := parkTwoRuns(t)
		if _, err := en.e.Cancel(en.ctx, runs[0].ID, "stop"); err != nil {
			t.Fatal(err)
		}
		s.SetWindow(2)
		synctest.Wait()
		if ts := c.Tasks(); len(ts) != 1 || ts[0].RunID != runs[1].ID {
			t.Fatalf("tasks %v, want only the run not cancelled", ids(ts))
		}
	})
}

// Claimed runs waiting for a slot go to a worker that connects, at once:
// a new worker's credits must not be eaten by runs that nobody hands it.
func TestWaitingRunsGoToANewWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, _, _, _ := parkTwoRuns(t)
		_, c2 := en.connect("w2", 2)
		if n := len(c2.Tasks()); n != 2 {
			t.Fatalf("the new worker got %d of the 2 waiting runs", n)
		}
	})
}
