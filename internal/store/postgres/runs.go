package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pluto-sched/pluto/internal/store"
)

// The write side (doc.go tells the design). Every batch method is one
// statement whatever the batch size (arrays bound as parameters and
// expanded with unnest; a finish adds one to clear active rows), so a
// group commit of hundreds of changes costs a handful of round trips. A
// batch that names one run twice is cut into rounds in which every run
// appears once (an UPDATE … FROM applies at most one source row to a
// target row), so elements still apply in order.

// Side tables and snapshots. queue, pending and active rows of a run are
// changed only while its runs row is locked, in the statement that locks
// it or after. A statement that inserts side rows can do so in the same
// statement (a writable CTE). A statement that deletes or updates the side
// rows of runs it locks by an UPDATE cannot: the UPDATE may wait for
// another transaction and then act on the run's newest version, while the
// statement's snapshot, taken before the wait, does not show side rows
// that transaction inserted. Those deletes and updates run in a second
// statement, with a new snapshot, while the runs stay locked.

// queueCols are the columns of a queue row, as a RETURNING list of runs
// names them; qualifiedQueueCols likewise, for UPDATE … FROM.
const (
	queueCols          = `grp, type, priority, run_at, seq`
	qualifiedQueueCols = `runs.grp, runs.type, runs.priority, runs.run_at, runs.seq`
)

