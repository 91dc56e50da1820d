package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pluto-sched/pluto/internal/store"
)

// Fan-out (store/fanout.go; migration 00016_fanout). A parent is a runs
// row stored running with no worker and no server, and attempt 0, which
// no worker's report names. It has no row in queue, pending or active, so
// no claim, RunListActive or RunRequeueLost ever sees it; a parent of a
// job has a row in job_live like any running run of a job — it is one of
// the job's unfinished runs, so overlap policies and RunUnblockNext see
// it — which FanoutFinish and RunCancel delete. FanoutExpand makes a
// claimed run with a split (split.go) such a parent in place: its active
// row goes, its job_live row stays, and its attempt goes back to the one
// before the claim (0 unless the run was claimed before).
//
// Its join state is its fanouts row plus the unfolded rows of
// fanout_deltas (the migration tells why deltas rather than updates of
// the row, and why not triggers). The Tx methods that can move a child
// into or out of a terminal status append its change, in the same
// transaction, right after their statement (countChildren): a finish
// (its statement returns the parent of each child it moved), a cancel, a
// retry, a gate; FanoutCreate counts the children it inserts ended
// (skipped) in the row it writes. The other moves — claim, start,
// promote, unblock, requeue, a finish to pending or queued — stay between
// unfinished statuses. The counters' fold (stats.go) folds the deltas
// into the rows about once a second, taking only rows no transaction
// holds; every read adds the deltas not folded yet, in one statement (one
// snapshot), so it sees each change exactly once. The reads lock nothing
// and the fold never waits; a fanouts row is written by a joiner's last
// steps only — FanoutFinish and RunCancel after locking the parent's runs
// row, FanoutSetMerge after inserting the merge run under its key — so
// two joiners deciding one parent wait for each other rather than
// deadlock.

