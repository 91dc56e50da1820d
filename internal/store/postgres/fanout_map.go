package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/pluto-sched/pluto/internal/store"
)

// Map-reduce (store/fanout.go: FanoutMap, FanoutRelease). A run that maps
// keeps its row and side rows as they are — running, its worker's and
// its server's, in active — and gets a fanouts row that is done from the
// start, which keeps it out of fanouts_open: FanoutListJoinable never
// lists it, and FanoutFinish never ends it (its shard_count is 0). Its
// children are inserted and counted as any fan-out's. FanoutRelease makes
// the run a parent as FanoutExpand does, its shard_count read from the
// row, and opens the row.

const (
	// Arguments: sqlFanoutCreate's.
	sqlFanoutMapRow = `INSERT INTO fanouts (parent_id, total, min_success, merge, ended, failed, done)
		VALUES ($1, $2, $3, $4, $5, $5, true)`

	// sqlFanoutRelease is fenced like a finish: the attempt, still
	// running, the server unless $3 is empty. Its active row goes in
	// sqlFanoutReleaseRow, a second statement, whose snapshot follows this
	// one's lock on the run. Arguments: id, attempt, server.
	sqlFanoutRelease = `UPDATE runs SET attempt = attempt - 1, server_id = NULL, worker_id = '', dispatched_at = NULL,
			shard_count = (SELECT f.total FROM fanouts AS f WHERE f.parent_id = runs.id)
		WHERE id = $1 AND attempt = $2 AND status = 'running' AND ($3 = '' OR server_id = $3)
			AND shard_count = 0 AND parent_id = '' AND EXISTS (SELECT 1 FROM fanouts AS f WHERE f.parent_id = runs.id)
		RETURNING ` + runCols

	// Arguments: seq, id.
	sqlFanoutReleaseRow = `WITH a AS (DELETE FROM active WHERE seq = $1)
		UPDATE fanouts SET done = false WHERE parent_id = $2`
)

// FanoutMap implements store.Tx.
func (t *tx) FanoutMap(ctx context.Context, p store.FanoutMapParams) (store.FanoutMapResult, error) {
	if err := t.check(ctx); err != nil {
		return store.FanoutMapResult{}, err
	}
	children, err := store.CheckFanoutMap(p)
	if err != nil {
		return store.FanoutMapResult{}, fmt.Errorf("postgres: %w", err)
	}
	r, err := t.getForUpdate(ctx, "FanoutMap", p.ID)
	if err != nil {
		return store.FanoutMapResult{}, err
	}
	if err := store.CheckMapper(r, p.Attempt, p.ServerID); err != nil {
		return store.FanoutMapResult{}, fmt.Errorf("postgres: %w", err)
	}
	switch fo, err := t.FanoutGet(ctx, p.ID); {
	case err == nil:
		return store.FanoutMapResult{Total: fo.Total, Existing: true}, nil
	case !errors.Is(err, store.ErrNotFound):
		return store.FanoutMapResult{}, err
	}
	n := len(children)
	if _, err := t.q.Exec(ctx, sqlFanoutMapRow, p.ID, int32(n), int32(p.MinSuccess), p.Merge,
		skippedChildren(children)); err != nil {
		return store.FanoutMapResult{}, t.s.wrap("FanoutMap", err)
	}
	out := make([]*store.Run, n)
	err = t.insertAllChildren(ctx, "FanoutMap", children, func(i int, seq int64) {
		out[i] = insertedRun(&children[i], seq)
		out[i].ShardCount = n
	})
	if err != nil {
		return store.FanoutMapResult{}, err
	}
	return store.FanoutMapResult{Children: out, Total: n}, nil
}

// FanoutRelease implements store.Tx.
func (t *tx) FanoutRelease(ctx context.Context, p store.FanoutReleaseParams) (*store.Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckHeld("FanoutRelease", p.ID, p.Attempt); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	rows, err := t.q.Query(ctx, sqlFanoutRelease, p.ID, int32(p.Attempt), p.ServerID)
	if err != nil {
		return nil, t.s.wrap("FanoutRelease", err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, t.s.wrap("FanoutRelease", err)
	}
	if len(runs) == 0 {
		return nil, nil // not running at that attempt here any more, or it did not map
	}
	if _, err := t.q.Exec(ctx, sqlFanoutReleaseRow, runs[0].Seq, p.ID); err != nil {
		return nil, t.s.wrap("FanoutRelease", err)
	}
	return runs[0], nil
}