const (
	// sqlInsert inserts a batch in input order (seq follows it) and queues
	// the queued runs; a run whose key already names a run (stored, or
	// earlier in the batch) is not inserted. It returns what identifies the
	// inserted rows. It takes batches of queued and pending runs of no job
	// only, the hot path; the others take sqlInsertFull (jobs.go).
	sqlInsert = `WITH i AS (
			INSERT INTO runs (id, job, parent_id, shard, type, grp, payload, priority, status,
				max_attempts, key, logical_time, run_at, created_at, timeout, routing, routing_key)
			SELECT u.id, u.job, u.parent_id, u.shard, u.type, u.grp, u.payload, u.priority, u.status,
				u.max_attempts, u.key, u.logical_time, u.run_at, u.created_at, u.timeout, u.routing, u.routing_key
			FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], $7::text[],
					$8::int4[], $9::text[], $10::int4[], $11::text[], $12::timestamptz[], $13::timestamptz[],
					$14::timestamptz[], $15::int8[], $16::text[], $17::text[])
				WITH ORDINALITY AS u(id, job, parent_id, shard, type, grp, payload, priority, status,
					max_attempts, key, logical_time, run_at, created_at, timeout, routing, routing_key, ord)
			ORDER BY u.ord
			ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING
			RETURNING id, key, status, ` + queueCols + `),
		q AS (INSERT INTO queue (` + queueCols + `) SELECT ` + queueCols + ` FROM i WHERE status = 'queued'),
		p AS (INSERT INTO pending (run_at, seq) SELECT run_at, seq FROM i WHERE status = 'pending')
		SELECT seq, id, key FROM i`

	sqlGetByKeys = `SELECT ` + runCols + ` FROM runs WHERE key = ANY($1::text[])`

	// sqlClaim locks the heads of the group's per-type queues (each an
	// ordered range of queue_order, cut at the limit; rows other claimers
	// hold are skipped, not waited for), keeps the first limit of them in
	// claim order, removes them from the queue and dispatches their runs.
	// A run that stopped being queued meanwhile (a cancel that won the
	// race) is left alone. The new attempt is dispatched at now and has
	// not started. Arguments: server, group, types, limit, now.
	sqlClaim = `WITH c AS MATERIALIZED (
			SELECT h.qid, h.seq FROM unnest($3::text[]) AS t(type)
			CROSS JOIN LATERAL (
				SELECT q.ctid AS qid, q.seq, q.priority, q.run_at FROM queue AS q
				WHERE q.grp = $2 AND q.type = t.type
				ORDER BY q.priority DESC, q.run_at, q.seq
				LIMIT $4
				FOR UPDATE SKIP LOCKED) AS h
			ORDER BY h.priority DESC, h.run_at, h.seq
			LIMIT $4),
		d AS (DELETE FROM queue WHERE ctid = ANY (ARRAY(SELECT qid FROM c))),
		u AS (UPDATE runs SET status = 'dispatched', attempt = runs.attempt + 1, server_id = $1, worker_id = '',
				dispatched_at = $5, started_at = NULL
			FROM c WHERE runs.seq = c.seq AND runs.status = 'queued'
			RETURNING ` + qualifiedRunCols + `),
		a AS (INSERT INTO active (seq, server_id) SELECT seq, server_id FROM u)
		SELECT * FROM u`

	// sqlStart: arguments are arrays of id, attempt, started_at, worker
	// (NULL: keep) and server ('' : not fenced).
	sqlStart = `UPDATE runs SET status = 'running', started_at = u.now, worker_id = coalesce(u.worker, runs.worker_id)
		FROM unnest($1::text[], $2::int4[], $3::timestamptz[], $4::text[], $5::text[]) AS u(id, attempt, now, worker, server)
		WHERE runs.id = u.id AND runs.attempt = u.attempt AND runs.status = 'dispatched'
			AND (u.server = '' OR runs.server_id = u.server)
		RETURNING runs.id, runs.grp, runs.job, u.now, greatest(runs.created_at, runs.run_at)`

	// sqlFinish ends attempts; a run handed back goes to the queue, one to
	// retry later to pending. A fan-out's child also returns its parent.
	sqlFinish = `WITH f AS (
			UPDATE runs SET status = u.status, prev_status = runs.status,
				finished_at = coalesce(u.finished_at, runs.finished_at),
				run_at = coalesce(u.run_at, runs.run_at),
				worker_id = coalesce(u.worker, runs.worker_id),
				server_id = NULL,
				failures = runs.failures + u.failure,
				lost = runs.lost + u.lost,
				started_at = coalesce(runs.started_at, u.started_at),
				result = coalesce(u.result, runs.result),
				error = coalesce(u.error, runs.error),
				callback_state = CASE WHEN runs.callback_url IS NOT NULL AND u.finished_at IS NOT NULL
					THEN 'pending' ELSE runs.callback_state END,
				callback_next_at = CASE WHEN runs.callback_url IS NOT NULL AND u.finished_at IS NOT NULL
					THEN u.finished_at ELSE runs.callback_next_at END
			FROM unnest($1::text[], $2::int4[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[],
					$7::int4[], $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::int4[])
				AS u(id, attempt, status, finished_at, run_at, worker, failure, started_at, result, error, server, lost)
			WHERE runs.id = u.id AND runs.attempt = u.attempt AND runs.status IN ('dispatched', 'running')
				AND (u.server = '' OR runs.server_id = u.server)
			RETURNING runs.id, runs.job, runs.status, runs.prev_status, ` + qualifiedQueueCols + `,
				CASE WHEN runs.callback_url IS NOT NULL THEN u.finished_at END AS callback_at,
				CASE WHEN runs.shard_count > 0 THEN runs.parent_id END AS parent),
		q AS (INSERT INTO queue (` + queueCols + `) SELECT ` + queueCols + ` FROM f WHERE status = 'queued'),
		p AS (INSERT INTO pending (run_at, seq) SELECT run_at, seq FROM f WHERE status = 'pending'),
		c AS (INSERT INTO callbacks (next_at, seq) SELECT callback_at, seq FROM f WHERE callback_at IS NOT NULL),
		e AS (INSERT INTO ended (seq) SELECT seq FROM f WHERE status IN (` + endedStatuses + `) ON CONFLICT DO NOTHING)
		SELECT id, seq, job, callback_at IS NOT NULL, grp, prev_status, parent FROM f`

	sqlAdopt = `UPDATE runs SET server_id = u.server
		FROM unnest($1::text[], $2::int4[], $3::text[]) AS u(id, attempt, server)
		WHERE runs.id = u.id AND runs.attempt = u.attempt AND runs.status IN ('dispatched', 'running')
		RETURNING runs.id`

	// sqlAdoptActive, sent after sqlAdopt, moves the adopted runs' active
	// rows to their server.
	sqlAdoptActive = `UPDATE active SET server_id = r.server_id FROM runs AS r
		WHERE r.id = ANY ($1::text[]) AND active.seq = r.seq AND active.server_id <> r.server_id`

	sqlGetForUpdate = `SELECT ` + runCols + ` FROM runs WHERE id = $1 FOR UPDATE`

	// sqlCancel cancels a run the caller locked (by seq), and removes it
	// from the active, queue, pending, blocked and job_live tables. A
	// claimer or promoter holding the queue or pending row is not waited
	// for (it waits for this transaction's lock on the run, then finds it
	// cancelled); blocked and job_live rows change only under the run's
	// lock. Arguments: finished_at, error, seq, then the run's group, type,
	// priority, run_at and job.
	sqlCancel = `WITH u AS (
			UPDATE runs SET status = 'cancelled', finished_at = $1, error = $2, server_id = NULL,
				callback_state = CASE WHEN callback_url IS NULL THEN callback_state ELSE 'pending' END,
				callback_next_at = CASE WHEN callback_url IS NULL THEN callback_next_at ELSE $1 END
			WHERE seq = $3 RETURNING ` + runCols + `),
		d AS (DELETE FROM active WHERE seq = $3),
		q AS (DELETE FROM queue WHERE ctid = ANY (ARRAY(
			SELECT ctid FROM queue WHERE grp = $4 AND type = $5 AND priority = $6 AND run_at = $7 AND seq = $3
			FOR UPDATE SKIP LOCKED))),
		p AS (DELETE FROM pending WHERE ctid = ANY (ARRAY(
			SELECT ctid FROM pending WHERE run_at = $7 AND seq = $3 FOR UPDATE SKIP LOCKED))),
		b AS (DELETE FROM blocked WHERE job = $8 AND seq = $3),
		l AS (DELETE FROM job_live WHERE job = $8 AND seq = $3),
		c AS (INSERT INTO callbacks (next_at, seq) SELECT $1::timestamptz, seq FROM u WHERE callback_url IS NOT NULL),
		e AS (INSERT INTO ended (seq) SELECT seq FROM u ON CONFLICT DO NOTHING)
		SELECT * FROM u`

	// sqlRetry queues a run the caller locked (by seq). Its delivery state
	// is reset; a callbacks row a claimer holds is not waited for (the
	// claim then finds the run owes nothing and drops the row).
	sqlRetry = `WITH u AS (
			UPDATE runs SET status = CASE WHEN $3 THEN 'blocked' ELSE 'queued' END, failures = 0, lost = 0, run_at = $1, finished_at = NULL,
				dispatched_at = NULL, started_at = NULL, error = '', result = NULL, worker_id = '', server_id = NULL,
				callback_state = '', callback_attempts = 0, callback_next_at = NULL, callback_error = '',
				callback_delivered_at = NULL
			WHERE seq = $2 RETURNING ` + runCols + `),
		q AS (INSERT INTO queue (` + queueCols + `) SELECT ` + queueCols + ` FROM u WHERE NOT $3),
		l AS (INSERT INTO job_live (job, seq) SELECT job, seq FROM u WHERE job <> '' AND NOT $3),
		b AS (INSERT INTO blocked (job, seq) SELECT job, seq FROM u WHERE job <> '' AND $3),
		c AS (DELETE FROM callbacks WHERE ctid = ANY (ARRAY(
			SELECT ctid FROM callbacks WHERE seq = $2 FOR UPDATE SKIP LOCKED))),
		e AS (DELETE FROM ended WHERE seq = $2)
		SELECT * FROM u`

	// sqlPromote takes the first due rows of pending (rows another
	// promoter holds are skipped), and queues their runs. Arguments: now,
	// limit.
	sqlPromote = `WITH p AS MATERIALIZED (
			SELECT ctid AS pid, seq FROM pending
			WHERE run_at <= $1
			ORDER BY run_at, seq
			LIMIT $2
			FOR UPDATE SKIP LOCKED),
		d AS (DELETE FROM pending WHERE ctid = ANY (ARRAY(SELECT pid FROM p))),
		u AS (UPDATE runs SET status = 'queued' FROM p WHERE runs.seq = p.seq AND runs.status = 'pending'
			RETURNING ` + qualifiedRunCols + `),
		q AS (INSERT INTO queue (` + queueCols + `) SELECT ` + queueCols + ` FROM u)
		SELECT * FROM u`

	sqlDeleteActive = `DELETE FROM active WHERE seq = ANY ($1::int8[])`

	// endedStatuses are the statuses whose runs the ended table lists
	// (migration 00006_lists).
	endedStatuses = `'failed', 'cancelled', 'timed_out', 'skipped'`
)

