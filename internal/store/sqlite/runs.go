package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
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

// Writer statements, prepared once on the writer connection. Hot
// statements use plain "?" placeholders: the driver binds them without
// looking up a parameter name.
type wStmt int

const (
	wInsert1  wStmt = iota // RunInsert, one row; a conflict on the key inserts nothing
	wInsert4               // RunInsert, 4 runs without a key
	wInsert16              // … 16
	wInsert64              // … 64
	wGetByID
	wGetByKey
	wClaimUpdate
	wStart
	wFinish
	wCancel
	wRetry
	wPromote
	wLogAppend
	wClaimSelect1 // RunClaim for k types is wClaimSelect1 + k - 1
	wClaimSelect8 = wClaimSelect1 + maxClaimTypes - 1
	numWStmts     = wClaimSelect1 + maxClaimTypes
)

const insertCols = `id, job, parent_id, shard, type, grp, payload, priority, status,
	max_attempts, key, logical_time, run_at, created_at, timeout, routing, routing_key`

const numInsertCols = 17

func insertSQL(rows int, onConflict string) string {
	row := "(?" + strings.Repeat(",?", numInsertCols-1) + ")"
	return "INSERT INTO runs (" + insertCols + ") VALUES " + row + strings.Repeat(","+row, rows-1) + onConflict
}

// insertChunks are the multi-row insert statements, largest first.
var insertChunks = []struct {
	rows int
	stmt wStmt
}{{64, wInsert64}, {16, wInsert16}, {4, wInsert4}, {1, wInsert1}}

var wSQL = [numWStmts]string{
	wInsert1:  insertSQL(1, " ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING"),
	wInsert4:  insertSQL(4, ""),
	wInsert16: insertSQL(16, ""),
	wInsert64: insertSQL(64, ""),
	wGetByID:  `SELECT ` + runCols + ` FROM runs WHERE id = ?`,
	wGetByKey: `SELECT ` + runCols + ` FROM runs WHERE key = ?`,
	// RunClaim reads the heads of the group's per-type queues from the
	// partial claim index (wClaimSelect1…, see claimSQL), then updates
	// exactly the chosen rows by rowid. The two statements are atomic: the
	// transaction holds the write lock.
	wClaimUpdate: `UPDATE runs SET status = 'dispatched', attempt = attempt + 1, server_id = ?, worker_id = ''
		WHERE seq IN (SELECT value FROM json_each(?))`,
	wStart: `UPDATE runs SET status = 'running', started_at = ?, worker_id = coalesce(?, worker_id)
		WHERE id = ? AND attempt = ? AND status = 'dispatched'`,
	wFinish: `UPDATE runs SET status = ?,
			finished_at = coalesce(?, finished_at),
			run_at = coalesce(?, run_at),
			worker_id = coalesce(?, worker_id),
			server_id = NULL,
			failures = failures + ?,
			started_at = coalesce(started_at, ?),
			result = coalesce(?, result),
			error = coalesce(?, error)
		WHERE id = ? AND attempt = ? AND status IN ('dispatched', 'running')`,
	wCancel: `UPDATE runs SET status = 'cancelled', finished_at = ?, error = ?, server_id = NULL
		WHERE seq = ? RETURNING ` + runCols,
	wRetry: `UPDATE runs SET status = 'queued', failures = 0, run_at = ?, finished_at = NULL,
			started_at = NULL, error = '', result = NULL, worker_id = '', server_id = NULL
		WHERE seq = ? RETURNING ` + runCols,
	wPromote: `UPDATE runs SET status = 'queued'
		WHERE seq IN (
			SELECT p.seq FROM runs AS p
			WHERE p.status = 'pending' AND p.run_at <= ?
			ORDER BY p.run_at, p.seq
			LIMIT ?)
		RETURNING ` + runCols,
	wLogAppend: `INSERT INTO run_logs (run_id, attempt, time, stream, level, text) VALUES (?,?,?,?,?,?)`,
}

func init() {
	for k := 1; k <= maxClaimTypes; k++ {
		wSQL[wClaimSelect1+wStmt(k-1)] = claimSQL(k)
	}
}

// maxClaimTypes is the most handler types one claim statement takes; a
// claim for more types runs several statements and merges their results.
const maxClaimTypes = 8

