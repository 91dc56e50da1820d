package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// runCols is the column list every run query selects or returns, in the
// order scanRun reads it.
const runCols = `seq, id, job, parent_id, shard, type, grp, payload, priority, status,
	attempt, max_attempts, failures, key, logical_time, run_at, created_at, started_at,
	finished_at, worker_id, server_id, result, error, timeout, routing, routing_key`

// Writer statements, prepared once on the writer connection.
type wStmt int

const (
	wInsert wStmt = iota
	wGetByID
	wGetByKey
	wClaim
	wStart
	wFinish
	wCancel
	wRetry
	wPromote
	wLogAppend
	numWStmts
)

var wSQL = [numWStmts]string{
	wInsert: `INSERT INTO runs (id, job, parent_id, shard, type, grp, payload, priority, status,
		max_attempts, key, logical_time, run_at, created_at, timeout, routing, routing_key)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING`,
	wGetByID:  `SELECT ` + runCols + ` FROM runs WHERE id = ?`,
	wGetByKey: `SELECT ` + runCols + ` FROM runs WHERE key = ?`,
	// The inner query walks the group's part of the partial claim index in
	// claim order; the outer UPDATE changes only those rows.
	wClaim: `UPDATE runs SET status = 'dispatched', attempt = attempt + 1, server_id = ?1, worker_id = ''
		WHERE seq IN (
			SELECT q.seq FROM runs AS q
			WHERE q.status = 'queued' AND q.grp = ?2 AND q.type IN (SELECT value FROM json_each(?3))
			ORDER BY q.priority DESC, q.run_at, q.seq
			LIMIT ?4)
		RETURNING ` + runCols,
	wStart: `UPDATE runs SET status = 'running', started_at = ?1, worker_id = coalesce(?2, worker_id)
		WHERE id = ?3 AND attempt = ?4 AND status = 'dispatched'`,
	wFinish: `UPDATE runs SET status = ?1,
			finished_at = coalesce(?2, finished_at),
			run_at = coalesce(?3, run_at),
			worker_id = coalesce(?4, worker_id),
			server_id = NULL,
			failures = failures + ?5,
			started_at = coalesce(started_at, ?6),
			result = coalesce(?7, result),
			error = coalesce(?8, error)
		WHERE id = ?9 AND attempt = ?10 AND status IN ('dispatched', 'running')`,
	wCancel: `UPDATE runs SET status = 'cancelled', finished_at = ?1, error = ?2, server_id = NULL
		WHERE seq = ?3 RETURNING ` + runCols,
	wRetry: `UPDATE runs SET status = 'queued', failures = 0, run_at = ?1, finished_at = NULL,
			started_at = NULL, error = '', result = NULL, worker_id = '', server_id = NULL
		WHERE seq = ?2 RETURNING ` + runCols,
	wPromote: `UPDATE runs SET status = 'queued'
		WHERE seq IN (
			SELECT p.seq FROM runs AS p
			WHERE p.status = 'pending' AND p.run_at <= ?1
			ORDER BY p.run_at, p.seq
			LIMIT ?2)
		RETURNING ` + runCols,
	wLogAppend: `INSERT INTO run_logs (run_id, attempt, time, stream, level, text) VALUES (?,?,?,?,?,?)`,
}

// Reader statements, prepared on the read-only pool.
type rStmt int

const (
	rGetByID rStmt = iota
	rGetByKey
	rListActive
	rListActiveServer
	rNextPendingAt
	rQueuedGroups
	rCountByGroup
	rLogList
	numRStmts
)

