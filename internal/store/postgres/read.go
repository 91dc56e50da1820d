package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pluto-sched/pluto/internal/store"
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
	sqlCountByGroup  = `SELECT grp, status, count(*) FROM runs GROUP BY grp, status ORDER BY grp, status`
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

// RunList implements store.Store. The cursor is the seq of the last run of
// the previous page, in decimal (the SQLite backend's format).
func (s *Store) RunList(ctx context.Context, p store.RunListParams) (store.RunPage, error) {
	if s.closed.Load() {
		return store.RunPage{}, errClosed
	}
	limit := p.PageLimit()
	before, err := p.BeforeSeq()
	if err != nil {
		return store.RunPage{}, fmt.Errorf("postgres: RunList: %w", err)
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if len(p.Statuses) > 0 {
		sts := make([]string, len(p.Statuses))
		for i, st := range p.Statuses {
			sts[i] = string(st)
		}
		where = append(where, "status = ANY("+arg(sts)+"::text[])")
	}
	if p.Group != "" {
		where = append(where, "grp = "+arg(p.Group))
	}
	if p.Job != "" {
		where = append(where, "job = "+arg(p.Job))
	}
	if before > 0 {
		seq := before
		where = append(where, "seq < "+arg(seq))
	}
	q := "SELECT " + runCols + " FROM runs"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq DESC LIMIT " + arg(int64(limit+1))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return store.RunPage{}, s.wrap("RunList", err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return store.RunPage{}, s.wrap("RunList", err)
	}
	return store.NewRunPage(runs, limit), nil
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

// RunCountByGroup implements store.Store. It reads every run, so it is
// meant for dashboards and metrics, not for hot paths.
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
