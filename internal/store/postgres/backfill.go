package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pluto-sched/pluto/internal/store"
)

// Backfills (store/backfill.go): one row each, written by compare-and-set
// on version.

const (
	backfillCols = `id, job, from_t, to_t, parallel, cascade, descending, rerun, state, next_t,
		started, kept, version, created_at, updated_at, finished_at`
	sqlBackfillCreate = `INSERT INTO backfills (` + backfillCols + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13, $14, $15) ON CONFLICT (id) DO NOTHING`
	sqlBackfillUpdate = `UPDATE backfills SET state = $1, next_t = $2, started = $3, kept = $4,
			version = version + 1, updated_at = $5, finished_at = $6
		WHERE id = $7 AND version = $8 RETURNING ` + backfillCols
	sqlBackfillGet  = `SELECT ` + backfillCols + ` FROM backfills WHERE id = $1`
	sqlBackfillList = `SELECT ` + backfillCols + ` FROM backfills ORDER BY created_at DESC, id DESC LIMIT $1`
)

func scanBackfill(row pgx.Row) (*store.Backfill, error) {
	var (
		b                  store.Backfill
		parallel, st, kept int32
		next, finished     pgtype.Timestamptz
	)
	err := row.Scan(&b.ID, &b.Job, &b.From, &b.To, &parallel, &b.Cascade, &b.Desc, &b.Rerun, &b.State, &next,
		&st, &kept, &b.Version, &b.CreatedAt, &b.UpdatedAt, &finished)
	if err != nil {
		return nil, err
	}
	b.Parallel, b.Started, b.Kept = int(parallel), int(st), int(kept)
	b.Next, b.FinishedAt = tsTime(next), tsTime(finished)
	b.From, b.To, b.CreatedAt, b.UpdatedAt = utc(b.From), utc(b.To), utc(b.CreatedAt), utc(b.UpdatedAt)
	return &b, nil
}

// BackfillCreate implements store.Tx.
func (t *tx) BackfillCreate(ctx context.Context, b *store.Backfill) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, sqlBackfillCreate, b.ID, b.Job, b.From, b.To, int32(b.Parallel), b.Cascade, b.Desc,
		b.Rerun, b.State, nullTime(b.Next), int32(b.Started), int32(b.Kept), b.CreatedAt, b.UpdatedAt, nullTime(b.FinishedAt))
	if err != nil {
		return t.s.wrap("BackfillCreate", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: BackfillCreate %q: %w", b.ID, store.ErrConflict)
	}
	return nil
}

// BackfillUpdate implements store.Tx.
func (t *tx) BackfillUpdate(ctx context.Context, b *store.Backfill) (*store.Backfill, bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, false, err
	}
	out, err := scanBackfill(t.q.QueryRow(ctx, sqlBackfillUpdate, b.State, nullTime(b.Next), int32(b.Started),
		int32(b.Kept), b.UpdatedAt, nullTime(b.FinishedAt), b.ID, b.Version))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, t.s.wrap("BackfillUpdate", err)
	}
	return out, true, nil
}

// BackfillGet implements store.Store.
func (s *Store) BackfillGet(ctx context.Context, id string) (*store.Backfill, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	b, err := scanBackfill(s.pool.QueryRow(ctx, sqlBackfillGet, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: BackfillGet %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap("BackfillGet", err)
	}
	return b, nil
}

// BackfillList implements store.Store.
func (s *Store) BackfillList(ctx context.Context, limit int) ([]*store.Backfill, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if limit < 1 || limit > 1000 {
		return nil, fmt.Errorf("postgres: BackfillList: limit %d (1 to 1000)", limit)
	}
	rows, err := s.pool.Query(ctx, sqlBackfillList, int64(limit))
	if err != nil {
		return nil, s.wrap("BackfillList", err)
	}
	defer rows.Close()
	var out []*store.Backfill
	for rows.Next() {
		b, err := scanBackfill(rows)
		if err != nil {
			return nil, s.wrap("BackfillList", err)
		}
		out = append(out, b)
	}
	return out, s.wrap("BackfillList", rows.Err())
}
