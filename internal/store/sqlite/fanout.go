package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pluto-sched/pluto/internal/store"
)

// Fan-out (store/fanout.go; migration 00018_fanout). A parent is a runs
// row stored running with no worker and no server (server_id NULL keeps
// it out of runs_active, so RunListActive, RunRequeueLost and the lost
// attempts' records never see it; it is never queued, so no claim does)
// and attempt 0, which no worker's report names. A parent of a job is one
// of the job's unfinished runs while it runs: runs_job_active holds it
// like any running run of a job, so overlap policies and RunUnblockNext
// see it. FanoutExpand makes a claimed run with a split (split.go) such a
// parent in place: the claim's server and dispatch are cleared, and its
// attempt goes back to the one before the claim (0 unless the run was
// claimed before).
//
// Its join state is its fanouts row. The counters are kept by the Tx
// methods that can move a child into or out of a terminal status, in the
// same transaction, right after the change (countChildren): a finish
// (from the aggregate read that counts its runs, countMoved), a cancel,
// a retry, a gate, and FanoutCreate for the children it inserts ended
// (skipped). The other moves — claim, start, promote, unblock, requeue,
// a finish to pending or queued — stay between unfinished statuses. Not a
// trigger: SQLite runs a row trigger's program, WHEN clause included, for
// every row of every statement that sets status, and the hot start and
// finish (a statement per run) paid about 1 µs per run for it, a tenth of
// a finish (BenchmarkStore, sync=NORMAL/Finish: 9.2–10.0 cpu-µs/run
// without it, 11.0–11.2 with it). The conformance suite's random walk
// (storetest/fanout.go) holds every path to a recount.

// fanoutCols is the column list of a fanouts row, in decodeFanout's order.
const fanoutCols = `parent_id, total, ended, failed, min_success, merge, merge_id`

const numFanoutCols = 7

// childCols are the columns of a child's insert: insertOneSQL's, and
// shard_count.
const childCols = insertCols + `, finished_at, error, callback_url, callback_state, callback_next_at, shard_count`

const numChildCols = numInsertCols + 6

// childChunks are the multi-row child inserts, largest first.
var childChunks = []struct {
	rows int
	stmt wStmt
}{{256, wFanoutChildren256}, {16, wFanoutChildren16}, {1, wFanoutChildren1}}

func childInsertSQL(rows int) string {
	row := "(?" + strings.Repeat(",?", numChildCols-1) + ")"
	return "INSERT INTO runs (" + childCols + ") VALUES " + row + strings.Repeat(","+row, rows-1)
}

