package postgres

import (
	"context"
	"fmt"

	"github.com/pluto-sched/pluto/internal/store"
)

// Dependencies (store/deps.go). A run waiting on its upstream runs is
// blocked like a run of a serial job (overlap queue), with a row in
// blocked; RunUnblockNext leaves the runs of jobs with dependencies alone
// (sqlUnblockCandidate), and RunGate moves them. Each move is one
// statement whose UPDATE re-checks the status it moves from, so two
// servers deciding at once move a run once, and keeps the side tables as
// the other statements that enter or leave those statuses do.

const (
	// sqlListSlots: runs of job $1 with a logical time in [$2, $3],
	// latest first, at most $4 (a range of runs_job_slot).
	sqlListSlots = `SELECT ` + runCols + ` FROM runs
		WHERE job = $1 AND job <> '' AND logical_time IS NOT NULL AND logical_time BETWEEN $2 AND $3
		ORDER BY logical_time DESC LIMIT $4`

	// sqlGateQueue: blocked → queued, run_at at least $2.
	sqlGateQueue = `WITH u AS (
			UPDATE runs SET status = 'queued', run_at = greatest(run_at, $2)
			WHERE id = $1 AND status = 'blocked' RETURNING ` + runCols + `),
		q AS (INSERT INTO queue (` + queueCols + `) SELECT ` + queueCols + ` FROM u),
		l AS (INSERT INTO job_live (job, seq) SELECT job, seq FROM u WHERE job <> ''),
		d AS (DELETE FROM blocked WHERE (job, seq) IN (SELECT job, seq FROM u))
		SELECT * FROM u`

	// sqlGateSkip: blocked → skipped, finished at $2 with error $3.
	sqlGateSkip = `WITH u AS (
			UPDATE runs SET status = 'skipped', finished_at = $2, error = $3, server_id = NULL,
				callback_state = CASE WHEN callback_url IS NULL THEN callback_state ELSE 'pending' END,
				callback_next_at = CASE WHEN callback_url IS NULL THEN callback_next_at ELSE $2 END
			WHERE id = $1 AND status = 'blocked' RETURNING ` + runCols + `),
		d AS (DELETE FROM blocked WHERE (job, seq) IN (SELECT job, seq FROM u)),
		c AS (INSERT INTO callbacks (next_at, seq) SELECT $2::timestamptz, seq FROM u WHERE callback_url IS NOT NULL),
		e AS (INSERT INTO ended (seq) SELECT seq FROM u ON CONFLICT DO NOTHING)
		SELECT * FROM u`

	// sqlGateReblock: skipped → blocked, its end and undelivered
	// callback undone (as a retry does).
	sqlGateReblock = `WITH u AS (
			UPDATE runs SET status = 'blocked', finished_at = NULL, error = '', server_id = NULL,
				callback_state = '', callback_attempts = 0, callback_next_at = NULL, callback_error = '',
				callback_delivered_at = NULL
			WHERE id = $1 AND status = 'skipped' RETURNING ` + runCols + `),
		b AS (INSERT INTO blocked (job, seq) SELECT job, seq FROM u WHERE job <> ''),
		c AS (DELETE FROM callbacks WHERE ctid = ANY (ARRAY(
			SELECT ctid FROM callbacks WHERE seq IN (SELECT seq FROM u) FOR UPDATE SKIP LOCKED))),
		e AS (DELETE FROM ended WHERE seq IN (SELECT seq FROM u))
		SELECT * FROM u`
)

// RunListSlots implements store.Tx.
func (t *tx) RunListSlots(ctx context.Context, p store.RunSlotsParams) ([]*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckSlots(p); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	rows, err := t.q.Query(ctx, sqlListSlots, p.Job, p.From, p.To, int64(p.Limit))
	if err != nil {
		return nil, t.s.wrap("RunListSlots", err)
	}
	runs, err := collectRuns(rows)
	return runs, t.s.wrap("RunListSlots", err)
}

// RunGate implements store.Tx.
func (t *tx) RunGate(ctx context.Context, ps []store.RunGateParams) ([]*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	out := make([]*Run, len(ps))
	for i, p := range ps {
		if err := store.CheckGate(p); err != nil {
			return nil, fmt.Errorf("postgres: RunGate: %w", err)
		}
		var (
			sql  string
			args = []any{p.ID, p.Now}
		)
		switch p.To {
		case store.StatusQueued:
			sql = sqlGateQueue
		case store.StatusSkipped:
			sql, args = sqlGateSkip, append(args, cleanText(p.Error))
		default:
			sql, args = sqlGateReblock, args[:1]
		}
		rows, err := t.q.Query(ctx, sql, args...)
		if err != nil {
			return nil, t.s.wrap("RunGate", err)
		}
		runs, err := collectRuns(rows)
		if err != nil {
			return nil, t.s.wrap("RunGate", err)
		}
		if len(runs) == 0 {
			continue // no longer in p.From, or gone
		}
		r := runs[0]
		out[i] = r
		t.counts.Move(r.Group, r.Job, p.From, p.To)
		if p.To == store.StatusSkipped {
			t.rates.Ended(r.Group, r.Job, store.StatusSkipped, p.Now, 1)
		}
		if err := t.countChildren(ctx, "RunGate", childMove(r, p.From, p.To)...); err != nil {
			return nil, err
		}
	}
	return out, nil
}