// RunInsert implements store.Tx.
func (t *tx) RunInsert(ctx context.Context, runs []store.RunInsertParams) ([]store.RunInsertResult, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	for i := range runs {
		p := &runs[i]
		if p.ID == "" {
			return nil, fmt.Errorf("postgres: RunInsert: run %d has no ID", i)
		}
		switch p.Status {
		case store.StatusPending, store.StatusBlocked, store.StatusQueued, store.StatusSkipped:
		default:
			return nil, fmt.Errorf("postgres: RunInsert: run %q: status %q is not pending, blocked, queued or skipped", p.ID, p.Status)
		}
		if err := store.CheckRunSplit(p); err != nil {
			return nil, fmt.Errorf("postgres: RunInsert: %w", err)
		}
	}
	if len(runs) == 0 {
		return []store.RunInsertResult{}, nil
	}
	splits, err := store.SplitDocs(runs)
	if err != nil {
		return nil, fmt.Errorf("postgres: RunInsert: %w", err)
	}
	n := len(runs)
	full := false
	for i := range runs {
		full = full || needsFullInsert(&runs[i])
	}
	var (
		id, job, parent, typ, grp, status, routing, routingKey = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		shard            = make([]pgtype.Int4, n)
		payload, key     = make([]pgtype.Text, n), make([]pgtype.Text, n)
		priority, maxAtt = make([]int32, n), make([]int32, n)
		logical          = make([]pgtype.Timestamptz, n)
		runAt, createdAt = make([]time.Time, n), make([]time.Time, n)
		timeout          = make([]int64, n)
		errorText        []string
		callbackURL      []pgtype.Text
	)
	if full {
		errorText, callbackURL = make([]string, n), make([]pgtype.Text, n)
	}
	for i := range runs {
		p := &runs[i]
		id[i], job[i], parent[i], typ[i], grp[i] = p.ID, p.Job, p.ParentID, p.Type, p.Group
		status[i], routing[i], routingKey[i] = string(p.Status), p.Routing, p.RoutingKey
		if p.Shard != nil {
			shard[i] = pgtype.Int4{Int32: int32(*p.Shard), Valid: true}
		}
		payload[i], key[i] = nullJSON(p.Payload), nullText(p.Key)
		priority[i], maxAtt[i] = int32(p.Priority), int32(p.MaxAttempts)
		logical[i] = nullTime(p.LogicalTime)
		runAt[i], createdAt[i] = p.EffectiveRunAt(), p.Now
		timeout[i] = int64(p.Timeout)
		if full {
			errorText[i] = cleanText(p.Error)
			callbackURL[i] = nullText(cleanText(p.CallbackURL))
		}
	}
	args := []any{id, job, parent, shard, typ, grp, payload, priority, status,
		maxAtt, key, logical, runAt, createdAt, timeout, routing, routingKey}
	sql := sqlInsert
	if full {
		sql, args = sqlInsertFull, append(args, errorText, callbackURL)
	}
	rows, err := t.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, t.s.wrap("RunInsert", err)
	}
	// A row is identified by its ID, key and slot: two inputs may share an
	// ID when the first is refused for its key or slot. (sqlInsert has no
	// runs of jobs, so no slots.)
	type ident struct {
		id, key string
		slot    slot
	}
	inserted := make(map[ident]int64, n)
	for rows.Next() {
		var (
			seq    int64
			rid    string
			rowKey pgtype.Text
			rowJob string
			rowLT  pgtype.Timestamptz
		)
		dest := []any{&seq, &rid, &rowKey, &rowJob, &rowLT}
		if !full {
			dest = dest[:3]
		}
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return nil, t.s.wrap("RunInsert", err)
		}
		inserted[ident{rid, rowKey.String, slotOf(rowJob, tsTime(rowLT))}] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, t.s.wrap("RunInsert", err)
	}
	out := make([]store.RunInsertResult, n)
	var (
		refusedKeys  []string
		refusedSlots []slot
	)
	for i := range runs {
		p := &runs[i]
		k := ident{p.ID, p.Key, slotOf(p.Job, p.LogicalTime)}
		if seq, ok := inserted[k]; ok {
			out[i] = store.RunInsertResult{Run: insertedRun(p, seq)}
			t.counts.Add(p.Group, p.Job, p.Status, 1)
			// Of the insert statuses only skipped is an end (Ended ignores the rest).
			t.rates.Ended(p.Group, p.Job, p.Status, p.Now, 1)
			delete(inserted, k) // a later input with the same ID, key and slot was refused
			continue
		}
		if p.Key == "" && k.slot == (slot{}) {
			return nil, fmt.Errorf("postgres: RunInsert: run %q was not inserted (its ID names a run)", p.ID)
		}
		if p.Key != "" {
			refusedKeys = append(refusedKeys, p.Key)
		}
		if k.slot != (slot{}) {
			refusedSlots = append(refusedSlots, k.slot)
		}
	}
	if splits != nil {
		if err := t.setSplits(ctx, runs, splits, out); err != nil {
			return nil, err
		}
	}
	if len(refusedKeys) == 0 && len(refusedSlots) == 0 {
		return out, nil
	}
	byKey, bySlot, err := t.existing(ctx, refusedKeys, refusedSlots)
	if err != nil {
		return nil, err
	}
	for i := range runs {
		if out[i].Run != nil {
			continue
		}
		p := &runs[i]
		r := byKey[p.Key]
		if r == nil {
			r = bySlot[slotOf(p.Job, p.LogicalTime)]
		}
		if r == nil {
			return nil, fmt.Errorf("postgres: RunInsert: run %q (key %q, job %q at %v) conflicts but names no run",
				p.ID, p.Key, p.Job, p.LogicalTime)
		}
		c := *r
		out[i] = store.RunInsertResult{Run: &c, Existing: true}
	}
	return out, nil
}