func init() {
	// The parent: insertOneSQL's conflicts (key, job slot), stored running
	// and started at created_at, with its children's number.
	wSQL[wFanoutParent] = "INSERT INTO runs (" + insertCols + ", started_at, shard_count, callback_url) VALUES (?" +
		strings.Repeat(",?", numInsertCols+2) + ")" +
		" ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING" +
		" ON CONFLICT (job, logical_time) WHERE job <> '' AND logical_time IS NOT NULL DO NOTHING"
	wSQL[wFanoutCreate] = `INSERT INTO fanouts (parent_id, total, ended, failed, min_success, merge)
		VALUES (?, ?, ?, ?, ?, ?)`
	wSQL[wFanoutChildren1] = childInsertSQL(1)
	wSQL[wFanoutChildren16] = childInsertSQL(16)
	wSQL[wFanoutChildren256] = childInsertSQL(256)
	wSQL[wFanoutGet] = `SELECT ` + fanoutCols + ` FROM fanouts WHERE parent_id = ?`
	rSQL[rFanoutGet] = wSQL[wFanoutGet]
	// Once: a second merge run is refused, the same one again is not.
	wSQL[wFanoutSetMerge] = `UPDATE fanouts SET merge_id = ?2 WHERE parent_id = ?1 AND merge_id IN ('', ?2)`
	// A parent ends as a cancelled run does: its callback, if it has a
	// URL, is owed from now on. Arguments: status, finished_at, result,
	// error, id.
	wSQL[wFanoutFinish] = `UPDATE runs SET status = ?1, finished_at = ?2, result = ?3, error = ?4,
			callback_state = CASE WHEN callback_url IS NULL THEN callback_state ELSE 'pending' END,
			callback_next_at = CASE WHEN callback_url IS NULL THEN callback_next_at ELSE ?2 END
		WHERE id = ?5 AND status = 'running' AND shard_count > 0 AND parent_id = ''
		RETURNING ` + runCols
	wSQL[wFanoutDone] = `UPDATE fanouts SET done = 1 WHERE parent_id = ?`
	// A claimed run with a split becomes a parent, as FanoutCreate stores
	// one: running from now, held by no server (server_id NULL takes it out
	// of runs_active) and no worker, at the attempt before its claim.
	// Fenced like a start: the attempt, the server, still dispatched.
	// Arguments: started_at, shard_count, id, attempt, server.
	wSQL[wFanoutExpand] = `UPDATE runs SET status = 'running', attempt = attempt - 1, server_id = NULL, worker_id = '',
			dispatched_at = NULL, started_at = ?1, shard_count = ?2, split = NULL
		WHERE id = ?3 AND attempt = ?4 AND status = 'dispatched' AND server_id = ?5 AND split IS NOT NULL
		RETURNING ` + runCols
	// Arguments: seq (of a parent checked ended).
	wSQL[wFanoutReopen] = `UPDATE runs SET status = 'running', attempt = attempt + 1, finished_at = NULL,
			error = '', result = NULL, callback_state = '', callback_attempts = 0, callback_next_at = NULL,
			callback_error = '', callback_delivered_at = NULL
		WHERE seq = ? RETURNING ` + runCols
	wSQL[wFanoutReopenRow] = `UPDATE fanouts SET done = 0, merge_id = '' WHERE parent_id = ?`
	// Arguments: ended, failed (deltas), parent.
	wSQL[wFanoutCount] = `UPDATE fanouts SET ended = ended + ?, failed = failed + ? WHERE parent_id = ?`
	// A range of runs_parent_shard: the merge run (no shard) is not in it.
	wSQL[wFanoutResults] = `SELECT shard, id, status, result, error FROM runs INDEXED BY runs_parent_shard
		WHERE parent_id = ?1 AND parent_id <> '' AND shard >= ?2 ORDER BY shard LIMIT ?3`
	// The open fan-outs (fanouts_open) whose children all ended or whose
	// failures are more than min_success allows, and whose parent still
	// runs (a second guard: done says it).
	rSQL[rFanoutJoinable] = `SELECT ` + fanoutCols + ` FROM fanouts AS f INDEXED BY fanouts_open
		WHERE f.done = 0 AND (f.ended >= f.total OR f.failed > f.total - f.min_success)
			AND EXISTS (SELECT 1 FROM runs AS r WHERE r.id = f.parent_id AND r.status = 'running')
		ORDER BY f.parent_id LIMIT ?`
}

// fanoutMove is n children of parent moved from one status to another.
type fanoutMove struct {
	parent   string
	from, to store.RunStatus
	n        int64
}

// childMove is the move of run r (as it was before, or after) from one
// status to another, if r is a fan-out's child.
func childMove(r *Run, from, to store.RunStatus) []fanoutMove {
	if !store.IsFanoutChild(r) {
		return nil
	}
	return []fanoutMove{{r.ParentID, from, to, 1}}
}

// countChildren counts moves of children into and out of terminal
// statuses in their parents' fan-out rows.
func (t *tx) countChildren(op string, moves ...fanoutMove) error {
	if len(moves) == 0 {
		return nil
	}
	type delta struct{ ended, failed int64 }
	deltas := map[string]delta{}
	for _, m := range moves {
		d := deltas[m.parent]
		e, f := store.ChildMoved(m.from, m.to)
		d.ended += m.n * int64(e)
		d.failed += m.n * int64(f)
		deltas[m.parent] = d
	}
	parents := slices.Sorted(maps.Keys(deltas))
	for _, parent := range parents {
		d := deltas[parent]
		if d == (delta{}) {
			continue
		}
		t.bind()
		t.arg(d.ended)
		t.arg(d.failed)
		t.arg(parent)
		if _, _, err := t.exec(op, wFanoutCount); err != nil {
			return err
		}
	}
	return nil
}

