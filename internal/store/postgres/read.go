package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/listq"
)

// The read side: plain statements on the pool, outside any transaction.

const (
	sqlGetByID  = `SELECT ` + runCols + ` FROM runs WHERE id = $1`
	sqlGetByKey = `SELECT ` + runCols + ` FROM runs WHERE key = $1`
	// server_id is set exactly while a worker holds a run; the status test
	// is a second guard.
	// The active table names the runs; the status test is a second guard.
	// The runs are read by primary key whatever the statistics say.
	sqlListActive = `SELECT ` + runCols + ` FROM runs
		WHERE seq = ANY (ARRAY(SELECT seq FROM active)) AND status IN ('dispatched', 'running') ORDER BY seq`
	sqlListActiveServer = `SELECT ` + runCols + ` FROM runs
		WHERE seq = ANY (ARRAY(SELECT seq FROM active WHERE server_id = $1))
			AND server_id = $1 AND status IN ('dispatched', 'running') ORDER BY seq`
	sqlNextPendingAt = `SELECT min(run_at) FROM pending`
	sqlLogList       = `SELECT seq, run_id, attempt, time, stream, level, text FROM run_logs
		WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`
)

func (s *Store) getRun(ctx context.Context, op, sql, arg string) (*Run, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	r, err := newRunRow().scan(s.pool.QueryRow(ctx, sql, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: %s %q: %w", op, arg, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return r, nil
}

// RunGet implements store.Store.
func (s *Store) RunGet(ctx context.Context, id string) (*Run, error) {
	return s.getRun(ctx, "RunGet", sqlGetByID, id)
}

// RunGetByKey implements store.Store.
func (s *Store) RunGetByKey(ctx context.Context, key string) (*Run, error) {
	if key == "" {
		return nil, fmt.Errorf("postgres: RunGetByKey: empty key: %w", store.ErrNotFound)
	}
	return s.getRun(ctx, "RunGetByKey", sqlGetByKey, key)
}

// listDialect is how listq writes PostgreSQL's list statements.
var listDialect = listq.Dialect{Postgres: true, Time: func(t time.Time) any { return t }, EndedTable: "ended"}

// listBeginSQL starts the read-only transaction a listing runs in: one
// snapshot for its statements, and a planner that walks indexes in seq
// order. Left to its estimates, the planner takes a filter on a column no
// index names (status, worker, error) for a selective one and plans a
// sequential or bitmap scan and a sort — the whole table, at any size —
// where listq means an ordered index walk that stops at the limit or the
// scan budget. Every statement is planned for its own arguments (a
// generic plan, which pgx's prepared statements get after five runs,
// knows neither the seq window nor the filter values) and without
// parallel workers: a Gather Merge over an ordered walk of a few hundred
// rows cost 30 ms of worker start-up at 10M runs, and a generic plan of
// a lead on the ended table plus two residual filters walked the whole
// runs primary key (950 ms). JIT is off: the disabled sort of a page's
// few runs carries a cost far over jit_above_cost, and compiling the
// statement took 200 ms. An incremental sort is a sort too: with two
// indexes leading with a parent's id (runs_parent in seq order,
// runs_parent_shard in shard order), the planner took the second and
// sorted each parent's runs by seq.
const listBeginSQL = `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
	SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off;
	SET LOCAL enable_incremental_sort = off;
	SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off;
	SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL max_parallel_workers_per_gather = 0`

// RunList implements store.Store with the plan of package listq. The
// cursor is the seq of the last run of the previous page (or the end of
// the window a page examined), in decimal (the SQLite backend's format).
func (s *Store) RunList(ctx context.Context, p store.RunListParams) (store.RunPage, error) {
	if s.closed.Load() {
		return store.RunPage{}, errClosed
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return store.RunPage{}, s.wrap("RunList", err)
	}
	// A connection released inside a transaction is closed, not reused.
	defer conn.Release()
	if _, err := conn.Exec(ctx, listBeginSQL); err != nil {
		return store.RunPage{}, s.wrap("RunList", err)
	}
	page, err := listq.List(ctx, listQuerier{conn.Conn()}, listDialect, runCols, p)
	if err == nil {
		_, err = conn.Exec(ctx, "COMMIT")
	} else {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
	if errors.Is(err, store.ErrInvalidCursor) {
		return store.RunPage{}, fmt.Errorf("postgres: RunList: %w", err)
	}
	if err != nil {
		return store.RunPage{}, s.wrap("RunList", err)
	}
	return page, nil
}

const (
	sqlMaxSeq  = `SELECT coalesce(max(seq), 0) FROM runs`
	sqlRunFrom = `SELECT seq, created_at FROM runs WHERE seq >= $1 ORDER BY seq LIMIT 1`
)

// listQuerier runs listq's statements in a listing's transaction.
type listQuerier struct{ c *pgx.Conn }

func (q listQuerier) MaxSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := q.c.QueryRow(ctx, sqlMaxSeq).Scan(&seq)
	return seq, err
}

func (q listQuerier) RunFrom(ctx context.Context, from int64) (int64, time.Time, bool, error) {
	var (
		seq     int64
		created time.Time
	)
	err := q.c.QueryRow(ctx, sqlRunFrom, from).Scan(&seq, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, time.Time{}, false, nil
	}
	return seq, created, err == nil, err
}

func (q listQuerier) Window(ctx context.Context, query string, args []any) (int64, int, error) {
	var (
		end pgtype.Int8
		n   int64
	)
	err := q.c.QueryRow(ctx, query, args...).Scan(&end, &n)
	return end.Int64, int(n), err
}

func (q listQuerier) Runs(ctx context.Context, query string, args []any) ([]*store.Run, error) {
	rows, err := q.c.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return collectRuns(rows)
}

// RunListActive implements store.Store.
func (s *Store) RunListActive(ctx context.Context, p store.RunListActiveParams) ([]*Run, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	var (
		rows pgx.Rows
		err  error
	)
	if p.ServerID != "" {
		rows, err = s.pool.Query(ctx, sqlListActiveServer, p.ServerID)
	} else {
		rows, err = s.pool.Query(ctx, sqlListActive)
	}
	if err != nil {
		return nil, s.wrap("RunListActive", err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, s.wrap("RunListActive", err)
	}
	return runs, nil
}

// RunNextPendingAt implements store.Store.
func (s *Store) RunNextPendingAt(ctx context.Context) (time.Time, error) {
	if s.closed.Load() {
		return time.Time{}, errClosed
	}
	var at pgtype.Timestamptz
	if err := s.pool.QueryRow(ctx, sqlNextPendingAt).Scan(&at); err != nil {
		return time.Time{}, s.wrap("RunNextPendingAt", err)
	}
	return tsTime(at), nil
}

// RunCountByGroup implements store.Store, from the counters (stats.go).
func (s *Store) RunCountByGroup(ctx context.Context) ([]store.GroupCount, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.pool.Query(ctx, sqlCountByGroup)
	if err != nil {
		return nil, s.wrap("RunCountByGroup", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.GroupCount, error) {
		var (
			c      store.GroupCount
			status string
			n      int64
		)
		err := row.Scan(&c.Group, &status, &n)
		c.Status, c.Count = store.RunStatus(status), int(n)
		return c, err
	})
	if err != nil {
		return nil, s.wrap("RunCountByGroup", err)
	}
	return out, nil
}

const logListDefaultLimit = 1000

// LogList implements store.Store.
func (s *Store) LogList(ctx context.Context, p store.LogListParams) ([]store.LogEntry, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	limit := p.Limit
	if limit <= 0 {
		limit = logListDefaultLimit
	}
	rows, err := s.pool.Query(ctx, sqlLogList, p.RunID, p.After, int64(limit))
	if err != nil {
		return nil, s.wrap("LogList", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.LogEntry, error) {
		var e store.LogEntry
		err := row.Scan(&e.Seq, &e.RunID, &e.Attempt, &e.Time, &e.Stream, &e.Level, &e.Text)
		e.Time = utc(e.Time)
		return e, err
	})
	if err != nil {
		return nil, s.wrap("LogList", err)
	}
	return out, nil
}
