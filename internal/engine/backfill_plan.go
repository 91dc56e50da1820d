package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Backfill limits.
const (
	maxBackfillSlots    = 10000
	maxBackfillParallel = 1000
)

// BackfillSpec asks for a backfill of Job over the slots in [From, To].
type BackfillSpec struct {
	Job      string
	From, To time.Time
	Parallel int    // slots at once; 0 means 1
	Cascade  bool   // the downstream jobs' runs for each slot too
	Order    string // "asc" (default) or "desc"
	Rerun    string // store.RerunNone (default), RerunFailed or RerunAll
}

// BackfillPlan is what a backfill does (its dry run): each slot with the
// run it has and what becomes of it, the jobs each slot runs, and an
// estimate of its duration.
type BackfillPlan struct {
	Slots    []PlanSlot
	Jobs     []string // the job, then (with cascade) its downstream jobs
	Create   int      // slots given a new run
	Rerun    int      // slots whose ended run is retried
	Keep     int      // slots whose run is kept (ended, or still going)
	Estimate time.Duration
}

// PlanSlot is one slot of a plan. Action is "create", "rerun" or "keep".
type PlanSlot struct {
	At     time.Time
	Action string
	Run    *store.Run // the slot's existing run (nil for create)
}

// checkBackfill validates spec against its job and fills the defaults.
func (e *Engine) checkBackfill(ctx context.Context, spec *BackfillSpec) (*store.Job, []time.Time, error) {
	if spec.Parallel == 0 {
		spec.Parallel = 1
	}
	if spec.Order == "" {
		spec.Order = "asc"
	}
	if spec.Rerun == "" {
		spec.Rerun = store.RerunNone
	}
	switch {
	case spec.From.IsZero():
		return nil, nil, &FieldError{Field: "from", Message: "is required"}
	case spec.To.IsZero():
		return nil, nil, &FieldError{Field: "to", Message: "is required"}
	case spec.To.Before(spec.From):
		return nil, nil, &FieldError{Field: "to", Message: fmt.Sprintf("%s is before from (%s)", spec.To.Format(time.RFC3339), spec.From.Format(time.RFC3339))}
	case spec.Parallel < 1 || spec.Parallel > maxBackfillParallel:
		return nil, nil, &FieldError{Field: "parallel", Message: fmt.Sprintf("must be between 1 and %d", maxBackfillParallel)}
	case spec.Order != "asc" && spec.Order != "desc":
		return nil, nil, &FieldError{Field: "order", Message: fmt.Sprintf("%q is not asc or desc", spec.Order)}
	case !oneOf(spec.Rerun, []string{store.RerunNone, store.RerunFailed, store.RerunAll}):
		return nil, nil, &FieldError{Field: "rerun", Message: fmt.Sprintf("%q is not none, failed or all", spec.Rerun)}
	}
	j, err := e.st.JobGet(ctx, spec.Job)
	if err != nil {
		return nil, nil, err
	}
	slots, err := backfillSlots(j, spec.From, spec.To)
	if err != nil {
		return nil, nil, err
	}
	if spec.Order == "desc" {
		slices.Reverse(slots)
	}
	return j, slots, nil
}

// backfillSlots lists the slots of j in [from, to]: its schedule's, or a
// day's (midnight in its time zone) for a job without one.
func backfillSlots(j *store.Job, from, to time.Time) ([]time.Time, error) {
	sched, err := jobSchedule(j)
	if err != nil {
		return nil, &FieldError{Field: "schedule", Message: err.Error()}
	}
	next := func(t time.Time) time.Time { return sched.Next(t) }
	if sched.IsZero() {
		loc := time.UTC
		if j.Timezone != "" {
			if loc, err = time.LoadLocation(j.Timezone); err != nil {
				return nil, &FieldError{Field: "timezone", Message: err.Error()}
			}
		}
		next = func(t time.Time) time.Time {
			d := t.In(loc)
			return time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc)
		}
	}
	var out []time.Time
	for at := next(from.Add(-time.Nanosecond)); !at.IsZero() && !at.After(to); at = next(at) {
		if len(out) == maxBackfillSlots {
			return nil, &FieldError{Field: "to", Message: fmt.Sprintf("the range holds more than %d slots of the job", maxBackfillSlots)}
		}
		out = append(out, utc(at))
	}
	if len(out) == 0 {
		return nil, &FieldError{Field: "to", Message: "the range holds no slot of the job"}
	}
	return out, nil
}

