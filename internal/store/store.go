// Package store defines Pluto's storage contract: the domain types the
// scheduler persists and the Store interface every backend implements.
//
// The engine talks to storage only through this interface. Every backend
// (internal/store/sqlite, internal/store/postgres) must pass the shared
// conformance suite in internal/store/storetest.
//
// Rules every backend follows:
//
//   - Time is passed in (Params.Now); a backend never reads the wall clock
//     for a state change, so tests control time.
//   - Every state change of a run is conditional on the state the caller
//     expects. Reports are fenced by attempt: a change that names an attempt
//     that is no longer the run's current one is rejected, never applied.
//   - A claim moves a queued run to dispatched and increments its attempt in
//     one atomic step; no run is ever handed out twice, even to concurrent
//     claimers (several servers on one PostgreSQL).
//   - Writes happen inside Store.Tx so the engine can group-commit many
//     state changes in one transaction; Tx returns only after commit.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Sentinel errors. Backends wrap them with %w.
var (
	ErrNotFound = errors.New("store: not found")
	// ErrConflict reports a state change whose precondition did not hold
	// (for example retrying a run that is still running).
	ErrConflict = errors.New("store: conflict")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("store: closed")
	// ErrInvalidCursor reports a list cursor the store did not issue.
	ErrInvalidCursor = errors.New("store: invalid cursor")
)

// RunStatus is a run's lifecycle state (docs/state-machine.md).
type RunStatus string

const (
	StatusPending    RunStatus = "pending"    // waiting for run_at (delay, retry backoff)
	StatusBlocked    RunStatus = "blocked"    // waiting for upstream runs
	StatusQueued     RunStatus = "queued"     // ready, waiting for a worker
	StatusDispatched RunStatus = "dispatched" // sent to a worker, not yet started
	StatusRunning    RunStatus = "running"    // the worker started it
	StatusSucceeded  RunStatus = "succeeded"
	StatusFailed     RunStatus = "failed"
	StatusCancelled  RunStatus = "cancelled"
	StatusTimedOut   RunStatus = "timed_out"
	StatusSkipped    RunStatus = "skipped"
)

// AllStatuses lists every status in lifecycle order.
var AllStatuses = []RunStatus{
	StatusPending, StatusBlocked, StatusQueued, StatusDispatched, StatusRunning,
	StatusSucceeded, StatusFailed, StatusCancelled, StatusTimedOut, StatusSkipped,
}

// Terminal reports whether no further transition leaves s.
func (s RunStatus) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusCancelled, StatusTimedOut, StatusSkipped:
		return true
	}
	return false
}

// Active reports whether a worker holds the run (dispatched or running).
func (s RunStatus) Active() bool { return s == StatusDispatched || s == StatusRunning }

// Valid reports whether s is a known status.
func (s RunStatus) Valid() bool {
	for _, v := range AllStatuses {
		if v == s {
			return true
		}
	}
	return false
}

// Run is one execution of a job or a one-shot submission. It copies its spec
// at creation. Optional times are zero when unset.
type Run struct {
	ID       string
	Seq      int64 // insertion order; FIFO tie-break and list cursor
	Job      string
	ParentID string
	Shard    *int
	// ShardCount is, on a fan-out's parent and on each of its children,
	// the number of children (fanout.go); 0 otherwise.
	ShardCount  int
	Type        string
	Group       string
	Payload     json.RawMessage // JSON; nil means null
	Priority    int
	Status      RunStatus
	Attempt     int // current attempt; 0 before the first dispatch. The fencing token.
	MaxAttempts int // attempts that may end in failure before the run fails
	Failures    int // attempts that ended in failure or timeout
	// Lost counts attempts lost with their worker (it died or went away
	// while holding the run); the engine bounds it (a run that kills its
	// worker must not be retried forever).
	Lost        int
	Key         string
	LogicalTime time.Time
	RunAt       time.Time
	CreatedAt   time.Time
	// DispatchedAt is when the current attempt was claimed and StartedAt
	// when it started (zero until then).
	DispatchedAt time.Time
	StartedAt    time.Time
	FinishedAt   time.Time
	WorkerID     string
	ServerID     string // server holding the current attempt
	Result       json.RawMessage
	Error        string
	Timeout      time.Duration // 0: none
	Routing      string
	RoutingKey   string
	// CallbackURL, if set, is where the run's outcome is POSTed once it is
	// terminal; Callback is the state of that delivery (callbacks.go).
	CallbackURL string
	Callback    Callback
	// Split, if not nil, makes the run a fan-out's parent when it is
	// dispatched (FanoutExpand): a sharded job's run, or a broadcast.
	Split *Split
}

