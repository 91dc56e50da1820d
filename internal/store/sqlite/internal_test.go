package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPragmas(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		opts Options
		sync int
	}{{Options{}, 2}, {Options{Synchronous: "full"}, 2}, {Options{Synchronous: "NORMAL"}, 1}} {
		s, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), c.opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, db := range []struct {
			name   string
			w, r   *sql.DB
			vacuum bool
		}{{"runs", s.main.db, s.r, true}, {"log lines", s.logs.db, s.lr, true}} {
			var (
				mode                   string
				sync, busy, fk, q, vac int
			)
			w := db.w.QueryRowContext(ctx, "SELECT * FROM pragma_journal_mode, pragma_synchronous, pragma_busy_timeout, pragma_foreign_keys, pragma_auto_vacuum")
			if err := w.Scan(&mode, &sync, &busy, &fk, &vac); err != nil {
				t.Fatal(err)
			}
			if mode != "wal" || sync != c.sync || busy < 1000 || fk != 0 || vac != 2 {
				t.Errorf("%s, %+v: writer journal_mode %s synchronous %d busy_timeout %d foreign_keys %d auto_vacuum %d",
					db.name, c.opts, mode, sync, busy, fk, vac)
			}
			if err := db.r.QueryRowContext(ctx, "SELECT * FROM pragma_query_only, pragma_busy_timeout").Scan(&q, &busy); err != nil {
				t.Fatal(err)
			}
			if q != 1 || busy < 1000 {
				t.Errorf("%s: reader query_only %d busy_timeout %d", db.name, q, busy)
			}
			if _, err := db.r.ExecContext(ctx, "DELETE FROM goose_db_version"); err == nil {
				t.Errorf("%s: the reader pool accepted a write", db.name)
			}
		}
		s.Close()
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), Options{Synchronous: "OFF"}); err == nil {
		t.Error("synchronous=OFF accepted")
	}
}