const (
	fanoutCols = `parent_id, total, ended, failed, min_success, merge, merge_id`

	// sqlFanoutParent inserts a parent, running and started at created_at,
	// unless its key or its slot (or its ID) names a run, and puts a
	// parent of a job in job_live. Arguments: insertArgs' scalars, then
	// started_at, shard_count and the callback URL.
	sqlFanoutParent = `WITH i AS (
			INSERT INTO runs (id, job, parent_id, shard, type, grp, payload, priority, status,
				max_attempts, key, logical_time, run_at, created_at, timeout, routing, routing_key,
				started_at, shard_count, callback_url)
			VALUES ($1, $2, '', NULL, $3, $4, $5, $6, 'running', $7, $8, $9, $10, $11, $12, $13, $14, $11, $15, $16)
			ON CONFLICT DO NOTHING
			RETURNING seq, job),
		l AS (INSERT INTO job_live (job, seq) SELECT job, seq FROM i WHERE job <> '')
		SELECT seq FROM i`

	sqlFanoutCreate = `INSERT INTO fanouts (parent_id, total, min_success, merge, ended, failed) VALUES ($1, $2, $3, $4, $5, $5)`

	// sqlFanoutExpand makes a claimed run with a split a parent, as
	// sqlFanoutParent stores one: running from now, held by no server or
	// worker, at the attempt before its claim. Fenced like a start: the
	// attempt, the server, still dispatched. A run of a job stays in
	// job_live (a claim leaves it there); its active row goes in
	// sqlFanoutExpandRow, a second statement, whose snapshot follows this
	// one's lock on the run (the runs.go note on side tables). Arguments:
	// id, attempt, server, started_at, shard_count.
	sqlFanoutExpand = `UPDATE runs SET status = 'running', attempt = attempt - 1, server_id = NULL, worker_id = '',
			dispatched_at = NULL, started_at = $4, shard_count = $5, split = NULL
		WHERE id = $1 AND attempt = $2 AND status = 'dispatched' AND server_id = $3 AND split IS NOT NULL
		RETURNING ` + runCols

	// sqlFanoutExpandRow takes an expanded run out of active and writes its
	// fan-out row, as sqlFanoutCreate. Arguments: seq, then
	// sqlFanoutCreate's.
	sqlFanoutExpandRow = `WITH a AS (DELETE FROM active WHERE seq = $1)
		INSERT INTO fanouts (parent_id, total, min_success, merge, ended, failed) VALUES ($2, $3, $4, $5, $6, $6)`

	// sqlFanoutCount appends changes to parents' counters. Arguments:
	// arrays of parent, ended, failed.
	sqlFanoutCount = `INSERT INTO fanout_deltas (parent_id, ended, failed)
		SELECT * FROM unnest($1::text[], $2::int4[], $3::int4[])`

	// sqlFanoutChildren inserts children in input order (seq follows it)
	// and fills the side tables as sqlInsertFull does; it returns their
	// seqs in shard order. A child whose ID names a run fails the
	// statement. Arguments: sqlInsertFull's arrays, then shard_count.
	sqlFanoutChildren = `WITH i AS (
			INSERT INTO runs (id, job, parent_id, shard, type, grp, payload, priority, status,
				max_attempts, key, logical_time, run_at, created_at, timeout, routing, routing_key,
				finished_at, error, callback_url, callback_state, callback_next_at, shard_count)
			SELECT u.id, u.job, u.parent_id, u.shard, u.type, u.grp, u.payload, u.priority, u.status,
				u.max_attempts, u.key, u.logical_time, u.run_at, u.created_at, u.timeout, u.routing, u.routing_key,
				CASE WHEN u.status = 'skipped' THEN u.created_at END, u.error, u.callback_url,
				CASE WHEN u.status = 'skipped' AND u.callback_url IS NOT NULL THEN 'pending' ELSE '' END,
				CASE WHEN u.status = 'skipped' AND u.callback_url IS NOT NULL THEN u.created_at END, $20
			FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], $7::text[],
					$8::int4[], $9::text[], $10::int4[], $11::text[], $12::timestamptz[], $13::timestamptz[],
					$14::timestamptz[], $15::int8[], $16::text[], $17::text[], $18::text[], $19::text[])
				WITH ORDINALITY AS u(id, job, parent_id, shard, type, grp, payload, priority, status,
					max_attempts, key, logical_time, run_at, created_at, timeout, routing, routing_key, error,
					callback_url, ord)
			ORDER BY u.ord
			RETURNING job, status, callback_next_at, shard, ` + queueCols + `),
		q AS (INSERT INTO queue (` + queueCols + `) SELECT ` + queueCols + ` FROM i WHERE status = 'queued'),
		p AS (INSERT INTO pending (run_at, seq) SELECT run_at, seq FROM i WHERE status = 'pending'),
		b AS (INSERT INTO blocked (job, seq) SELECT job, seq FROM i WHERE status = 'blocked'),
		l AS (INSERT INTO job_live (job, seq) SELECT job, seq FROM i WHERE job <> '' AND status IN ('queued', 'pending')),
		c AS (INSERT INTO callbacks (next_at, seq) SELECT callback_next_at, seq FROM i WHERE callback_next_at IS NOT NULL),
		e AS (INSERT INTO ended (seq) SELECT seq FROM i WHERE status = 'skipped')
		SELECT array_agg(seq ORDER BY shard) FROM i`

	// sqlFanoutGet reads a parent's join state: its row plus its unfolded
	// deltas, from the statement's one snapshot. A read: it locks nothing.
	// Arguments: parent.
	sqlFanoutGet = `SELECT f.parent_id, f.total, f.ended + coalesce(x.ended, 0)::int4, f.failed + coalesce(x.failed, 0)::int4,
			f.min_success, f.merge, f.merge_id
		FROM fanouts AS f
		LEFT JOIN LATERAL (SELECT sum(ended) AS ended, sum(failed) AS failed FROM fanout_deltas
			WHERE parent_id = f.parent_id) AS x ON true
		WHERE f.parent_id = $1`

	// sqlFoldFanouts folds deltas into their parents' rows (stats.go sends
	// it with the counters' fold, in the round trip of COMMIT): the
	// parents of up to 1000 deltas, those whose row no other transaction
	// holds (a fold never waits, so it never deadlocks), and the deltas of
	// parents retention deleted. Deltas committed after the statement's
	// snapshot stay for the next fold.
	sqlFoldFanouts = `WITH c AS MATERIALIZED (
			SELECT DISTINCT parent_id FROM (SELECT parent_id FROM fanout_deltas LIMIT 1000) AS d),
		l AS MATERIALIZED (
			SELECT f.parent_id FROM fanouts AS f WHERE f.parent_id = ANY (ARRAY(SELECT parent_id FROM c))
			ORDER BY f.parent_id FOR UPDATE SKIP LOCKED),
		d AS (DELETE FROM fanout_deltas WHERE parent_id = ANY (ARRAY(
				SELECT parent_id FROM l
				UNION ALL
				SELECT c.parent_id FROM c WHERE NOT EXISTS (SELECT 1 FROM fanouts AS f WHERE f.parent_id = c.parent_id)))
			RETURNING parent_id, ended, failed),
		s AS (SELECT parent_id, sum(ended)::int4 AS ended, sum(failed)::int4 AS failed FROM d GROUP BY parent_id)
		UPDATE fanouts SET ended = fanouts.ended + s.ended, failed = fanouts.failed + s.failed
		FROM s WHERE fanouts.parent_id = s.parent_id; `

	// sqlFanoutSetMerge: once; the same merge run again is no change.
	sqlFanoutSetMerge = `UPDATE fanouts SET merge_id = $2 WHERE parent_id = $1 AND merge_id IN ('', $2) RETURNING merge_id`
	sqlFanoutMergeID  = `SELECT merge_id FROM fanouts WHERE parent_id = $1`

	// sqlFanoutFinish ends a running parent as a cancel ends a run (its
	// callback owed from now on, out of job_live, into ended if it
	// failed) and marks its fan-out done. Arguments: parent, status,
	// finished_at, result, error.
	sqlFanoutFinish = `WITH u AS (
			UPDATE runs SET status = $2, finished_at = $3, result = $4, error = $5,
				callback_state = CASE WHEN callback_url IS NULL THEN callback_state ELSE 'pending' END,
				callback_next_at = CASE WHEN callback_url IS NULL THEN callback_next_at ELSE $3 END
			WHERE id = $1 AND status = 'running' AND shard_count > 0 AND parent_id = ''
			RETURNING ` + runCols + `),
		l AS (DELETE FROM job_live WHERE (job, seq) IN (SELECT job, seq FROM u WHERE job <> '')),
		c AS (INSERT INTO callbacks (next_at, seq) SELECT $3::timestamptz, seq FROM u WHERE callback_url IS NOT NULL),
		e AS (INSERT INTO ended (seq) SELECT seq FROM u WHERE status = 'failed' ON CONFLICT DO NOTHING),
		f AS (UPDATE fanouts SET done = true WHERE parent_id = $1 AND EXISTS (SELECT 1 FROM u))
		SELECT * FROM u`

	sqlFanoutDone = `UPDATE fanouts SET done = true WHERE parent_id = $1`

	// sqlFanoutReopen runs an ended parent again as a retry runs a run
	// again (back in job_live, out of ended, its callback forgotten) and
	// opens its fan-out with no merge run. Arguments: seq (of a parent
	// checked ended).
	sqlFanoutReopen = `WITH u AS (
			UPDATE runs SET status = 'running', attempt = attempt + 1, finished_at = NULL, error = '', result = NULL,
				callback_state = '', callback_attempts = 0, callback_next_at = NULL, callback_error = '',
				callback_delivered_at = NULL
			WHERE seq = $1 RETURNING ` + runCols + `),
		l AS (INSERT INTO job_live (job, seq) SELECT job, seq FROM u WHERE job <> ''),
		c AS (DELETE FROM callbacks WHERE ctid = ANY (ARRAY(
			SELECT ctid FROM callbacks WHERE seq = $1 FOR UPDATE SKIP LOCKED))),
		e AS (DELETE FROM ended WHERE seq = $1),
		f AS (UPDATE fanouts SET done = false, merge_id = '' WHERE parent_id = (SELECT id FROM u))
		SELECT * FROM u`

	// sqlFanoutResults: a range of runs_parent_shard (the merge run, with
	// no shard, is not in it). Arguments: parent, from, limit.
	sqlFanoutResults = `SELECT shard, id, status, result, error FROM runs
		WHERE parent_id = $1 AND parent_id <> '' AND shard >= $2 ORDER BY parent_id, shard LIMIT $3`

	// sqlFanoutJoinable: the open fan-outs (fanouts_open) whose children
	// all ended or whose failures are more than min_success allows, with
	// their deltas, and whose parent still runs (a second guard: done says
	// it). Arguments: limit.
	sqlFanoutJoinable = `SELECT f.parent_id, f.total, f.ended + coalesce(x.ended, 0)::int4 AS ended,
			f.failed + coalesce(x.failed, 0)::int4 AS failed, f.min_success, f.merge, f.merge_id
		FROM fanouts AS f
		LEFT JOIN LATERAL (SELECT sum(ended) AS ended, sum(failed) AS failed FROM fanout_deltas
			WHERE parent_id = f.parent_id) AS x ON true
		WHERE NOT f.done
			AND (f.ended + coalesce(x.ended, 0) >= f.total OR f.failed + coalesce(x.failed, 0) > f.total - f.min_success)
			AND EXISTS (SELECT 1 FROM runs AS r WHERE r.id = f.parent_id AND r.status = 'running')
		ORDER BY f.parent_id
		LIMIT $1`
)

