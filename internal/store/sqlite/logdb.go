package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"

	"github.com/pluto-sched/pluto/internal/store"
)

// The log lines' database
//
// SQLite has one writer per database file. With log lines in the runs'
// database, a run printing a burst made the scheduling transactions wait
// behind its log transactions: a few milliseconds each, the whole burst
// long. So the lines and their counters (run_logs, run_log_stats) live in
// a second file beside the first (logsPath), with a writer of its own:
// LogTx takes that writer only, and never waits for Tx nor holds it up.
//
// What the two files cannot share is a transaction:
//
//   - The fence. LogAppend stores a line only for the run's current
//     attempt; it reads the attempts from the runs' database as committed
//     when it begins (its own writer is held by then), not under the runs'
//     writer. A line an attempt sends as a Tx moves the run on may still
//     be stored, under the attempt that sent it, which held the run when
//     the line was written. A run unknown then (never made, or deleted)
//     stores nothing.
//   - Deletion. Retention deletes runs in the runs' database and writes
//     their ids to log_purge in the same transaction; once it committed,
//     Tx deletes their lines and counters here (purgeLogs), then the next
//     retention transaction deletes the log_purge rows. A purge that fails
//     is tried again with the next one; rows a crash left are purged when
//     the store opens (replayPurge). Lines appended after their run was
//     deleted cannot exist: LogAppend reads the runs after it took its
//     writer, and the purge waits for that writer.
//
// Before version logsMovedVersion of the runs' schema the lines lived in
// the runs' database: opening such a database copies them over (moveLogs)
// before that version drops them there.

// logsMovedVersion is the runs' schema version that dropped run_logs and
// run_log_stats (migrations/00020_logs_moved.sql).
const logsMovedVersion = 20

// LogsFile is the log lines' database of the runs' database at path:
// "pluto.db" → "pluto.logs.db", "pluto" → "pluto.logs".
func LogsFile(path string) string { return logsPath(path) }

func logsPath(path string) string {
	ext := filepath.Ext(path)
	if ext == "" {
		return path + ".logs"
	}
	return strings.TrimSuffix(path, ext) + ".logs" + ext
}

// LogsPath is the absolute path of the log lines' database file.
func (s *Store) LogsPath() string { return logsPath(s.path) }

// Reader statements of the log lines' database.
type lrStmt int

const (
	lrLogList lrStmt = iota
	lrLogStats
	numLRStmts
)

var lrSQL = [numLRStmts]string{
	lrLogList: `SELECT last_seq, lines FROM log_chunks
		WHERE run_id = ? AND last_seq > ? ORDER BY last_seq LIMIT ?`,
	lrLogStats: `SELECT lines, bytes, dropped FROM run_log_stats WHERE run_id = ?`,
}

// logDBStmts are the writer statements of the log lines' database; the
// others are the runs' database's.
var logDBStmts = []wStmt{wChunkInsert1, wChunkInsert16, wChunkMove, wLogLastSeq, wLogStatsMove, wLogState,
	wLogStatsPut, wPurgeLogs, wPurgeLogStats}

// LogTx implements store.Store: fn runs in a write transaction of the
// log lines' database, beside any Tx.
func (s *Store) LogTx(ctx context.Context, fn func(tx store.LogTx) error) error {
	return s.transact(ctx, &s.logs, func(t *tx) error { return fn(logTx{t}) })
}

// logTx is the store.LogTx of one LogTx call.
type logTx struct{ t *tx }

func (l logTx) LogAppend(ctx context.Context, p store.LogAppendParams) (store.LogAppendResult, error) {
	return l.t.logAppend(ctx, p)
}

func (l logTx) Notify(ctx context.Context, n store.Notification) error { return l.t.Notify(ctx, n) }