// claimSQL selects up to limit queued runs of a group whose type is one of
// k types, in claim order. Arguments: group, then for each type the type
// and the limit, then the limit again.
//
// Each type's queue is its own range of the claim index, read in claim
// order and cut at the limit, so the statement reads at most k×limit index
// entries however many runs of other types are queued ahead (one scan over
// the group with a type filter would walk every queued run of a type no
// worker serves). The k heads are merged and cut at the limit before any
// row is read.
func claimSQL(k int) string {
	var b strings.Builder
	b.WriteString("SELECT " + runCols + " FROM runs WHERE seq IN (SELECT seq FROM (")
	for i := range k {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString(`SELECT * FROM (SELECT seq, priority, run_at FROM runs
			WHERE status = 'queued' AND grp = ?1 AND type = ? ORDER BY priority DESC, run_at, seq LIMIT ?)`)
	}
	b.WriteString(") ORDER BY priority DESC, run_at, seq LIMIT ?)")
	return b.String()
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
	// server_id is set exactly while a worker holds a run; the status test
	// is a second guard. Without INDEXED BY the planner would rather scan
	// the table than walk a partial index with no equality constraint.
	rListActive: `SELECT ` + runCols + ` FROM runs INDEXED BY runs_active
		WHERE server_id IS NOT NULL AND status IN ('dispatched', 'running') ORDER BY seq`,
	rListActiveServer: `SELECT ` + runCols + ` FROM runs INDEXED BY runs_active
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

const numRunCols = 26

// runRow receives one row of runCols on the read pool. Scanning into *any
// is database/sql's fast path (no reflection, no int-to-string-to-int round
// trips); decodeRun converts the driver values.
type runRow struct {
	vals [numRunCols]any
	ptrs [numRunCols]any
}

func newRunRow() *runRow {
	r := new(runRow)
	for i := range r.vals {
		r.ptrs[i] = &r.vals[i]
	}
	return r
}

func scanRun(sc scanner) (*Run, error) {
	return newRunRow().scan(sc)
}

func (rr *runRow) scan(sc scanner) (*Run, error) {
	if err := sc.Scan(rr.ptrs[:]...); err != nil {
		return nil, err
	}
	r := decodeRun(rr.vals[:])
	clear(rr.vals[:])
	return r, nil
}

// decodeRun builds a run from the values of one row of runCols.
func decodeRun[V any](vs []V) *Run {
	v := func(i int) any { return vs[i] }
	r := &Run{
		Seq:         asInt(v(0)),
		ID:          asString(v(1)),
		Job:         asString(v(2)),
		ParentID:    asString(v(3)),
		Type:        asString(v(5)),
		Group:       asString(v(6)),
		Payload:     asJSON(v(7)),
		Priority:    int(asInt(v(8))),
		Status:      store.RunStatus(asString(v(9))),
		Attempt:     int(asInt(v(10))),
		MaxAttempts: int(asInt(v(11))),
		Failures:    int(asInt(v(12))),
		Key:         asString(v(13)),
		LogicalTime: asTime(v(14)),
		RunAt:       asTime(v(15)),
		CreatedAt:   asTime(v(16)),
		StartedAt:   asTime(v(17)),
		FinishedAt:  asTime(v(18)),
		WorkerID:    asString(v(19)),
		ServerID:    asString(v(20)),
		Result:      asJSON(v(21)),
		Error:       asString(v(22)),
		Timeout:     time.Duration(asInt(v(23))),
		Routing:     asString(v(24)),
		RoutingKey:  asString(v(25)),
	}
	if v(4) != nil {
		n := int(asInt(v(4)))
		r.Shard = &n
	}
	return r
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return ""
}

func asJSON(v any) json.RawMessage {
	switch x := v.(type) {
	case string:
		if x == "" {
			return nil
		}
		return json.RawMessage(x)
	case []byte:
		if len(x) == 0 {
			return nil
		}
		return json.RawMessage(x)
	}
	return nil
}

// asTime decodes Unix microseconds; NULL is the zero time.
func asTime(v any) time.Time {
	if v == nil {
		return time.Time{}
	}
	return fromMicro(asInt(v))
}

// Run is store.Run; the alias keeps scanRun short.
type Run = store.Run

func scanRuns(rows *sql.Rows) ([]*Run, error) {
	defer rows.Close()
	var out []*Run
	rr := newRunRow()
	for rows.Next() {
		r, err := rr.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ---- write side ----

func (t *tx) RunInsert(ctx context.Context, runs []store.RunInsertParams) ([]store.RunInsertResult, error) {
	if err := t.check(ctx); err != nil {
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
	out := make([]store.RunInsertResult, len(runs))
	// Runs without a key go in multi-row statements; a keyed run goes alone,
	// so that a conflict on its key can be told apart. Input order is kept,
	// so seq (FIFO) follows it.
	for i := 0; i < len(runs); {
		if runs[i].Key != "" {
			res, err := t.insertKeyed(&runs[i])
			if err != nil {
				return nil, err
			}
			out[i] = res
			i++
			continue
		}
		n := 1
		for i+n < len(runs) && runs[i+n].Key == "" && n < insertChunks[0].rows {
			n++
		}
		for _, c := range insertChunks {
			for n >= c.rows {
				t.bind()
				for j := i; j < i+c.rows; j++ {
					t.bindInsert(&runs[j])
				}
				_, last, err := t.exec("RunInsert", c.stmt)
				if err != nil {
					return nil, err
				}
				// Rowids of one multi-row INSERT are consecutive: each new row
				// gets max(rowid)+1 and nothing else writes in between.
				for j := range c.rows {
					out[i+j] = store.RunInsertResult{Run: insertedRun(&runs[i+j], last-int64(c.rows-1-j))}
				}
				i += c.rows
				n -= c.rows
			}
		}
	}
	return out, nil
}

func (t *tx) insertKeyed(p *store.RunInsertParams) (store.RunInsertResult, error) {
	t.bind()
	t.bindInsert(p)
	n, seq, err := t.exec("RunInsert", wInsert1)
	if err != nil {
		return store.RunInsertResult{}, err
	}
	if n == 0 { // the key names a run already (maybe one earlier in this batch)
		t.bind()
		t.arg(p.Key)
		runs, err := t.queryRuns("RunInsert: existing key", wGetByKey)
		if err != nil {
			return store.RunInsertResult{}, err
		}
		if len(runs) != 1 {
			return store.RunInsertResult{}, fmt.Errorf("sqlite: RunInsert: key %q conflicts but names no run", p.Key)
		}
		return store.RunInsertResult{Run: runs[0], Existing: true}, nil
	}
	return store.RunInsertResult{Run: insertedRun(p, seq)}, nil
}

// bindInsert binds the insertCols values of p.
func (t *tx) bindInsert(p *store.RunInsertParams) {
	var shard driver.Value
	if p.Shard != nil {
		shard = int64(*p.Shard)
	}
	t.arg(p.ID)
	t.arg(p.Job)
	t.arg(p.ParentID)
	t.arg(shard)
	t.arg(p.Type)
	t.arg(p.Group)
	t.arg(nullJSON(p.Payload))
	t.arg(int64(p.Priority))
	t.arg(string(p.Status))
	t.arg(int64(p.MaxAttempts))
	t.arg(nullString(p.Key))
	t.arg(nullMicro(p.LogicalTime))
	t.arg(micro(runAt(p)))
	t.arg(micro(p.Now))
	t.arg(int64(p.Timeout))
	t.arg(p.Routing)
	t.arg(p.RoutingKey)
}

func runAt(p *store.RunInsertParams) time.Time {
	if p.RunAt.IsZero() {
		return p.Now
	}
	return p.RunAt
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
		LogicalTime: truncMicro(p.LogicalTime),
		RunAt:       fromMicro(micro(runAt(p))),
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
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if len(p.Types) == 0 || p.Limit <= 0 {
		return nil, nil
	}
	types := slices.Clone(p.Types)
	slices.Sort(types)
	types = slices.Compact(types)
	var runs []*Run
	for len(types) > 0 {
		k := min(len(types), maxClaimTypes)
		t.bind()
		t.arg(p.Group)
		for _, typ := range types[:k] {
			t.arg(typ)
			t.arg(int64(p.Limit))
		}
		t.arg(int64(p.Limit))
		got, err := t.queryRuns("RunClaim", wClaimSelect1+wStmt(k-1))
		if err != nil {
			return nil, err
		}
		runs = append(runs, got...)
		types = types[k:]
	}
	if len(runs) == 0 {
		return nil, nil
	}
	slices.SortFunc(runs, claimOrder)
	if len(runs) > p.Limit { // several statements (more than maxClaimTypes types)
		runs = runs[:p.Limit]
	}
	seqs := make([]byte, 0, 12*len(runs))
	seqs = append(seqs, '[')
	for i, r := range runs {
		if i > 0 {
			seqs = append(seqs, ',')
		}
		seqs = strconv.AppendInt(seqs, r.Seq, 10)
	}
	seqs = append(seqs, ']')
	t.bind()
	t.arg(p.ServerID)
	t.arg(string(seqs))
	n, _, err := t.exec("RunClaim", wClaimUpdate)
	if err != nil {
		return nil, err
	}
	if n != int64(len(runs)) {
		return nil, fmt.Errorf("sqlite: RunClaim: updated %d of %d runs", n, len(runs))
	}
	for _, r := range runs {
		r.Status = store.StatusDispatched
		r.Attempt++
		r.ServerID = p.ServerID
		r.WorkerID = ""
	}
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

func (t *tx) RunStart(ctx context.Context, ps []store.RunStartParams) ([]bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	out := make([]bool, len(ps))
	for i := range ps {
		p := &ps[i]
		t.bind()
		t.arg(micro(p.Now))
		t.arg(nullString(p.WorkerID))
		t.arg(p.ID)
		t.arg(int64(p.Attempt))
		n, _, err := t.exec("RunStart", wStart)
		if err != nil {
			return nil, err
		}
		out[i] = n > 0
	}
	return out, nil
}

func (t *tx) RunFinish(ctx context.Context, ps []store.RunFinishParams) ([]store.RunFinishResult, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	for i := range ps {
		if s := ps[i].Status; !s.Terminal() && s != store.StatusPending && s != store.StatusQueued {
			return nil, fmt.Errorf("sqlite: RunFinish: run %q: status %q is not terminal, pending or queued", ps[i].ID, s)
		}
	}
	out := make([]store.RunFinishResult, len(ps))
	for i := range ps {
		p := &ps[i]
		var finishedAt, runAt, worker, errText driver.Value
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
			worker = "" // a handed-back run has no worker
		} else {
			worker = nullString(p.WorkerID)
		}
		if p.Error != "" || p.Status == store.StatusSucceeded {
			errText = p.Error
		}
		failure := int64(0)
		if p.Failure {
			failure = 1
		}
		t.bind()
		t.arg(string(p.Status))
		t.arg(finishedAt)
		t.arg(runAt)
		t.arg(worker)
		t.arg(failure)
		t.arg(nullMicro(p.StartedAt))
		t.arg(nullJSON(p.Result))
		t.arg(errText)
		t.arg(p.ID)
		t.arg(int64(p.Attempt))
		n, _, err := t.exec("RunFinish", wFinish)
		if err != nil {
			return nil, err
		}
		out[i] = store.RunFinishResult{ID: p.ID, Accepted: n > 0}
	}
	return out, nil
}

func (t *tx) getForUpdate(op, id string) (*Run, error) {
	t.bind()
	t.arg(id)
	runs, err := t.queryRuns(op, wGetByID)
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("sqlite: %s: run %q: %w", op, id, store.ErrNotFound)
	}
	return runs[0], nil
}

func (t *tx) RunCancel(ctx context.Context, p store.RunCancelParams) (store.RunCancelResult, error) {
	if err := t.check(ctx); err != nil {
		return store.RunCancelResult{}, err
	}
	prev, err := t.getForUpdate("RunCancel", p.ID)
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
	t.bind()
	t.arg(micro(p.Now))
	t.arg(reason)
	t.arg(prev.Seq)
	runs, err := t.queryRuns("RunCancel", wCancel)
	if err != nil {
		return store.RunCancelResult{}, err
	}
	if len(runs) != 1 {
		return store.RunCancelResult{}, fmt.Errorf("sqlite: RunCancel: run %q vanished", p.ID)
	}
	res.Run, res.Changed = runs[0], true
	return res, nil
}

func (t *tx) RunRetry(ctx context.Context, p store.RunRetryParams) (*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	prev, err := t.getForUpdate("RunRetry", p.ID)
	if err != nil {
		return nil, err
	}
	switch prev.Status {
	case store.StatusFailed, store.StatusCancelled, store.StatusTimedOut, store.StatusSkipped:
	default:
		return nil, fmt.Errorf("sqlite: RunRetry: run %q is %s: %w", p.ID, prev.Status, store.ErrConflict)
	}
	t.bind()
	t.arg(micro(p.Now))
	t.arg(prev.Seq)
	runs, err := t.queryRuns("RunRetry", wRetry)
	if err != nil {
		return nil, err
	}
	if len(runs) != 1 {
		return nil, fmt.Errorf("sqlite: RunRetry: run %q vanished", p.ID)
	}
	return runs[0], nil
}

func (t *tx) RunPromote(ctx context.Context, p store.RunPromoteParams) ([]*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	t.bind()
	t.arg(micro(p.Now))
	t.arg(int64(p.Limit))
	runs, err := t.queryRuns("RunPromote", wPromote)
	if err != nil {
		return nil, err
	}
	// RETURNING has no defined order; promote order is run_at, then seq.
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
// the previous page, in decimal. The walk goes down the rowid (newest
// first) and tests the filters on each run, so a filter that matches few of
// many runs reads many; it serves the console and the API, not the
// scheduler, and retention keeps the table bounded.
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