// insertedRun is the run an insert wrote, as it reads back.
func insertedRun(p *store.RunInsertParams, seq int64) *Run {
	r := &Run{
		ID:          p.ID,
		Seq:         seq,
		Job:         p.Job,
		ParentID:    p.ParentID,
		Type:        p.Type,
		Group:       p.Group,
		Priority:    p.Priority,
		Status:      p.Status,
		MaxAttempts: p.MaxAttempts,
		Key:         p.Key,
		LogicalTime: micro(p.LogicalTime),
		RunAt:       micro(p.EffectiveRunAt()),
		CreatedAt:   micro(p.Now),
		Timeout:     p.Timeout,
		Routing:     p.Routing,
		RoutingKey:  p.RoutingKey,
		Error:       cleanText(p.Error),
	}
	if p.Status == store.StatusSkipped {
		r.FinishedAt = r.CreatedAt
	}
	r.CallbackURL = cleanText(p.CallbackURL)
	if p.CallbackURL != "" && p.Status == store.StatusSkipped {
		r.Callback = store.Callback{State: store.CallbackPending, NextAt: r.FinishedAt}
	}
	if p.Shard != nil {
		n := *p.Shard
		r.Shard = &n
	}
	if len(p.Payload) > 0 {
		r.Payload = cleanJSON(p.Payload)
	}
	return r
}

