package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/pluto-sched/pluto/internal/store"
)

//go:embed migrations/*.sql logmigrations/*.sql
var migrationsFS embed.FS

// Options configures Open. The zero value is the safe default.
type Options struct {
	// Synchronous is SQLite's synchronous setting for the writer: "FULL"
	// (default; a committed transaction survives power loss) or "NORMAL"
	// (survives a process crash; the last transactions may be lost on power
	// loss or an OS crash).
	Synchronous string
	// Logger receives migration and lifecycle messages. Nil discards them.
	Logger *slog.Logger
}

const (
	busyTimeoutMS = 10_000
	readerConns   = 4
)

// Store is the SQLite backend. It is safe for concurrent use.
type Store struct {
	path      string
	log       *slog.Logger
	main      wconn         // the runs' database: Tx
	logs      wconn         // the log lines' database (logdb.go): LogTx
	closing   chan struct{} // closed when Close starts
	r         *sql.DB       // read-only pool of the runs' database
	rs        [numRStmts]*sql.Stmt
	lr        *sql.DB // read-only pool of the log lines' database
	lrs       [numLRStmts]*sql.Stmt
	purge     purgeQueue      // log lines of deleted runs still to delete (logdb.go)
	rateCache store.RateCache // settled throughput buckets (RunStats)
	lock      *os.File        // flock held while open: one process per database
	closed    atomic.Bool
	once      sync.Once
	cerr      error
}

var _ store.Store = (*Store)(nil)

// OpenURL opens the store named by a URL: "sqlite:PATH", "sqlite://PATH" or
// a bare PATH, optionally followed by "?synchronous=normal" (or full).
func OpenURL(ctx context.Context, rawURL string) (*Store, error) {
	path, opts, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return Open(ctx, path, opts)
}

func parseURL(raw string) (string, Options, error) {
	var opts Options
	rest := raw
	switch {
	case strings.HasPrefix(rest, "sqlite://"):
		rest = strings.TrimPrefix(rest, "sqlite://")
	case strings.HasPrefix(rest, "sqlite:"):
		rest = strings.TrimPrefix(rest, "sqlite:")
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	if hasQuery {
		q, err := url.ParseQuery(query)
		if err != nil {
			return "", opts, fmt.Errorf("sqlite: bad URL %q: %w", raw, err)
		}
		for k, v := range q {
			switch k {
			case "synchronous":
				opts.Synchronous = v[len(v)-1]
			default:
				return "", opts, fmt.Errorf("sqlite: bad URL %q: unknown parameter %q", raw, k)
			}
		}
	}
	if path == "" {
		return "", opts, fmt.Errorf("sqlite: bad URL %q: no path", raw)
	}
	return path, opts, nil
}

// Open opens (creating it and its parent directories if needed) the
// database at path, and the database of log lines beside it (logsPath),
// and brings their schemas up to date.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: path must name a file, got %q", path)
	}
	syncMode := strings.ToUpper(opts.Synchronous)
	switch syncMode {
	case "":
		syncMode = "FULL"
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("sqlite: synchronous must be FULL or NORMAL, got %q", opts.Synchronous)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// One process per database: two servers on one SQLite file would both
	// dispatch its runs. The lock dies with the process.
	lock, err := os.OpenFile(abs+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("sqlite: %s is in use by another process (%s is locked): %w", abs, abs+".lock", err)
	}
	s := &Store{path: abs, log: log, closing: make(chan struct{}), lock: lock}
	if err := s.open(ctx, abs, syncMode); err != nil {
		s.closeAll()
		return nil, err
	}
	log.Debug("sqlite store open", "path", abs, "synchronous", syncMode)
	return s, nil
}

// open opens both databases (the log lines' is at logsPath(path)), brings
// their schemas up to date and prepares the readers' statements.
func (s *Store) open(ctx context.Context, path, syncMode string) error {
	var err error
	if s.main.db, err = openWriter(path, syncMode, 65536); err != nil {
		return err
	}
	if s.logs.db, err = openWriter(logsPath(path), syncMode, 16384); err != nil {
		return err
	}
	s.main.sem, s.logs.sem = make(chan struct{}, 1), make(chan struct{}, 1)
	if err := s.migrate(ctx); err != nil {
		return err
	}
	if s.r, err = openReaders(path, 16384); err != nil {
		return err
	}
	if s.lr, err = openReaders(logsPath(path), 8192); err != nil {
		return err
	}
	for i, q := range rSQL {
		if s.rs[i], err = s.r.PrepareContext(ctx, q); err != nil {
			return fmt.Errorf("sqlite: prepare %q: %w", q, err)
		}
	}
	for i, q := range lrSQL {
		if s.lrs[i], err = s.lr.PrepareContext(ctx, q); err != nil {
			return fmt.Errorf("sqlite: prepare %q: %w", q, err)
		}
	}
	return s.replayPurge(ctx)
}

