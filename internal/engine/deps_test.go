package engine

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// taskOf returns the task of job among ts (nil if none).
func taskOf(ts []Task, job string) *Task {
	for i := range ts {
		if ts[i].Job == job {
			return &ts[i]
		}
	}
	return nil
}

// slotRunOf is job's run for logical time at (nil if none).
func (en *env) slotRunOf(job string, at time.Time) *store.Run {
	en.t.Helper()
	for _, r := range en.jobRuns(job) {
		if r.LogicalTime.Equal(at) {
			return r
		}
	}
	return nil
}

// A join: c (no schedule) depends on a and b (every minute). Their slot T
// creates c's run for T blocked; it is queued only once both succeeded,
// and dispatched once. A failed parent skips it, naming that run; a retry
// of the parent reopens it, and its success queues it.
func TestDependenciesJoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		start := time.Now()
		s, c := en.connect("w1", 100)
		en.putJob(store.Job{Name: "a", Schedule: "0 * * * * ?"})
		en.putJob(store.Job{Name: "b", Schedule: "0 * * * * ?"})
		en.putJob(store.Job{Name: "c", DependsOn: []string{"a", "b"}})
		time.Sleep(time.Minute)
		synctest.Wait()
		slotT := start.Add(time.Minute)
		cr := en.slotRunOf("c", slotT)
		if cr == nil || cr.Status != store.StatusBlocked {
			t.Fatalf("c's run for the first slot: %+v, want blocked", cr)
		}
		ts := c.Tasks()
		if len(ts) != 2 || taskOf(ts, "c") != nil {
			t.Fatalf("dispatched %v, want a's and b's runs only", ids(ts))
		}
		finish(s, OutcomeSucceeded, *taskOf(ts, "a"))
		en.wantStatus(cr.ID, store.StatusBlocked)
		finish(s, OutcomeSucceeded, *taskOf(ts, "b"))
		en.wantStatus(cr.ID, store.StatusDispatched)
		if n := len(c.Tasks()); n != 3 {
			t.Fatalf("%d tasks after the join, want 3", n)
		}
		finish(s, OutcomeSucceeded, c.Tasks()[2])

		// The next slot: b fails for good.
		time.Sleep(time.Minute)
		synctest.Wait()
		slot2 := slotT.Add(time.Minute)
		cr2 := en.slotRunOf("c", slot2)
		ts = c.Tasks()[3:]
		finish(s, OutcomeSucceeded, *taskOf(ts, "a"))
		finish(s, OutcomeFailed, *taskOf(ts, "b"))
		got := en.wantStatus(cr2.ID, store.StatusSkipped)
		br := en.slotRunOf("b", slot2)
		if !strings.Contains(got.Error, br.ID) || !strings.HasPrefix(got.Error, depsSkipped) {
			t.Errorf("c skipped with %q, want it to name b's run %s", got.Error, br.ID)
		}
		// Retrying b reopens c; b's success lets it run.
		if _, err := en.e.Retry(en.ctx, br.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		en.wantStatus(cr2.ID, store.StatusBlocked)
		retried := c.Tasks()[len(c.Tasks())-1]
		if retried.RunID != br.ID {
			t.Fatalf("last task %s, want b's retry %s", retried.RunID, br.ID)
		}
		finish(s, OutcomeSucceeded, retried)
		en.wantStatus(cr2.ID, store.StatusDispatched)
	})
}

// decide applies each trigger rule to the upstream runs' states.
func TestDecideTriggerRules(t *testing.T) {
	run := func(st store.RunStatus) *store.Run { return &store.Run{ID: "r-" + string(st), Status: st} }
	ups := func(sts ...store.RunStatus) []upstreamRun {
		out := make([]upstreamRun, len(sts))
		for i, st := range sts {
			out[i].dep = store.Dependency{Job: "u"}
			if st != "" {
				out[i].run = run(st)
			}
		}
		return out
	}
	const none = store.RunStatus("") // no run yet
	S, F, T, K, C, R := store.StatusSucceeded, store.StatusFailed, store.StatusTimedOut, store.StatusSkipped, store.StatusCancelled, store.StatusRunning
	for _, c := range []struct {
		rule string
		in   []upstreamRun
		want store.RunStatus
	}{
		{store.RuleAllSuccess, ups(S, S), store.StatusQueued},
		{store.RuleAllSuccess, ups(S, R), ""},
		{store.RuleAllSuccess, ups(S, none), ""},
		{store.RuleAllSuccess, ups(R, F), store.StatusSkipped}, // can no longer hold
		{store.RuleAllSuccess, ups(S, K), store.StatusSkipped},
		{store.RuleAllDone, ups(F, C), store.StatusQueued},
		{store.RuleAllDone, ups(F, R), ""},
		{store.RuleOneSuccess, ups(R, S), store.StatusQueued},
		{store.RuleOneSuccess, ups(F, R), ""},
		{store.RuleOneSuccess, ups(F, C), store.StatusSkipped},
		{store.RuleNoneFailed, ups(S, K, C), store.StatusQueued},
		{store.RuleNoneFailed, ups(K, T), store.StatusSkipped},
		{store.RuleNoneFailed, ups(R, F), store.StatusSkipped},
		{store.RuleNoneFailed, ups(S, R), ""},
	} {
		got, why := decide(c.rule, c.in)
		if got != c.want || (got == store.StatusSkipped) != (why != "") {
			t.Errorf("%s over %v: %q (%q), want %q", c.rule, c.in, got, why, c.want)
		}
		if got == store.StatusSkipped && c.rule != store.RuleOneSuccess && !strings.Contains(why, "r-") {
			t.Errorf("%s: reason %q names no upstream run", c.rule, why)
		}
	}
}