// fanoutMove is a child of parent moved from one status to another.
type fanoutMove struct {
	parent   string
	from, to store.RunStatus
}

// childMove is the move of run r (as it was before, or after) from one
// status to another, if r is a fan-out's child.
func childMove(r *Run, from, to store.RunStatus) []fanoutMove {
	if !store.IsFanoutChild(r) {
		return nil
	}
	return []fanoutMove{{r.ParentID, from, to}}
}

// countChildren appends the changes moves of children into and out of
// terminal statuses make to their parents' counters, one row per parent.
func (t *tx) countChildren(ctx context.Context, op string, moves ...fanoutMove) error {
	if len(moves) == 0 {
		return nil
	}
	type delta struct{ ended, failed int32 }
	deltas := map[string]delta{}
	for _, m := range moves {
		e, f := store.ChildMoved(m.from, m.to)
		d := deltas[m.parent]
		d.ended += int32(e)
		d.failed += int32(f)
		deltas[m.parent] = d
	}
	var (
		parents       []string
		ended, failed []int32
	)
	for _, parent := range slices.Sorted(maps.Keys(deltas)) {
		if d := deltas[parent]; d != (delta{}) {
			parents, ended, failed = append(parents, parent), append(ended, d.ended), append(failed, d.failed)
		}
	}
	if len(parents) == 0 {
		return nil
	}
	if _, err := t.q.Exec(ctx, sqlFanoutCount, parents, ended, failed); err != nil {
		return t.s.wrap(op, err)
	}
	return nil
}