// decodeFanout builds a fan-out from one row of fanoutCols.
func decodeFanout[V any](vs []V) (*store.Fanout, error) {
	v := func(i int) any { return vs[i] }
	return &store.Fanout{
		ParentID: asString(v(0)), Total: int(asInt(v(1))), Ended: int(asInt(v(2))), Failed: int(asInt(v(3))),
		MinSuccess: int(asInt(v(4))), Merge: asString(v(5)), MergeID: asString(v(6)),
	}, nil
}

// FanoutCreate implements store.Tx.
func (t *tx) FanoutCreate(ctx context.Context, p store.FanoutCreateParams) (store.RunInsertResult, error) {
	if err := t.check(ctx); err != nil {
		return store.RunInsertResult{}, err
	}
	children, err := store.CheckFanout(p)
	if err != nil {
		return store.RunInsertResult{}, fmt.Errorf("sqlite: %w", err)
	}
	n := len(children)
	parent := &p.Parent
	t.bind()
	t.bindInsert(parent)
	t.arg(micro(parent.Now))
	t.arg(int64(n))
	t.arg(nullString(parent.CallbackURL))
	inserted, seq, err := t.exec("FanoutCreate", wFanoutParent)
	if err != nil {
		return store.RunInsertResult{}, err
	}
	if inserted == 0 {
		return t.existingRun(parent)
	}
	t.counts.Add(parent.Group, parent.Job, store.StatusRunning, 1)
	r := insertedRun(parent, seq)
	r.StartedAt, r.ShardCount = r.CreatedAt, n
	if err := t.createFanout("FanoutCreate", parent.ID, children, p.MinSuccess, p.Merge, nil); err != nil {
		return store.RunInsertResult{}, err
	}
	return store.RunInsertResult{Run: r}, nil
}

// FanoutExpand implements store.Tx.
func (t *tx) FanoutExpand(ctx context.Context, p store.FanoutExpandParams) (*store.Run, []*store.Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, nil, err
	}
	children, err := store.CheckFanoutExpand(p)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: %w", err)
	}
	n := len(children)
	t.bind()
	t.arg(micro(p.Now))
	t.arg(int64(n))
	t.arg(p.ID)
	t.arg(int64(p.Attempt))
	t.arg(p.ServerID)
	runs, err := t.queryRuns("FanoutExpand", wFanoutExpand)
	if err != nil || len(runs) == 0 {
		return nil, nil, err // not dispatched at that attempt by that server any more, or no split
	}
	r := runs[0]
	t.counts.Move(r.Group, r.Job, store.StatusDispatched, store.StatusRunning)
	out := make([]*store.Run, n)
	err = t.createFanout("FanoutExpand", p.ID, children, p.MinSuccess, p.Merge, func(i int, seq int64) {
		out[i] = insertedRun(&children[i], seq)
		out[i].ShardCount = n
	})
	if err != nil {
		return nil, nil, err
	}
	return r, out, nil
}

// createFanout writes parent's fan-out row and inserts its children (made,
// if not nil, is called with each child's index and seq).
func (t *tx) createFanout(op, parent string, children []store.RunInsertParams, minSuccess int, merge string,
	made func(i int, seq int64)) error {
	return t.writeFanout(op, wFanoutCreate, parent, children, minSuccess, merge, made)
}

