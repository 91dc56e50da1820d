package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/pluto-sched/pluto/internal/store"
)

func TestLogsPath(t *testing.T) {
	for in, want := range map[string]string{
		"/d/pluto.db":     "/d/pluto.logs.db",
		"/d/pluto":        "/d/pluto.logs",
		"/d.x/pluto":      "/d.x/pluto.logs",
		"/d/data.sqlite3": "/d/data.logs.sqlite3",
	} {
		if got := logsPath(in); got != want {
			t.Errorf("logsPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// openAt creates a runs' database at schema version v, as a store of that
// version left it.
func openAt(t *testing.T, path string, v int64) *sql.DB {
	t.Helper()
	db, err := openWriter(path, "FULL", 2048)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), v); err != nil {
		t.Fatal(err)
	}
	return db
}

// A database from before the log lines had a file of their own: opening
// it moves its lines and counters, seqs kept, and drops them from the
// runs' database; opening it again moves nothing twice.
func TestLogsMovedFromOldDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db := openAt(t, path, logsMovedVersion-1)
	for _, q := range []string{
		`INSERT INTO run_logs (seq, run_id, attempt, time, stream, level, text) VALUES
			(7, 'a', 1, 1000, 'stdout', '', 'one'), (9, 'b', 2, 2000, 'stderr', 'warn', 'two'), (12, 'a', 1, 3000, 'stdout', '', 'three')`,
		`INSERT INTO run_log_stats (run_id, lines, bytes, dropped) VALUES ('a', 2, 8, 5), ('b', 1, 3, 0)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	for range 2 {
		s, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.LogList(ctx, store.LogListParams{RunID: "a"})
		if err != nil || len(got) != 2 || got[0].Seq != 7 || got[0].Text != "one" || got[1].Seq != 12 ||
			got[1].Time != time.UnixMicro(3000).UTC() {
			t.Errorf("a's lines after the move: %+v, %v", got, err)
		}
		got, err = s.LogList(ctx, store.LogListParams{RunID: "b"})
		if err != nil || len(got) != 1 || got[0].Level != "warn" || got[0].Stream != "stderr" || got[0].Attempt != 2 {
			t.Errorf("b's lines after the move: %+v, %v", got, err)
		}
		if st, err := s.LogStats(ctx, "a"); err != nil || st != (store.LogStats{Lines: 2, Bytes: 8, Dropped: 5}) {
			t.Errorf("a's counters after the move: %+v, %v", st, err)
		}
		var n int
		if err := s.main.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name IN ('run_logs', 'run_log_stats')`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d log tables left in the runs' database, %v", n, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "old.logs.db")); err != nil {
		t.Errorf("the log lines' file: %v", err)
	}
}

// Runs deleted by a transaction whose log lines a crash kept: the store
// purges them when it opens.
func TestLogPurgeReplayed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		db  *sql.DB
		sql string
	}{
		{s.logs.db, `INSERT INTO run_log_stats (run_id, lines) VALUES ('gone', 1), ('kept', 1)`},
		{s.main.db, `INSERT INTO log_purge (run_id) VALUES ('gone')`},
	} {
		if _, err := q.db.ExecContext(ctx, q.sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.LogTx(ctx, func(tx store.LogTx) error {
		return tx.(logTx).t.insertLogLines([]store.LogLine{{RunID: "gone", Attempt: 1, Text: "x"}, {RunID: "kept", Attempt: 1, Text: "y"}})
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(ctx, path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id, want := range map[string]int{"gone": 0, "kept": 1} {
		got, err := s.LogList(ctx, store.LogListParams{RunID: id})
		st, err2 := s.LogStats(ctx, id)
		if err != nil || err2 != nil || len(got) != want || st.Lines != int64(want) {
			t.Errorf("%s: %d lines, counters %+v (%v, %v); want %d", id, len(got), st, err, err2, want)
		}
	}
	var n int
	if err := s.main.db.QueryRowContext(ctx, `SELECT count(*) FROM log_purge`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d log_purge rows left, %v", n, err)
	}
}

// A log transaction neither waits for a scheduling transaction nor holds
// one up: that is what the second file is for.
func TestLogTxBesideTx(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in, out := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.Tx(ctx, func(store.Tx) error {
			close(in)
			<-out
			return nil
		})
	}()
	<-in
	defer close(out)
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = s.LogTx(tctx, func(tx store.LogTx) error {
		_, err := tx.LogAppend(tctx, store.LogAppendParams{Lines: []store.LogLine{{RunID: "r", Attempt: 1, Stream: "stdout", Text: "x"}}})
		return err
	})
	if errors.Is(err, context.DeadlineExceeded) || err != nil {
		t.Fatalf("LogTx while a Tx is open: %v", err)
	}
}