// RunInsertParams is one new run. ID is chosen by the caller.
type RunInsertParams struct {
	ID          string
	Job         string
	ParentID    string
	Shard       *int
	Type        string
	Group       string
	Payload     json.RawMessage
	Priority    int
	Status      RunStatus // pending, blocked, queued or skipped (finished at Now)
	MaxAttempts int
	Key         string // idempotency key; "" for none
	LogicalTime time.Time
	RunAt       time.Time
	Timeout     time.Duration
	Routing     string
	RoutingKey  string
	Error       string    // why a skipped run was skipped; "" otherwise
	CallbackURL string    // "" for none; a skipped run's delivery is pending at once
	Split       *Split    // nil for none (see Run.Split); not on a fan-out's child
	Now         time.Time // created_at
}

// RunInsertResult is the outcome of one insert. When the key already named
// a run, Run is that existing run and Existing is true; nothing was written.
type RunInsertResult struct {
	Run      *Run
	Existing bool
}

// RunClaimParams claims up to Limit queued runs of Group, highest priority
// first, then earliest run_at, then insertion order. Only runs whose type is
// in Types are claimed (empty Types claims nothing). Each claimed run
// becomes dispatched with attempt+1, ServerID and WorkerID set (WorkerID may
// be "" when the engine routes after the claim), dispatched at Now, and not
// started (its StartedAt is the new attempt's).
type RunClaimParams struct {
	Group    string
	Types    []string
	Limit    int
	ServerID string
	Now      time.Time // dispatched_at
}

// RunStartParams marks a dispatched attempt running.
type RunStartParams struct {
	ID       string
	Attempt  int
	WorkerID string
	// ServerID, if not empty, fences the change: it applies only while this
	// server holds the run (another server may have adopted it).
	ServerID string
	Now      time.Time // started_at
}

// RunFinishParams ends an active attempt (dispatched or running). Status is
// the run's next status: a terminal one, or pending (retry after backoff, at
// RunAt), or queued (a lost attempt handed back). Failure says whether the
// attempt counts as a failure (failures+1). A finish whose Status is not
// terminal records the attempt in the run's history (attempts.go).
type RunFinishParams struct {
	ID      string
	Attempt int
	Status  RunStatus
	RunAt   time.Time // for pending
	Result  json.RawMessage
	Error   string
	Failure bool
	// TimedOut says the attempt ran out of time: a retry records it as
	// timed_out rather than failed.
	TimedOut bool
	// Lost says the attempt was lost with its worker (lost+1).
	Lost      bool
	StartedAt time.Time // used when the run had not been marked running
	WorkerID  string
	// ServerID, if not empty, fences the change: it applies only while this
	// server holds the run.
	ServerID string
	Now      time.Time // finished_at for terminal statuses
}

// RunAdoptParams moves the current attempt of an active run to ServerID
// (its worker reconnected to that server, or the server restarted under a
// new id). Applied only while the run is active at Attempt.
type RunAdoptParams struct {
	ID       string
	Attempt  int
	ServerID string
}

// RunRequeueLostParams returns to the queue the active runs held by servers
// that are gone: not in the servers table, or last seen before
// StaleBefore. Their attempts are lost, not failed (failures unchanged).
type RunRequeueLostParams struct {
	StaleBefore time.Time
	Limit       int
	Now         time.Time
}