// writeFanout is createFanout with the row's insert statement (wFanoutCreate,
// or wFanoutMapRow for a row not open yet).
func (t *tx) writeFanout(op string, row wStmt, parent string, children []store.RunInsertParams, minSuccess int,
	merge string, made func(i int, seq int64)) error {
	// The children inserted ended are counted here; the moves that follow
	// by the statements that make them (countChildren).
	var ended, failed int64
	for i := range children {
		if children[i].Status == store.StatusSkipped {
			ended++
			failed++
		}
	}
	t.bind()
	for _, v := range []driver.Value{parent, int64(len(children)), ended, failed, int64(minSuccess), merge} {
		t.arg(v)
	}
	if _, _, err := t.exec(op, row); err != nil {
		return err
	}
	return t.insertChildren(op, children, made)
}

// insertChildren inserts a fan-out's children in multi-row statements, in
// shard order (seq follows it), and calls made, if not nil, with each
// one's index and seq.
func (t *tx) insertChildren(op string, children []store.RunInsertParams, made func(i int, seq int64)) error {
	n := int64(len(children))
	for i := 0; i < len(children); {
		c := childChunks[len(childChunks)-1]
		for _, cc := range childChunks {
			if len(children)-i >= cc.rows {
				c = cc
				break
			}
		}
		t.bind()
		for j := i; j < i+c.rows; j++ {
			p := &children[j]
			t.bindInsert(p)
			var finishedAt, cbState, cbNext driver.Value = nil, "", nil
			if p.Status == store.StatusSkipped {
				finishedAt = micro(p.Now)
				if p.CallbackURL != "" {
					cbState, cbNext = string(store.CallbackPending), finishedAt
				}
			}
			t.arg(finishedAt)
			t.arg(p.Error)
			t.arg(nullString(p.CallbackURL))
			t.arg(cbState)
			t.arg(cbNext)
			t.arg(n)
		}
		_, last, err := t.exec(op, c.stmt)
		if err != nil {
			return err
		}
		for j := i; j < i+c.rows; j++ {
			p := &children[j]
			if made != nil {
				// Rowids of one multi-row INSERT are consecutive (RunInsert).
				made(j, last-int64(i+c.rows-1-j))
			}
			t.counts.Add(p.Group, p.Job, p.Status, 1)
			if p.Status == store.StatusSkipped {
				t.rates.Ended(p.Group, p.Job, p.Status, p.Now, 1)
				if err := t.ended(op, p.ID); err != nil {
					return err
				}
			}
		}
		i += c.rows
	}
	return nil
}

// FanoutGet implements store.Tx.
func (t *tx) FanoutGet(ctx context.Context, parentID string) (*store.Fanout, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	t.bind()
	t.arg(parentID)
	fos, err := queryDecoded(t, "FanoutGet", wFanoutGet, numFanoutCols, decodeFanout[driver.Value])
	if err != nil {
		return nil, err
	}
	if len(fos) == 0 {
		return nil, fmt.Errorf("sqlite: FanoutGet: parent %q: %w", parentID, store.ErrNotFound)
	}
	return fos[0], nil
}

// FanoutSetMerge implements store.Tx.
func (t *tx) FanoutSetMerge(ctx context.Context, parentID, mergeID string) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if mergeID == "" {
		return fmt.Errorf("sqlite: FanoutSetMerge: parent %q: no merge run", parentID)
	}
	t.bind()
	t.arg(parentID)
	t.arg(mergeID)
	n, _, err := t.exec("FanoutSetMerge", wFanoutSetMerge)
	if err != nil || n > 0 {
		return err
	}
	fo, err := t.FanoutGet(ctx, parentID)
	if err != nil {
		return err
	}
	return fmt.Errorf("sqlite: FanoutSetMerge: parent %q has merge run %q, not %q: %w", parentID, fo.MergeID, mergeID, store.ErrConflict)
}

