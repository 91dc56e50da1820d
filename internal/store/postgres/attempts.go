package postgres

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pluto-sched/pluto/internal/store"
)

// The attempt history (migration 00012_attempts, store/attempts.go).
// Rows are written only by the changes that end an attempt without
// ending the run: a finish to pending or queued (recordFinished, a
// statement before sqlFinish, for the rounds that hold one), a requeue of
// lost runs (in sqlRequeueLost) and an operator retry (recordRetried). A
// round of finishes that all end their runs — nearly every one — sends
// nothing more.

const attemptCols = `run_id, attempt, worker_id, dispatched_at, started_at, ended_at, outcome, error`

const (
	// sqlAttemptFinish records the attempts a round of finishes ends
	// without ending the run, for the runs whose finish applies (the
	// conditions of sqlFinish). It locks those runs, in id order as every
	// batch statement does, so sqlFinish then finds them as recorded: no
	// other transaction can change them in between. A started attempt's
	// start is the row's; one never marked running takes the worker's.
	// Arguments: arrays of id, attempt, worker (NULL: the run's),
	// started_at, ended_at, outcome, error and server ('': not fenced).
	sqlAttemptFinish = `INSERT INTO run_attempts (` + attemptCols + `)
		SELECT r.id, r.attempt, coalesce(u.worker, r.worker_id), r.dispatched_at, coalesce(r.started_at, u.started_at),
			u.ended_at, u.outcome, u.error
		FROM unnest($1::text[], $2::int4[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[], $7::text[], $8::text[])
			AS u(id, attempt, worker, started_at, ended_at, outcome, error, server)
		JOIN runs AS r ON r.id = u.id
		WHERE r.attempt = u.attempt AND r.status IN ('dispatched', 'running')
			AND (u.server = '' OR r.server_id = u.server)
		ORDER BY r.id
		FOR UPDATE OF r
		ON CONFLICT (run_id, attempt) DO NOTHING`

	// sqlAttemptPut records one attempt; one recorded already (the run
	// was cancelled while it waited for a retry) keeps its row.
	sqlAttemptPut = `INSERT INTO run_attempts (` + attemptCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (run_id, attempt) DO NOTHING`

	sqlAttempts = `SELECT ` + attemptCols + ` FROM run_attempts WHERE run_id = $1 ORDER BY attempt DESC LIMIT $2`
)

// recordFinished records the attempts that the finishes ps[idx] (one
// round) end without ending their runs.
func (t *tx) recordFinished(ctx context.Context, ps []store.RunFinishParams, idx []int) error {
	var (
		ids, workers, outcomes, errs, servers []string
		attempts                              []int32
		started                               []pgtype.Timestamptz
		ended                                 []time.Time
	)
	for _, i := range idx {
		p := &ps[i]
		if p.Status.Terminal() {
			continue
		}
		ids, attempts, servers = append(ids, p.ID), append(attempts, int32(p.Attempt)), append(servers, p.ServerID)
		workers = append(workers, p.WorkerID)
		started, ended = append(started, nullTime(p.StartedAt)), append(ended, p.Now)
		outcomes, errs = append(outcomes, p.AttemptOutcome()), append(errs, cleanText(p.Error))
	}
	if len(ids) == 0 {
		return nil
	}
	nullWorkers := make([]pgtype.Text, len(workers))
	for i, w := range workers {
		nullWorkers[i] = nullText(w)
	}
	if _, err := t.q.Exec(ctx, sqlAttemptFinish, ids, attempts, nullWorkers, started, ended, outcomes, errs, servers); err != nil {
		return t.s.wrap("RunFinish", err)
	}
	return nil
}

// recordRetried records the attempt an operator retry resets.
func (t *tx) recordRetried(ctx context.Context, a *store.Attempt) error {
	_, err := t.q.Exec(ctx, sqlAttemptPut, a.RunID, int32(a.Attempt), a.WorkerID, nullTime(a.DispatchedAt),
		nullTime(a.StartedAt), a.EndedAt, a.Outcome, cleanText(a.Error))
	if err != nil {
		return t.s.wrap("RunRetry", err)
	}
	return nil
}

// RunAttempts implements store.Store.
func (s *Store) RunAttempts(ctx context.Context, runID string) ([]store.Attempt, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.pool.Query(ctx, sqlAttempts, runID, int64(store.MaxAttemptRows))
	if err != nil {
		return nil, s.wrap("RunAttempts", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Attempt, error) {
		var (
			a                 store.Attempt
			dispatched, start pgtype.Timestamptz
		)
		err := row.Scan(&a.RunID, &a.Attempt, &a.WorkerID, &dispatched, &start, &a.EndedAt, &a.Outcome, &a.Error)
		a.DispatchedAt, a.StartedAt, a.EndedAt = tsTime(dispatched), tsTime(start), utc(a.EndedAt)
		return a, err
	})
	if err != nil {
		return nil, s.wrap("RunAttempts", err)
	}
	slices.Reverse(out) // read newest first, for the limit
	return out, nil
}
