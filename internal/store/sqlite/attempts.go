package sqlite

import (
	"context"
	"slices"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// The attempt history (migration 00013_attempts, store/attempts.go). A
// row is written by the statements that end an attempt without ending
// the run — a finish to pending or queued, a requeue of lost runs, an
// operator retry — just before the change, under the same write lock and
// with the same conditions, so it records the attempt as the runs row
// held it (the change clears the worker of a requeued run). A finish that
// ends the run runs none of these.

const attemptCols = `run_id, attempt, worker_id, dispatched_at, started_at, ended_at, outcome, error`

// attemptFinishSQL records the attempt a finish ends, if the finish will
// apply (the conditions of finishSQL). A started attempt's start is the
// row's; one never marked running takes the worker's. Arguments: worker
// (NULL: the run's), started_at, ended_at, outcome, error, id, attempt
// (and the server, fenced).
func attemptFinishSQL(fence string) string {
	return `INSERT INTO run_attempts (` + attemptCols + `)
		SELECT id, attempt, coalesce(?, worker_id), dispatched_at, coalesce(started_at, ?), ?, ?, ?
		FROM runs WHERE id = ? AND attempt = ? AND status IN ('dispatched', 'running')` + fence + `
		ON CONFLICT (run_id, attempt) DO NOTHING`
}

func init() {
	wSQL[wAttemptFinish] = attemptFinishSQL("")
	wSQL[wAttemptFenced] = attemptFinishSQL(fenced)
	// The runs wRequeueLost takes (same selection, same order and limit:
	// nothing changes in between under the write lock). Every selected
	// run counts as a change — an active attempt has no row yet, and the
	// upsert would count one it had — so a pass that finds no lost run
	// stops after this one scan of runs_active. Arguments: ended_at, stale
	// before, limit.
	wSQL[wAttemptLost] = `INSERT INTO run_attempts (` + attemptCols + `)
		SELECT a.id, a.attempt, a.worker_id, a.dispatched_at, a.started_at, ?, '` + store.OutcomeLost + `', ''
		FROM runs AS a INDEXED BY runs_active
		WHERE a.server_id IS NOT NULL AND a.status IN ('dispatched', 'running')
			AND NOT EXISTS (SELECT 1 FROM servers AS s WHERE s.id = a.server_id AND s.last_seen >= ?)
		ORDER BY a.seq
		LIMIT ?
		ON CONFLICT (run_id, attempt) DO UPDATE SET ended_at = excluded.ended_at, outcome = excluded.outcome`
	// An attempt recorded already (the run was cancelled while it waited
	// for a retry) keeps its row.
	wSQL[wAttemptPut] = `INSERT INTO run_attempts (` + attemptCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (run_id, attempt) DO NOTHING`
	rSQL[rAttempts] = `SELECT ` + attemptCols + ` FROM run_attempts WHERE run_id = ? ORDER BY attempt DESC LIMIT ?`
}

// recordFinished records the attempt p ends (p.Status is not terminal).
func (t *tx) recordFinished(p *store.RunFinishParams) error {
	t.bind()
	t.arg(nullString(p.WorkerID))
	t.arg(nullMicro(p.StartedAt))
	t.arg(micro(p.Now))
	t.arg(p.AttemptOutcome())
	t.arg(p.Error)
	t.arg(p.ID)
	t.arg(int64(p.Attempt))
	st := wAttemptFinish
	if p.ServerID != "" {
		t.arg(p.ServerID)
		st = wAttemptFenced
	}
	_, _, err := t.exec("RunFinish", st)
	return err
}

// recordLost records the attempts RunRequeueLost is about to requeue and
// reports how many there are.
func (t *tx) recordLost(p store.RunRequeueLostParams) (int64, error) {
	t.bind()
	t.arg(micro(p.Now))
	t.arg(micro(p.StaleBefore))
	t.arg(int64(p.Limit))
	n, _, err := t.exec("RunRequeueLost", wAttemptLost)
	return n, err
}

// recordRetried records the attempt an operator retry resets.
func (t *tx) recordRetried(a *store.Attempt) error {
	t.bind()
	t.arg(a.RunID)
	t.arg(int64(a.Attempt))
	t.arg(a.WorkerID)
	t.arg(nullMicro(a.DispatchedAt))
	t.arg(nullMicro(a.StartedAt))
	t.arg(micro(a.EndedAt))
	t.arg(a.Outcome)
	t.arg(a.Error)
	_, _, err := t.exec("RunRetry", wAttemptPut)
	return err
}

// RunAttempts implements store.Store.
func (s *Store) RunAttempts(ctx context.Context, runID string) ([]store.Attempt, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.rs[rAttempts].QueryContext(ctx, runID, int64(store.MaxAttemptRows))
	if err != nil {
		return nil, s.wrap("RunAttempts", err)
	}
	defer rows.Close()
	var out []store.Attempt
	for rows.Next() {
		var (
			a                 store.Attempt
			dispatched, start *int64
			ended             int64
		)
		if err := rows.Scan(&a.RunID, &a.Attempt, &a.WorkerID, &dispatched, &start, &ended, &a.Outcome, &a.Error); err != nil {
			return nil, s.wrap("RunAttempts", err)
		}
		a.DispatchedAt, a.StartedAt, a.EndedAt = optMicro(dispatched), optMicro(start), fromMicro(ended)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("RunAttempts", err)
	}
	slices.Reverse(out) // read newest first, for the limit
	return out, nil
}

// optMicro decodes a nullable time column.
func optMicro(v *int64) time.Time {
	if v == nil {
		return time.Time{}
	}
	return fromMicro(*v)
}