// FanoutFinish implements store.Tx.
func (t *tx) FanoutFinish(ctx context.Context, p store.FanoutFinishParams) (*store.Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckFanoutFinish(p); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	t.bind()
	t.arg(string(p.Status))
	t.arg(micro(p.Now))
	t.arg(nullJSON(p.Result))
	t.arg(p.Error)
	t.arg(p.ParentID)
	runs, err := t.queryRuns("FanoutFinish", wFanoutFinish)
	if err != nil || len(runs) == 0 {
		return nil, err // not running (ended, cancelled), not a parent, or gone
	}
	r := runs[0]
	t.counts.Move(r.Group, r.Job, store.StatusRunning, r.Status)
	t.rates.Ended(r.Group, r.Job, r.Status, p.Now, 1)
	if endsListed(r.Status) {
		if err := t.ended("FanoutFinish", r.ID); err != nil {
			return nil, err
		}
	}
	return r, t.fanoutDone("FanoutFinish", r.ID)
}

// FanoutReopen implements store.Tx.
func (t *tx) FanoutReopen(ctx context.Context, p store.FanoutReopenParams) (*store.Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	prev, err := t.getForUpdate("FanoutReopen", p.ParentID)
	if err != nil {
		return nil, err
	}
	if err := store.CheckFanoutReopen(prev); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	t.bind()
	t.arg(prev.Seq)
	runs, err := t.queryRuns("FanoutReopen", wFanoutReopen)
	if err != nil {
		return nil, err
	}
	if len(runs) != 1 {
		return nil, fmt.Errorf("sqlite: FanoutReopen: parent %q vanished", p.ParentID)
	}
	t.counts.Move(prev.Group, prev.Job, prev.Status, store.StatusRunning)
	if err := t.unended("FanoutReopen", prev.Seq); err != nil {
		return nil, err
	}
	t.bind()
	t.arg(p.ParentID)
	if _, _, err := t.exec("FanoutReopen", wFanoutReopenRow); err != nil {
		return nil, err
	}
	return runs[0], nil
}

// fanoutDone marks a parent's fan-out done: the parent stopped running.
func (t *tx) fanoutDone(op, parentID string) error {
	t.bind()
	t.arg(parentID)
	_, _, err := t.exec(op, wFanoutDone)
	return err
}

// FanoutResults implements store.Tx.
func (t *tx) FanoutResults(ctx context.Context, parentID string, from, limit int) ([]store.ChildResult, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckFanoutResults(parentID, from, limit); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	t.bind()
	t.arg(parentID)
	t.arg(int64(from))
	t.arg(int64(limit))
	var out []store.ChildResult
	err := t.query("FanoutResults", wFanoutResults, 5, func(v []driver.Value) {
		out = append(out, store.ChildResult{Shard: int(asInt(v[0])), ID: asString(v[1]),
			Status: store.RunStatus(asString(v[2])), Result: asJSON(v[3]), Error: asString(v[4])})
	})
	return out, err
}

// FanoutRead implements store.Store.
func (s *Store) FanoutRead(ctx context.Context, parentID string) (*store.Fanout, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.rs[rFanoutGet].QueryContext(ctx, parentID)
	if err != nil {
		return nil, s.wrap("FanoutRead", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, s.wrap("FanoutRead", err)
		}
		return nil, fmt.Errorf("sqlite: FanoutRead: parent %q: %w", parentID, store.ErrNotFound)
	}
	fo, err := scanDecoded(rows, numFanoutCols, decodeFanout[any])
	if err != nil {
		return nil, s.wrap("FanoutRead", err)
	}
	return fo, nil
}

// FanoutListJoinable implements store.Store.
func (s *Store) FanoutListJoinable(ctx context.Context, limit int) ([]*store.Fanout, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if limit < 1 || limit > store.MaxFanoutResults {
		return nil, fmt.Errorf("sqlite: FanoutListJoinable: limit %d (1 to %d)", limit, store.MaxFanoutResults)
	}
	rows, err := s.rs[rFanoutJoinable].QueryContext(ctx, int64(limit))
	if err != nil {
		return nil, s.wrap("FanoutListJoinable", err)
	}
	defer rows.Close()
	var out []*store.Fanout
	for rows.Next() {
		fo, err := scanDecoded(rows, numFanoutCols, decodeFanout[any])
		if err != nil {
			return nil, s.wrap("FanoutListJoinable", err)
		}
		out = append(out, fo)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("FanoutListJoinable", err)
	}
	return out, nil
}
