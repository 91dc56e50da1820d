package engine

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// settle finishes every task the worker got and has not finished, until
// the backfill id ended; it returns the most runs of job that the worker
// held at once.
func (en *env) settle(s *Session, c *fakeConn, id, job string) (*store.Backfill, int) {
	en.t.Helper()
	done, most := 0, 0
	for range 1000 {
		ts := c.Tasks()[done:]
		n := 0
		for _, t := range ts {
			if t.Job == job {
				n++
			}
		}
		most = max(most, n)
		if len(ts) > 0 {
			finish(s, OutcomeSucceeded, ts...)
			done += len(ts)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		bf, err := en.e.BackfillGet(en.ctx, id)
		if err != nil {
			en.t.Fatal(err)
		}
		if bf.State == store.BackfillDone && len(c.Tasks()) == done {
			return bf, most
		}
	}
	en.t.Fatalf("backfill %s did not finish", id)
	return nil, 0
}

// A 30-day cascade backfill of a three-level graph with a join, 4 slots at
// once: every (job, day) runs exactly once, each after its upstream runs,
// the root never more than 4 at once, in day order; the dry run predicted
// exactly the runs created; a second backfill of the range keeps them all.
func TestBackfillCascade(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 100)
		en.putJob(store.Job{Name: "x"})
		en.putJob(store.Job{Name: "x2"})
		en.putJob(store.Job{Name: "y", DependsOn: []string{"x", "x2"}})
		en.putJob(store.Job{Name: "z", DependsOn: []string{"y"}})
		from := time.Date(1999, 11, 1, 0, 0, 0, 0, time.UTC)
		to := from.AddDate(0, 0, 29)
		spec := BackfillSpec{Job: "x", From: from, To: to, Parallel: 4, Cascade: true}
		plan, err := en.e.BackfillPlan(en.ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if plan.Create != 30 || plan.Keep != 0 || len(plan.Slots) != 30 || strings.Join(plan.Jobs, ",") != "x,y,z" {
			t.Fatalf("plan: %d create, %d keep, %d slots, jobs %v", plan.Create, plan.Keep, len(plan.Slots), plan.Jobs)
		}
		bf, err := en.e.Backfill(en.ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		// x2 is not downstream of x: its runs for the days come by hand.
		for d := range 30 {
			if _, _, err := en.e.JobTriggerSlot(en.ctx, "x2", nil, from.AddDate(0, 0, d), false); err != nil {
				t.Fatal(err)
			}
		}
		bf, most := en.settle(s, c, bf.ID, "x")
		if most > 4 {
			t.Errorf("the worker held %d runs of x at once, parallel is 4", most)
		}
		if bf.Started != 30 || bf.Kept != 0 {
			t.Errorf("backfill: %d started, %d kept", bf.Started, bf.Kept)
		}
		byDay := map[string]map[time.Time]*store.Run{}
		for _, j := range []string{"x", "y", "z"} {
			byDay[j] = map[time.Time]*store.Run{}
			for _, r := range en.jobRuns(j) {
				if byDay[j][r.LogicalTime] != nil {
					t.Errorf("%s has two runs for %v", j, r.LogicalTime)
				}
				byDay[j][r.LogicalTime] = r
				if r.Status != store.StatusSucceeded {
					t.Errorf("%s %v: %s", j, r.LogicalTime, r.Status)
				}
			}
			if len(byDay[j]) != 30 {
				t.Errorf("%s: %d days, want 30", j, len(byDay[j]))
			}
		}
		var prev time.Time
		for d := range 30 {
			at := from.AddDate(0, 0, d)
			x, y, z := byDay["x"][at], byDay["y"][at], byDay["z"][at]
			if x == nil || y == nil || z == nil {
				continue
			}
			if y.DispatchedAt.Before(x.FinishedAt) || z.DispatchedAt.Before(y.FinishedAt) {
				t.Errorf("day %d out of order: x ended %v, y dispatched %v, ended %v, z dispatched %v", d, x.FinishedAt, y.DispatchedAt, y.FinishedAt, z.DispatchedAt)
			}
			if x.CreatedAt.Before(prev) {
				t.Errorf("day %d's run of x was created before day %d's", d, d-1)
			}
			prev = x.CreatedAt
		}

		// Again over the same range: every slot keeps its run.
		again, err := en.e.Backfill(en.ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		again, _ = en.settle(s, c, again.ID, "x")
		if again.Started != 0 || again.Kept != 30 {
			t.Errorf("a second backfill: %d started, %d kept", again.Started, again.Kept)
		}
	})
}

// Pause stops new slots, resume goes on, cancel cancels the unfinished
// runs of its range; an ended backfill cannot be changed.
func TestBackfillControl(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, c := en.connect("w1", 100)
		en.putJob(store.Job{Name: "x"})
		from := time.Date(1999, 11, 1, 0, 0, 0, 0, time.UTC)
		bf, err := en.e.Backfill(en.ctx, BackfillSpec{Job: "x", From: from, To: from.AddDate(0, 0, 9), Parallel: 2})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := len(c.Tasks()); n != 2 {
			t.Fatalf("%d runs started, want 2 (parallel)", n)
		}
		if bf, err = en.e.BackfillControl(en.ctx, bf.ID, "pause"); err != nil || bf.State != store.BackfillPaused {
			t.Fatalf("pause: %+v, %v", bf, err)
		}
		if bf, err = en.e.BackfillControl(en.ctx, bf.ID, "cancel"); err != nil || bf.State != store.BackfillCancelled {
			t.Fatalf("cancel: %+v, %v", bf, err)
		}
		synctest.Wait()
		for _, r := range en.jobRuns("x") {
			if r.Status != store.StatusCancelled {
				t.Errorf("run %s for %v: %s, want cancelled", r.ID, r.LogicalTime, r.Status)
			}
		}
		if _, err := en.e.BackfillControl(en.ctx, bf.ID, "resume"); err == nil {
			t.Error("resumed a cancelled backfill")
		}
	})
}

