package engine

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// A run whose command kills its worker (kill -9 $PPID under a supervisor
// that restarts the worker) must end, not climb through attempts forever.
func TestRunThatKillsItsWorkerFailsAfterMaxLostAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		run := en.submit(SubmitSpec{Retries: 5})[0]
		for i := 1; i <= 3; i++ {
			s, c := en.connect(fmt.Sprintf("w%d", i), 1)
			ts := c.Tasks()
			if len(ts) != 1 || ts[0].RunID != run.ID || ts[0].Attempt != i {
				t.Fatalf("worker %d got %v, want attempt %d of the run", i, ts, i)
			}
			ack(s, ts...)
			s.Close(errors.New("connection reset")) // the worker died with it
			time.Sleep(3 * time.Second)             // the dead timeout
			synctest.Wait()
		}
		r := en.wantStatus(run.ID, store.StatusFailed)
		if r.Lost != 3 || r.Failures != 0 || !strings.Contains(r.Error, "lost with its worker 3 times") {
			t.Fatalf("lost %d failures %d error %q", r.Lost, r.Failures, r.Error)
		}
		_, c := en.connect("w4", 1)
		if n := len(c.Tasks()); n != 0 {
			t.Fatalf("the failed run was dispatched again (%d tasks)", n)
		}
	})
}

// Lost attempts below the limit do not use up retries: the run still
// succeeds, and its failures stay zero.
func TestLostAttemptsBelowTheLimitRetryFreely(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		run := en.submit(SubmitSpec{})[0] // no retries
		for i := 1; i <= 2; i++ {
			s, c := en.connect(fmt.Sprintf("w%d", i), 1)
			ack(s, c.Tasks()...)
			s.Close(errors.New("connection reset"))
			time.Sleep(3 * time.Second)
			synctest.Wait()
		}
		s, c := en.connect("w3", 1)
		finish(s, OutcomeSucceeded, c.Tasks()...)
		if r := en.wantStatus(run.ID, store.StatusSucceeded); r.Lost != 2 || r.Attempt != 3 {
			t.Fatalf("lost %d attempt %d", r.Lost, r.Attempt)
		}
	})
}

// A worker that drains and leaves on purpose gives its runs back without
// counting them as lost: rolling restarts must not fail runs.
func TestRunsOfAWorkerThatLeftAreNotLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		run := en.submit(SubmitSpec{})[0]
		for i := 1; i <= 4; i++ {
			s, c := en.connect(fmt.Sprintf("w%d", i), 1)
			if len(c.Tasks()) != 1 {
				t.Fatalf("worker %d got no task", i)
			}
			s.Close(ErrWorkerLeft)
			synctest.Wait()
		}
		if r := en.wantStatus(run.ID, store.StatusQueued); r.Lost != 0 {
			t.Fatalf("lost %d after graceful leaves, want 0", r.Lost)
		}
	})
}
