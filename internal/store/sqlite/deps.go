package sqlite

import (
	"context"
	"fmt"

	"github.com/pluto-sched/pluto/internal/store"
)

// Dependencies (store/deps.go). A run waiting on its upstream runs is
// blocked like a run of a serial job (overlap queue); RunUnblockNext
// leaves the runs of jobs with dependencies alone (unblockNextSQL), and
// RunGate moves them, each move an UPDATE that re-checks the status it
// moves from.

func init() {
	// Runs of job ?1 with a logical time in [?2, ?3], latest first, at
	// most ?4: a range of runs_job_slot.
	wSQL[wListSlots] = `SELECT ` + runCols + ` FROM runs INDEXED BY runs_job_slot
		WHERE job = ?1 AND job <> '' AND logical_time IS NOT NULL AND logical_time BETWEEN ?2 AND ?3
		ORDER BY logical_time DESC LIMIT ?4`
	wSQL[wGateQueue] = `UPDATE runs SET status = 'queued', run_at = max(run_at, ?2)
		WHERE id = ?1 AND status = 'blocked' RETURNING ` + runCols
	wSQL[wGateSkip] = `UPDATE runs SET status = 'skipped', finished_at = ?2, error = ?3, server_id = NULL,
			callback_state = CASE WHEN callback_url IS NULL THEN callback_state ELSE 'pending' END,
			callback_next_at = CASE WHEN callback_url IS NULL THEN callback_next_at ELSE ?2 END
		WHERE id = ?1 AND status = 'blocked' RETURNING ` + runCols
	wSQL[wGateReblock] = `UPDATE runs SET status = 'blocked', finished_at = NULL, error = '', server_id = NULL,
			callback_state = '', callback_attempts = 0, callback_next_at = NULL, callback_error = '',
			callback_delivered_at = NULL
		WHERE id = ?1 AND status = 'skipped' RETURNING ` + runCols
}

// RunListSlots implements store.Tx.
func (t *tx) RunListSlots(ctx context.Context, p store.RunSlotsParams) ([]*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckSlots(p); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	t.bind()
	t.arg(p.Job)
	t.arg(micro(p.From))
	t.arg(micro(p.To))
	t.arg(int64(p.Limit))
	return t.queryRuns("RunListSlots", wListSlots)
}

// RunGate implements store.Tx.
func (t *tx) RunGate(ctx context.Context, ps []store.RunGateParams) ([]*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	out := make([]*Run, len(ps))
	for i, p := range ps {
		if err := store.CheckGate(p); err != nil {
			return nil, fmt.Errorf("sqlite: RunGate: %w", err)
		}
		t.bind()
		t.arg(p.ID)
		st := wGateReblock
		switch p.To {
		case store.StatusQueued:
			st = wGateQueue
			t.arg(micro(p.Now))
		case store.StatusSkipped:
			st = wGateSkip
			t.arg(micro(p.Now))
			t.arg(p.Error)
		}
		runs, err := t.queryRuns("RunGate", st)
		if err != nil {
			return nil, err
		}
		if len(runs) == 0 {
			continue // no longer in p.From, or gone
		}
		r := runs[0]
		out[i] = r
		t.counts.Move(r.Group, r.Job, p.From, p.To)
		switch p.To {
		case store.StatusSkipped:
			t.rates.Ended(r.Group, r.Job, store.StatusSkipped, p.Now, 1)
			err = t.ended("RunGate", r.ID)
		case store.StatusBlocked:
			err = t.unended("RunGate", r.Seq)
		}
		if err == nil {
			err = t.countChildren("RunGate", childMove(r, p.From, p.To)...)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
