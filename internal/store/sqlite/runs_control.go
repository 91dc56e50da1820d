package sqlite

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/pluto-sched/pluto/internal/store"
)

// The run changes that are not the hot path's: cancel, retry, promotion,
// and the read-for-update they share (runs.go holds insert, claim, start
// and finish).

func (t *tx) getForUpdate(op, id string) (*Run, error) {
	t.bind()
	t.arg(id)
	runs, err := t.queryRuns(op, wGetByID)
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("sqlite: %s: run %q: %w", op, id, store.ErrNotFound)
	}
	return runs[0], nil
}

func (t *tx) RunCancel(ctx context.Context, p store.RunCancelParams) (store.RunCancelResult, error) {
	if err := t.check(ctx); err != nil {
		return store.RunCancelResult{}, err
	}
	prev, err := t.getForUpdate("RunCancel", p.ID)
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
	t.bind()
	t.arg(micro(p.Now))
	t.arg(reason)
	t.arg(prev.Seq)
	runs, err := t.queryRuns("RunCancel", wCancel)
	if err != nil {
		return store.RunCancelResult{}, err
	}
	if len(runs) != 1 {
		return store.RunCancelResult{}, fmt.Errorf("sqlite: RunCancel: run %q vanished", p.ID)
	}
	res.Run, res.Changed = runs[0], true
	t.counts.Move(prev.Group, prev.Job, prev.Status, store.StatusCancelled)
	t.rates.Ended(prev.Group, prev.Job, store.StatusCancelled, p.Now, 1)
	if store.IsFanoutParent(prev) {
		if err := t.fanoutDone("RunCancel", prev.ID); err != nil {
			return store.RunCancelResult{}, err
		}
	}
	if err := t.countChildren("RunCancel", childMove(prev, prev.Status, store.StatusCancelled)...); err != nil {
		return store.RunCancelResult{}, err
	}
	return res, t.ended("RunCancel", p.ID)
}

func (t *tx) RunRetry(ctx context.Context, p store.RunRetryParams) (*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	prev, err := t.getForUpdate("RunRetry", p.ID)
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
		return nil, fmt.Errorf("sqlite: RunRetry: run %q is %s: %w", p.ID, prev.Status, store.ErrConflict)
	}
	if store.IsFanoutParent(prev) {
		return nil, fmt.Errorf("sqlite: RunRetry: run %q is a fan-out's parent: %w", p.ID, store.ErrConflict)
	}
	if a, ok := store.RetryAttempt(prev); ok {
		if err := t.recordRetried(&a); err != nil {
			return nil, err
		}
	}
	to := store.StatusQueued
	if p.Blocked {
		to = store.StatusBlocked
	}
	t.bind()
	t.arg(string(to))
	t.arg(micro(p.Now))
	t.arg(prev.Seq)
	runs, err := t.queryRuns("RunRetry", wRetry)
	if err != nil {
		return nil, err
	}
	if len(runs) != 1 {
		return nil, fmt.Errorf("sqlite: RunRetry: run %q vanished", p.ID)
	}
	t.counts.Move(prev.Group, prev.Job, prev.Status, to)
	if err := t.countChildren("RunRetry", childMove(prev, prev.Status, to)...); err != nil {
		return nil, err
	}
	return runs[0], t.unended("RunRetry", prev.Seq)
}

func (t *tx) RunPromote(ctx context.Context, p store.RunPromoteParams) ([]*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	t.bind()
	t.arg(micro(p.Now))
	t.arg(int64(p.Limit))
	runs, err := t.queryRuns("RunPromote", wPromote)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		t.counts.Move(r.Group, r.Job, store.StatusPending, store.StatusQueued)
	}
	// RETURNING has no defined order; promote order is run_at, then seq.
	slices.SortFunc(runs, func(a, b *Run) int {
		if c := a.RunAt.Compare(b.RunAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	return runs, nil
}
