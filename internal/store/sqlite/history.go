package sqlite

import (
	"context"
	"database/sql"
	"strings"

	"github.com/pluto-sched/pluto/internal/store"
)

const (
	historyCols = "id, job, type, grp, payload, status, attempt, max_attempts, failures, " +
		"run_at, created_at, started_at, finished_at, worker_id, result, error"
	historyNumCols  = 16
	historyRowsStmt = 200    // rows per INSERT (3,200 parameters)
	historyRowsTx   = 100000 // rows per transaction
)

// LoadHistory implements store.HistoryLoader: multi-row INSERTs of
// historyRowsStmt runs, historyRowsTx runs per transaction, on the writer
// (held as Tx holds it). seq follows i.
func (s *Store) LoadHistory(ctx context.Context, n int, gen func(i int) *store.Run) error {
	if s.closed.Load() {
		return errClosed
	}
	select {
	case s.main.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.main.sem }()
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", historyNumCols), ", ") + ")"
	stmtSQL := "INSERT INTO runs (" + historyCols + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+", ", historyRowsStmt), ", ")
	for i := 0; i < n; {
		end := min(n, i+historyRowsTx)
		if err := s.loadHistoryTx(ctx, stmtSQL, row, i, end, gen); err != nil {
			return s.wrap("LoadHistory", err)
		}
		i = end
	}
	// Write the load back into the database file now, so that the
	// checkpoint does not land in what is measured next.
	if _, err := s.main.db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return s.wrap("LoadHistory: checkpoint", err)
	}
	return nil
}

// loadHistoryTx inserts runs [from, to) in one transaction.
func (s *Store) loadHistoryTx(ctx context.Context, stmtSQL, row string, from, to int, gen func(i int) *store.Run) error {
	tx, err := s.main.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	full, err := tx.PrepareContext(ctx, stmtSQL)
	if err != nil {
		return err
	}
	defer full.Close()
	var before int64
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM runs").Scan(&before); err != nil {
		return err
	}
	args := make([]any, 0, historyNumCols*historyRowsStmt)
	for i := from; i < to; {
		args = args[:0]
		k := min(historyRowsStmt, to-i)
		for ; k > 0; k-- {
			r := gen(i)
			i++
			args = append(args, r.ID, r.Job, r.Type, r.Group, nullText(r.Payload), string(r.Status),
				r.Attempt, r.MaxAttempts, r.Failures, micro(r.RunAt), micro(r.CreatedAt),
				micro(r.StartedAt), micro(r.FinishedAt), r.WorkerID, nullText(r.Result), r.Error)
		}
		if len(args) == cap(args) {
			_, err = full.ExecContext(ctx, args...)
		} else { // the last, short statement
			rows := len(args) / historyNumCols
			q := "INSERT INTO runs (" + historyCols + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
			_, err = tx.ExecContext(ctx, q, args...)
		}
		if err != nil {
			return err
		}
	}
	// The runs that ended badly go to ended, as the write path does.
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO ended (seq) SELECT seq FROM runs
		WHERE seq > ? AND status IN (`+endedStatuses+`)`, before); err != nil {
		return err
	}
	// And the counters: one GROUP BY over the runs just written.
	if _, err := tx.ExecContext(ctx, `INSERT INTO run_counts (grp, job, status, n)
		SELECT grp, job, status, count(*) FROM runs WHERE seq > ? GROUP BY grp, job, status
		ON CONFLICT (grp, job, status) DO UPDATE SET n = n + excluded.n`, before); err != nil {
		return err
	}
	return tx.Commit()
}

func nullText(b []byte) sql.NullString {
	return sql.NullString{String: string(b), Valid: b != nil}
}