// TestIncrementalVacuum: a new database keeps its free pages in a list
// ReclaimSpace gives back, a step at a time, once it is large.
func TestIncrementalVacuum(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mode int
	if err := s.main.db.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&mode); err != nil || mode != 2 {
		t.Fatalf("auto_vacuum %d, %v; want 2 (incremental)", mode, err)
	}
	if n, err := s.ReclaimSpace(ctx, 100); err != nil || n != 0 {
		t.Errorf("ReclaimSpace of an empty free list: %d, %v", n, err)
	}
	big := strings.Repeat("x", 4000)
	if _, err := s.main.db.ExecContext(ctx, "CREATE TABLE filler (b TEXT)"); err != nil {
		t.Fatal(err)
	}
	for range 3000 {
		if _, err := s.main.db.ExecContext(ctx, "INSERT INTO filler VALUES (?)", big); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.main.db.ExecContext(ctx, "DELETE FROM filler"); err != nil {
		t.Fatal(err)
	}
	var free int
	if err := s.main.db.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil || free < 2500 {
		t.Fatalf("free list %d pages, %v; want the deleted rows' pages", free, err)
	}
	n, err := s.ReclaimSpace(ctx, 500)
	if err != nil || n != 500 {
		t.Fatalf("ReclaimSpace(500) freed %d, %v; want 500", n, err)
	}
	for n > 0 {
		if n, err = s.ReclaimSpace(ctx, 500); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.main.db.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil || free > reclaimAbove {
		t.Errorf("free list %d pages after reclaiming, %v; want at most %d", free, err, reclaimAbove)
	}
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct{ in, path, sync string }{
		{"sqlite:/var/lib/pluto/db", "/var/lib/pluto/db", ""},
		{"sqlite:///var/lib/pluto/db", "/var/lib/pluto/db", ""},
		{"sqlite://data/pluto.db", "data/pluto.db", ""},
		{"sqlite:data/pluto.db?synchronous=normal", "data/pluto.db", "normal"},
		{"./pluto.db", "./pluto.db", ""},
	} {
		path, opts, err := parseURL(c.in)
		if err != nil || path != c.path || opts.Synchronous != c.sync {
			t.Errorf("parseURL(%q) = %q, %+v, %v; want %q, %q", c.in, path, opts, err, c.path, c.sync)
		}
	}
}

// TestQueryPlans: the statements on hot paths use their indexes; none
// scans the runs table.
func TestQueryPlans(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		name, sql string
		args      []any
		want      string // an index the plan must use
		sort      bool   // a sort of the (small) result is fine
	}{
		{"claim select, 1 type", wSQL[wClaimSelect1], []any{"g", "t", 5, 5}, "runs_claim", false},
		{"claim select, 8 types", wSQL[wClaimSelect8], []any{"g", "a", 5, "b", 5, "c", 5, "d", 5, "e", 5, "f", 5, "g", 5, "h", 5, 5}, "runs_claim", true},
		{"claim update", wSQL[wClaimUpdate], []any{"s", 1, "[1]"}, "PRIMARY KEY", false},
		{"start", wSQL[wStart], []any{1, "w", "id", 1}, "sqlite_autoindex_runs_1", false},
		{"finish", wSQL[wFinish], []any{"succeeded", 1, nil, nil, 0, 0, nil, nil, nil, "id", 1}, "sqlite_autoindex_runs_1", false},
		{"fenced start", wSQL[wStartFenced], []any{1, "w", "id", 1, "s"}, "sqlite_autoindex_runs_1", false},
		{"fenced finish", wSQL[wFinishFenced], []any{"succeeded", 1, nil, nil, 0, 0, nil, nil, nil, "id", 1, "s"}, "sqlite_autoindex_runs_1", false},
		{"adopt", wSQL[wAdopt], []any{"s", "id", 1}, "sqlite_autoindex_runs_1", false},
		{"requeue lost", wSQL[wRequeueLost], []any{1, 10}, "runs_active", true},
		{"get by id", wSQL[wGetByID], []any{"id"}, "sqlite_autoindex_runs_1", false},
		{"get by key", wSQL[wGetByKey], []any{"k"}, "runs_key", false},
		{"cancel", wSQL[wCancel], []any{1, "r", 1}, "PRIMARY KEY", false},
		{"retry", wSQL[wRetry], []any{"queued", 1, 1}, "PRIMARY KEY", false},
		{"promote", wSQL[wPromote], []any{1, 10}, "runs_pending", false},
		{"list active", rSQL[rListActive], nil, "runs_active", true},
		{"list active of a server", rSQL[rListActiveServer], []any{"s"}, "runs_active", false},
		{"next pending", rSQL[rNextPendingAt], nil, "runs_pending", false},
		{"attempts of runs with log lines", rSQL[rLogAttempts], []any{`["a","b"]`}, "sqlite_autoindex_runs_1", false},
		{"log purge note", wSQL[wPurgeNote], []any{"id"}, "", false},
		{"log purge done", wSQL[wPurgeDone], []any{"id"}, "PRIMARY KEY (run_id=?)", false},
		{"get by slot", wSQL[wGetBySlot], []any{"j", 1}, "runs_job_slot", false},
		{"list active for job", wSQL[wListActiveForJob], []any{"j", 10}, "runs_job_active", true},
		{"unblock next", wSQL[wUnblockNext], []any{"j"}, "runs_job_active", false},
		{"job list due", wSQL[wJobListDue], []any{1, 10}, "jobs_due", false},
		{"job next fire", rSQL[rJobNextFire], nil, "jobs_due", false},
		{"job advance", wSQL[wJobAdvance], []any{1, 1, "j", 1}, "sqlite_autoindex_jobs_1", false},
		{"job pause", wSQL[wJobPause], []any{1, 1, 1, "j"}, "sqlite_autoindex_jobs_1", false},
		{"finish with callback", wSQL[wFinishCallback], []any{"succeeded", 1, nil, nil, 0, 0, nil, nil, nil, "id", 1}, "sqlite_autoindex_runs_1", false},
		{"fenced finish with callback", wSQL[wFinishCallbackFenced], []any{"succeeded", 1, nil, nil, 0, 0, nil, nil, nil, "id", 1, "s"}, "sqlite_autoindex_runs_1", false},
		{"callback list due", wSQL[wCallbackListDue], []any{1, 2, 10}, "runs_callback_due", false},
		{"callback record", wSQL[wCallbackRecord], []any{"delivered", nil, "", 1, "id", 1, 1}, "sqlite_autoindex_runs_1", false},
		{"callback next at", rSQL[rCallbackNextAt], nil, "runs_callback_due", false},
		{"token by hash", rSQL[rTokenGetByHash], []any{"h"}, "sqlite_autoindex_tokens_2", false},
		{"token revoke", wSQL[wTokenRevoke], []any{1, "n"}, "sqlite_autoindex_tokens_1", false},
		{"audit delete", wSQL[wAuditDelete], []any{1, 10}, "audit_at", false},
		{"retention walk", wSQL[wRetWalkRuns], []any{1, 10}, "INTEGER PRIMARY KEY (rowid>?)", false},
		{"retention walk of ended", wSQL[wRetWalkEnded], []any{1, 10}, "INTEGER PRIMARY KEY (rowid>?)", false},
		{"retention walk of a job", wSQL[wRetWalkJob], []any{"j", 1, 10}, "runs_job (job=? AND rowid>?)", false},
		{"retention keep last", wSQL[wRetKeepFrom], []any{"j", 1}, "runs_job (job=?)", false},
		{"retention delete", wSQL[wRetDeleteRun], []any{1}, "PRIMARY KEY", false},
		{"retention delete attempts", wSQL[wRetDeleteAttempts], []any{"id"}, "sqlite_autoindex_run_attempts_1", false},
		{"attempt of a finish", wSQL[wAttemptFinish], []any{nil, nil, 1, "failed", "", "id", 1}, "sqlite_autoindex_runs_1", false},
		{"attempt of a fenced finish", wSQL[wAttemptFenced], []any{nil, nil, 1, "failed", "", "id", 1, "s"}, "sqlite_autoindex_runs_1", false},
		{"attempts of lost runs", wSQL[wAttemptLost], []any{1, 1, 10}, "runs_active", true},
		{"attempts", rSQL[rAttempts], []any{"id", 1000}, "sqlite_autoindex_run_attempts_1", false},
		{"fan-out parent", wSQL[wFanoutParent], make([]any, numInsertCols+3), "", false},
		{"fan-out get", wSQL[wFanoutGet], []any{"p"}, "PRIMARY KEY (parent_id=?)", false},
		{"fan-out set merge", wSQL[wFanoutSetMerge], []any{"p", "m"}, "PRIMARY KEY (parent_id=?)", false},
		{"fan-out done", wSQL[wFanoutDone], []any{"p"}, "PRIMARY KEY (parent_id=?)", false},
		{"fan-out finish", wSQL[wFanoutFinish], []any{"succeeded", 1, nil, "", "p"}, "sqlite_autoindex_runs_1", false},
		{"fan-out results", wSQL[wFanoutResults], []any{"p", 0, 1000}, "runs_parent_shard (parent_id=? AND shard>?)", false},
		{"fan-out joinable", rSQL[rFanoutJoinable], []any{100}, "fanouts_open", false},
		{"fan-out joinable: parents", rSQL[rFanoutJoinable], []any{100}, "sqlite_autoindex_runs_1", false},
		{"retention delete fan-out", wSQL[wRetDeleteFanout], []any{"p"}, "PRIMARY KEY (parent_id=?)", false},
		{"fan-out expand", wSQL[wFanoutExpand], []any{1, 3, "id", 1, "s"}, "sqlite_autoindex_runs_1", false},
		{"fan-out release", wSQL[wFanoutRelease], []any{"id", 1, "s"}, "sqlite_autoindex_runs_1", false},
		{"fan-out open", wSQL[wFanoutOpen], []any{"p"}, "PRIMARY KEY (parent_id=?)", false},
		{"split set", wSQL[wSplitSet], []any{`{"shards":3}`, 1}, "PRIMARY KEY", false},
		// The trigger's statement (runs_fanout_count), with NEW.parent_id
		// bound.
		{"fan-out count", `UPDATE fanouts SET ended = ended + 1, failed = failed + 0 WHERE parent_id = ?`, []any{"p"},
			"PRIMARY KEY (parent_id=?)", false},
	} {
		plan := queryPlan(t, s.main.db, c.sql, c.args)
		all := strings.Join(plan, "; ")
		for _, d := range plan {
			if strings.HasPrefix(d, "SCAN runs") || strings.HasPrefix(d, "SCAN r ") || (!c.sort && strings.Contains(d, "TEMP B-TREE")) {
				t.Errorf("%s: %q in plan: %s", c.name, d, all)
			}
		}
		for i := 1; i < len(plan); i++ {
			// A job's runs in one status are read in seq order: a sort may
			// merge such ranges, never reorder one.
			if strings.Contains(plan[i-1], "INDEX runs_job_active ") && strings.Contains(plan[i], "TEMP B-TREE") {
				t.Errorf("%s: %q after %q in plan: %s", c.name, plan[i], plan[i-1], all)
			}
		}
		if !strings.Contains(all, c.want) {
			t.Errorf("%s: plan does not use %s: %s", c.name, c.want, all)
		}
	}
	// The log lines' database.
	for _, c := range []struct {
		name, sql string
		args      []any
		want      string
	}{
		{"log list", lrSQL[lrLogList], []any{"r", 0, 10}, "log_chunks_run (run_id=? AND last_seq>?)"},
		{"log state", wSQL[wLogState], []any{"r"}, "PRIMARY KEY (run_id=?)"},
		{"log purge", wSQL[wPurgeLogs], []any{"r"}, "log_chunks_run (run_id=?)"},
		{"last seq", wSQL[wLogLastSeq], nil, "SEARCH log_chunks"},
		{"log purge counters", wSQL[wPurgeLogStats], []any{"r"}, "PRIMARY KEY (run_id=?)"},
	} {
		all := strings.Join(queryPlan(t, s.logs.db, c.sql, c.args), "; ")
		if !strings.Contains(all, c.want) || strings.Contains(all, "SCAN") || strings.Contains(all, "TEMP B-TREE") {
			t.Errorf("%s: plan does not use %s alone: %s", c.name, c.want, all)
		}
	}
}

// topLevelColumns counts the comma-separated items of a select list,
// ignoring commas inside parentheses.
func topLevelColumns(list string) int {
	n, depth := 1, 0
	for _, c := range list {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				n++
			}
		}
	}
	return n
}

// TestStatementsPrepare: every statement is present and valid SQL, and
// every run query returns numRunCols columns.
func TestStatementsPrepare(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := topLevelColumns(runCols); n != numRunCols {
		t.Errorf("runCols has %d columns, numRunCols is %d", n, numRunCols)
	}
	for i, q := range wSQL {
		if q == "" {
			t.Errorf("writer statement %d has no SQL", i)
			continue
		}
		db := s.main.db
		if slices.Contains(logDBStmts, wStmt(i)) {
			db = s.logs.db
		}
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			t.Errorf("writer statement %d: %v", i, err)
			continue
		}
		st.Close()
	}
	for i, q := range rSQL {
		if q == "" {
			t.Errorf("reader statement %d has no SQL", i)
		}
	}
}