// span returns the first and last of slots, sorted either way.
func span(slots []time.Time) (lo, hi time.Time) {
	lo, hi = slots[0], slots[len(slots)-1]
	if hi.Before(lo) {
		lo, hi = hi, lo
	}
	return lo, hi
}

// slotAction says what a backfill does with a slot whose run is r (nil:
// none) under rerun.
func slotAction(r *store.Run, rerun string) string {
	switch {
	case r == nil:
		return "create"
	case !r.Status.Terminal():
		return "keep"
	case rerun == store.RerunAll, rerun == store.RerunFailed && r.Status != store.StatusSucceeded:
		return "rerun"
	}
	return "keep"
}

// BackfillPlan returns what a backfill of spec would do, creating nothing.
func (e *Engine) BackfillPlan(ctx context.Context, spec BackfillSpec) (*BackfillPlan, error) {
	j, slots, err := e.checkBackfill(ctx, &spec)
	if err != nil {
		return nil, err
	}
	graph, err := e.gate.depGraph(ctx)
	if err != nil {
		return nil, err
	}
	plan := &BackfillPlan{Jobs: scopeJobs(graph, j.Name, spec.Cascade)}
	existing := map[time.Time]*store.Run{}
	lo, hi := span(slots)
	err = e.st.Tx(ctx, func(tx store.Tx) error {
		rs, err := slotRuns(ctx, tx, j.Name, lo, hi)
		for _, r := range rs {
			existing[r.LogicalTime] = r
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, at := range slots {
		r := existing[at]
		a := slotAction(r, spec.Rerun)
		plan.Slots = append(plan.Slots, PlanSlot{At: at, Action: a, Run: r})
		switch a {
		case "create":
			plan.Create++
		case "rerun":
			plan.Rerun++
		default:
			plan.Keep++
		}
	}
	per, err := e.slotDuration(ctx, plan.Jobs)
	if err != nil {
		return nil, err
	}
	waves := (plan.Create + plan.Rerun + spec.Parallel - 1) / spec.Parallel
	plan.Estimate = time.Duration(waves) * per
	return plan, nil
}

// scopeJobs is job and, with cascade, every job downstream of it.
func scopeJobs(g *depGraph, job string, cascade bool) []string {
	out := []string{job}
	if !cascade {
		return out
	}
	seen := map[string]bool{job: true}
	for i := 0; i < len(out); i++ {
		for _, d := range g.down[out[i]] {
			if !seen[d.job] {
				seen[d.job] = true
				out = append(out, d.job)
			}
		}
	}
	return out
}

// slotDuration estimates one slot's time: the sum over jobs of the mean
// duration of their last 20 succeeded runs (a chain runs its jobs one
// after another; a wider graph takes less).
func (e *Engine) slotDuration(ctx context.Context, jobs []string) (time.Duration, error) {
	var total time.Duration
	for _, j := range jobs {
		page, err := e.st.RunList(ctx, store.RunListParams{Job: j, Statuses: []store.RunStatus{store.StatusSucceeded}, Limit: 20})
		if err != nil {
			return 0, err
		}
		var sum time.Duration
		n := 0
		for _, r := range page.Runs {
			if !r.StartedAt.IsZero() && !r.FinishedAt.IsZero() {
				sum += r.FinishedAt.Sub(r.StartedAt)
				n++
			}
		}
		if n > 0 {
			total += sum / time.Duration(n)
		}
	}
	return total, nil
}
