package postgres

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/pluto-sched/pluto/internal/store"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// DefaultSchema is the schema a store uses when none is named.
const DefaultSchema = "pluto"

// Options configures Open. The zero value is the default.
type Options struct {
	// Schema holds every table of the store (and goose's version table).
	// It is created if missing. Empty: the URL's "schema" parameter, or
	// DefaultSchema. A name of letters, digits and underscores, not
	// starting with a digit, at most 63 bytes.
	Schema string
	// MaxConns bounds the connection pool; 0 keeps the URL's
	// pool_max_conns or pgxpool's default (the larger of 4 and the number
	// of CPUs). Listen connections are not counted: each has its own.
	MaxConns int32
	// Logger receives migration and lifecycle messages. Nil discards them.
	Logger *slog.Logger
}

// Store is the PostgreSQL backend. It is safe for concurrent use, and any
// number of processes may share one database and schema.
type Store struct {
	pool    *pgxpool.Pool
	connCfg *pgx.ConnConfig // for Listen's dedicated connections
	schema  string
	channel string // LISTEN/NOTIFY channel of this schema
	log     *slog.Logger

	closed    atomic.Bool
	mu        sync.Mutex // guards listeners' registration against Close
	listeners sync.WaitGroup
	closing   context.Context // cancelled when Close starts
	cancel    context.CancelFunc
	once      sync.Once
	lastFold  atomic.Int64    // Unix ns of this server's last counter fold (stats.go)
	foldEvery time.Duration   // foldEvery, or less in tests; set before first use
	rateCache store.RateCache // settled throughput buckets (RunStats)
}

var _ store.Store = (*Store)(nil)

var schemaRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// OpenURL opens the store named by a "postgres://" or "postgresql://" URL
// (any libpq/pgx connection URL; pool_max_conns and the like work), with
// an optional "schema" query parameter.
func OpenURL(ctx context.Context, rawURL string) (*Store, error) {
	if !strings.HasPrefix(rawURL, "postgres://") && !strings.HasPrefix(rawURL, "postgresql://") {
		return nil, fmt.Errorf("postgres: URL %q does not start with postgres:// or postgresql://", redact(rawURL))
	}
	return Open(ctx, rawURL, Options{})
}

// splitSchema removes the "schema" query parameter from a connection URL
// (pgx would send it to the server as a setting) and returns it.
func splitSchema(rawURL string) (string, string, error) {
	if !strings.HasPrefix(rawURL, "postgres://") && !strings.HasPrefix(rawURL, "postgresql://") {
		return rawURL, "", nil // a keyword/value DSN: no schema parameter
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", "", fmt.Errorf("postgres: bad URL %q: %w", redact(rawURL), err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", "", fmt.Errorf("postgres: bad URL %q: %w", redact(rawURL), err)
	}
	schema := q.Get("schema")
	if !q.Has("schema") {
		return rawURL, "", nil
	}
	if schema == "" {
		return "", "", fmt.Errorf("postgres: bad URL %q: empty schema", redact(rawURL))
	}
	q.Del("schema")
	u.RawQuery = q.Encode()
	return u.String(), schema, nil
}

// redact hides a URL's password in messages.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	return u.Redacted()
}

// Open connects to the database named by connString (a URL or a
// keyword/value DSN), creates the schema if needed and brings it up to
// date.
func Open(ctx context.Context, connString string, opts Options) (*Store, error) {
	connString, urlSchema, err := splitSchema(connString)
	if err != nil {
		return nil, err
	}
	schema := opts.Schema
	switch {
	case schema == "":
		schema = urlSchema
	case urlSchema != "" && urlSchema != schema:
		return nil, fmt.Errorf("postgres: schema %q in the URL and %q in the options", urlSchema, schema)
	}
	if schema == "" {
		schema = DefaultSchema
	}
	if !schemaRE.MatchString(schema) {
		return nil, fmt.Errorf("postgres: bad schema name %q: want letters, digits and underscores, not starting with a digit, at most 63 bytes", schema)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	// Migrations hold one connection for their lock and run on another.
	cfg.MaxConns = max(cfg.MaxConns, 2)
	quoted := pgx.Identifier{schema}.Sanitize()
	// Every connection, pooled or not, sees only the store's schema (and
	// pg_catalog, which is always searched).
	cfg.ConnConfig.RuntimeParams["search_path"] = quoted
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		registerFastArrays(conn.TypeMap())
		return nil
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "pluto"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{
		pool:      pool,
		foldEvery: foldEvery,
		connCfg:   cfg.ConnConfig.Copy(),
		schema:    schema,
		channel:   channelName(schema),
		log:       log,
	}
	s.closing, s.cancel = context.WithCancel(context.Background())
	if err := s.createSchema(ctx, quoted); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	log.Debug("postgres store open", "host", cfg.ConnConfig.Host, "database", cfg.ConnConfig.Database, "schema", schema)
	return s, nil
}

func (s *Store) createSchema(ctx context.Context, quoted string) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, s.schema).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	if exists {
		return nil
	}
	_, err := s.pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoted)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "42P06") {
		err = nil // created concurrently by another process
	}
	if err != nil {
		return fmt.Errorf("postgres: create schema %s: %w", quoted, err)
	}
	return nil
}

// migrate applies the embedded migrations with goose, through database/sql
// on top of the pool. Processes opening the same schema at once take turns
// (a session advisory lock whose id derives from the schema name).
func (s *Store) migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	sum := sha256.Sum256([]byte("pluto migrations " + s.schema))
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(binary.BigEndian.Uint64(sum[:8])>>1)),
		lock.WithLockTimeout(1, 300),
	)
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithDisableGlobalRegistry(true),
		goose.WithSessionLocker(locker),
		goose.WithSlog(s.log),
	)
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	for _, r := range res {
		s.log.Info("postgres migration applied", "schema", s.schema, "version", r.Source.Version, "path", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// channelName is the LISTEN/NOTIFY channel of a schema: "pluto_" and the
// schema name, or a digest of it when that would pass PostgreSQL's 63-byte
// limit on identifiers.
func channelName(schema string) string {
	c := "pluto_" + schema
	if len(c) <= 63 {
		return c
	}
	sum := sha256.Sum256([]byte(schema))
	return "pluto_" + schema[:40] + "_" + hex.EncodeToString(sum[:8])
}

// Name implements store.Store.
func (s *Store) Name() string { return "postgres" }

// Schema is the schema holding the store's tables.
func (s *Store) Schema() string { return s.schema }

// Close closes the store: Listen calls return, then the pool closes once
// every transaction in progress has ended. Calling it again is a no-op.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed.Store(true)
		s.mu.Unlock()
		s.cancel()
		s.listeners.Wait()
		s.pool.Close()
	})
	return nil
}

var errClosed = fmt.Errorf("postgres: %w", store.ErrClosed)

// wrap decorates an error from the database with the operation and, after
// Close, with store.ErrClosed.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if s.closed.Load() && !errors.Is(err, store.ErrClosed) {
		return fmt.Errorf("postgres: %s: %w (%w)", op, store.ErrClosed, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// utc is a time read from the database, in UTC; the zero time when NULL.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
