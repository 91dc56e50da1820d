package postgres

import (
	"cmp"
	"context"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/internal/store"
)

// RunRequeueLost: a write-side statement off the hot path of a run's
// state changes (runs.go holds that).

const (
	// sqlRequeueLost: the active runs whose server is not registered or
	// was last seen before the cut-off, oldest first. The servers holding
	// runs are read from active_server one at a time (a skip scan); only
	// the runs of lost ones are read. Staleness is decided on the locked
	// run's server_id, so a run adopted meanwhile stays. Each lost attempt
	// is recorded from the locked row as it was (the update clears its
	// worker). Arguments: stale before, limit, now.
	sqlRequeueLost = `WITH RECURSIVE h(server_id) AS (
			(SELECT a.server_id FROM active AS a ORDER BY a.server_id LIMIT 1)
			UNION ALL
			SELECT (SELECT a.server_id FROM active AS a WHERE a.server_id > h.server_id ORDER BY a.server_id LIMIT 1)
			FROM h WHERE h.server_id IS NOT NULL),
		lost AS (
			SELECT h.server_id FROM h WHERE h.server_id IS NOT NULL
				AND NOT EXISTS (SELECT 1 FROM servers AS s WHERE s.id = h.server_id AND s.last_seen >= $1)),
		held AS MATERIALIZED (SELECT a.seq FROM lost JOIN active AS a ON a.server_id = lost.server_id),
		l AS MATERIALIZED (
			SELECT r.seq, r.status AS prev_status, r.id, r.attempt, r.worker_id, r.dispatched_at, r.started_at
			FROM runs AS r
			WHERE r.seq = ANY (ARRAY(SELECT seq FROM held)) AND r.status IN ('dispatched', 'running')
				AND NOT EXISTS (SELECT 1 FROM servers AS s WHERE s.id = r.server_id AND s.last_seen >= $1)
			ORDER BY r.seq
			LIMIT $2
			FOR UPDATE SKIP LOCKED),
		u AS (UPDATE runs SET status = 'queued', server_id = NULL, worker_id = '' FROM l WHERE runs.seq = l.seq
			RETURNING ` + qualifiedRunCols + `, l.prev_status),
		q AS (INSERT INTO queue (` + queueCols + `) SELECT ` + queueCols + ` FROM u),
		t AS (INSERT INTO run_attempts (` + attemptCols + `)
			SELECT l.id, l.attempt, l.worker_id, l.dispatched_at, l.started_at, $3, '` + store.OutcomeLost + `', '' FROM l
			ON CONFLICT (run_id, attempt) DO NOTHING)
		SELECT * FROM u`
)

// RunRequeueLost implements store.Tx.
func (t *tx) RunRequeueLost(ctx context.Context, p store.RunRequeueLostParams) ([]*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	rows, err := t.q.Query(ctx, sqlRequeueLost, p.StaleBefore, int64(p.Limit), p.Now)
	if err != nil {
		return nil, t.s.wrap("RunRequeueLost", err)
	}
	// Each row is runCols and the status the run left (l locked the run,
	// so that status is its newest).
	var (
		runs []*Run
		prev string
	)
	rr := newRunRow()
	dest := append(rr.dest[:], &prev)
	_, err = pgx.ForEachRow(rows, dest, func() error {
		r, err := rr.decode()
		if err == nil {
			runs = append(runs, r)
			t.counts.Move(r.Group, r.Job, store.RunStatus(prev), r.Status)
		}
		return err
	})
	if err != nil {
		return nil, t.s.wrap("RunRequeueLost", err)
	}
	if len(runs) > 0 {
		seqs := make([]int64, len(runs))
		for i, r := range runs {
			seqs[i] = r.Seq
		}
		if _, err := t.q.Exec(ctx, sqlDeleteActive, seqs); err != nil {
			return nil, t.s.wrap("RunRequeueLost", err)
		}
	}
	slices.SortFunc(runs, func(a, b *Run) int { return cmp.Compare(a.Seq, b.Seq) })
	return runs, nil
}
