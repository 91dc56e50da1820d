package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/pluto-sched/pluto/internal/store"
)

// Backfills (store/backfill.go): one row each, read by the reader pool,
// written by compare-and-set on version.

const backfillCols = `id, job, from_t, to_t, parallel, cascade, descending, rerun, state, next_t,
	started, kept, version, created_at, updated_at, finished_at`

const numBackfillCols = 16

func init() {
	wSQL[wBackfillCreate] = `INSERT INTO backfills (` + backfillCols + `)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,1,?,?,?) ON CONFLICT (id) DO NOTHING`
	wSQL[wBackfillUpdate] = `UPDATE backfills SET state = ?, next_t = ?, started = ?, kept = ?,
			version = version + 1, updated_at = ?, finished_at = ?
		WHERE id = ? AND version = ? RETURNING ` + backfillCols
}

// decodeBackfill builds a backfill from one row of backfillCols.
func decodeBackfill[V any](vs []V) *store.Backfill {
	v := func(i int) any { return vs[i] }
	return &store.Backfill{
		ID: asString(v(0)), Job: asString(v(1)), From: asTime(v(2)), To: asTime(v(3)),
		Parallel: int(asInt(v(4))), Cascade: asInt(v(5)) != 0, Desc: asInt(v(6)) != 0,
		Rerun: asString(v(7)), State: asString(v(8)), Next: asTime(v(9)),
		Started: int(asInt(v(10))), Kept: int(asInt(v(11))), Version: asInt(v(12)),
		CreatedAt: asTime(v(13)), UpdatedAt: asTime(v(14)), FinishedAt: asTime(v(15)),
	}
}

// BackfillCreate implements store.Tx.
func (t *tx) BackfillCreate(ctx context.Context, b *store.Backfill) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	t.bind()
	for _, a := range []driver.Value{b.ID, b.Job, micro(b.From), micro(b.To), int64(b.Parallel), boolInt(b.Cascade),
		boolInt(b.Desc), b.Rerun, b.State, nullMicro(b.Next), int64(b.Started), int64(b.Kept),
		micro(b.CreatedAt), micro(b.UpdatedAt), nullMicro(b.FinishedAt)} {
		t.arg(a)
	}
	n, _, err := t.exec("BackfillCreate", wBackfillCreate)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlite: BackfillCreate %q: %w", b.ID, store.ErrConflict)
	}
	return nil
}

// BackfillUpdate implements store.Tx.
func (t *tx) BackfillUpdate(ctx context.Context, b *store.Backfill) (*store.Backfill, bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, false, err
	}
	t.bind()
	for _, a := range []driver.Value{b.State, nullMicro(b.Next), int64(b.Started), int64(b.Kept),
		micro(b.UpdatedAt), nullMicro(b.FinishedAt), b.ID, b.Version} {
		t.arg(a)
	}
	var out *store.Backfill
	err := t.query("BackfillUpdate", wBackfillUpdate, numBackfillCols, func(v []driver.Value) { out = decodeBackfill(v) })
	return out, out != nil, err
}

// BackfillGet implements store.Store.
func (s *Store) BackfillGet(ctx context.Context, id string) (*store.Backfill, error) {
	bs, err := s.backfills(ctx, "BackfillGet", `SELECT `+backfillCols+` FROM backfills WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(bs) == 0 {
		return nil, fmt.Errorf("sqlite: BackfillGet %q: %w", id, store.ErrNotFound)
	}
	return bs[0], nil
}

// BackfillList implements store.Store.
func (s *Store) BackfillList(ctx context.Context, limit int) ([]*store.Backfill, error) {
	if limit < 1 || limit > 1000 {
		return nil, fmt.Errorf("sqlite: BackfillList: limit %d (1 to 1000)", limit)
	}
	return s.backfills(ctx, "BackfillList", `SELECT `+backfillCols+` FROM backfills ORDER BY created_at DESC, id DESC LIMIT ?`, limit)
}

func (s *Store) backfills(ctx context.Context, op, q string, args ...any) ([]*store.Backfill, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []*store.Backfill
	for rows.Next() {
		vals, ptrs := make([]any, numBackfillCols), make([]any, numBackfillCols)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, s.wrap(op, err)
		}
		out = append(out, decodeBackfill(vals))
	}
	if err := rows.Err(); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, s.wrap(op, err)
	}
	return out, nil
}