// fileURI is path as a file: URI, so that any character may appear in it.
func fileURI(path string) string {
	return (&url.URL{Scheme: "file", OmitHost: true, Path: path}).String()
}

// openWriter opens a database's one writer connection, creating the file
// if needed, with a page cache of cacheKiB.
func openWriter(path, syncMode string, cacheKiB int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", fileURI(path)+"?"+strings.Join([]string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeoutMS),
		// Before journal_mode: on a new file, switching to WAL writes the
		// header, after which auto_vacuum can no longer change. On a
		// database that has tables it changes nothing: that one reuses
		// its free pages instead (ReclaimSpace, retention.go).
		"_pragma=auto_vacuum(INCREMENTAL)",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(" + syncMode + ")",
		"_pragma=foreign_keys(0)",
		"_pragma=temp_store(MEMORY)",
		fmt.Sprintf("_pragma=cache_size(-%d)", cacheKiB),
		"_txlock=immediate",
	}, "&"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open writer: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// openReaders opens a database's read-only pool, with a page cache of
// cacheKiB a connection.
func openReaders(path string, cacheKiB int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", fileURI(path)+"?"+strings.Join([]string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeoutMS),
		"_pragma=foreign_keys(0)",
		"_pragma=temp_store(MEMORY)",
		fmt.Sprintf("_pragma=cache_size(-%d)", cacheKiB),
		"_query_only=1",
	}, "&"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open readers: %w", err)
	}
	db.SetMaxOpenConns(readerConns)
	db.SetMaxIdleConns(readerConns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// migrate brings both schemas up to date. The log lines lived in the runs'
// database before version logsMovedVersion of its schema: they are copied
// over (moveLogs) before that version drops them there.
func (s *Store) migrate(ctx context.Context) error {
	if err := s.migrateDB(ctx, s.logs.db, "logmigrations", 0); err != nil {
		return err
	}
	if err := s.migrateDB(ctx, s.main.db, "migrations", logsMovedVersion-1); err != nil {
		return err
	}
	if err := s.moveLogs(ctx); err != nil {
		return err
	}
	return s.migrateDB(ctx, s.main.db, "migrations", 0)
}

// migrateDB applies the migrations in dir to db, up to version upTo (0:
// all of them).
func (s *Store) migrateDB(ctx context.Context, db *sql.DB, dir string, upTo int64) error {
	fsys, err := fs.Sub(migrationsFS, dir)
	if err != nil {
		return fmt.Errorf("sqlite: migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys,
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(s.log),
	)
	if err != nil {
		return fmt.Errorf("sqlite: migrations: %w", err)
	}
	var res []*goose.MigrationResult
	if upTo > 0 {
		res, err = p.UpTo(ctx, upTo)
	} else {
		res, err = p.Up(ctx)
	}
	if err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", dir, err)
	}
	for _, r := range res {
		s.log.Info("sqlite migration applied", "dir", dir, "version", r.Source.Version, "path", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// Name implements store.Store.
func (s *Store) Name() string { return "sqlite" }

// Path is the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Close closes the store. It waits for the transactions in progress to
// end. Calling it again returns the first call's result.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		close(s.closing)         // Tx calls waiting for a writer give up
		s.main.sem <- struct{}{} // wait for the Tx in progress; never given back
		s.logs.sem <- struct{}{} // and the LogTx
		s.cerr = s.closeAll()
	})
	return s.cerr
}

func (s *Store) closeAll() error {
	var errs []error
	for _, st := range append(s.rs[:], s.lrs[:]...) {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	for _, db := range []*sql.DB{s.r, s.lr} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	errs = append(errs, s.main.close(), s.logs.close())
	if s.lock != nil {
		errs = append(errs, s.lock.Close()) // releases the flock
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

var errClosed = fmt.Errorf("sqlite: %w", store.ErrClosed)

// wrap decorates an error from the database with the operation and, after
// Close, with store.ErrClosed.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if s.closed.Load() && !errors.Is(err, store.ErrClosed) {
		return fmt.Errorf("sqlite: %s: %w (%w)", op, store.ErrClosed, err)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// Time encoding: Unix microseconds. Zero times are NULL in nullable columns.

func micro(t time.Time) int64 { return t.UnixMicro() }

func nullMicro(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicro(v int64) time.Time { return time.UnixMicro(v).UTC() }

func fromNullMicro(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// truncMicro is t as it reads back from the database.
func truncMicro(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return fromMicro(t.UnixMicro())
}

// nullJSON binds a JSON document; empty is NULL.
func nullJSON(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