// RunClaim implements store.Tx.
func (t *tx) RunClaim(ctx context.Context, p store.RunClaimParams) ([]*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if len(p.Types) == 0 || p.Limit <= 0 {
		return nil, nil
	}
	types := slices.Clone(p.Types)
	slices.Sort(types)
	types = slices.Compact(types)
	rows, err := t.q.Query(ctx, sqlClaim, p.ServerID, p.Group, types, int64(p.Limit), p.Now)
	if err != nil {
		return nil, t.s.wrap("RunClaim", err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, t.s.wrap("RunClaim", err)
	}
	for _, r := range runs { // the update re-checked that each was queued
		t.counts.Move(r.Group, r.Job, store.StatusQueued, store.StatusDispatched)
	}
	slices.SortFunc(runs, claimOrder) // RETURNING has no order
	return runs, nil
}

// claimOrder is the queue order: higher priority, then earlier run_at,
// then insertion order.
func claimOrder(a, b *Run) int {
	if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
		return c
	}
	if c := a.RunAt.Compare(b.RunAt); c != 0 {
		return c
	}
	return cmp.Compare(a.Seq, b.Seq)
}

// rounds splits the indexes of a batch into rounds in which no ID appears
// twice; element i goes to the round after the one of the previous element
// with its ID, so elements for one run apply in input order. Almost every
// batch is one round. Within a round the elements are sorted by ID: every
// batch statement then locks its rows in the same order, so two
// transactions that change the same runs wait for each other instead of
// deadlocking.
func rounds(n int, id func(i int) string) [][]int {
	round := make(map[string]int, n)
	var out [][]int
	for i := range n {
		r := round[id(i)]
		round[id(i)] = r + 1
		if r == len(out) {
			out = append(out, make([]int, 0, n))
		}
		out[r] = append(out[r], i)
	}
	for _, idx := range out {
		slices.SortFunc(idx, func(a, b int) int { return strings.Compare(id(a), id(b)) })
	}
	return out
}

