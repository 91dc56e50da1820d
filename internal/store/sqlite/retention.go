package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"

	"github.com/pluto-sched/pluto/internal/store"
)

// Retention (store/retention.go). A call walks at most ScanBudget rows in
// seq order from the cursor — the runs table itself (its rowid), the
// ended table when succeeded runs are kept, or one job's runs through
// runs_job — and deletes the expired ones by rowid, with their attempt
// history, ended rows and a parent's fanouts row (its children are runs
// of their own, deleted when they expire). The walk and the deletes run
// in the one write transaction, so nothing changes in between. Their log
// lines, in the other database, go once it committed (log_purge,
// logdb.go). Nothing here touches the hot path: a finish writes no row
// for retention.

// retCols are the columns a retention walk reads, in the order
// decodeCandidate reads them.
const retCols = `seq, id, grp, job, status, created_at, finished_at, callback_state`

const numRetCols = 8

const terminalStatuses = `'succeeded', 'failed', 'cancelled', 'timed_out', 'skipped'`

func init() {
	wSQL[wRetWalkRuns] = `SELECT ` + retCols + ` FROM runs WHERE seq > ? ORDER BY seq LIMIT ?`
	wSQL[wRetWalkEnded] = `SELECT r.seq, r.id, r.grp, r.job, r.status, r.created_at, r.finished_at, r.callback_state
		FROM ended AS e JOIN runs AS r ON r.seq = e.seq WHERE e.seq > ? ORDER BY e.seq LIMIT ?`
	// "job <> ''" lets SQLite use the partial index runs_job.
	wSQL[wRetWalkJob] = `SELECT ` + retCols + ` FROM runs WHERE job = ? AND job <> '' AND seq > ? ORDER BY seq LIMIT ?`
	wSQL[wRetKeepFrom] = `SELECT seq FROM runs WHERE job = ? AND job <> '' AND status IN (` + terminalStatuses + `)
		ORDER BY seq DESC LIMIT 1 OFFSET ?`
	wSQL[wRetDeleteRun] = `DELETE FROM runs WHERE seq = ?`
	wSQL[wPurgeNote] = `INSERT OR IGNORE INTO log_purge (run_id) VALUES (?)`
	wSQL[wPurgeDone] = `DELETE FROM log_purge WHERE run_id = ?`
	wSQL[wPurgeLogs] = `DELETE FROM log_chunks WHERE run_id = ?`
	wSQL[wPurgeLogStats] = `DELETE FROM run_log_stats WHERE run_id = ?`
	wSQL[wRetDeleteAudit] = `DELETE FROM audit WHERE target = ?`
	wSQL[wRetDeleteAttempts] = `DELETE FROM run_attempts WHERE run_id = ?`
	wSQL[wRetDeleteFanout] = `DELETE FROM fanouts WHERE parent_id = ?`
}

func decodeCandidate(vals []driver.Value) store.RunCandidate {
	return store.RunCandidate{
		Seq: asInt(vals[0]),
		DeletedRun: store.DeletedRun{
			ID: asString(vals[1]), Group: asString(vals[2]), Job: asString(vals[3]), Status: store.RunStatus(asString(vals[4])),
		},
		CreatedAt:       asTime(vals[5]),
		FinishedAt:      asTime(vals[6]),
		CallbackPending: asString(vals[7]) == string(store.CallbackPending),
	}
}