// Saving a job checks its dependencies: known jobs, no cycle (named), no
// overlap queue beside them, a known rule; a job others depend on is not
// deleted.
func TestDependenciesValidation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		en.putJob(store.Job{Name: "a"})
		en.putJob(store.Job{Name: "b", DependsOn: []string{"a"}})
		en.putJob(store.Job{Name: "c", DependsOn: []string{"b@24h0m0s"}, TriggerRule: store.RuleAllDone})
		for _, c := range []struct {
			job   store.Job
			field string
			text  string
		}{
			{store.Job{Name: "a", Type: "noop", Group: "g", DependsOn: []string{"c"}}, "depends_on", "a → c → b → a"},
			{store.Job{Name: "d", Type: "noop", Group: "g", DependsOn: []string{"nope"}}, "depends_on", `no job named "nope"`},
			{store.Job{Name: "d", Type: "noop", Group: "g", DependsOn: []string{"d"}}, "depends_on", "itself"},
			{store.Job{Name: "d", Type: "noop", Group: "g", DependsOn: []string{"a", "a"}}, "depends_on", "twice"},
			{store.Job{Name: "d", Type: "noop", Group: "g", DependsOn: []string{"a"}, TriggerRule: "most"}, "trigger_rule", "most"},
			{store.Job{Name: "d", Type: "noop", Group: "g", DependsOn: []string{"a"}, Overlap: store.OverlapQueue}, "overlap", "depends_on"},
		} {
			_, _, err := en.e.JobPut(en.ctx, c.job)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Message, c.text) {
				t.Errorf("%s %v: %v, want a %s error with %q", c.job.Name, c.job.DependsOn, err, c.field, c.text)
			}
		}
		if err := en.e.JobDelete(en.ctx, "b"); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "c") {
			t.Errorf("deleting b, an upstream of c: %v", err)
		}
		if j, _ := en.e.JobGet(en.ctx, "b"); j.TriggerRule != store.RuleAllSuccess {
			t.Errorf("b's rule %q, want the default %q", j.TriggerRule, store.RuleAllSuccess)
		}
	})
}

// A trigger for a logical time creates the job's run for it and the runs
// of its dependents without a schedule; --cascade those of every job
// downstream; a trigger without one is a one-off that brings nothing.
func TestTriggerSlotAndCascade(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		en.putJob(store.Job{Name: "x"})
		en.putJob(store.Job{Name: "y", Schedule: "0 0 2 * * ?", DependsOn: []string{"x"}})
		en.putJob(store.Job{Name: "z", DependsOn: []string{"y"}})
		en.putJob(store.Job{Name: "w", DependsOn: []string{"x"}})
		at := time.Date(1999, 12, 30, 0, 0, 0, 0, time.UTC)

		if _, err := en.e.JobTrigger(en.ctx, "x", nil); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := len(en.jobRuns("w")); n != 0 {
			t.Fatalf("a one-off run of x brought %d runs of w", n)
		}

		r, created, err := en.e.JobTriggerSlot(en.ctx, "x", nil, at, false)
		if err != nil || !created || !r.LogicalTime.Equal(at) {
			t.Fatalf("trigger x for %v: %+v created %v, %v", at, r, created, err)
		}
		synctest.Wait()
		if w := en.slotRunOf("w", at); w == nil || w.Status != store.StatusBlocked {
			t.Errorf("w (no schedule) for the slot: %+v, want blocked", w)
		}
		if y := en.slotRunOf("y", at); y != nil {
			t.Errorf("y (scheduled) got a run without cascade: %+v", y)
		}
		again, created, err := en.e.JobTriggerSlot(en.ctx, "x", nil, at, true)
		if err != nil || created || again.ID != r.ID {
			t.Fatalf("the slot again: %s created %v, %v; want %s kept", again.ID, created, err, r.ID)
		}
		synctest.Wait()
		for _, j := range []string{"y", "z"} {
			if got := en.slotRunOf(j, at); got == nil || got.Status != store.StatusBlocked {
				t.Errorf("%s after the cascade: %+v, want blocked", j, got)
			}
		}
	})
}