// appliedIDs runs a statement returning the IDs of the rows it changed.
func (t *tx) appliedIDs(ctx context.Context, op, sql string, args ...any) (map[string]bool, error) {
	rows, err := t.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, t.s.wrap(op, err)
	}
	applied, err := collectIDs(rows, nil)
	if err != nil {
		return nil, t.s.wrap(op, err)
	}
	return applied, nil
}

// collectIDs reads rows of one text column and closes them.
func collectIDs(rows pgx.Rows, err error) (map[string]bool, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	applied := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		applied[id] = true
	}
	return applied, rows.Err()
}

// collectStarted reads the rows of sqlStart (id, group, job, start time,
// due time), calls fn with all but the id, and closes them.
func collectStarted(rows pgx.Rows, err error, fn func(grp, job string, now, due time.Time)) (map[string]bool, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	applied := map[string]bool{}
	for rows.Next() {
		var (
			id, grp, job string
			now, due     time.Time
		)
		if err := rows.Scan(&id, &grp, &job, &now, &due); err != nil {
			return nil, err
		}
		applied[id] = true
		fn(grp, job, now, due)
	}
	return applied, rows.Err()
}

// RunStart implements store.Tx.
func (t *tx) RunStart(ctx context.Context, ps []store.RunStartParams) ([]bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	out := make([]bool, len(ps))
	for _, idx := range rounds(len(ps), func(i int) string { return ps[i].ID }) {
		n := len(idx)
		var (
			ids, servers = make([]string, n), make([]string, n)
			attempts     = make([]int32, n)
			now          = make([]time.Time, n)
			workers      = make([]pgtype.Text, n)
		)
		for j, i := range idx {
			p := &ps[i]
			ids[j], attempts[j], now[j], workers[j], servers[j] = p.ID, int32(p.Attempt), p.Now, nullText(p.WorkerID), p.ServerID
		}
		rows, err := t.q.Query(ctx, sqlStart, ids, attempts, now, workers, servers)
		applied, err := collectStarted(rows, err, func(grp, job string, now, due time.Time) {
			t.counts.Move(grp, job, store.StatusDispatched, store.StatusRunning)
			t.rates.Started(grp, store.MinuteOf(now), store.LatencyBucket(now.Sub(due)), 1)
		})
		if err != nil {
			return nil, t.s.wrap("RunStart", err)
		}
		for _, i := range idx {
			out[i] = applied[ps[i].ID]
		}
	}
	return out, nil
}