var rSQL = [numRStmts]string{
	rGetByID:  `SELECT ` + runCols + ` FROM runs WHERE id = ?`,
	rGetByKey: `SELECT ` + runCols + ` FROM runs WHERE key = ?`,
	rListActive: `SELECT ` + runCols + ` FROM runs
		WHERE server_id IS NOT NULL AND status IN ('dispatched', 'running') ORDER BY seq`,
	rListActiveServer: `SELECT ` + runCols + ` FROM runs
		WHERE server_id = ? AND status IN ('dispatched', 'running') ORDER BY seq`,
	rNextPendingAt: `SELECT min(run_at) FROM runs WHERE status = 'pending'`,
	// A skip scan over the claim index: one seek per group instead of a walk
	// over every queued run.
	rQueuedGroups: `WITH RECURSIVE g(grp) AS (
			SELECT (SELECT min(grp) FROM runs WHERE status = 'queued')
			UNION ALL
			SELECT (SELECT min(r.grp) FROM runs AS r WHERE r.status = 'queued' AND r.grp > g.grp)
			FROM g WHERE g.grp IS NOT NULL)
		SELECT grp FROM g WHERE grp IS NOT NULL`,
	rCountByGroup: `SELECT grp, status, count(*) FROM runs GROUP BY grp, status ORDER BY grp, status`,
	rLogList: `SELECT seq, run_id, attempt, time, stream, level, text FROM run_logs
		WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
}

type scanner interface{ Scan(dest ...any) error }

func scanRun(sc scanner) (*Run, error) {
	var (
		r                               Run
		shard                           sql.NullInt64
		payload, result, key, serverID  sql.NullString
		logical, started, finished      sql.NullInt64
		runAt, created, timeout, status = int64(0), int64(0), int64(0), ""
	)
	err := sc.Scan(&r.Seq, &r.ID, &r.Job, &r.ParentID, &shard, &r.Type, &r.Group, &payload,
		&r.Priority, &status, &r.Attempt, &r.MaxAttempts, &r.Failures, &key, &logical, &runAt,
		&created, &started, &finished, &r.WorkerID, &serverID, &result, &r.Error, &timeout,
		&r.Routing, &r.RoutingKey)
	if err != nil {
		return nil, err
	}
	if shard.Valid {
		n := int(shard.Int64)
		r.Shard = &n
	}
	if payload.Valid {
		r.Payload = json.RawMessage(payload.String)
	}
	if result.Valid {
		r.Result = json.RawMessage(result.String)
	}
	r.Status = store.RunStatus(status)
	r.Key = key.String
	r.ServerID = serverID.String
	r.LogicalTime = fromNullMicro(logical)
	r.RunAt = fromMicro(runAt)
	r.CreatedAt = fromMicro(created)
	r.StartedAt = fromNullMicro(started)
	r.FinishedAt = fromNullMicro(finished)
	r.Timeout = time.Duration(timeout)
	return &r, nil
}

// Run is store.Run; the alias keeps scanRun short.
type Run = store.Run

func scanRuns(rows *sql.Rows) ([]*Run, error) {
	defer rows.Close()
	var out []*Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ---- write side ----

func (t *tx) RunInsert(ctx context.Context, runs []store.RunInsertParams) ([]store.RunInsertResult, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	for i := range runs {
		p := &runs[i]
		if p.ID == "" {
			return nil, fmt.Errorf("sqlite: RunInsert: run %d has no ID", i)
		}
		switch p.Status {
		case store.StatusPending, store.StatusBlocked, store.StatusQueued, store.StatusSkipped:
		default:
			return nil, fmt.Errorf("sqlite: RunInsert: run %q: status %q is not pending, blocked, queued or skipped", p.ID, p.Status)
		}
	}
	ins := t.stmt(ctx, wInsert)
	out := make([]store.RunInsertResult, len(runs))
	for i := range runs {
		p := &runs[i]
		runAt := p.RunAt
		if runAt.IsZero() {
			runAt = p.Now
		}
		var shard any
		if p.Shard != nil {
			shard = int64(*p.Shard)
		}
		res, err := ins.ExecContext(ctx, p.ID, p.Job, p.ParentID, shard, p.Type, p.Group,
			nullJSON(p.Payload), p.Priority, string(p.Status), p.MaxAttempts, nullString(p.Key),
			nullMicro(p.LogicalTime), micro(runAt), micro(p.Now), int64(p.Timeout), p.Routing, p.RoutingKey)
		if err != nil {
			return nil, t.s.wrap("RunInsert", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, t.s.wrap("RunInsert", err)
		}
		if n == 0 { // the key names a run already
			r, err := scanRun(t.stmt(ctx, wGetByKey).QueryRowContext(ctx, p.Key))
			if err != nil {
				return nil, t.s.wrap("RunInsert: existing key", err)
			}
			out[i] = store.RunInsertResult{Run: r, Existing: true}
			continue
		}
		seq, err := res.LastInsertId()
		if err != nil {
			return nil, t.s.wrap("RunInsert", err)
		}
		out[i] = store.RunInsertResult{Run: insertedRun(p, seq, runAt)}
	}
	return out, nil
}

// insertedRun is the run an insert wrote, as it reads back.
func insertedRun(p *store.RunInsertParams, seq int64, runAt time.Time) *Run {
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
		LogicalTime: truncMicro(p.LogicalTime),
		RunAt:       fromMicro(micro(runAt)),
		CreatedAt:   fromMicro(micro(p.Now)),
		Timeout:     p.Timeout,
		Routing:     p.Routing,
		RoutingKey:  p.RoutingKey,
	}
	if p.Shard != nil {
		n := *p.Shard
		r.Shard = &n
	}
	if len(p.Payload) > 0 {
		r.Payload = p.Payload
	}
	return r
}

func (t *tx) RunClaim(ctx context.Context, p store.RunClaimParams) ([]*Run, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	if len(p.Types) == 0 || p.Limit <= 0 {
		return nil, nil
	}
	types, err := json.Marshal(p.Types)
	if err != nil {
		return nil, fmt.Errorf("sqlite: RunClaim: %w", err)
	}
	rows, err := t.stmt(ctx, wClaim).QueryContext(ctx, p.ServerID, p.Group, string(types), p.Limit)
	if err != nil {
		return nil, t.s.wrap("RunClaim", err)
	}
	runs, err := scanRuns(rows)
	if err != nil {
		return nil, t.s.wrap("RunClaim", err)
	}
	// RETURNING has no defined order; restore the claim order.
	slices.SortFunc(runs, func(a, b *Run) int {
		if c := cmp.Compare(b.Priority, a.Priority); c != 0 {
			return c
		}
		if c := a.RunAt.Compare(b.RunAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	return runs, nil
}

func (t *tx) RunStart(ctx context.Context, ps []store.RunStartParams) ([]bool, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	st := t.stmt(ctx, wStart)
	out := make([]bool, len(ps))
	for i := range ps {
		p := &ps[i]
		res, err := st.ExecContext(ctx, micro(p.Now), nullString(p.WorkerID), p.ID, p.Attempt)
		if err != nil {
			return nil, t.s.wrap("RunStart", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, t.s.wrap("RunStart", err)
		}
		out[i] = n > 0
	}
	return out, nil
}

func (t *tx) RunFinish(ctx context.Context, ps []store.RunFinishParams) ([]store.RunFinishResult, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	for i := range ps {
		if s := ps[i].Status; !s.Terminal() && s != store.StatusPending && s != store.StatusQueued {
			return nil, fmt.Errorf("sqlite: RunFinish: run %q: status %q is not terminal, pending or queued", ps[i].ID, s)
		}
	}
	st := t.stmt(ctx, wFinish)
	out := make([]store.RunFinishResult, len(ps))
	for i := range ps {
		p := &ps[i]
		var finishedAt, runAt, worker, errText any
		switch {
		case p.Status.Terminal():
			finishedAt = micro(p.Now)
		case p.Status == store.StatusPending:
			at := p.RunAt
			if at.IsZero() {
				at = p.Now
			}
			runAt = micro(at)
		}
		if p.Status == store.StatusQueued {
			worker = ""
		} else {
			worker = nullString(p.WorkerID)
		}
		if p.Error != "" || p.Status == store.StatusSucceeded {
			errText = p.Error
		}
		failure := 0
		if p.Failure {
			failure = 1
		}
		res, err := st.ExecContext(ctx, string(p.Status), finishedAt, runAt, worker, failure,
			nullMicro(p.StartedAt), nullJSON(p.Result), errText, p.ID, p.Attempt)
		if err != nil {
			return nil, t.s.wrap("RunFinish", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, t.s.wrap("RunFinish", err)
		}
		out[i] = store.RunFinishResult{ID: p.ID, Accepted: n > 0}
	}
	return out, nil
}

func (t *tx) getForUpdate(ctx context.Context, op, id string) (*Run, error) {
	r, err := scanRun(t.stmt(ctx, wGetByID).QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: %s: run %q: %w", op, id, store.ErrNotFound)
	}
	if err != nil {
		return nil, t.s.wrap(op, err)
	}
	return r, nil
}

func (t *tx) RunCancel(ctx context.Context, p store.RunCancelParams) (store.RunCancelResult, error) {
	if err := t.check(); err != nil {
		return store.RunCancelResult{}, err
	}
	prev, err := t.getForUpdate(ctx, "RunCancel", p.ID)
	if err != nil {
		return store.RunCancelResult{}, err
	}
	res := store.RunCancelResult{Run: prev, Prev: prev.Status, PrevWorker: prev.WorkerID}
	if prev.Status.Terminal() {
		return res, nil
	}
	reason := p.Reason
	if reason == "" {
		reason = "cancelled"
	}
	r, err := scanRun(t.stmt(ctx, wCancel).QueryRowContext(ctx, micro(p.Now), reason, prev.Seq))
	if err != nil {
		return store.RunCancelResult{}, t.s.wrap("RunCancel", err)
	}
	res.Run, res.Changed = r, true
	return res, nil
}

func (t *tx) RunRetry(ctx context.Context, p store.RunRetryParams) (*Run, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	prev, err := t.getForUpdate(ctx, "RunRetry", p.ID)
	if err != nil {
		return nil, err
	}
	switch prev.Status {
	case store.StatusFailed, store.StatusCancelled, store.StatusTimedOut, store.StatusSkipped:
	default:
		return nil, fmt.Errorf("sqlite: RunRetry: run %q is %s: %w", p.ID, prev.Status, store.ErrConflict)
	}
	r, err := scanRun(t.stmt(ctx, wRetry).QueryRowContext(ctx, micro(p.Now), prev.Seq))
	if err != nil {
		return nil, t.s.wrap("RunRetry", err)
	}
	return r, nil
}

func (t *tx) RunPromote(ctx context.Context, p store.RunPromoteParams) ([]*Run, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	rows, err := t.stmt(ctx, wPromote).QueryContext(ctx, micro(p.Now), p.Limit)
	if err != nil {
		return nil, t.s.wrap("RunPromote", err)
	}
	runs, err := scanRuns(rows)
	if err != nil {
		return nil, t.s.wrap("RunPromote", err)
	}
	slices.SortFunc(runs, func(a, b *Run) int {
		if c := a.RunAt.Compare(b.RunAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	return runs, nil
}

// ---- read side ----

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

const (
	listDefaultLimit = 100
	listMaxLimit     = 1000
)

// RunList implements store.Store. The cursor is the seq of the last run of
// the previous page, in decimal.
func (s *Store) RunList(ctx context.Context, p store.RunListParams) (store.RunPage, error) {
	if s.closed.Load() {
		return store.RunPage{}, errClosed
	}
	limit := p.Limit
	if limit <= 0 {
		limit = listDefaultLimit
	}
	limit = min(limit, listMaxLimit)
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
	if p.Cursor != "" {
		seq, err := strconv.ParseInt(p.Cursor, 10, 64)
		if err != nil || seq <= 0 {
			return store.RunPage{}, fmt.Errorf("sqlite: RunList: invalid cursor %q", p.Cursor)
		}
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
	var page store.RunPage
	if len(runs) > limit {
		runs = runs[:limit]
		page.NextCursor = strconv.FormatInt(runs[limit-1].Seq, 10)
	}
	page.Runs = runs
	return page, nil
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

// RunQueuedGroups implements store.Store. Groups come back sorted.
func (s *Store) RunQueuedGroups(ctx context.Context) ([]string, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.rs[rQueuedGroups].QueryContext(ctx)
	if err != nil {
		return nil, s.wrap("RunQueuedGroups", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, s.wrap("RunQueuedGroups", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("RunQueuedGroups", err)
	}
	return out, nil
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
