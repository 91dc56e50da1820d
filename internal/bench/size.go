package bench

// The store's size on disk, measured from outside the store through a
// connection of the benchmark's own (the store has no size API): SQLite's
// two database files (runs, log lines) with their WALs and free-list
// pages; PostgreSQL's tables with
// their indexes and TOAST, split into runs, run_logs and the rest.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/internal/store/sqlite"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, for PRAGMA freelist_count
)

// StoreSize is the store on disk at one moment.
type StoreSize struct {
	Bytes int64 `json:"bytes"` // all of it
	// SQLite: the two database files (runs, log lines), their WALs, and
	// the pages on their free lists (inside the files, reusable; PRAGMA
	// freelist_count). LogsBytes is then the log lines' file and WAL.
	FileBytes int64 `json:"file_bytes,omitempty"`
	WALBytes  int64 `json:"wal_bytes,omitempty"`
	FreePages int64 `json:"free_pages,omitempty"`
	// PostgreSQL: pg_total_relation_size of runs, of run_logs and of every
	// other table of the schema (the side tables, counters, jobs…), and
	// the dead rows of runs as the statistics collector last counted them
	// (autovacuum makes their space reusable).
	RunsBytes    int64 `json:"runs_bytes,omitempty"`
	LogsBytes    int64 `json:"run_logs_bytes,omitempty"`
	OtherBytes   int64 `json:"other_tables_bytes,omitempty"`
	RunsDeadRows int64 `json:"runs_dead_rows,omitempty"`
}

// sizer measures one store; close releases its connection.
type sizer struct {
	pg     *pgx.Conn
	schema string
	// autovacuum is PostgreSQL's setting: with it off, deleted rows'
	// space is never reused and the tables grow whatever retention does.
	autovacuum string
	path, logs string  // SQLite: the two databases
	db, ldb    *sql.DB // SQLite, read-only
}

func newSizer(ctx context.Context, storeURL string) (*sizer, error) {
	if isPostgres(storeURL) {
		u, err := url.Parse(storeURL)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		schema := q.Get("schema")
		q.Del("schema")
		u.RawQuery = q.Encode()
		conn, err := pgx.Connect(ctx, u.String())
		if err != nil {
			return nil, fmt.Errorf("bench: store size: %w", err)
		}
		sz := &sizer{pg: conn, schema: schema}
		if err := conn.QueryRow(ctx, "SELECT current_setting('autovacuum')").Scan(&sz.autovacuum); err != nil {
			conn.Close(ctx)
			return nil, fmt.Errorf("bench: autovacuum setting: %w", err)
		}
		return sz, nil
	}
	path := storeURL
	for _, p := range []string{"sqlite://", "sqlite:"} {
		if rest, ok := strings.CutPrefix(path, p); ok {
			path = rest
			break
		}
	}
	path, _, _ = strings.Cut(path, "?")
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	sz := &sizer{path: abs, logs: sqlite.LogsFile(abs)}
	if sz.db, err = openReadOnly(sz.path); err == nil {
		sz.ldb, err = openReadOnly(sz.logs)
	}
	if err != nil {
		sz.close()
		return nil, err
	}
	return sz, nil
}

// openReadOnly opens one read-only connection to the SQLite file path.
func openReadOnly(path string) (*sql.DB, error) {
	uri := (&url.URL{Scheme: "file", OmitHost: true, Path: path}).String()
	db, err := sql.Open("sqlite", uri+"?_pragma=busy_timeout(5000)&_query_only=1")
	if err != nil {
		return nil, fmt.Errorf("bench: store size: %w", err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func (s *sizer) close() {
	if s.pg != nil {
		_ = s.pg.Close(context.Background())
	}
	for _, db := range []*sql.DB{s.db, s.ldb} {
		if db != nil {
			_ = db.Close()
		}
	}
}

func (s *sizer) measure(ctx context.Context) (StoreSize, error) {
	if s.pg != nil {
		return s.measurePostgres(ctx)
	}
	var z StoreSize
	for _, f := range []struct {
		path string
		db   *sql.DB
	}{{s.path, s.db}, {s.logs, s.ldb}} {
		file, wal, free, err := sqliteSize(ctx, f.path, f.db)
		if err != nil {
			return z, err
		}
		z.FileBytes += file
		z.WALBytes += wal
		z.FreePages += free
		if f.path == s.logs {
			z.LogsBytes = file + wal
		}
	}
	z.Bytes = z.FileBytes + z.WALBytes
	return z, nil
}

// sqliteSize is one SQLite database's file and WAL sizes and free pages.
func sqliteSize(ctx context.Context, path string, db *sql.DB) (file, wal, free int64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, 0, err
	}
	file = fi.Size()
	if fi, err := os.Stat(path + "-wal"); err == nil {
		wal = fi.Size()
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, 0, 0, err
	}
	if err := db.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil {
		return 0, 0, 0, fmt.Errorf("bench: freelist_count: %w", err)
	}
	return file, wal, free, nil
}

func (s *sizer) measurePostgres(ctx context.Context) (StoreSize, error) {
	var z StoreSize
	rows, err := s.pg.Query(ctx, `SELECT c.relname, pg_total_relation_size(c.oid)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'm', 'p')`, s.schema)
	if err != nil {
		return z, fmt.Errorf("bench: store size: %w", err)
	}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			rows.Close()
			return z, err
		}
		switch name {
		case "runs":
			z.RunsBytes = n
		case "run_logs":
			z.LogsBytes = n
		default:
			z.OtherBytes += n
		}
		z.Bytes += n
	}
	if err := rows.Err(); err != nil {
		return z, fmt.Errorf("bench: store size: %w", err)
	}
	err = s.pg.QueryRow(ctx, `SELECT coalesce(max(n_dead_tup), 0) FROM pg_stat_user_tables
		WHERE schemaname = $1 AND relname = 'runs'`, s.schema).Scan(&z.RunsDeadRows)
	if err != nil {
		return z, fmt.Errorf("bench: dead rows: %w", err)
	}
	return z, nil
}

// text is the size on one line.
func (z StoreSize) text() string {
	if z.FileBytes > 0 {
		return fmt.Sprintf("%8.1f MiB (files %.1f + WALs %.1f MiB, %d free pages; log lines %.1f MiB of it)",
			mib(z.Bytes), mib(z.FileBytes), mib(z.WALBytes), z.FreePages, mib(z.LogsBytes))
	}
	return fmt.Sprintf("%8.1f MiB (runs %.1f, run_logs %.1f, other %.1f MiB; %d dead rows in runs)",
		mib(z.Bytes), mib(z.RunsBytes), mib(z.LogsBytes), mib(z.OtherBytes), z.RunsDeadRows)
}
