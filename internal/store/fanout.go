package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Fan-out (the engine's fanout.go): a parent run is split into child
// runs — N shards, or one per part — that run anywhere in the group; the
// parent ends when they have all ended, with their results in shard order
// (or the result of a merge run over them).
//
// The parent is a run like any other in the runs table, with
// ShardCount > 0 and no ParentID (made so by FanoutCreate, FanoutExpand,
// or FanoutRelease of a run that mapped: FanoutMapParams). It is created running, started at its
// creation, held by no worker and no server (ServerID and WorkerID empty)
// at attempt 0, which names no worker's attempt (a claim makes attempt
// 1): RunListActive, RunClaim and RunRequeueLost never return it (it is
// never queued and no server holds it), RunStart, RunFinish and RunAdopt
// never match it, and it has no attempt of its own. It ends through
// FanoutFinish (succeeded or failed) or RunCancel (a running run with no
// worker: cancelled), nothing else; RunRetry of a parent is ErrConflict:
// FanoutReopen runs an ended parent again (its failed children are
// retried with it). A parent of a job is one of the
// job's unfinished runs while it runs, as any running run of the job:
// RunListActiveForJob lists it, and RunUnblockNext (the overlap policies)
// waits for it.
//
// Each child has the parent's ID as ParentID, its index as Shard (0 to
// ShardCount-1, in seq order) and ShardCount; children are ordinary runs
// otherwise (queued, dispatched, retried by their own attempts). A run
// with a ParentID but no ShardCount — a merge run, inserted by RunInsert —
// is not a child: it is not counted and has no result in FanoutResults.
// RunListParams.Parent lists every run naming the parent, merge run
// included.
//
// The join's state is derived in the store, in the statements that change
// children, so that no crash can lose or double-count a child: a fan-out
// row per parent counts its children that have ended and those that
// ended other than succeeded. Every change that moves a child into a
// terminal status counts it (finish, cancel, gate skip, an insert of a
// skipped child), and every one that moves it out (a retry, a gate's
// skipped → blocked) uncounts it, in the same transaction as the change,
// by the Tx methods that can make such a move (not triggers, which cost
// every run's start and finish: sqlite/fanout.go, postgres/fanout.go).
// The counters go on after the parent ended (a retried child uncounts
// itself). Retention deletes a parent's fan-out row with the parent;
// children are runs of their own, deleted when they expire, which the
// counters do not forget but FanoutResults no longer returns.

// Fanout is a parent's join state.
type Fanout struct {
	ParentID string
	Total    int // children
	Ended    int // children in a terminal status
	Failed   int // of which not succeeded
	// MinSuccess is how many children must succeed (Total: all).
	MinSuccess int
	// Merge is the handler type of the merge run ("" for none); MergeID
	// is its run's ID once created ("" before).
	Merge   string
	MergeID string
}

// FanoutCreateParams creates a parent, its fan-out row and its children
// in one statement group. Parent.Status must be running (it is stored
// running, started at Parent.Now, with ShardCount = len(Children) and no
// attempt), with no ParentID or Shard; each child gets ParentID =
// Parent.ID, Shard = its index and ShardCount = len(Children), and is
// stored as RunInsert would (Status queued, pending, blocked or skipped;
// a skipped child counts as ended at once). Children have no Key and no
// job slot (Job with a LogicalTime): a child refused for one would leave
// its shard empty; a child's ID that names a run fails the call. A
// Parent.Key or slot already taken returns the run holding it (Existing,
// as RunInsert) and creates nothing.
type FanoutCreateParams struct {
	Parent     RunInsertParams
	Children   []RunInsertParams
	MinSuccess int    // 1 to len(Children)
	Merge      string // "" for none
}

// FanoutFinishParams ends a parent that is still running: Status is
// succeeded or failed (cancelled goes through RunCancel), with Result
// and Error, finished at Now; a parent with a callback URL owes its
// delivery from Now, as a cancelled run does. Not applied (nil) when the
// parent is not running any more.
type FanoutFinishParams struct {
	ParentID string
	Status   RunStatus
	Result   json.RawMessage
	Error    string
	Now      time.Time
}

// FanoutReopenParams reopens an ended parent so that it is retried: a
// parent that failed or was cancelled runs again (status running, Attempt
// one more, no finished_at, result or error, its callback state cleared
// as RunRetry clears a run's), and its fan-out is open again with no merge
// run recorded (a new merge runs once its children end). The counters
// stay: the caller retries the children that did not succeed in the same
// transaction (RunRetry), which uncounts them.
type FanoutReopenParams struct {
	ParentID string
	Now      time.Time
}

// Split is how a run fans out when it is dispatched rather than when it
// is created: a sharded job's run into Shards children, or a broadcast
// into one child per live worker of its group (Broadcast is the children's
// routing, RoutingBroadcast or RoutingShardBroadcast, and each child's
// RoutingKey is its worker). MinSuccess is as submitted (a count, or a
// fraction below 1; 0: all), resolved against the children's number when
// they are made.
type Split struct {
	Shards     int     `json:"shards,omitempty"`
	Broadcast  string  `json:"broadcast,omitempty"`
	MinSuccess float64 `json:"min_success,omitempty"`
	Merge      string  `json:"merge,omitempty"`
}

// The broadcast routings (Split.Broadcast, and the routing of the children
// a broadcast makes).
const (
	RoutingBroadcast      = "broadcast"
	RoutingShardBroadcast = "shard-broadcast"
)

// CheckSplit reports a Split no backend stores.
func CheckSplit(s *Split) error {
	switch {
	case s == nil:
		return nil
	case s.Shards < 0 || s.Shards > MaxFanout:
		return fmt.Errorf("split: %d shards (0 to %d)", s.Shards, MaxFanout)
	case (s.Shards > 0) == (s.Broadcast != ""):
		return errors.New("split: either shards or a broadcast")
	case s.Broadcast != "" && s.Broadcast != RoutingBroadcast && s.Broadcast != RoutingShardBroadcast:
		return fmt.Errorf("split: unknown broadcast %q", s.Broadcast)
	case s.MinSuccess < 0 || math.IsNaN(s.MinSuccess) || math.IsInf(s.MinSuccess, 0):
		return fmt.Errorf("split: min_success %v", s.MinSuccess)
	}
	return nil
}

// CheckRunSplit reports a run whose Split RunInsert does not store.
func CheckRunSplit(p *RunInsertParams) error {
	if p.Split == nil {
		return nil
	}
	if p.ParentID != "" {
		return fmt.Errorf("run %q has a parent and a split", p.ID)
	}
	if err := CheckSplit(p.Split); err != nil {
		return fmt.Errorf("run %q: %w", p.ID, err)
	}
	return nil
}

// SplitDocs encodes the splits of runs (checked by CheckRunSplit), before
// anything is written: nil when no run has one, else a JSON document per
// run ("" for none).
func SplitDocs(runs []RunInsertParams) ([]string, error) {
	var docs []string
	for i := range runs {
		p := &runs[i]
		if p.Split == nil {
			continue
		}
		if docs == nil {
			docs = make([]string, len(runs))
		}
		b, err := json.Marshal(p.Split)
		if err != nil {
			return nil, fmt.Errorf("run %q: split: %w", p.ID, err)
		}
		docs[i] = string(b)
	}
	return docs, nil
}

// FanoutExpandParams makes a claimed run with a Split the parent of
// Children, as FanoutCreate makes a new one: the run (ID, dispatched at
// Attempt and held by ServerID, which fence the change) becomes running,
// started at Now, held by no server or worker, at Attempt-1 (the attempt
// before its claim: a parent's attempt names no worker's), with
// ShardCount = len(Children) and no Split; its fan-out row is created
// with MinSuccess and Merge; the children are inserted as FanoutCreate
// inserts them. Not applied (nil, nil) when the run is not so any more
// (another server adopted it, it was cancelled).
type FanoutExpandParams struct {
	ID         string
	Attempt    int
	ServerID   string
	Children   []RunInsertParams
	MinSuccess int
	Merge      string
	Now        time.Time
}

// FanoutMapParams makes Children the children of a run its worker holds
// (map-reduce: the run's handler emitted them). The run (ID, dispatched or
// running at Attempt — its start may not be committed yet — held by
// ServerID; "" skips that fence, as RunFinish's) must be neither a parent
// nor a child nor a merge run, and have no split. The
// run itself does not change: it stays its worker's, and becomes the
// children's parent only when FanoutRelease says its handler is done —
// until then its fan-out row is not open, so it never joins (a parent's
// handler still running cannot have ended), and the run's own finish,
// retry or requeue work as for any run. A run maps once: if it has a
// fan-out already (this attempt's Map sent again, or an earlier
// attempt's before its worker died), nothing is made and the existing
// fan-out is returned.
type FanoutMapParams struct {
	ID         string
	Attempt    int
	ServerID   string
	Children   []RunInsertParams
	MinSuccess int
	Merge      string
	Now        time.Time
}

// FanoutMapResult is what FanoutMap did: Children are the runs it made
// (nil when Existing: an earlier Map made Total of them).
type FanoutMapResult struct {
	Children []*Run
	Total    int
	Existing bool
}

// FanoutReleaseParams makes a mapped run (FanoutMap) the parent of its
// children once its handler has succeeded: the run (ID, running at
// Attempt — the caller commits its start first —, held by ServerID, ""
// skipping that fence) becomes a parent as
// FanoutExpand makes one — held by no server or worker, at Attempt-1 (so
// its worker's reports of Attempt never match it), with ShardCount its
// children's number — and its fan-out row opens, so the join can decide
// it (its children may all have ended already).
type FanoutReleaseParams struct {
	ID       string
	Attempt  int
	ServerID string
	Now      time.Time
}

// FanoutTx is the write side; part of Tx.
type FanoutTx interface {
	// FanoutCreate creates a parent and its children (see
	// FanoutCreateParams). Limits: 1 to MaxFanout children, MinSuccess 1
	// to their number; the children are inserted in multi-row batches
	// (10,000 take about 0.1 s on SQLite, 0.25 s on PostgreSQL).
	FanoutCreate(ctx context.Context, p FanoutCreateParams) (RunInsertResult, error)
	// FanoutGet reads, in the transaction, a parent's join state
	// (ErrNotFound for a run that is not a parent, or a parent deleted).
	// Its fan-out stays readable after the parent ended.
	FanoutGet(ctx context.Context, parentID string) (*Fanout, error)
	// FanoutSetMerge records the merge run of a parent (once: ErrConflict
	// if another is recorded; the same one again is no error; ErrNotFound
	// for a run that is not a parent).
	FanoutSetMerge(ctx context.Context, parentID, mergeID string) error
	// FanoutFinish ends a running parent; it returns the parent ended, or
	// nil when it was not running (ended, cancelled), is not a parent, or
	// is gone.
	FanoutFinish(ctx context.Context, p FanoutFinishParams) (*Run, error)
	// FanoutExpand makes a claimed run with a Split a fan-out's parent
	// (see FanoutExpandParams) and returns it and its children, or nils
	// when the run is not dispatched at Attempt by ServerID.
	FanoutExpand(ctx context.Context, p FanoutExpandParams) (*Run, []*Run, error)
	// FanoutMap makes the children of a run its worker holds (see
	// FanoutMapParams): ErrConflict when the run is not dispatched or
	// running at Attempt held by ServerID, or cannot be a parent (a child, a merge run, a
	// split).
	FanoutMap(ctx context.Context, p FanoutMapParams) (FanoutMapResult, error)
	// FanoutRelease makes a mapped run its children's parent (see
	// FanoutReleaseParams) and returns it, or nil when the run is not
	// running at Attempt held by ServerID, or did not map.
	FanoutRelease(ctx context.Context, p FanoutReleaseParams) (*Run, error)
	// FanoutReopen reopens an ended parent (see FanoutReopenParams) and
	// returns it: ErrConflict for a parent running or succeeded,
	// ErrNotFound for a run that is not a parent (or is gone).
	FanoutReopen(ctx context.Context, p FanoutReopenParams) (*Run, error)
	// FanoutResults returns the results of a parent's children in shard
	// order, at most limit (1 to MaxFanoutResults) from shard from (for a
	// merge or the parent's result), with their statuses and errors; a
	// child not succeeded may have a result too. Children deleted by
	// retention are missing.
	FanoutResults(ctx context.Context, parentID string, from, limit int) ([]ChildResult, error)
}

// ChildResult is one child's outcome.
type ChildResult struct {
	Shard  int
	ID     string
	Status RunStatus
	Result json.RawMessage
	Error  string
}

// FanoutStore is the read side; part of Store.
type FanoutStore interface {
	// FanoutListJoinable lists up to limit (1 to MaxFanoutResults)
	// running parents whose children have all ended, or whose failures
	// exceed what MinSuccess allows (the reconciler finishes them if a
	// crash lost the join), by parent ID. A parent that ended (finished or
	// cancelled) is never listed; the store reads the fan-outs of running
	// parents only, not its whole history.
	FanoutListJoinable(ctx context.Context, limit int) ([]*Fanout, error)
	// FanoutRead reads a parent's join state outside a transaction, as
	// FanoutGet does in one (for the API and the console).
	FanoutRead(ctx context.Context, parentID string) (*Fanout, error)
}

// MaxFanout bounds a parent's children.
const MaxFanout = 100000

// MaxFanoutResults bounds the limits of FanoutResults and
// FanoutListJoinable.
const MaxFanoutResults = 10000

// IsFanoutParent reports whether r is a fan-out's parent.
func IsFanoutParent(r *Run) bool { return r != nil && r.ShardCount > 0 && r.ParentID == "" }

// CheckFanout reports a FanoutCreateParams no backend takes, and returns
// the children as they are stored: copies of p.Children with ParentID and
// Shard set (ShardCount is len(p.Children)).
func CheckFanout(p FanoutCreateParams) ([]RunInsertParams, error) {
	switch {
	case p.Parent.ID == "":
		return nil, errors.New("FanoutCreate: the parent has no ID")
	case p.Parent.Status != StatusRunning:
		return nil, fmt.Errorf("FanoutCreate: parent %q: status %q is not running", p.Parent.ID, p.Parent.Status)
	case p.Parent.ParentID != "" || p.Parent.Shard != nil:
		return nil, fmt.Errorf("FanoutCreate: parent %q has a parent or a shard", p.Parent.ID)
	case p.Parent.Split != nil:
		return nil, fmt.Errorf("FanoutCreate: parent %q has a split", p.Parent.ID)
	}
	return checkChildren("FanoutCreate", p.Parent.ID, p.Children, p.MinSuccess)
}

// CheckFanoutMap reports a FanoutMapParams no backend takes, and returns
// the children as they are stored (see CheckFanout).
func CheckFanoutMap(p FanoutMapParams) ([]RunInsertParams, error) {
	if err := CheckHeld("FanoutMap", p.ID, p.Attempt); err != nil {
		return nil, err
	}
	return checkChildren("FanoutMap", p.ID, p.Children, p.MinSuccess)
}

// CheckHeld reports arguments naming no attempt a worker could hold (op's
// run id at attempt), as FanoutMap and FanoutRelease take them.
func CheckHeld(op, id string, attempt int) error {
	if id == "" || attempt < 1 {
		return fmt.Errorf("%s: run %q at attempt %d: a run a worker holds is needed", op, id, attempt)
	}
	return nil
}

// CheckMapper reports why run r, read for update, cannot map at attempt
// held by server ("" for any), wrapping ErrConflict; nil if it can.
func CheckMapper(r *Run, attempt int, server string) error {
	switch {
	case (r.Status != StatusRunning && r.Status != StatusDispatched) || r.Attempt != attempt || (server != "" && r.ServerID != server):
		return fmt.Errorf("FanoutMap: run %q is not held at attempt %d here (it is %s at attempt %d): %w",
			r.ID, attempt, r.Status, r.Attempt, ErrConflict)
	case r.ParentID != "" || r.ShardCount > 0:
		return fmt.Errorf("FanoutMap: run %q is a fan-out's parent, child or merge run: %w", r.ID, ErrConflict)
	case r.Split != nil:
		return fmt.Errorf("FanoutMap: run %q has a split: %w", r.ID, ErrConflict)
	}
	return nil
}

// CheckFanoutExpand reports a FanoutExpandParams no backend takes, and
// returns the children as they are stored (see CheckFanout).
func CheckFanoutExpand(p FanoutExpandParams) ([]RunInsertParams, error) {
	if p.ID == "" || p.Attempt < 1 || p.ServerID == "" {
		return nil, fmt.Errorf("FanoutExpand: run %q at attempt %d held by %q: a claimed run is needed", p.ID, p.Attempt, p.ServerID)
	}
	return checkChildren("FanoutExpand", p.ID, p.Children, p.MinSuccess)
}

func checkChildren(op, parent string, children []RunInsertParams, minSuccess int) ([]RunInsertParams, error) {
	n := len(children)
	switch {
	case n < 1 || n > MaxFanout:
		return nil, fmt.Errorf("%s: parent %q: %d children (1 to %d)", op, parent, n, MaxFanout)
	case minSuccess < 1 || minSuccess > n:
		return nil, fmt.Errorf("%s: parent %q: min success %d (1 to %d, the children)", op, parent, minSuccess, n)
	}
	out := make([]RunInsertParams, n)
	for i := range children {
		c := children[i]
		switch {
		case c.ID == "":
			return nil, fmt.Errorf("%s: parent %q: child %d has no ID", op, parent, i)
		case c.Key != "" || (c.Job != "" && !c.LogicalTime.IsZero()):
			// A child refused for its key or slot would leave its shard
			// empty; the parent's key makes the fan-out idempotent.
			return nil, fmt.Errorf("%s: parent %q: child %q has a key or a job's slot", op, parent, c.ID)
		case c.Split != nil:
			return nil, fmt.Errorf("%s: parent %q: child %q has a split", op, parent, c.ID)
		}
		switch c.Status {
		case StatusPending, StatusBlocked, StatusQueued, StatusSkipped:
		default:
			return nil, fmt.Errorf("%s: parent %q: child %q: status %q is not pending, blocked, queued or skipped",
				op, parent, c.ID, c.Status)
		}
		shard := i
		c.ParentID, c.Shard = parent, &shard
		out[i] = c
	}
	return out, nil
}

// CheckFanoutFinish reports a FanoutFinishParams no backend takes.
func CheckFanoutFinish(p FanoutFinishParams) error {
	if p.ParentID == "" || (p.Status != StatusSucceeded && p.Status != StatusFailed) {
		return fmt.Errorf("FanoutFinish: parent %q: status %q is not succeeded or failed", p.ParentID, p.Status)
	}
	return nil
}

// CheckFanoutResults reports FanoutResults arguments no backend takes.
func CheckFanoutResults(parentID string, from, limit int) error {
	if parentID == "" || from < 0 || limit < 1 || limit > MaxFanoutResults {
		return fmt.Errorf("FanoutResults: parent %q, from %d, limit %d (1 to %d)", parentID, from, limit, MaxFanoutResults)
	}
	return nil
}

// ChildMoved is what a child's move from one status to another changes
// in its parent's counters: Ended and Failed each go up by 1, down by 1,
// or stay.
func ChildMoved(from, to RunStatus) (ended, failed int) {
	b := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	return b(to.Terminal()) - b(from.Terminal()),
		b(to.Terminal() && to != StatusSucceeded) - b(from.Terminal() && from != StatusSucceeded)
}

// IsFanoutChild reports whether r is a fan-out's child (not its merge
// run, which has a parent but no ShardCount).
func IsFanoutChild(r *Run) bool { return r != nil && r.ShardCount > 0 && r.ParentID != "" }

// reopenable reports whether a parent in status s may be reopened.
func reopenable(s RunStatus) bool {
	return s == StatusFailed || s == StatusCancelled || s == StatusTimedOut
}

// CheckFanoutReopen reports why prev, read for update, cannot be reopened
// (wrapping ErrNotFound or ErrConflict), or nil.
func CheckFanoutReopen(prev *Run) error {
	switch {
	case !IsFanoutParent(prev):
		return fmt.Errorf("FanoutReopen: run %q is not a fan-out's parent: %w", prev.ID, ErrNotFound)
	case !reopenable(prev.Status):
		return fmt.Errorf("FanoutReopen: parent %q is %s: %w", prev.ID, prev.Status, ErrConflict)
	}
	return nil
}