// A cascade backfill that reruns: the downstream runs of each slot it
// starts run again too, after the slot's upstream run, under the policy.
func TestBackfillRerunCascade(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 100)
		en.putJob(store.Job{Name: "x"})
		en.putJob(store.Job{Name: "y", DependsOn: []string{"x"}})
		at := time.Date(1999, 11, 1, 0, 0, 0, 0, time.UTC)
		if _, _, err := en.e.JobTriggerSlot(en.ctx, "x", nil, at, false); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		finish(s, OutcomeSucceeded, *lastOf(c.Tasks(), "x"))
		finish(s, OutcomeFailed, *lastOf(c.Tasks(), "y"))
		y := en.slotRunOf("y", at)
		if y.Status != store.StatusFailed {
			t.Fatalf("y's run: %s", y.Status)
		}
		bf, err := en.e.Backfill(en.ctx, BackfillSpec{Job: "x", From: at, To: at, Parallel: 1, Cascade: true, Rerun: store.RerunAll})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := en.slotRunOf("y", at); got.Status != store.StatusBlocked {
			t.Fatalf("y's run after the rerun started: %s, want blocked until x's run ends", got.Status)
		}
		n := len(c.Tasks())
		x := lastOf(c.Tasks(), "x")
		if x.Attempt != 2 {
			t.Fatalf("x's last task attempt %d, want its rerun", x.Attempt)
		}
		finish(s, OutcomeSucceeded, *x)
		if len(c.Tasks()) != n+1 || c.Tasks()[n].Job != "y" {
			t.Fatalf("after x's rerun: tasks %v, want y's run next", ids(c.Tasks()[n:]))
		}
		bf, _ = en.settle(s, c, bf.ID, "x")
		if got := en.slotRunOf("y", at); got.Status != store.StatusSucceeded || bf.Started != 1 {
			t.Errorf("y's run %s, backfill started %d", got.Status, bf.Started)
		}
	})
}
