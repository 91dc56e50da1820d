package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/listq"
)

func (s *Store) getRun(ctx context.Context, op string, st rStmt, arg string) (*Run, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	r, err := scanRun(s.rs[st].QueryRowContext(ctx, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: %s %q: %w", op, arg, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return r, nil
}

// RunGet implements store.Store.
func (s *Store) RunGet(ctx context.Context, id string) (*Run, error) {
	return s.getRun(ctx, "RunGet", rGetByID, id)
}

// RunGetByKey implements store.Store.
func (s *Store) RunGetByKey(ctx context.Context, key string) (*Run, error) {
	if key == "" {
		return nil, fmt.Errorf("sqlite: RunGetByKey: empty key: %w", store.ErrNotFound)
	}
	return s.getRun(ctx, "RunGetByKey", rGetByKey, key)
}

// listDialect is how listq writes SQLite's list statements.
var listDialect = listq.Dialect{
	Time:       func(t time.Time) any { return micro(t) },
	EndedTable: "ended",
}

// RunList implements store.Store with the plan of package listq. The
// cursor is the seq of the last run of the previous page (or the end of
// the window a page examined), in decimal.
func (s *Store) RunList(ctx context.Context, p store.RunListParams) (store.RunPage, error) {
	if s.closed.Load() {
		return store.RunPage{}, errClosed
	}
	page, err := listq.List(ctx, listQuerier{s}, listDialect, runCols, p)
	if err != nil {
		return store.RunPage{}, s.wrap("RunList", err)
	}
	return page, nil
}

// listQuerier runs listq's statements on the reader pool.
type listQuerier struct{ s *Store }

func (q listQuerier) MaxSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := q.s.r.QueryRowContext(ctx, "SELECT coalesce(max(seq), 0) FROM runs").Scan(&seq)
	return seq, err
}

func (q listQuerier) RunFrom(ctx context.Context, from int64) (int64, time.Time, bool, error) {
	var seq, created int64
	err := q.s.r.QueryRowContext(ctx, "SELECT seq, created_at FROM runs WHERE seq >= ? ORDER BY seq LIMIT 1", from).Scan(&seq, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, false, nil
	}
	return seq, fromMicro(created), err == nil, err
}

func (q listQuerier) Window(ctx context.Context, query string, args []any) (int64, int, error) {
	var (
		end sql.NullInt64
		n   int
	)
	err := q.s.r.QueryRowContext(ctx, query, args...).Scan(&end, &n)
	return end.Int64, n, err
}

func (q listQuerier) Runs(ctx context.Context, query string, args []any) ([]*store.Run, error) {
	rows, err := q.s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return scanRuns(rows)
}

// RunListActive implements store.Store.
func (s *Store) RunListActive(ctx context.Context, p store.RunListActiveParams) ([]*Run, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	var (
		rows *sql.Rows
		err  error
	)
	if p.ServerID != "" {
		rows, err = s.rs[rListActiveServer].QueryContext(ctx, p.ServerID)
	} else {
		rows, err = s.rs[rListActive].QueryContext(ctx)
	}
	if err != nil {
		return nil, s.wrap("RunListActive", err)
	}
	runs, err := scanRuns(rows)
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
	var at sql.NullInt64
	if err := s.rs[rNextPendingAt].QueryRowContext(ctx).Scan(&at); err != nil {
		return time.Time{}, s.wrap("RunNextPendingAt", err)
	}
	return fromNullMicro(at), nil
}

// RunCountByGroup implements store.Store, from the counters (stats.go).
func (s *Store) RunCountByGroup(ctx context.Context) ([]store.GroupCount, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.rs[rCountByGroup].QueryContext(ctx)
	if err != nil {
		return nil, s.wrap("RunCountByGroup", err)
	}
	defer rows.Close()
	var out []store.GroupCount
	for rows.Next() {
		var (
			c      store.GroupCount
			status string
		)
		if err := rows.Scan(&c.Group, &status, &c.Count); err != nil {
			return nil, s.wrap("RunCountByGroup", err)
		}
		c.Status = store.RunStatus(status)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("RunCountByGroup", err)
	}
	return out, nil
}