// childBatch is the most children one statement inserts.
const childBatch = 5000

func scanFanout(row pgx.Row) (*store.Fanout, error) {
	var (
		fo                                 store.Fanout
		total, ended, failed, minSuccesses int32
	)
	if err := row.Scan(&fo.ParentID, &total, &ended, &failed, &minSuccesses, &fo.Merge, &fo.MergeID); err != nil {
		return nil, err
	}
	fo.Total, fo.Ended, fo.Failed, fo.MinSuccess = int(total), int(ended), int(failed), int(minSuccesses)
	return &fo, nil
}

// FanoutCreate implements store.Tx.
func (t *tx) FanoutCreate(ctx context.Context, p store.FanoutCreateParams) (store.RunInsertResult, error) {
	if err := t.check(ctx); err != nil {
		return store.RunInsertResult{}, err
	}
	children, err := store.CheckFanout(p)
	if err != nil {
		return store.RunInsertResult{}, fmt.Errorf("postgres: %w", err)
	}
	n := len(children)
	pp := &p.Parent
	var seq int64
	err = t.q.QueryRow(ctx, sqlFanoutParent, pp.ID, pp.Job, pp.Type, pp.Group, nullJSON(pp.Payload),
		int32(pp.Priority), int32(pp.MaxAttempts), nullText(pp.Key), nullTime(pp.LogicalTime), pp.EffectiveRunAt(),
		pp.Now, int64(pp.Timeout), pp.Routing, pp.RoutingKey, int32(n), nullText(cleanText(pp.CallbackURL))).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return t.existingParent(ctx, pp)
	}
	if err != nil {
		return store.RunInsertResult{}, t.s.wrap("FanoutCreate", err)
	}
	t.counts.Add(pp.Group, pp.Job, store.StatusRunning, 1)
	r := insertedRun(pp, seq)
	r.StartedAt, r.ShardCount = r.CreatedAt, n
	if _, err := t.q.Exec(ctx, sqlFanoutCreate, pp.ID, int32(n), int32(p.MinSuccess), p.Merge, skippedChildren(children)); err != nil {
		return store.RunInsertResult{}, t.s.wrap("FanoutCreate", err)
	}
	if err := t.insertAllChildren(ctx, "FanoutCreate", children, nil); err != nil {
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
		return nil, nil, fmt.Errorf("postgres: %w", err)
	}
	n := len(children)
	rows, err := t.q.Query(ctx, sqlFanoutExpand, p.ID, int32(p.Attempt), p.ServerID, p.Now, int32(n))
	if err != nil {
		return nil, nil, t.s.wrap("FanoutExpand", err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, nil, t.s.wrap("FanoutExpand", err)
	}
	if len(runs) == 0 {
		return nil, nil, nil // not dispatched at that attempt by that server any more, or no split
	}
	r := runs[0]
	t.counts.Move(r.Group, r.Job, store.StatusDispatched, store.StatusRunning)
	if _, err := t.q.Exec(ctx, sqlFanoutExpandRow, r.Seq, p.ID, int32(n), int32(p.MinSuccess), p.Merge,
		skippedChildren(children)); err != nil {
		return nil, nil, t.s.wrap("FanoutExpand", err)
	}
	out := make([]*store.Run, n)
	err = t.insertAllChildren(ctx, "FanoutExpand", children, func(i int, seq int64) {
		out[i] = insertedRun(&children[i], seq)
		out[i].ShardCount = n
	})
	if err != nil {
		return nil, nil, err
	}
	return r, out, nil
}

