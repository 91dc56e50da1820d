package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/pluto-sched/pluto/internal/store"
)

// The run changes that are not the hot path's: cancel, retry, promotion,
// and the helpers they share (runs.go holds insert, claim, start, finish
// and adopt).

// getForUpdate reads and locks one run; a missing run is ErrNotFound,
// which leaves the transaction usable.
func (t *tx) getForUpdate(ctx context.Context, op, id string) (*Run, error) {
	rows, err := t.q.Query(ctx, sqlGetForUpdate, id)
	if err != nil {
		return nil, t.s.wrap(op, err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, t.s.wrap(op, err)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("postgres: %s: run %q: %w", op, id, store.ErrNotFound)
	}
	return runs[0], nil
}

// one runs a statement that returns exactly one run.
func (t *tx) one(ctx context.Context, op, sql string, args ...any) (*Run, error) {
	rows, err := t.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, t.s.wrap(op, err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, t.s.wrap(op, err)
	}
	if len(runs) != 1 {
		return nil, fmt.Errorf("postgres: %s: %d rows changed, want 1", op, len(runs))
	}
	return runs[0], nil
}

// RunCancel implements store.Tx.
func (t *tx) RunCancel(ctx context.Context, p store.RunCancelParams) (store.RunCancelResult, error) {
	if err := t.check(ctx); err != nil {
		return store.RunCancelResult{}, err
	}
	prev, err := t.getForUpdate(ctx, "RunCancel", p.ID)
	if err != nil {
		return store.RunCancelResult{}, err
	}
	res := store.RunCancelResult{Run: prev, Prev: prev.Status, PrevWorker: prev.WorkerID}
	if prev.Status.Terminal() {
		return res, nil
	}
	reason := p.Reason
	if reason == "" {
		reason = "cancelled"
	}
	r, err := t.one(ctx, "RunCancel", sqlCancel, p.Now, cleanText(reason), prev.Seq,
		prev.Group, prev.Type, int32(prev.Priority), prev.RunAt, prev.Job)
	if err != nil {
		return store.RunCancelResult{}, err
	}
	res.Run, res.Changed = r, true
	t.counts.Move(prev.Group, prev.Job, prev.Status, store.StatusCancelled)
	t.rates.Ended(prev.Group, prev.Job, store.StatusCancelled, p.Now, 1)
	if store.IsFanoutParent(prev) {
		if _, err := t.q.Exec(ctx, sqlFanoutDone, prev.ID); err != nil {
			return store.RunCancelResult{}, t.s.wrap("RunCancel", err)
		}
	}
	return res, t.countChildren(ctx, "RunCancel", childMove(prev, prev.Status, store.StatusCancelled)...)
}

// RunRetry implements store.Tx.
func (t *tx) RunRetry(ctx context.Context, p store.RunRetryParams) (*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	prev, err := t.getForUpdate(ctx, "RunRetry", p.ID)
	if err != nil {
		return nil, err
	}
	switch prev.Status {
	case store.StatusFailed, store.StatusCancelled, store.StatusTimedOut, store.StatusSkipped:
	case store.StatusSucceeded:
		if !p.Succeeded {
			return nil, fmt.Errorf("run %q is %s: %w", p.ID, prev.Status, store.ErrConflict)
		}
	default:
		return nil, fmt.Errorf("postgres: RunRetry: run %q is %s: %w", p.ID, prev.Status, store.ErrConflict)
	}
	if store.IsFanoutParent(prev) {
		return nil, fmt.Errorf("postgres: RunRetry: run %q is a fan-out's parent: %w", p.ID, store.ErrConflict)
	}
	if a, ok := store.RetryAttempt(prev); ok {
		if err := t.recordRetried(ctx, &a); err != nil {
			return nil, err
		}
	}
	r, err := t.one(ctx, "RunRetry", sqlRetry, p.Now, prev.Seq, p.Blocked)
	if err != nil {
		return nil, err
	}
	t.counts.Move(prev.Group, prev.Job, prev.Status, r.Status)
	return r, t.countChildren(ctx, "RunRetry", childMove(prev, prev.Status, r.Status)...)
}

// RunPromote implements store.Tx.
func (t *tx) RunPromote(ctx context.Context, p store.RunPromoteParams) ([]*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	rows, err := t.q.Query(ctx, sqlPromote, p.Now, int64(p.Limit))
	if err != nil {
		return nil, t.s.wrap("RunPromote", err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, t.s.wrap("RunPromote", err)
	}
	for _, r := range runs {
		t.counts.Move(r.Group, r.Job, store.StatusPending, store.StatusQueued)
	}
	slices.SortFunc(runs, func(a, b *Run) int {
		if c := a.RunAt.Compare(b.RunAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	return runs, nil
}
