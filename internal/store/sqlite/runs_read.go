package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
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

// RunList implements store.Store. The cursor is the seq of the last run of
// the previous page, in decimal. The walk goes down the rowid (newest
// first) and tests the filters on each run, so a filter that matches few of
// many runs reads many; it serves the console and the API, not the
// scheduler. (There is no retention yet: the table grows with history.)
func (s *Store) RunList(ctx context.Context, p store.RunListParams) (store.RunPage, error) {
	if s.closed.Load() {
		return store.RunPage{}, errClosed
	}
	limit := p.PageLimit()
	before, err := p.BeforeSeq()
	if err != nil {
		return store.RunPage{}, fmt.Errorf("sqlite: RunList: %w", err)
	}
	var (
		where []string
		args  []any
	)
	if len(p.Statuses) > 0 {
		where = append(where, "status IN (?"+strings.Repeat(",?", len(p.Statuses)-1)+")")
		for _, st := range p.Statuses {
			args = append(args, string(st))
		}
	}
	if p.Group != "" {
		where = append(where, "grp = ?")
		args = append(args, p.Group)
	}
	if p.Job != "" {
		where = append(where, "job = ?")
		args = append(args, p.Job)
	}
	if before > 0 {
		seq := before
		where = append(where, "seq < ?")
		args = append(args, seq)
	}
	q := "SELECT " + runCols + " FROM runs"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq DESC LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return store.RunPage{}, s.wrap("RunList", err)
	}
	runs, err := scanRuns(rows)
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

// RunCountByGroup implements store.Store. It reads every run (there is no
// index on status: it would be written on every state change), so it is
// meant for dashboards and metrics, not for hot paths.
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
