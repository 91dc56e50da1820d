package sqlite

import (
	"cmp"
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// runCols is the column list every run query selects or returns, in the
// order scanRun reads it. The delivery state of a run with a callback URL
// comes as one JSON array (decodeCallback): runs without one, nearly all,
// then cost one NULL column, not five.
const runCols = `seq, id, job, parent_id, shard, type, grp, payload, priority, status,
	attempt, max_attempts, failures, key, logical_time, run_at, created_at, started_at,
	finished_at, worker_id, server_id, result, error, timeout, routing, routing_key,
	callback_url, CASE WHEN callback_url IS NOT NULL THEN json_array(callback_state, callback_attempts,
		callback_next_at, callback_error, callback_delivered_at) END, lost, dispatched_at, shard_count, split`

// Writer statements, prepared once on the writer connection. Hot
// statements use plain "?" placeholders: the driver binds them without
// looking up a parameter name.
type wStmt int

const (
	wInsertOne wStmt = iota // RunInsert, one run that may conflict (see insertOneSQL)
	wInsert1                // RunInsert, 1 plain run
	wInsert4                // … 4 plain runs (no key, no slot, not skipped)
	wInsert16               // … 16
	wInsert64               // … 64
	wGetByID
	wGetByKey
	wClaimUpdate
	wStart
	wFinish
	wCancel
	wRetry
	wPromote
	wChunkInsert1  // logs.go: 1 chunk of log lines
	wChunkInsert16 // … 16 chunks
	wChunkMove     // logdb.go: a chunk of moved lines
	wLogLastSeq    // logs.go
	wLogStatsMove  // logdb.go
	wLogState      // logs.go
	wLogStatsPut   // logs.go
	wStartFenced   // wStart AND server_id = ?
	wFinishFenced  // wFinish AND server_id = ?
	wAdopt
	wRequeueLost
	wLeaderElect
	wLeaderGet
	wLeaderResign
	wServerUpsert
	wServerDelete
	wGetBySlot
	wJobPut
	wJobDelete
	wJobPause
	wJobListDue
	wJobAdvance
	wListActiveForJob
	wUnblockNext
	wFinishCallback       // wFinish of a run with a callback URL (callbacks.go)
	wFinishCallbackFenced // … AND server_id = ?
	wCallbackListDue
	wCallbackRecord
	wTokenCreate       // tokens.go
	wTokenBootstrap    // tokens.go
	wTokenRevoke       // tokens.go
	wAuditAppend       // tokens.go
	wAuditDelete       // tokens.go
	wEndedAdd          // ended.go
	wEndedDelete       // ended.go
	wRetWalkRuns       // retention.go
	wRetWalkEnded      // retention.go
	wRetWalkJob        // retention.go
	wRetKeepFrom       // retention.go
	wRetDeleteRun      // retention.go
	wPurgeNote         // retention.go: a deleted run's log lines to purge
	wPurgeDone         // … purged
	wPurgeLogs         // logdb.go, on the log lines' database
	wPurgeLogStats     // …
	wRetDeleteAudit    // retention.go
	wRetDeleteAttempts // retention.go
	wAttemptFinish     // attempts.go
	wAttemptFenced     // attempts.go: wAttemptFinish AND server_id = ?
	wAttemptLost       // attempts.go
	wAttemptPut        // attempts.go
	wCountAdd          // stats.go
	wCountStarted      // stats.go
	wCountFinished     // stats.go
	wRateAdd           // rates.go
	wLatencyAdd        // rates.go
	wRatePrune         // rates.go
	wLatencyPrune      // rates.go
	wListSlots         // deps.go
	wGateQueue         // deps.go
	wGateSkip          // deps.go
	wGateReblock       // deps.go
	wBackfillCreate    // backfill.go
	wBackfillUpdate    // backfill.go
	wAlertInsert       // alerts.go
	wAlertListDue      // alerts.go
	wAlertRecord       // alerts.go
	wAlertDelete       // alerts.go
	wGroupAlertsPut    // alerts.go
	wGroupAlertsDelete // alerts.go
	wFanoutParent      // fanout.go
	wFanoutCreate      // fanout.go
	wFanoutChildren1   // fanout.go: 1 child
	wFanoutChildren16  // … 16
	wFanoutChildren256 // … 256
	wFanoutGet         // fanout.go
	wFanoutSetMerge    // fanout.go
	wFanoutFinish      // fanout.go
	wFanoutDone        // fanout.go
	wFanoutReopen      // fanout.go
	wFanoutReopenRow   // fanout.go
	wFanoutCount       // fanout.go
	wFanoutResults     // fanout.go
	wRetDeleteFanout   // retention.go
	wFanoutExpand      // fanout.go
	wFanoutMapRow      // fanout_map.go
	wFanoutRelease     // fanout_map.go
	wFanoutOpen        // fanout_map.go
	wSplitSet          // split.go
	wClaimSelect1      // RunClaim for k types is wClaimSelect1 + k - 1
	wClaimSelect8      = wClaimSelect1 + maxClaimTypes - 1
	numWStmts          = wClaimSelect1 + maxClaimTypes
)

const insertCols = `id, job, parent_id, shard, type, grp, payload, priority, status,
	max_attempts, key, logical_time, run_at, created_at, timeout, routing, routing_key`

const numInsertCols = 17

func insertSQL(rows int) string {
	row := "(?" + strings.Repeat(",?", numInsertCols-1) + ")"
	return "INSERT INTO runs (" + insertCols + ") VALUES " + row + strings.Repeat(","+row, rows-1)
}

// insertOneSQL inserts one run that may conflict: on its idempotency key or
// on its job's slot (job, logical_time). Either conflict inserts nothing. It
// also sets finished_at and error, which only a skipped run has at insert,
// and the callback columns (a skipped run with a callback URL owes its
// delivery at once), so the multi-row statements of the hot path bind five
// values fewer.
func insertOneSQL() string {
	return "INSERT INTO runs (" + insertCols + ", finished_at, error, callback_url, callback_state, callback_next_at) VALUES (?" +
		strings.Repeat(",?", numInsertCols+4) + ")" +
		" ON CONFLICT (key) WHERE key IS NOT NULL DO NOTHING" +
		" ON CONFLICT (job, logical_time) WHERE job <> '' AND logical_time IS NOT NULL DO NOTHING"
}

// insertChunks are the multi-row insert statements, largest first.
var insertChunks = []struct {
	rows int
	stmt wStmt
}{{64, wInsert64}, {16, wInsert16}, {4, wInsert4}, {1, wInsert1}}

var wSQL = [numWStmts]string{
	wInsertOne: insertOneSQL(),
	wInsert1:   insertSQL(1),
	wInsert4:   insertSQL(4),
	wInsert16:  insertSQL(16),
	wInsert64:  insertSQL(64),
	wGetByID:   `SELECT ` + runCols + ` FROM runs WHERE id = ?`,
	wGetByKey:  `SELECT ` + runCols + ` FROM runs WHERE key = ?`,
	wGetBySlot: getBySlotSQL,
	// RunClaim reads the heads of the group's per-type queues from the
	// partial claim index (wClaimSelect1…, see claimSQL), then updates
	// exactly the chosen rows by rowid. The two statements are atomic: the
	// transaction holds the write lock. The new attempt has not started:
	// started_at is cleared with the old attempt's worker.
	wClaimUpdate: `UPDATE runs SET status = 'dispatched', attempt = attempt + 1, server_id = ?, worker_id = '',
			dispatched_at = ?, started_at = NULL
		WHERE seq IN (SELECT value FROM json_each(?))`,
	wStart:        startSQL,
	wStartFenced:  startSQL + fenced,
	wFinish:       finishSQL + noCallback,
	wFinishFenced: finishSQL + noCallback + fenced,
	// A cancelled run with a callback URL owes its delivery from now on.
	wCancel: `UPDATE runs SET status = 'cancelled', finished_at = ?1, error = ?2, server_id = NULL,
			callback_state = CASE WHEN callback_url IS NULL THEN callback_state ELSE 'pending' END,
			callback_next_at = CASE WHEN callback_url IS NULL THEN callback_next_at ELSE ?1 END
		WHERE seq = ?3 RETURNING ` + runCols,
	// A retried run delivers its next outcome; one not yet delivered is dropped.
	wRetry: `UPDATE runs SET status = ?, failures = 0, lost = 0, run_at = ?, finished_at = NULL,
			dispatched_at = NULL, started_at = NULL, error = '', result = NULL, worker_id = '', server_id = NULL,
			callback_state = '', callback_attempts = 0, callback_next_at = NULL, callback_error = '',
			callback_delivered_at = NULL
		WHERE seq = ? RETURNING ` + runCols,
	wPromote: `UPDATE runs SET status = 'queued'
		WHERE seq IN (
			SELECT p.seq FROM runs AS p
			WHERE p.status = 'pending' AND p.run_at <= ?
			ORDER BY p.run_at, p.seq
			LIMIT ?)
		RETURNING ` + runCols,
	wChunkInsert1:  chunkInsertSQL("INSERT", 1),
	wChunkInsert16: chunkInsertSQL("INSERT", 16),
	wChunkMove:     chunkInsertSQL("INSERT OR IGNORE", 1),
	wLogLastSeq:    `SELECT coalesce(max(last_seq), 0) FROM log_chunks`,
	wLogStatsMove:  `INSERT OR IGNORE INTO run_log_stats (run_id, lines, bytes, dropped) VALUES (?, ?, ?, ?)`,
	wLogState:      `SELECT lines, bytes, dropped FROM run_log_stats WHERE run_id = ?`,
	wLogStatsPut: `INSERT INTO run_log_stats (run_id, lines, bytes, dropped) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (run_id) DO UPDATE SET lines = ?2, bytes = ?3, dropped = ?4`,
	wAdopt: `UPDATE runs SET server_id = ?
		WHERE id = ? AND attempt = ? AND status IN ('dispatched', 'running')`,
	// The active runs whose server is not registered or was last seen
	// before the cut-off, oldest first.
	wRequeueLost: `UPDATE runs SET status = 'queued', prev_status = status, server_id = NULL, worker_id = ''
		WHERE seq IN (
			SELECT a.seq FROM runs AS a INDEXED BY runs_active
			WHERE a.server_id IS NOT NULL AND a.status IN ('dispatched', 'running')
				AND NOT EXISTS (SELECT 1 FROM servers AS s WHERE s.id = a.server_id AND s.last_seen >= ?)
			ORDER BY a.seq
			LIMIT ?)
		RETURNING ` + runCols + `, prev_status`,
	// One statement decides and writes, under the write lock: insert term
	// 1; or renew (same term) when ServerID holds an unexpired lease; or
	// take an expired lease with the next term. Otherwise nothing changes
	// and no row comes back. Arguments: server, expires_at, now.
	wLeaderElect: `INSERT INTO leader (name, server_id, term, expires_at) VALUES ('leader', ?1, 1, ?2)
		ON CONFLICT (name) DO UPDATE SET
			server_id = excluded.server_id,
			term = CASE WHEN leader.expires_at > ?3 THEN leader.term ELSE leader.term + 1 END,
			expires_at = excluded.expires_at
		WHERE leader.expires_at <= ?3 OR leader.server_id = excluded.server_id
		RETURNING server_id, term, expires_at`,
	wLeaderGet:    `SELECT server_id, term, expires_at FROM leader WHERE name = 'leader'`,
	wLeaderResign: `UPDATE leader SET expires_at = ? WHERE name = 'leader' AND server_id = ? AND term = ?`,
	wServerUpsert: `INSERT INTO servers (id, http, grpc, started_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?5)
		ON CONFLICT (id) DO UPDATE SET http = ?2, grpc = ?3, started_at = ?4, last_seen = ?5`,
	wServerDelete: `DELETE FROM servers WHERE id = ?`,
	// Jobs (jobs.go).
	wJobPut:           jobPutSQL,
	wJobDelete:        `DELETE FROM jobs WHERE name = ?`,
	wJobPause:         jobPauseSQL,
	wJobListDue:       jobListDueSQL,
	wJobAdvance:       jobAdvanceSQL,
	wListActiveForJob: listActiveForJobSQL(),
	wUnblockNext:      unblockNextSQL(),
}

// The hot start and finish statements, and their variants fenced by the
// server holding the run.
const (
	startSQL = `UPDATE runs SET status = 'running', started_at = ?, worker_id = coalesce(?, worker_id)
		WHERE id = ? AND attempt = ? AND status = 'dispatched'`
	finishSQL = `UPDATE runs SET status = ?, prev_status = status,
			finished_at = coalesce(?, finished_at),
			run_at = coalesce(?, run_at),
			worker_id = coalesce(?, worker_id),
			server_id = NULL,
			failures = failures + ?,
			lost = lost + ?,
			started_at = coalesce(started_at, ?),
			result = coalesce(?, result),
			error = coalesce(?, error)
		WHERE id = ? AND attempt = ? AND status IN ('dispatched', 'running')`
	fenced = ` AND server_id = ?`
	// noCallback keeps the hot finish to runs without a callback URL; a
	// finish it does not apply is tried again with wFinishCallback.
	noCallback = ` AND callback_url IS NULL`
)

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
	rCountByGroup
	rLogAttempts // logdb.go
	rLeaderGet
	rServerList
	rJobGet
	rJobList
	rJobNextFire
	rCallbackNextAt // callbacks.go
	rTokenGet       // tokens.go
	rTokenGetByHash // tokens.go
	rTokenList      // tokens.go
	rTokenCount     // tokens.go
	rStatsCounts    // stats.go
	rStatsHead      // stats.go
	rCallbacksOwed  // stats.go
	rRatesRange     // rates.go
	rLatency        // rates.go
	rSeries         // rates.go
	rAttempts       // attempts.go
	rAlertNextAt    // alerts.go
	rGroupAlerts    // alerts.go
	rFanoutJoinable // fanout.go
	rFanoutGet      // fanout.go
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
	rCountByGroup:  countByGroupSQL,
	rLogAttempts:   `SELECT id, attempt FROM runs WHERE id IN (SELECT value FROM json_each(?))`,
	rLeaderGet:     `SELECT server_id, term, expires_at FROM leader WHERE name = 'leader'`,
	rServerList:    `SELECT id, http, grpc, started_at, last_seen FROM servers ORDER BY id`,
	// Jobs (jobs.go).
	rJobGet:      `SELECT ` + jobCols + ` FROM jobs WHERE name = ?`,
	rJobList:     `SELECT ` + jobCols + ` FROM jobs ORDER BY name`,
	rJobNextFire: `SELECT min(next_fire) FROM jobs WHERE paused = 0 AND next_fire IS NOT NULL`,
}

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
		if err := store.CheckRunSplit(p); err != nil {
			return nil, fmt.Errorf("sqlite: RunInsert: %w", err)
		}
	}
	splits, err := store.SplitDocs(runs)
	if err != nil {
		return nil, fmt.Errorf("sqlite: RunInsert: %w", err)
	}
	out := make([]store.RunInsertResult, len(runs))
	// Plain runs go in multi-row statements; a run that may conflict (a key,
	// a job's slot) or is skipped goes alone (insertOne), so that a conflict
	// can be told apart. Input order is kept, so seq (FIFO) follows it.
	for i := 0; i < len(runs); {
		if alone(&runs[i]) {
			res, err := t.insertOne(&runs[i])
			if err != nil {
				return nil, err
			}
			out[i] = res
			i++
			continue
		}
		n := 1
		for i+n < len(runs) && !alone(&runs[i+n]) && n < insertChunks[0].rows {
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
					p := &runs[i+j]
					out[i+j] = store.RunInsertResult{Run: insertedRun(p, last-int64(c.rows-1-j))}
					t.counts.Add(p.Group, p.Job, p.Status, 1)
				}
				i += c.rows
				n -= c.rows
			}
		}
	}
	if splits != nil {
		if err := t.setSplits(runs, splits, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// alone reports whether p is inserted by itself (insertOne) rather than
// in a multi-row statement: its insert may conflict, on its idempotency key
// or on its job's slot, or it sets finished_at and error (a skipped run).
func alone(p *store.RunInsertParams) bool {
	return p.Key != "" || (p.Job != "" && !p.LogicalTime.IsZero()) ||
		p.Status == store.StatusSkipped || p.Error != "" || p.CallbackURL != ""
}

func (t *tx) insertOne(p *store.RunInsertParams) (store.RunInsertResult, error) {
	t.bind()
	t.bindInsert(p)
	var finishedAt driver.Value
	if p.Status == store.StatusSkipped {
		finishedAt = micro(p.Now)
	}
	t.arg(finishedAt)
	t.arg(p.Error)
	var cbState, cbNext driver.Value = "", nil
	if p.CallbackURL != "" && p.Status == store.StatusSkipped {
		cbState, cbNext = string(store.CallbackPending), finishedAt
	}
	t.arg(nullString(p.CallbackURL))
	t.arg(cbState)
	t.arg(cbNext)
	n, seq, err := t.exec("RunInsert", wInsertOne)
	if err != nil {
		return store.RunInsertResult{}, err
	}
	if n > 0 && p.Status == store.StatusSkipped {
		err = t.ended("RunInsert", p.ID)
	}
	if n > 0 {
		t.counts.Add(p.Group, p.Job, p.Status, 1)
		t.rates.Ended(p.Group, p.Job, p.Status, p.Now, 1) // a skipped run ends now
		return store.RunInsertResult{Run: insertedRun(p, seq)}, err
	}
	return t.existingRun(p)
}

// existingRun returns the run that holds p's key or slot, which refused
// p's insert (maybe one earlier in this batch). The key is looked up
// first: it names the run the caller meant.
func (t *tx) existingRun(p *store.RunInsertParams) (store.RunInsertResult, error) {
	if p.Key != "" {
		t.bind()
		t.arg(p.Key)
		runs, err := t.queryRuns("RunInsert: existing key", wGetByKey)
		if err != nil {
			return store.RunInsertResult{}, err
		}
		if len(runs) == 1 {
			return store.RunInsertResult{Run: runs[0], Existing: true}, nil
		}
	}
	if p.Job != "" && !p.LogicalTime.IsZero() {
		t.bind()
		t.arg(p.Job)
		t.arg(micro(p.LogicalTime))
		runs, err := t.queryRuns("RunInsert: existing slot", wGetBySlot)
		if err != nil {
			return store.RunInsertResult{}, err
		}
		if len(runs) == 1 {
			return store.RunInsertResult{Run: runs[0], Existing: true}, nil
		}
	}
	return store.RunInsertResult{}, fmt.Errorf("sqlite: RunInsert: run %q conflicts but neither its key nor its slot names a run", p.ID)
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
	t.arg(micro(p.EffectiveRunAt()))
	t.arg(micro(p.Now))
	t.arg(int64(p.Timeout))
	t.arg(p.Routing)
	t.arg(p.RoutingKey)
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
		RunAt:       fromMicro(micro(p.EffectiveRunAt())),
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
	if p.Status == store.StatusSkipped {
		r.FinishedAt = r.CreatedAt
	}
	r.Error = p.Error
	r.CallbackURL = p.CallbackURL
	if p.CallbackURL != "" && p.Status == store.StatusSkipped {
		r.Callback = store.Callback{State: store.CallbackPending, NextAt: r.FinishedAt}
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
	t.arg(micro(p.Now))
	t.arg(string(seqs))
	n, _, err := t.exec("RunClaim", wClaimUpdate)
	if err != nil {
		return nil, err
	}
	if n != int64(len(runs)) {
		return nil, fmt.Errorf("sqlite: RunClaim: updated %d of %d runs", n, len(runs))
	}
	for _, r := range runs {
		t.counts.Move(r.Group, r.Job, r.Status, store.StatusDispatched)
		r.Status = store.StatusDispatched
		r.Attempt++
		r.ServerID = p.ServerID
		r.WorkerID = ""
		r.DispatchedAt = fromMicro(micro(p.Now))
		r.StartedAt = time.Time{}
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
		st := wStart
		if p.ServerID != "" {
			t.arg(p.ServerID)
			st = wStartFenced
		}
		n, _, err := t.exec("RunStart", st)
		if err != nil {
			return nil, err
		}
		if out[i] = n > 0; out[i] {
			*t.moved = append(*t.moved, p.ID)
		}
	}
	if err := t.countMoved("RunStart", wCountStarted); err != nil {
		return nil, err
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
		if !p.Status.Terminal() {
			if err := t.recordFinished(p); err != nil {
				return nil, err
			}
		}
		t.bind()
		t.arg(string(p.Status))
		t.arg(finishedAt)
		t.arg(runAt)
		t.arg(worker)
		t.arg(failure)
		t.arg(boolInt(p.Lost))
		t.arg(nullMicro(p.StartedAt))
		t.arg(nullJSON(p.Result))
		t.arg(errText)
		t.arg(p.ID)
		t.arg(int64(p.Attempt))
		st, cb := wFinish, wFinishCallback
		if p.ServerID != "" {
			t.arg(p.ServerID)
			st, cb = wFinishFenced, wFinishCallbackFenced
		}
		n, _, err := t.exec("RunFinish", st)
		if err != nil {
			return nil, err
		}
		out[i] = store.RunFinishResult{ID: p.ID, Accepted: n > 0}
		if n == 0 {
			// Rejected, or a run with a callback URL: its finish also makes
			// the delivery pending when the run ends (same arguments).
			if n, _, err = t.exec("RunFinish", cb); err != nil {
				return nil, err
			}
			out[i] = store.RunFinishResult{ID: p.ID, Accepted: n > 0, Callback: n > 0 && p.Status.Terminal()}
		}
		if out[i].Accepted {
			*t.moved = append(*t.moved, p.ID)
		}
		if out[i].Accepted && endsListed(p.Status) {
			if err := t.ended("RunFinish", p.ID); err != nil {
				return nil, err
			}
		}
	}
	if err := t.countMoved("RunFinish", wCountFinished); err != nil {
		return nil, err
	}
	return out, nil
}
