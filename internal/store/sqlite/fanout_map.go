package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/pluto-sched/pluto/internal/store"
)

// Map-reduce (store/fanout.go: FanoutMap, FanoutRelease). A run that maps
// keeps its row as it is — running, its worker's and its server's — and
// gets a fanouts row with done = 1, which keeps it out of fanouts_open:
// the reconciler's FanoutListJoinable never lists it, and FanoutFinish
// never ends it (its shard_count is 0). Its children are inserted and
// counted as any fan-out's. FanoutRelease makes the run a parent as
// FanoutExpand does, its shard_count read from the row, and opens the row.

func init() {
	// A row not open yet: its parent's handler still runs.
	wSQL[wFanoutMapRow] = `INSERT INTO fanouts (parent_id, total, ended, failed, min_success, merge, done)
		VALUES (?, ?, ?, ?, ?, ?, 1)`
	// Fenced like a finish: the attempt, still running, the server unless
	// ?4 is empty. Arguments: id, attempt, server, server again.
	wSQL[wFanoutRelease] = `UPDATE runs SET attempt = attempt - 1, server_id = NULL, worker_id = '', dispatched_at = NULL,
			shard_count = (SELECT f.total FROM fanouts AS f WHERE f.parent_id = runs.id)
		WHERE id = ?1 AND attempt = ?2 AND status = 'running' AND (?3 = '' OR server_id = ?3)
			AND shard_count = 0 AND parent_id = '' AND EXISTS (SELECT 1 FROM fanouts AS f WHERE f.parent_id = runs.id)
		RETURNING ` + runCols
	wSQL[wFanoutOpen] = `UPDATE fanouts SET done = 0 WHERE parent_id = ?`
}

// FanoutMap implements store.Tx.
func (t *tx) FanoutMap(ctx context.Context, p store.FanoutMapParams) (store.FanoutMapResult, error) {
	if err := t.check(ctx); err != nil {
		return store.FanoutMapResult{}, err
	}
	children, err := store.CheckFanoutMap(p)
	if err != nil {
		return store.FanoutMapResult{}, fmt.Errorf("sqlite: %w", err)
	}
	r, err := t.getForUpdate("FanoutMap", p.ID)
	if err != nil {
		return store.FanoutMapResult{}, err
	}
	if err := store.CheckMapper(r, p.Attempt, p.ServerID); err != nil {
		return store.FanoutMapResult{}, fmt.Errorf("sqlite: %w", err)
	}
	switch fo, err := t.FanoutGet(ctx, p.ID); {
	case err == nil:
		return store.FanoutMapResult{Total: fo.Total, Existing: true}, nil
	case !errors.Is(err, store.ErrNotFound):
		return store.FanoutMapResult{}, err
	}
	n := len(children)
	out := make([]*store.Run, n)
	err = t.writeFanout("FanoutMap", wFanoutMapRow, p.ID, children, p.MinSuccess, p.Merge, func(i int, seq int64) {
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
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	t.bind()
	t.arg(p.ID)
	t.arg(int64(p.Attempt))
	t.arg(p.ServerID)
	runs, err := t.queryRuns("FanoutRelease", wFanoutRelease)
	if err != nil || len(runs) == 0 {
		return nil, err // not running at that attempt here any more, or it did not map
	}
	t.bind()
	t.arg(p.ID)
	if _, _, err := t.exec("FanoutRelease", wFanoutOpen); err != nil {
		return nil, err
	}
	return runs[0], nil
}
