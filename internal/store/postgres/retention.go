package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/internal/store"
)

// Retention (store/retention.go). A call reads at most ScanBudget rows in
// seq order from the cursor — runs by its primary key, the ended table
// when succeeded runs are kept, or one job's runs through runs_job — and
// deletes the expired ones by seq. The DELETE tests the row again (status,
// finished_at, callback state), on its newest version if another
// transaction changed it since the read (a retry, a callback claim), so a
// run that is no longer expired stays. Its side rows go in a second
// statement, as everywhere in this package (runs.go): ended (a terminal
// run's only one), callbacks (none for a run that owes nothing; deleted
// anyway so no row can outlive its run), the attempt history, a parent's
// fan-out rows and the run's log lines. Nothing
// here touches the hot path: a finish writes no row for retention.

const (
	retCols = `r.seq, r.id, r.grp, r.job, r.status, r.created_at, r.finished_at, r.callback_state`

	sqlRetWalkRuns  = `SELECT ` + retCols + ` FROM runs AS r WHERE r.seq > $1 ORDER BY r.seq LIMIT $2`
	sqlRetWalkEnded = `SELECT ` + retCols + ` FROM ended AS e JOIN runs AS r ON r.seq = e.seq
		WHERE e.seq > $1 ORDER BY e.seq LIMIT $2`
	sqlRetWalkJob = `SELECT ` + retCols + ` FROM runs AS r
		WHERE r.job = $1 AND r.job <> '' AND r.seq > $2 ORDER BY r.seq LIMIT $3`
	sqlRetKeepFrom = `SELECT seq FROM runs WHERE job = $1 AND job <> ''
		AND status IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'skipped')
		ORDER BY seq DESC OFFSET $2 LIMIT 1`
	sqlRetDelete = `DELETE FROM runs USING unnest($1::int8[], $2::text[], $3::timestamptz[]) AS c(seq, status, before)
		WHERE runs.seq = c.seq AND runs.status = c.status AND runs.finished_at < c.before
			AND runs.callback_state <> 'pending'
		RETURNING runs.seq, runs.id, runs.grp, runs.job, runs.status`
	sqlRetDeleteSide = `WITH e AS (DELETE FROM ended WHERE seq = ANY ($1)),
			c AS (DELETE FROM callbacks WHERE seq = ANY ($1)),
			l AS (DELETE FROM run_log_stats WHERE run_id = ANY ($2)),
			a AS (DELETE FROM audit WHERE target = ANY ($2)),
			t AS (DELETE FROM run_attempts WHERE run_id = ANY ($2)),
			f AS (DELETE FROM fanouts WHERE parent_id = ANY ($2)),
			d AS (DELETE FROM fanout_deltas WHERE parent_id = ANY ($2))
		DELETE FROM run_logs WHERE run_id = ANY ($2)`
)

// RunDeleteFinished implements store.Tx.
func (t *tx) RunDeleteFinished(ctx context.Context, p store.RunDeleteParams) (store.RunDeleteResult, error) {
	const op = "RunDeleteFinished"
	if err := t.check(ctx); err != nil {
		return store.RunDeleteResult{}, err
	}
	p = p.Defaults()
	_, some, walkRuns := p.Latest()
	if !some {
		return store.RunDeleteResult{}, nil
	}
	var keepFrom int64
	if p.Job != "" && p.KeepLast > 0 {
		err := t.q.QueryRow(ctx, sqlRetKeepFrom, p.Job, int64(p.KeepLast-1)).Scan(&keepFrom)
		if err == pgx.ErrNoRows {
			return store.RunDeleteResult{}, nil // no more than KeepLast finished runs
		}
		if err != nil {
			return store.RunDeleteResult{}, t.s.wrap(op, err)
		}
	}
	var rows pgx.Rows
	var err error
	switch {
	case p.Job != "":
		rows, err = t.q.Query(ctx, sqlRetWalkJob, p.Job, p.After, int64(p.ScanBudget))
	case walkRuns:
		rows, err = t.q.Query(ctx, sqlRetWalkRuns, p.After, int64(p.ScanBudget))
	default:
		rows, err = t.q.Query(ctx, sqlRetWalkEnded, p.After, int64(p.ScanBudget))
	}
	if err != nil {
		return store.RunDeleteResult{}, t.s.wrap(op, err)
	}
	cands, err := pgx.CollectRows(rows, scanCandidate)
	if err != nil {
		return store.RunDeleteResult{}, t.s.wrap(op, err)
	}
	del, next := store.RetentionWalk(p, cands, len(cands) == p.ScanBudget, keepFrom)
	res := store.RunDeleteResult{Next: next}
	if len(del) == 0 {
		return res, nil
	}
	if res.Deleted, err = t.deleteRuns(ctx, p, del); err != nil {
		return res, err
	}
	t.counts.Deleted(res.Deleted) // the counters forget them, in this transaction
	return res, nil
}

func scanCandidate(row pgx.CollectableRow) (store.RunCandidate, error) {
	var (
		c        store.RunCandidate
		status   string
		finished *time.Time
		cb       string
	)
	if err := row.Scan(&c.Seq, &c.ID, &c.Group, &c.Job, &status, &c.CreatedAt, &finished, &cb); err != nil {
		return c, err
	}
	c.Status = store.RunStatus(status)
	if finished != nil {
		c.FinishedAt = *finished
	}
	c.CallbackPending = cb == string(store.CallbackPending)
	return c, nil
}

// deleteRuns deletes the chosen runs that are still expired, then their
// side rows and log lines, and returns the runs deleted.
func (t *tx) deleteRuns(ctx context.Context, p store.RunDeleteParams, del []store.RunCandidate) ([]store.DeletedRun, error) {
	const op = "RunDeleteFinished"
	seqs := make([]int64, len(del))
	statuses := make([]string, len(del))
	before := make([]time.Time, len(del))
	for i := range del {
		seqs[i], statuses[i], before[i] = del[i].Seq, string(del[i].Status), p.FinishedBefore[del[i].Status]
	}
	rows, err := t.q.Query(ctx, sqlRetDelete, seqs, statuses, before)
	if err != nil {
		return nil, t.s.wrap(op, err)
	}
	seqs = seqs[:0]
	var ids []string
	// The one place a deletion is recorded: per-(group, job, status)
	// counts read it from here.
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.DeletedRun, error) {
		var (
			d      store.DeletedRun
			seq    int64
			status string
		)
		err := row.Scan(&seq, &d.ID, &d.Group, &d.Job, &status)
		d.Status = store.RunStatus(status)
		seqs, ids = append(seqs, seq), append(ids, d.ID)
		return d, err
	})
	if err != nil {
		return nil, t.s.wrap(op, err)
	}
	if len(out) > 0 {
		if _, err := t.q.Exec(ctx, sqlRetDeleteSide, seqs, ids); err != nil {
			return nil, t.s.wrap(op, err)
		}
	}
	return out, nil
}