// RunFinishResult reports whether one finish was applied. A finish is
// rejected when the run is not active or its attempt is not Attempt.
type RunFinishResult struct {
	ID       string
	Accepted bool
	// Callback reports that the finish made the run terminal and it has a
	// callback URL: its delivery became pending, due at Now.
	Callback bool
}

// RunCancelParams cancels a run wherever it is. Cancelling a terminal run is
// a no-op that returns the run unchanged (Changed false).
type RunCancelParams struct {
	ID     string
	Reason string
	Now    time.Time
}

// RunCancelResult carries the run after the cancel and what it was before.
type RunCancelResult struct {
	Run        *Run
	Prev       RunStatus
	PrevWorker string
	Changed    bool
}

// RunRetryParams puts a terminal run that did not succeed back into the
// queue with a fresh attempt budget (failures reset). Its callback delivery
// state is reset too (a delivery of the earlier outcome not yet made is
// dropped; the new outcome is delivered when the run ends again). The
// attempt it ended with is recorded in its history (RetryAttempt). Runs
// in other states give ErrConflict.
type RunRetryParams struct {
	// Succeeded allows a succeeded run to be retried too (a backfill's
	// rerun all); otherwise it is ErrConflict.
	Succeeded bool
	// Blocked makes the retried run blocked rather than queued: a run of
	// a job with dependencies, which its upstream runs decide again.
	Blocked bool
	ID      string
	Now     time.Time
}

// RunPromoteParams moves pending runs whose run_at <= Now to queued, at most
// Limit of them (earliest first).
type RunPromoteParams struct {
	Now   time.Time
	Limit int
}

// RunListParams filters and pages a run listing, newest first (by Seq)
// unless Order is OrderAsc. Every filter set must hold (AND); zero values
// filter nothing. Time ranges are half-open: After inclusive, Before
// exclusive.
type RunListParams struct {
	// Parent lists the children of a fan-out's parent (fanout.go).
	Parent   string
	Statuses []RunStatus
	Group    string
	Job      string
	Type     string
	WorkerID string // the worker of the run's last attempt
	// CreatedAfter/Before bound created_at, FinishedAfter/Before
	// finished_at (a finished bound lists terminal runs only).
	CreatedAfter, CreatedBefore   time.Time
	FinishedAfter, FinishedBefore time.Time
	// ErrorContains lists runs whose error contains it (bytes, case
	// sensitive). With no Statuses it lists failed and timed_out runs only.
	ErrorContains string
	Order         ListOrder
	Limit         int    // default 100, max 1000
	Cursor        string // opaque, from RunPage.NextCursor
	// ScanBudget bounds the runs one page examines for filters no index
	// answers (0: ListScanBudget). A page that spends it before filling up
	// is short but has a NextCursor: the listing goes on from there.
	ScanBudget int
}

// ListOrder is a listing's order by Seq (creation order).
type ListOrder string

const (
	OrderDesc ListOrder = "desc" // newest first, the default
	OrderAsc  ListOrder = "asc"  // oldest first
)

// RunPage is one page of runs; NextCursor is "" on the last page. A page
// may hold fewer than the limit and still have a NextCursor (the scan
// budget, RunListParams.ScanBudget); only an empty cursor ends a listing.
type RunPage struct {
	Runs       []*Run
	NextCursor string
}

// RunListActiveParams lists runs that a worker holds (dispatched or
// running), optionally only those held by ServerID.
type RunListActiveParams struct {
	ServerID string
}

// GroupCount is the number of runs in one status of one group.
type GroupCount struct {
	Group  string
	Status RunStatus
	Count  int
}

// LogLine is one line a run printed or logged.
type LogLine struct {
	RunID   string
	Attempt int
	Time    time.Time
	Stream  string // stdout, stderr, log
	Level   string
	Text    string
}

// LogListParams pages a run's log lines in order, after line number After.
type LogListParams struct {
	RunID string
	After int64
	Limit int
}