// RunFinish implements store.Tx.
func (t *tx) RunFinish(ctx context.Context, ps []store.RunFinishParams) ([]store.RunFinishResult, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	for i := range ps {
		if s := ps[i].Status; !s.Terminal() && s != store.StatusPending && s != store.StatusQueued {
			return nil, fmt.Errorf("postgres: RunFinish: run %q: status %q is not terminal, pending or queued", ps[i].ID, s)
		}
	}
	out := make([]store.RunFinishResult, len(ps))
	for _, idx := range rounds(len(ps), func(i int) string { return ps[i].ID }) {
		n := len(idx)
		var (
			ids, statuses, servers       = make([]string, n), make([]string, n), make([]string, n)
			attempts, failures, lost     = make([]int32, n), make([]int32, n), make([]int32, n)
			finishedAt, runAt, startedAt = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
			workers, results, errorTexts = make([]pgtype.Text, n), make([]pgtype.Text, n), make([]pgtype.Text, n)
		)
		paramsOf := make(map[string]*store.RunFinishParams, n) // a round names each run once
		for j, i := range idx {
			p := &ps[i]
			paramsOf[p.ID] = p
			ids[j], attempts[j], statuses[j], servers[j] = p.ID, int32(p.Attempt), string(p.Status), p.ServerID
			switch {
			case p.Status.Terminal():
				finishedAt[j] = pgtype.Timestamptz{Time: p.Now, Valid: true}
			case p.Status == store.StatusPending:
				at := p.RunAt
				if at.IsZero() {
					at = p.Now
				}
				runAt[j] = pgtype.Timestamptz{Time: at, Valid: true}
			}
			if p.Status == store.StatusQueued {
				workers[j] = pgtype.Text{Valid: true} // a handed-back run has no worker
			} else {
				workers[j] = nullText(p.WorkerID)
			}
			if p.Failure {
				failures[j] = 1
			}
			if p.Lost {
				lost[j] = 1
			}
			startedAt[j] = nullTime(p.StartedAt)
			results[j] = nullJSON(p.Result)
			errorTexts[j] = pgtype.Text{String: cleanText(p.Error), Valid: p.Error != "" || p.Status == store.StatusSucceeded}
		}
		if err := t.recordFinished(ctx, ps, idx); err != nil {
			return nil, err
		}
		rows, err := t.q.Query(ctx, sqlFinish, ids, attempts, statuses, finishedAt, runAt, workers, failures,
			startedAt, results, errorTexts, servers, lost)
		if err != nil {
			return nil, t.s.wrap("RunFinish", err)
		}
		applied := map[string]bool{}
		var (
			seqs      []int64
			jobOf     map[string]string // runs of jobs, by ID
			jobSeqOf  map[string]int64
			callbacks map[string]bool // runs whose delivery became pending
			children  []fanoutMove
		)
		for rows.Next() {
			var (
				id, job, grp, prev string
				seq                int64
				cb                 bool
				parent             pgtype.Text
			)
			if err := rows.Scan(&id, &seq, &job, &cb, &grp, &prev, &parent); err != nil {
				rows.Close()
				return nil, t.s.wrap("RunFinish", err)
			}
			applied[id] = true
			p := paramsOf[id]
			t.counts.Move(grp, job, store.RunStatus(prev), p.Status)
			t.rates.Ended(grp, job, p.Status, p.Now, 1)
			if parent.Valid {
				children = append(children, fanoutMove{parent.String, store.RunStatus(prev), p.Status})
			}
			if cb {
				if callbacks == nil {
					callbacks = map[string]bool{}
				}
				callbacks[id] = true
			}
			seqs = append(seqs, seq)
			if job != "" {
				if jobOf == nil {
					jobOf, jobSeqOf = map[string]string{}, map[string]int64{}
				}
				jobOf[id], jobSeqOf[id] = job, seq
			}
		}
		if err := rows.Err(); err != nil {
			return nil, t.s.wrap("RunFinish", err)
		}
		// Runs of jobs that reached a terminal status leave job_live.
		var liveJobs []string
		var liveSeqs []int64
		for _, i := range idx {
			if j, ok := jobOf[ps[i].ID]; ok && ps[i].Status.Terminal() {
				liveJobs, liveSeqs = append(liveJobs, j), append(liveSeqs, jobSeqOf[ps[i].ID])
			}
		}
		switch {
		case len(liveSeqs) > 0:
			if _, err := t.q.Exec(ctx, sqlFinishJobLive, seqs, liveJobs, liveSeqs); err != nil {
				return nil, t.s.wrap("RunFinish", err)
			}
		case len(seqs) > 0:
			if _, err := t.q.Exec(ctx, sqlDeleteActive, seqs); err != nil {
				return nil, t.s.wrap("RunFinish", err)
			}
		}
		if err := t.countChildren(ctx, "RunFinish", children...); err != nil {
			return nil, err
		}
		for _, i := range idx {
			out[i] = store.RunFinishResult{ID: ps[i].ID, Accepted: applied[ps[i].ID], Callback: callbacks[ps[i].ID]}
		}
	}
	return out, nil
}

// RunAdopt implements store.Tx.
func (t *tx) RunAdopt(ctx context.Context, ps []store.RunAdoptParams) ([]bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	for i := range ps {
		if ps[i].ServerID == "" {
			return nil, fmt.Errorf("postgres: RunAdopt: run %q: no server ID", ps[i].ID)
		}
	}
	out := make([]bool, len(ps))
	for _, idx := range rounds(len(ps), func(i int) string { return ps[i].ID }) {
		n := len(idx)
		ids, servers, attempts := make([]string, n), make([]string, n), make([]int32, n)
		for j, i := range idx {
			ids[j], attempts[j], servers[j] = ps[i].ID, int32(ps[i].Attempt), ps[i].ServerID
		}
		applied, err := t.appliedIDs(ctx, "RunAdopt", sqlAdopt, ids, attempts, servers)
		if err != nil {
			return nil, err
		}
		if len(applied) > 0 {
			if _, err := t.q.Exec(ctx, sqlAdoptActive, ids); err != nil {
				return nil, t.s.wrap("RunAdopt", err)
			}
		}
		for _, i := range idx {
			out[i] = applied[ps[i].ID]
		}
	}
	return out, nil
}
