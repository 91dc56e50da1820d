package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Backfill creates a backfill of spec (running) and returns it; the
// leader starts its first slots at once.
func (e *Engine) Backfill(ctx context.Context, spec BackfillSpec) (*store.Backfill, error) {
	_, slots, err := e.checkBackfill(ctx, &spec)
	if err != nil {
		return nil, err
	}
	now := e.now()
	bf := &store.Backfill{
		ID: "bf_" + strings.TrimPrefix(e.cfg.NewID(), "r_"), Job: spec.Job, From: utc(spec.From), To: utc(spec.To),
		Parallel: spec.Parallel, Cascade: spec.Cascade, Desc: spec.Order == "desc", Rerun: spec.Rerun,
		State: store.BackfillRunning, Next: slots[0], Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	o := &txOp{fn: func(ctx context.Context, tx store.Tx) error {
		if err := tx.BackfillCreate(ctx, bf); err != nil {
			return err
		}
		return e.jobsChanged(ctx, tx, bf.Job) // the leader, wherever it is, steps it
	}}
	if err := e.do(ctx, o, nil); err != nil {
		return nil, err
	}
	e.backfill.wake()
	return bf, nil
}

// BackfillGet returns a backfill.
func (e *Engine) BackfillGet(ctx context.Context, id string) (*store.Backfill, error) {
	return e.st.BackfillGet(ctx, id)
}

// BackfillList returns the newest backfills, at most limit.
func (e *Engine) BackfillList(ctx context.Context, limit int) ([]*store.Backfill, error) {
	return e.st.BackfillList(ctx, limit)
}

// BackfillControl pauses (no new slots; runs going finish), resumes or
// cancels (no new slots, and the unfinished runs of its jobs in its range
// are cancelled) a backfill. A backfill that ended cannot be changed
// (ErrConflict).
func (e *Engine) BackfillControl(ctx context.Context, id, action string) (*store.Backfill, error) {
	to := map[string]string{"pause": store.BackfillPaused, "resume": store.BackfillRunning, "cancel": store.BackfillCancelled}[action]
	if to == "" {
		return nil, &FieldError{Field: "action", Message: fmt.Sprintf("%q is not pause, resume or cancel", action)}
	}
	bf, err := e.st.BackfillGet(ctx, id)
	if err != nil {
		return nil, err
	}
	if bf.State == store.BackfillDone || bf.State == store.BackfillCancelled {
		return nil, fmt.Errorf("backfill %s is %s: %w", id, bf.State, store.ErrConflict)
	}
	graph, err := e.gate.depGraph(ctx)
	if err != nil {
		return nil, err
	}
	now := e.now()
	var out *store.Backfill
	o := &txOp{}
	o.fn = func(ctx context.Context, tx store.Tx) error {
		o.cancels = nil
		next := *bf
		next.State, next.UpdatedAt = to, now
		if to == store.BackfillCancelled {
			next.FinishedAt = now
			if err := cancelRange(ctx, tx, o, scopeJobs(graph, bf.Job, bf.Cascade), bf.From, bf.To, now, "backfill "+id+" cancelled"); err != nil {
				return err
			}
		}
		var ok bool
		if out, ok, err = tx.BackfillUpdate(ctx, &next); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("backfill %s changed meanwhile; try again: %w", id, store.ErrConflict)
		}
		return e.jobsChanged(ctx, tx, bf.Job)
	}
	err = e.do(ctx, o, func() {
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		e.applyMade(o, "backfill cancelled")
	})
	if err != nil {
		return nil, err
	}
	e.backfill.wake()
	return out, nil
}

// cancelRange cancels the unfinished runs of jobs whose logical time is in
// [from, to].
func cancelRange(ctx context.Context, tx store.Tx, o *txOp, jobs []string, from, to, now time.Time, reason string) error {
	for _, j := range jobs {
		active, err := tx.RunListActiveForJob(ctx, j, 1000)
		if err != nil {
			return err
		}
		for _, r := range active {
			if r.LogicalTime.IsZero() || r.LogicalTime.Before(from) || r.LogicalTime.After(to) {
				continue
			}
			res, err := tx.RunCancel(ctx, store.RunCancelParams{ID: r.ID, Reason: reason, Now: now})
			if err != nil {
				return err
			}
			o.cancels = append(o.cancels, res)
		}
	}
	return nil
}

// BackfillJobProgress is one job's runs in a backfill's range, by status.
type BackfillJobProgress struct {
	Job    string
	Counts map[store.RunStatus]int
}

// BackfillProgress counts the runs of the backfill's jobs in its range.
func (e *Engine) BackfillProgress(ctx context.Context, bf *store.Backfill) ([]BackfillJobProgress, error) {
	graph, err := e.gate.depGraph(ctx)
	if err != nil {
		return nil, err
	}
	jobs := scopeJobs(graph, bf.Job, bf.Cascade)
	out := make([]BackfillJobProgress, len(jobs))
	err = e.st.Tx(ctx, func(tx store.Tx) error {
		for i, j := range jobs {
			out[i] = BackfillJobProgress{Job: j, Counts: map[store.RunStatus]int{}}
			runs, err := slotRuns(ctx, tx, j, bf.From, bf.To)
			if err != nil {
				return err
			}
			for _, r := range runs {
				out[i].Counts[r.Status]++
			}
		}
		return nil
	})
	sort.SliceStable(out[1:], func(a, b int) bool { return out[1+a].Job < out[1+b].Job })
	return out, err
}

// slotRuns returns every run of job with a logical time in [lo, hi],
// latest first, a page of RunListSlots at a time.
func slotRuns(ctx context.Context, tx store.Tx, job string, lo, hi time.Time) ([]*store.Run, error) {
	var out []*store.Run
	for to := hi; !to.Before(lo); {
		rs, err := jobSlots(ctx, tx, job, lo, to, store.MaxSlotRuns)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
		if len(rs) < store.MaxSlotRuns {
			break
		}
		to = rs[len(rs)-1].LogicalTime.Add(-time.Microsecond)
	}
	return out, nil
}