// skippedChildren counts the children inserted ended (skipped: ended and
// failed), which the fan-out row counts from the start; the moves that
// follow are counted by the statements that make them.
func skippedChildren(children []store.RunInsertParams) int32 {
	skipped := int32(0)
	for i := range children {
		if children[i].Status == store.StatusSkipped {
			skipped++
		}
	}
	return skipped
}

// insertAllChildren inserts a fan-out's children in batches of
// childBatch, and calls made, if not nil, with each one's index and seq.
func (t *tx) insertAllChildren(ctx context.Context, op string, children []store.RunInsertParams, made func(i int, seq int64)) error {
	n := len(children)
	for from := 0; from < n; from += childBatch {
		seqs, err := t.insertChildren(ctx, op, children[from:min(n, from+childBatch)], n)
		if err != nil {
			return err
		}
		if made != nil {
			for j, seq := range seqs {
				made(from+j, seq)
			}
		}
	}
	return nil
}

// existingParent returns the run that holds a parent's key or slot.
func (t *tx) existingParent(ctx context.Context, p *store.RunInsertParams) (store.RunInsertResult, error) {
	var (
		keys  []string
		slots []slot
	)
	if p.Key != "" {
		keys = []string{p.Key}
	}
	if s := slotOf(p.Job, p.LogicalTime); s != (slot{}) {
		slots = []slot{s}
	}
	byKey, bySlot, err := t.existing(ctx, keys, slots)
	if err != nil {
		return store.RunInsertResult{}, err
	}
	r := byKey[p.Key]
	if r == nil {
		r = bySlot[slotOf(p.Job, p.LogicalTime)]
	}
	if r == nil {
		return store.RunInsertResult{}, fmt.Errorf("postgres: FanoutCreate: parent %q was not inserted (its ID names a run)", p.ID)
	}
	return store.RunInsertResult{Run: r, Existing: true}, nil
}

