package engine

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Store faults must never wedge a run: every write the engine acted on is
// retried until it commits (committer.go's error policy).

// newFlakyEnv starts an engine over a flakyStore wrapping the real one.
func newFlakyEnv(t *testing.T, mod func(*Config)) (*env, *flakyStore) {
	t.Helper()
	var fl *flakyStore
	en := newEnv(t, func(c *Config) {
		fl = newFlaky(c.Store)
		c.Store = fl
		if mod != nil {
			mod(c)
		}
	})
	return en, fl
}

func TestFailedClaimIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, fl := newFlakyEnv(t, nil)
		_, c := en.connect("w1", 4)
		fl.set("RunClaim", 6)
		run := en.submit(SubmitSpec{})[0]
		time.Sleep(5 * time.Second) // no other event happens
		synctest.Wait()
		if ts := c.Tasks(); len(ts) != 1 || ts[0].RunID != run.ID {
			t.Fatalf("after six failed claims the run was not dispatched: tasks %v, run %s", ids(ts), en.get(run.ID).Status)
		}
	})
}

func TestFailedRequeueOfADeadWorkersRunIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, fl := newFlakyEnv(t, nil)
		s1, c1 := en.connect("w1", 1)
		run := en.submit(SubmitSpec{})[0]
		ack(s1, c1.Tasks()...)
		fl.set("RunFinish", 6)
		s1.Close(ErrWorkerLeft) // hands its run back at once
		synctest.Wait()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		_, c2 := en.connect("w2", 1)
		if ts := c2.Tasks(); len(ts) != 1 || ts[0].RunID != run.ID || ts[0].Attempt != 2 {
			r := en.get(run.ID)
			t.Fatalf("run not handed to the next worker: tasks %v; run %s attempt %d", ids(ts), r.Status, r.Attempt)
		}
	})
}

func TestFailedTimeoutIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, fl := newFlakyEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{Timeout: 2 * time.Second})[0]
		ack(s, c.Tasks()...)
		fl.set("RunFinish", 6)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		en.wantStatus(run.ID, store.StatusTimedOut)
	})
}

func TestFailedResultsCommitLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, fl := newFlakyEnv(t, nil)
		s, c := en.connect("w1", 2)
		run := en.submit(SubmitSpec{})[0]
		fl.set("RunFinish", 6)
		finish(s, OutcomeSucceeded, c.Tasks()...)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		en.wantStatus(run.ID, store.StatusSucceeded)
		if acks := c.Acks(); len(acks) != 1 || !acks[0].Accepted {
			t.Fatalf("result acks %v, want one accepted", acks)
		}
		if c.Closed() != "" {
			t.Fatalf("worker disconnected: %s", c.Closed())
		}
	})
}

// A commit whose answer was lost is retried; the retry is rejected by
// fencing (it already applied), and the engine learns from the store that
// its change did apply: the worker hears "accepted" and waiters wake.
func TestCommitWhoseAnswerWasLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, fl := newFlakyEnv(t, nil)
		s, c := en.connect("w1", 2)
		run := en.submit(SubmitSpec{})[0]
		waited := make(chan *store.Run, 1)
		ctx, cancel := context.WithCancel(en.ctx)
		defer cancel()
		go func() {
			r, _ := en.e.Wait(ctx, run.ID)
			waited <- r
		}()
		synctest.Wait()
		fl.set("commit", 1)
		finish(s, OutcomeSucceeded, c.Tasks()...)
		time.Sleep(time.Second)
		synctest.Wait()
		if acks := c.Acks(); len(acks) != 1 || !acks[0].Accepted {
			t.Fatalf("result acks %v, want one accepted", acks)
		}
		select {
		case r := <-waited:
			if r == nil || r.Status != store.StatusSucceeded {
				t.Fatalf("waiter got %+v", r)
			}
		default:
			t.Fatal("the waiter was not woken")
		}
	})
}

// A submit whose commit failed once and whose answer was lost on the
// retry returns the runs it made instead of failing on their IDs forever.
func TestSubmitWhoseCommitAnswerWasLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, fl := newFlakyEnv(t, nil)
		_, c := en.connect("w1", 2)
		fl.set("commit", 1)
		res, err := en.e.Submit(en.ctx, []SubmitSpec{{Type: "noop", Group: "g"}})
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		synctest.Wait()
		en.wantStatus(res[0].Run.ID, store.StatusDispatched)
		if len(c.Tasks()) != 1 {
			t.Fatalf("tasks %v", ids(c.Tasks()))
		}
	})
}

func TestFailedUnblockIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, fl := newFlakyEnv(t, nil)
		s, c := en.connect("w1", 10)
		en.putJob(store.Job{Name: "o", Schedule: "@every 1s", Overlap: store.OverlapQueue})
		time.Sleep(2500 * time.Millisecond)
		synctest.Wait()
		if n := len(c.Tasks()); n != 1 {
			t.Fatalf("%d dispatched, want 1 (the next is blocked)", n)
		}
		en.e.JobPause(en.ctx, "o", true)
		fl.set("RunUnblockNext", 6)
		finish(s, OutcomeSucceeded, c.Tasks()[0])
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := len(c.Tasks()); n != 2 {
			t.Fatalf("after the first run ended %d dispatched, want 2 (the blocked run released)", n)
		}
	})
}

// A submit whose caller gave up before it committed writes nothing: the
// caller's error is the truth and a retry without a key cannot duplicate.
func TestCancelledSubmitDoesNotCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, fl := newFlakyEnv(t, nil)
		fl.set("slow", 1)
		go en.e.Submit(en.ctx, []SubmitSpec{{Type: "noop", Group: "g", Key: "k0"}}) // holds the committer
		synctest.Wait()
		ctx, cancel := context.WithTimeout(en.ctx, time.Second)
		defer cancel()
		if _, err := en.e.Submit(ctx, []SubmitSpec{{Type: "noop", Group: "g", Key: "k1"}}); err == nil {
			t.Fatal("submit succeeded although its context ended first")
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if _, err := en.st.RunGetByKey(en.ctx, "k0"); err != nil {
			t.Fatalf("the first submit: %v", err)
		}
		if r, err := en.st.RunGetByKey(en.ctx, "k1"); err == nil {
			t.Fatalf("the cancelled submit committed run %s", r.ID)
		}
	})
}