// LogAppendParams appends log lines under per-run caps. A run keeps at
// most MaxLines lines and MaxBytes bytes of text, all its attempts
// together (zero: no cap); the lines past a cap are dropped and counted,
// and when a run first drops a line one marker line (LogCapMarker) is
// stored after its last kept line. Once a run dropped a line it keeps
// dropping: raising the caps later does not reopen it.
//
// A line is stored only if its Attempt is the run's current attempt: a
// worker that lost its attempt can no longer write into the run's log.
// Lines of unknown runs are dropped the same way (fenced).
//
// Dropped adds counts of lines dropped before they reached the store (a
// server that knows a run is capped drops its lines early) to the runs'
// counts.
type LogAppendParams struct {
	Lines    []LogLine
	MaxLines int64
	MaxBytes int64
	Dropped  map[string]int64
}

// LogAppendResult is what LogAppend did with the lines it was given.
type LogAppendResult struct {
	Dropped int      // lines dropped by the caps (the marker not counted)
	Fenced  int      // lines dropped because their attempt is not the run's current one
	Capped  []string // the runs now at a cap, in no order: their next lines will be dropped
}

// LogStats are a run's log counters: the lines and text bytes stored
// (the cap marker not counted) and the lines dropped past the caps.
type LogStats struct {
	Lines   int64
	Bytes   int64
	Dropped int64
}

// LogEntry is a stored line with its sequence number.
type LogEntry struct {
	Seq int64
	LogLine
}

// Leader is the holder of the leader lease. Term grows by one every time
// the lease changes hands or lapses; a server leads only while it holds the
// lease at the term it won.
type Leader struct {
	ServerID  string
	Term      int64
	ExpiresAt time.Time
}

// LeaderElectParams asks for the lease: take it when it is free or expired
// (a new term), or renew it when ServerID holds it (same term).
type LeaderElectParams struct {
	ServerID string
	TTL      time.Duration
	Now      time.Time
}

// ServerInfo is one server's registration; LastSeen is renewed while it
// lives. It is the lease under which the server holds its runs.
type ServerInfo struct {
	ID        string
	HTTP      string
	GRPC      string
	StartedAt time.Time
	LastSeen  time.Time
}

// Notification is a message one server publishes to all (PostgreSQL
// LISTEN/NOTIFY). Topics are short names; payloads are small strings.
type Notification struct {
	Topic   string
	Payload string
}

// Notification topics.
const (
	TopicQueued   = "queued"   // payload: a group that has new queued runs
	TopicPending  = "pending"  // payload: the Unix microseconds of a new pending run's run_at
	TopicFinished = "finished" // payload: comma-separated ids of watched runs that reached a terminal status
	TopicWatch    = "watch"    // payload: a run id some server's client waits on
	TopicJobs     = "jobs"     // payload: a job name whose schedule changed (the leader re-arms its cron timer)
	TopicCallback = "callback" // payload: the Unix microseconds at which a new callback delivery is due
	TopicAlert    = "alert"    // payload: the Unix microseconds at which a new alert delivery is due
	// TopicTokens: payload: the name of a token that was revoked or
	// changed, or "" for any token (servers drop cached verifications).
	TopicTokens = "tokens"
	// TopicLogWatch: payload: a run id whose log a client follows on some
	// server. TopicLogs: payload: comma-separated ids of followed runs
	// that have new log lines.
	TopicLogWatch = "logwatch"
	TopicLogs     = "logs"
)