// insertChildren inserts a batch of a fan-out's children (of shardCount)
// and returns their seqs, in order.
func (t *tx) insertChildren(ctx context.Context, op string, runs []store.RunInsertParams, shardCount int) ([]int64, error) {
	n := len(runs)
	var (
		id, job, parent, typ, grp, status, routing, routingKey = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		shard            = make([]pgtype.Int4, n)
		payload, key     = make([]pgtype.Text, n), make([]pgtype.Text, n)
		priority, maxAtt = make([]int32, n), make([]int32, n)
		logical          = make([]pgtype.Timestamptz, n)
		runAt, createdAt = make([]time.Time, n), make([]time.Time, n)
		timeout          = make([]int64, n)
		errorText        = make([]string, n)
		callbackURL      = make([]pgtype.Text, n)
	)
	for i := range runs {
		p := &runs[i]
		id[i], job[i], parent[i], typ[i], grp[i] = p.ID, p.Job, p.ParentID, p.Type, p.Group
		status[i], routing[i], routingKey[i] = string(p.Status), p.Routing, p.RoutingKey
		shard[i] = pgtype.Int4{Int32: int32(*p.Shard), Valid: true}
		payload[i], key[i] = nullJSON(p.Payload), nullText(p.Key)
		priority[i], maxAtt[i] = int32(p.Priority), int32(p.MaxAttempts)
		logical[i] = nullTime(p.LogicalTime)
		runAt[i], createdAt[i] = p.EffectiveRunAt(), p.Now
		timeout[i] = int64(p.Timeout)
		errorText[i] = cleanText(p.Error)
		callbackURL[i] = nullText(cleanText(p.CallbackURL))
	}
	var seqs []int64
	err := t.q.QueryRow(ctx, sqlFanoutChildren, id, job, parent, shard, typ, grp, payload, priority, status,
		maxAtt, key, logical, runAt, createdAt, timeout, routing, routingKey, errorText, callbackURL, int32(shardCount)).Scan(&seqs)
	if err != nil {
		return nil, t.s.wrap(op, err)
	}
	if len(seqs) != n {
		return nil, fmt.Errorf("postgres: %s: inserted %d of %d children", op, len(seqs), n)
	}
	for i := range runs {
		p := &runs[i]
		t.counts.Add(p.Group, p.Job, p.Status, 1)
		t.rates.Ended(p.Group, p.Job, p.Status, p.Now, 1) // of the insert statuses only skipped is an end
	}
	return seqs, nil
}