// RunDeleteFinished implements store.Tx.
func (t *tx) RunDeleteFinished(ctx context.Context, p store.RunDeleteParams) (store.RunDeleteResult, error) {
	const op = "RunDeleteFinished"
	if err := t.check(ctx); err != nil {
		return store.RunDeleteResult{}, err
	}
	if err := t.clearPurged(); err != nil {
		return store.RunDeleteResult{}, err
	}
	p = p.Defaults()
	_, some, walkRuns := p.Latest()
	if !some {
		return store.RunDeleteResult{}, nil
	}
	var keepFrom int64
	if p.Job != "" && p.KeepLast > 0 {
		t.bind()
		t.arg(p.Job)
		t.arg(int64(p.KeepLast - 1))
		found := false
		if err := t.query(op, wRetKeepFrom, 1, func(v []driver.Value) { keepFrom, found = asInt(v[0]), true }); err != nil {
			return store.RunDeleteResult{}, err
		}
		if !found {
			return store.RunDeleteResult{}, nil // no more than KeepLast finished runs
		}
	}
	t.bind()
	walk := wRetWalkRuns
	switch {
	case p.Job != "":
		t.arg(p.Job)
		walk = wRetWalkJob
	case !walkRuns:
		walk = wRetWalkEnded
	}
	t.arg(p.After)
	t.arg(int64(p.ScanBudget))
	rows := make([]store.RunCandidate, 0, min(p.ScanBudget, 1024))
	if err := t.query(op, walk, numRetCols, func(v []driver.Value) { rows = append(rows, decodeCandidate(v)) }); err != nil {
		return store.RunDeleteResult{}, err
	}
	del, next := store.RetentionWalk(p, rows, len(rows) == p.ScanBudget, keepFrom)
	res := store.RunDeleteResult{Next: next, Deleted: make([]store.DeletedRun, 0, len(del))}
	for i := range del {
		if err := t.deleteRun(op, &del[i]); err != nil {
			return store.RunDeleteResult{}, err
		}
		// The one place a deletion is recorded: per-(group, job, status)
		// counts read it from here.
		res.Deleted = append(res.Deleted, del[i].DeletedRun)
	}
	t.counts.Deleted(res.Deleted) // the counters forget them, in this transaction
	return res, nil
}

// deleteRun deletes one run with its audit entries, attempt history,
// fan-out row (a parent's) and ended row, and notes its log lines for the
// purge.
func (t *tx) deleteRun(op string, r *store.RunCandidate) error {
	t.bind()
	t.arg(r.Seq)
	n, _, err := t.exec(op, wRetDeleteRun)
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("sqlite: %s: run %q vanished", op, r.ID)
	}
	t.bind()
	t.arg(r.ID)
	if _, _, err := t.exec(op, wPurgeNote); err != nil {
		return err
	}
	t.purge = append(t.purge, r.ID)
	t.bind()
	t.arg(r.ID)
	if _, _, err := t.exec(op, wRetDeleteAudit); err != nil {
		return err
	}
	t.bind()
	t.arg(r.ID)
	if _, _, err := t.exec(op, wRetDeleteAttempts); err != nil {
		return err
	}
	t.bind()
	t.arg(r.ID)
	if _, _, err := t.exec(op, wRetDeleteFanout); err != nil {
		return err
	}
	return t.unended(op, r.Seq)
}

// reclaimAbove is the free-list size, in pages, above which ReclaimSpace
// gives pages back: below it, freed pages are simply reused by inserts.
const reclaimAbove = 1024

// ReclaimSpace implements store.SpaceReclaimer, for each of the two
// databases. A database created with auto_vacuum = INCREMENTAL (every
// database this package created) gives back at most maxPages pages of its
// free list per call, holding its writer for that long only; other
// databases have nothing to give back without a full VACUUM, and reuse
// their free pages instead.
func (s *Store) ReclaimSpace(ctx context.Context, maxPages int) (int, error) {
	n, err := s.reclaim(ctx, &s.main, maxPages)
	if err != nil {
		return n, err
	}
	m, err := s.reclaim(ctx, &s.logs, maxPages)
	return n + m, err
}

// reclaim is ReclaimSpace for one database.
func (s *Store) reclaim(ctx context.Context, c *wconn, maxPages int) (int, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("sqlite: waiting for the writer: %w", ctx.Err())
	case <-s.closing:
		return 0, errClosed
	}
	defer func() { <-c.sem }()
	var mode, free int
	if err := c.db.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&mode); err != nil {
		return 0, s.wrap("auto_vacuum", err)
	}
	if mode != 2 { // 2: INCREMENTAL
		return 0, nil
	}
	if err := c.db.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil {
		return 0, s.wrap("freelist_count", err)
	}
	if free <= reclaimAbove {
		return 0, nil
	}
	n := min(maxPages, free-reclaimAbove/2)
	if _, err := c.db.ExecContext(ctx, fmt.Sprintf("PRAGMA incremental_vacuum(%d)", n)); err != nil {
		return 0, s.wrap("incremental_vacuum", err)
	}
	var after int
	if err := c.db.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&after); err != nil {
		return 0, s.wrap("freelist_count", err)
	}
	return free - after, nil
}