// Two servers on one store: the parents of a join end on different
// servers, each deciding after its own commit. The join's run is queued
// once and dispatched once, whichever decides last. (The shared SQLite
// store carries no notifications: the leader learns of c, saved on the
// other server, from its graph's time to live.)
func TestDependenciesJoinAcrossServers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en1, en2, _ := shared(t)
		start := time.Now()
		s1, c1 := en1.connect("w1", 10, "ta")
		s2, c2 := en2.connect("w2", 10, "tb")
		en1.putJob(store.Job{Name: "a", Type: "ta", Schedule: "0 */5 * * * ?"})
		en1.putJob(store.Job{Name: "b", Type: "tb", Schedule: "0 */5 * * * ?"})
		en2.putJob(store.Job{Name: "c", Type: "ta", DependsOn: []string{"a", "b"}})
		for slot := 1; slot <= 3; slot++ {
			at := start.Add(time.Duration(slot) * 5 * time.Minute)
			time.Sleep(time.Until(at))
			synctest.Wait()
			// b's run, queued by the leader s1, reaches w2 on s2 by the
			// queued notification; the shared SQLite store carries none:
			// s2's reconciler finds it.
			time.Sleep(31 * time.Second)
			synctest.Wait()
			ta, tb := lastOf(c1.Tasks(), "a"), lastOf(c2.Tasks(), "b")
			if ta == nil || tb == nil {
				t.Fatalf("slot %d: a on w1 %v, b on w2 %v", slot, ta, tb)
			}
			// Both parents end at once, one on each server.
			s1.Results([]Result{{RunID: ta.RunID, Attempt: ta.Attempt, Outcome: OutcomeSucceeded}})
			s2.Results([]Result{{RunID: tb.RunID, Attempt: tb.Attempt, Outcome: OutcomeSucceeded}})
			synctest.Wait()
			if cr := en1.slotRunOf("c", at); cr == nil || cr.Status == store.StatusBlocked {
				t.Fatalf("slot %d: c's run %+v, want it decided", slot, cr)
			}
			// Likewise a run of c that s2 queued, for w1 on s1.
			time.Sleep(31 * time.Second)
			synctest.Wait()
			cr := en1.slotRunOf("c", at)
			if cr == nil || cr.Status != store.StatusDispatched {
				t.Fatalf("slot %d: c's run %+v, want dispatched", slot, cr)
			}
			n := 0
			for _, t := range append(c1.Tasks(), c2.Tasks()...) {
				if t.RunID == cr.ID {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("slot %d: c's run dispatched %d times", slot, n)
			}
			tc := lastOf(c1.Tasks(), "c")
			finish(s1, OutcomeSucceeded, *tc)
		}
	})
}

// lastOf returns the last task of job among ts (nil if none).
func lastOf(ts []Task, job string) *Task {
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Job == job {
			return &ts[i]
		}
	}
	return nil
}

// A poke (a sensor: not yet) puts the run back to pending for its delay,
// uses up no attempt however often it comes, frees the worker's slot, and
// the run is dispatched again when the delay passed.
func TestPokeWaitsWithoutUsingAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{})[0]
		for i := range 5 {
			task := c.Tasks()[i]
			s.Results([]Result{{RunID: task.RunID, Attempt: task.Attempt, Outcome: OutcomePoke, PokeAfter: 30 * time.Second}})
			synctest.Wait()
			r := en.wantStatus(run.ID, store.StatusPending)
			if r.Failures != 0 || !r.RunAt.Equal(time.Now().Add(30*time.Second)) {
				t.Fatalf("poke %d: failures %d, run_at %v; want 0 and now+30s", i, r.Failures, r.RunAt.Sub(time.Now()))
			}
			time.Sleep(30 * time.Second)
			synctest.Wait()
			if n := len(c.Tasks()); n != i+2 {
				t.Fatalf("after poke %d: %d dispatches, want %d", i, n, i+2)
			}
		}
		last := c.Tasks()[5]
		finish(s, OutcomeSucceeded, last)
		en.wantStatus(run.ID, store.StatusSucceeded) // max attempts is 1: the pokes used none
	})
}