// Store is a Pluto storage backend.
type Store interface {
	// Name is the backend's name ("sqlite", "postgres").
	Name() string
	// Tx runs fn in one write transaction and commits it. fn must not keep
	// tx after it returns. If fn returns an error the transaction rolls back.
	Tx(ctx context.Context, fn func(tx Tx) error) error
	// LogTx runs fn in one transaction that appends log lines, and commits
	// it. It may run beside Tx and never waits for it: a backend with a
	// single writer (SQLite) keeps log lines in a database of their own,
	// so that a run printing fast does not hold the scheduling
	// transactions up. Same rules for fn as Tx.
	LogTx(ctx context.Context, fn func(tx LogTx) error) error

	// RunGet returns a run or ErrNotFound.
	RunGet(ctx context.Context, id string) (*Run, error)
	// RunGetByKey returns the run holding an idempotency key or ErrNotFound.
	RunGetByKey(ctx context.Context, key string) (*Run, error)
	RunList(ctx context.Context, p RunListParams) (RunPage, error)
	RunListActive(ctx context.Context, p RunListActiveParams) ([]*Run, error)
	// RunNextPendingAt returns the earliest run_at of a pending run, or the
	// zero time when there is none.
	RunNextPendingAt(ctx context.Context) (time.Time, error)
	// RunCountByGroup returns the non-zero counts of runs per group and
	// status, from the counters RunStats reads (no scan).
	RunCountByGroup(ctx context.Context) ([]GroupCount, error)
	LogList(ctx context.Context, p LogListParams) ([]LogEntry, error)
	// LogStats returns a run's log counters (zero for a run without
	// any, or an unknown one).
	LogStats(ctx context.Context, runID string) (LogStats, error)

	StatsStore
	RatesStore
	AttemptStore
	JobStore
	BackfillStore
	CallbackStore
	AlertStore
	FanoutStore
	TokenStore
	AuditStore

	// LeaderElect takes or renews the leader lease and returns who holds it
	// afterwards (ServerID won if the returned leader is ServerID).
	LeaderElect(ctx context.Context, p LeaderElectParams) (Leader, error)
	// LeaderResign gives the lease up if ServerID holds it at term.
	LeaderResign(ctx context.Context, serverID string, term int64) error
	// LeaderGet returns the lease as stored (zero when never taken).
	LeaderGet(ctx context.Context) (Leader, error)
	// ServerHeartbeat registers a server or renews its LastSeen.
	ServerHeartbeat(ctx context.Context, s ServerInfo) error
	ServerList(ctx context.Context) ([]ServerInfo, error)
	// ServerRemove deletes a server's registration (graceful stop).
	ServerRemove(ctx context.Context, id string) error

	// Listen delivers the notifications every server (this one included)
	// publishes with Tx.Notify, until ctx ends; it returns ctx's error, or
	// another error if the connection fails (callers re-listen). A store
	// used by one process only may return at once with nil.
	Listen(ctx context.Context, fn func(Notification)) error

	Close() error
}

// LogTx is the write side of a log transaction, valid inside Store.LogTx
// only.
type LogTx interface {
	// LogAppend stores lines under the caps of p (LogAppendParams). The
	// fence reads the runs' attempts as committed when the call begins.
	LogAppend(ctx context.Context, p LogAppendParams) (LogAppendResult, error)
	// Notify is Tx.Notify.
	Notify(ctx context.Context, n Notification) error
}

// Tx is the write side of a store, valid inside Store.Tx only. Batch
// methods apply each element independently: one rejected element does not
// fail the others. Results come back in input order.
type Tx interface {
	RunInsert(ctx context.Context, runs []RunInsertParams) ([]RunInsertResult, error)
	RunClaim(ctx context.Context, p RunClaimParams) ([]*Run, error)
	// RunStart marks attempts running; returns which were applied.
	RunStart(ctx context.Context, p []RunStartParams) ([]bool, error)
	RunFinish(ctx context.Context, p []RunFinishParams) ([]RunFinishResult, error)
	RunCancel(ctx context.Context, p RunCancelParams) (RunCancelResult, error)
	RunRetry(ctx context.Context, p RunRetryParams) (*Run, error)
	// RunPromote returns the promoted runs.
	RunPromote(ctx context.Context, p RunPromoteParams) ([]*Run, error)
	RunAdopt(ctx context.Context, p []RunAdoptParams) ([]bool, error)
	// RunRequeueLost returns the requeued runs; each lost attempt is
	// recorded in its run's history.
	RunRequeueLost(ctx context.Context, p RunRequeueLostParams) ([]*Run, error)
	JobTx
	DepsTx
	BackfillTx
	CallbackTx
	AlertTx
	FanoutTx
	TokenTx
	AuditTx
	RetentionTx

	// Notify publishes n to every listening server once the transaction
	// commits (never if it rolls back). Duplicate notifications in one
	// transaction may be merged.
	Notify(ctx context.Context, n Notification) error
}