// FanoutGet implements store.Tx.
func (t *tx) FanoutGet(ctx context.Context, parentID string) (*store.Fanout, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	fo, err := scanFanout(t.q.QueryRow(ctx, sqlFanoutGet, parentID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: FanoutGet: parent %q: %w", parentID, store.ErrNotFound)
	}
	if err != nil {
		return nil, t.s.wrap("FanoutGet", err)
	}
	return fo, nil
}

// FanoutSetMerge implements store.Tx.
func (t *tx) FanoutSetMerge(ctx context.Context, parentID, mergeID string) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if mergeID == "" {
		return fmt.Errorf("postgres: FanoutSetMerge: parent %q: no merge run", parentID)
	}
	var got string
	err := t.q.QueryRow(ctx, sqlFanoutSetMerge, parentID, mergeID).Scan(&got)
	if err == nil {
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return t.s.wrap("FanoutSetMerge", err)
	}
	err = t.q.QueryRow(ctx, sqlFanoutMergeID, parentID).Scan(&got)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("postgres: FanoutSetMerge: parent %q: %w", parentID, store.ErrNotFound)
	case err != nil:
		return t.s.wrap("FanoutSetMerge", err)
	}
	return fmt.Errorf("postgres: FanoutSetMerge: parent %q has merge run %q, not %q: %w", parentID, got, mergeID, store.ErrConflict)
}

// FanoutFinish implements store.Tx.
func (t *tx) FanoutFinish(ctx context.Context, p store.FanoutFinishParams) (*store.Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckFanoutFinish(p); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	errText := cleanText(p.Error)
	rows, err := t.q.Query(ctx, sqlFanoutFinish, p.ParentID, string(p.Status), p.Now, nullJSON(p.Result), errText)
	if err != nil {
		return nil, t.s.wrap("FanoutFinish", err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, t.s.wrap("FanoutFinish", err)
	}
	if len(runs) == 0 {
		return nil, nil // not running (ended, cancelled), not a parent, or gone
	}
	r := runs[0]
	t.counts.Move(r.Group, r.Job, store.StatusRunning, r.Status)
	t.rates.Ended(r.Group, r.Job, r.Status, p.Now, 1)
	return r, nil
}

// FanoutReopen implements store.Tx.
func (t *tx) FanoutReopen(ctx context.Context, p store.FanoutReopenParams) (*store.Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	prev, err := t.getForUpdate(ctx, "FanoutReopen", p.ParentID)
	if err != nil {
		return nil, err
	}
	if err := store.CheckFanoutReopen(prev); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	r, err := t.one(ctx, "FanoutReopen", sqlFanoutReopen, prev.Seq)
	if err != nil {
		return nil, err
	}
	t.counts.Move(prev.Group, prev.Job, prev.Status, r.Status)
	return r, nil
}

// FanoutResults implements store.Tx.
func (t *tx) FanoutResults(ctx context.Context, parentID string, from, limit int) ([]store.ChildResult, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if err := store.CheckFanoutResults(parentID, from, limit); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	rows, err := t.q.Query(ctx, sqlFanoutResults, parentID, int32(from), int64(limit))
	if err != nil {
		return nil, t.s.wrap("FanoutResults", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.ChildResult, error) {
		var (
			c      store.ChildResult
			shard  int32
			status string
			result []byte
		)
		err := row.Scan(&shard, &c.ID, &status, &result, &c.Error)
		c.Shard, c.Status = int(shard), store.RunStatus(status)
		if len(result) > 0 {
			c.Result = result
		}
		return c, err
	})
	if err != nil {
		return nil, t.s.wrap("FanoutResults", err)
	}
	return out, nil
}

// FanoutRead implements store.Store.
func (s *Store) FanoutRead(ctx context.Context, parentID string) (*store.Fanout, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	fo, err := scanFanout(s.pool.QueryRow(ctx, sqlFanoutGet, parentID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: FanoutRead: parent %q: %w", parentID, store.ErrNotFound)
	}
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
		return nil, fmt.Errorf("postgres: FanoutListJoinable: limit %d (1 to %d)", limit, store.MaxFanoutResults)
	}
	rows, err := s.pool.Query(ctx, sqlFanoutJoinable, int64(limit))
	if err != nil {
		return nil, s.wrap("FanoutListJoinable", err)
	}
	defer rows.Close()
	var out []*store.Fanout
	for rows.Next() {
		fo, err := scanFanout(rows)
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