// moveLogs copies the lines and counters of a runs' database older than
// logsMovedVersion into the log lines' database, in one transaction of
// the latter: the lines as chunks of each run's consecutive lines, their
// seqs kept. Rows already there (a copy that committed before a crash
// stopped the migration) are skipped: chunks are keyed by their last
// line's seq, and counters by run.
func (s *Store) moveLogs(ctx context.Context) error {
	var n int
	err := s.main.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'run_logs'`).Scan(&n)
	if err != nil {
		return s.wrap("moveLogs", err)
	}
	if n == 0 {
		return nil
	}
	moved := 0
	err = s.transact(ctx, &s.logs, func(t *tx) error {
		rows, err := s.main.db.QueryContext(ctx, `SELECT seq, run_id, attempt, time, stream, level, text FROM run_logs ORDER BY run_id, seq`)
		if err != nil {
			return s.wrap("moveLogs", err)
		}
		defer rows.Close()
		var c chunk
		size := 0
		flush := func() error {
			if len(c.lines) == 0 {
				return nil
			}
			t.bind()
			t.arg(c.lastSeq())
			t.arg(c.runID)
			t.arg(encodeChunk(&c))
			_, _, err := t.exec("moveLogs", wChunkMove)
			moved += len(c.lines)
			c, size = chunk{}, 0
			return err
		}
		for rows.Next() {
			var (
				l   store.LogLine
				seq int64
				at  int64
			)
			if err := rows.Scan(&seq, &l.RunID, &l.Attempt, &at, &l.Stream, &l.Level, &l.Text); err != nil {
				return s.wrap("moveLogs", err)
			}
			l.Time = fromMicro(at)
			if len(c.lines) > 0 && (l.RunID != c.runID || len(c.lines) == chunkLines || size+len(l.Text) > chunkBytes) {
				if err := flush(); err != nil {
					return err
				}
			}
			c.runID = l.RunID
			c.lines = append(c.lines, l)
			c.seqs = append(c.seqs, seq)
			size += len(l.Text)
		}
		if err := rows.Err(); err != nil {
			return s.wrap("moveLogs", err)
		}
		if err := flush(); err != nil {
			return err
		}
		return t.moveLogStats(ctx)
	})
	if err != nil {
		return err
	}
	s.log.Info("sqlite: log lines moved to their own database", "lines", moved, "path", s.LogsPath())
	return nil
}

// moveLogStats copies the counters of moveLogs' database.
func (t *tx) moveLogStats(ctx context.Context) error {
	rows, err := t.s.main.db.QueryContext(ctx, `SELECT run_id, lines, bytes, dropped FROM run_log_stats`)
	if err != nil {
		return t.s.wrap("moveLogs", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id                    string
			lines, bytes, dropped int64
		)
		if err := rows.Scan(&id, &lines, &bytes, &dropped); err != nil {
			return t.s.wrap("moveLogs", err)
		}
		t.bind()
		t.arg(id)
		t.arg(lines)
		t.arg(bytes)
		t.arg(dropped)
		if _, _, err := t.exec("moveLogs", wLogStatsMove); err != nil {
			return err
		}
	}
	return t.s.wrap("moveLogs", rows.Err())
}

// purgeQueue is what is left to do for the runs retention deleted: the
// runs whose lines a purge failed to delete (pending), and the runs whose
// lines are gone, whose log_purge rows the next retention transaction
// deletes (done).
type purgeQueue struct {
	mu      sync.Mutex
	pending []string
	done    []string
}

// takeDone returns the runs whose log_purge rows are to go now.
func (q *purgeQueue) takeDone() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := q.done
	q.done = nil
	return d
}

// restore gives back runs takeDone returned to a transaction that did not
// commit.
func (q *purgeQueue) restore(ids []string) {
	if len(ids) == 0 {
		return
	}
	q.mu.Lock()
	q.done = append(q.done, ids...)
	q.mu.Unlock()
}

// purgeLogs deletes the lines and counters of the runs ids (just deleted
// by a committed Tx), and of those a failed purge left. A failure keeps
// them for the next call; log_purge keeps them across a restart.
func (s *Store) purgeLogs(ctx context.Context, ids []string) {
	s.purge.mu.Lock()
	ids = append(s.purge.pending, ids...)
	s.purge.pending = nil
	s.purge.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	err := s.transact(context.WithoutCancel(ctx), &s.logs, func(t *tx) error { return t.deleteLogs(ids) })
	s.purge.mu.Lock()
	defer s.purge.mu.Unlock()
	if err != nil {
		s.purge.pending = append(s.purge.pending, ids...)
		s.log.Warn("sqlite: deleting the log lines of deleted runs failed; trying again with the next deletion", "runs", len(ids), "err", err)
		return
	}
	s.purge.done = append(s.purge.done, ids...)
}

// deleteLogs deletes the lines and counters of the runs ids.
func (t *tx) deleteLogs(ids []string) error {
	for _, id := range ids {
		for _, st := range []wStmt{wPurgeLogs, wPurgeLogStats} {
			t.bind()
			t.arg(id)
			if _, _, err := t.exec("purge logs", st); err != nil {
				return err
			}
		}
	}
	return nil
}

// clearPurged deletes the log_purge rows of runs whose lines are gone.
// Called by retention transactions; if this one does not commit, Tx gives
// them back (cleared).
func (t *tx) clearPurged() error {
	t.cleared = t.s.purge.takeDone()
	for _, id := range t.cleared {
		t.bind()
		t.arg(id)
		if _, _, err := t.exec("RunDeleteFinished", wPurgeDone); err != nil {
			return err
		}
	}
	return nil
}

// replayPurge purges the runs a crash left in log_purge. Open calls it
// before anything else can write.
func (s *Store) replayPurge(ctx context.Context) error {
	rows, err := s.main.db.QueryContext(ctx, `SELECT run_id FROM log_purge`)
	if err != nil {
		return s.wrap("replayPurge", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return s.wrap("replayPurge", err)
		}
		ids = append(ids, id)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return s.wrap("replayPurge", err)
	}
	if len(ids) == 0 {
		return nil
	}
	for len(ids) > 0 {
		n := min(len(ids), 1000)
		if err := s.transact(ctx, &s.logs, func(t *tx) error { return t.deleteLogs(ids[:n]) }); err != nil {
			return err
		}
		ids = ids[n:]
	}
	if _, err := s.main.db.ExecContext(ctx, `DELETE FROM log_purge`); err != nil {
		return s.wrap("replayPurge", err)
	}
	return nil
}

// runAttempts returns the current attempt of each of the runs ids that
// exists, read from the runs' database as committed now.
func (s *Store) runAttempts(ctx context.Context, ids []string) (map[string]int, error) {
	arg, err := json.Marshal(ids)
	if err != nil {
		return nil, s.wrap("LogAppend", err)
	}
	rows, err := s.rs[rLogAttempts].QueryContext(ctx, string(arg))
	if err != nil {
		return nil, s.wrap("LogAppend", err)
	}
	out := make(map[string]int, len(ids))
	for rows.Next() {
		var (
			id      string
			attempt int
		)
		if err := rows.Scan(&id, &attempt); err != nil {
			rows.Close()
			return nil, s.wrap("LogAppend", err)
		}
		out[id] = attempt
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, s.wrap("LogAppend", err)
	}
	return out, nil
}
