package engine

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// An attempt the server times out and one the worker fails, both retried,
// are recorded as timed_out and failed; the attempt that ends the run is
// the run itself.
func TestRetriedAttemptsAreRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{Retries: 2, Timeout: 2 * time.Second})[0]
		first := c.Tasks()[0]
		ack(s, first)
		time.Sleep(2 * time.Second) // fake time: the attempt times out
		synctest.Wait()
		en.wantStatus(run.ID, store.StatusPending)
		finish(s, OutcomeTimedOut, first) // the worker answers the cancel (rejected): its slot frees
		time.Sleep(time.Second)           // the backoff
		synctest.Wait()
		ts := c.Tasks()
		if len(ts) != 2 || ts[1].Attempt != 2 {
			t.Fatalf("tasks %+v, want attempt 2", ts)
		}
		finish(s, OutcomeFailed, ts[1])
		en.wantStatus(run.ID, store.StatusPending)
		as, err := en.e.RunAttempts(en.ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(as) != 2 || as[0].Outcome != "timed_out" || as[0].WorkerID != "w1" || as[1].Outcome != "failed" || as[1].Error != "boom" {
			t.Fatalf("attempts %+v, want timed_out then failed", as)
		}
	})
}
