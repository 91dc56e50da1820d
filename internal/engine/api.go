package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Errors the transports map to status codes (store.ErrNotFound → 404,
// store.ErrConflict → 409, *FieldError → 400, ErrPayloadTooLarge → 413,
// ErrStopped → 503).
var (
	ErrPayloadTooLarge = errors.New("engine: payload too large")
	ErrStopped         = errors.New("engine: stopped")
	errStopping        = errors.New("engine: stopping")
	// ErrDuplicateWorker refuses a worker whose id is connected from
	// another process (another Hello.Instance) that is still alive.
	ErrDuplicateWorker = errors.New("engine: another process is connected with this worker id")
	// ErrWorkerLeft closes a session whose worker ended its stream on
	// purpose (it drained and exited): what it still held is requeued at
	// once instead of after the dead timeout.
	ErrWorkerLeft = errors.New("engine: worker left")
)

// FieldError is invalid input in one named field of a request.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Message) }

// SubmitSpec is one submission. Zero values mean defaults: Retries 0 (one
// attempt), no timeout, run now, routing least-recent.
type SubmitSpec struct {
	Type       string
	Group      string
	Payload    json.RawMessage
	Priority   int
	Delay      time.Duration
	RunAt      time.Time
	Timeout    time.Duration
	Retries    int
	Key        string
	Routing    string
	RoutingKey string
	Job        string
	// CallbackURL, if set, receives the run's outcome when it ends
	// (feedback.go): an absolute http or https URL.
	CallbackURL string
	// Fan-out (fanout.go): Shards children that each get the payload, or
	// one child per part; MinSuccess of them must succeed (0: all; a
	// fraction in (0, 1): that share); Merge, a handler type, merges their
	// results.
	Shards     int
	Parts      []json.RawMessage
	MinSuccess float64
	Merge      string

	// jobShards are the shards of the job whose run this is: it splits
	// when dispatched (fanout_split.go).
	jobShards int
}

// fanout reports a spec that splits into children.
func (s *SubmitSpec) fanout() bool { return s.Shards != 0 || s.Parts != nil }

// SubmitResult is the stored run for one spec; Existing is true when its
// idempotency key already named a run (nothing new was created).
type SubmitResult struct {
	Run      *store.Run
	Existing bool
}

// RunRef names one attempt of a run.
type RunRef struct {
	RunID   string
	Attempt int
	// StartedAt, in Hello.Held only, is when the worker started the
	// attempt (zero if it has not): its Ack may have been lost with the old
	// stream, and without it the server would never time the run out.
	StartedAt time.Time
}

// Hello is what a worker announces when it connects.
type Hello struct {
	WorkerID string
	Group    string
	Capacity int
	// Window is the most runs the worker holds at once (capacity +
	// prefetch). Zero means Capacity unless Draining (a draining worker
	// that reconnects takes nothing new).
	Window   int
	Draining bool
	Types    []string
	Version  string
	Hostname string
	Held     []RunRef // runs still held from an earlier connection
	Commands []string
	// Instance identifies the worker process: a second process with the
	// same WorkerID is refused while the first is alive (ErrDuplicateWorker);
	// the same process reconnecting replaces its old session. Empty: every
	// connection replaces the last (older workers).
	Instance string
	// MaxMessage is the largest dispatch message, in bytes, the worker
	// takes (0: DefaultMaxMessage). Dispatches are split to fit; a run
	// whose task alone would not fit fails.
	MaxMessage int
}

// DefaultMaxMessage is the message limit of a worker that announces none:
// gRPC's default receive limit.
const DefaultMaxMessage = 4 << 20

// TaskOverhead bounds the bytes a task adds to a dispatch besides its
// payload and names (numbers, tags, lengths).
const TaskOverhead = 64

// Size is the most bytes t takes in a dispatch message.
func (t *Task) Size() int {
	return len(t.Payload) + len(t.RunID) + len(t.Type) + len(t.Group) + len(t.Job) + TaskOverhead
}

// Load is a heartbeat's payload.
type Load struct {
	Running  int
	Capacity int
	CPU      float64
	MemBytes uint64
}

// Task is one attempt handed to a worker.
type Task struct {
	RunID       string
	Attempt     int
	Type        string
	Group       string
	Job         string
	Payload     json.RawMessage
	Timeout     time.Duration
	MaxAttempts int
	// LogMaxLines and LogMaxBytes are the log caps when it was dispatched:
	// the worker may stop sending lines past them (the store enforces them
	// whatever it sends).
	LogMaxLines, LogMaxBytes int64
	// LogicalTime is the run's slot (zero: none); CreatedAt when it was
	// created.
	LogicalTime, CreatedAt time.Time
	// Parent, Shard and ShardCount place a fan-out's child (fanout.go):
	// its parent, its index and the number of children (0: not a child).
	Parent            string
	Shard, ShardCount int
	// Merge: the run merges a fan-out's results (a merge or reduce run).
	Merge bool
}

// Ack says the worker started an attempt.
type Ack struct {
	RunID     string
	Attempt   int
	StartedAt time.Time
}

// Outcome is how an attempt ended on the worker.
type Outcome int

const (
	OutcomeSucceeded Outcome = iota + 1
	OutcomeFailed
	OutcomeCancelled
	OutcomeTimedOut
	// OutcomePoke: not done yet (a sensor); dispatch the run again after
	// Result.PokeAfter, without using up an attempt.
	OutcomePoke
)

// Result reports a finished attempt.
type Result struct {
	RunID      string
	Attempt    int
	Outcome    Outcome
	Result     json.RawMessage
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
	NoRetry    bool
	// PokeAfter is when to dispatch the run again, with OutcomePoke.
	PokeAfter time.Duration
	// Mapped: the handler's Map was answered in this attempt (the session
	// may not know it: the worker reconnected to another server).
	Mapped bool
}

// ResultAck tells a worker whether its result was committed.
type ResultAck struct {
	RunID    string
	Attempt  int
	Accepted bool
}

// LogDrop counts log lines of one attempt that its worker dropped unsent
// after it was told the run's log is capped.
type LogDrop struct {
	RunID   string
	Attempt int
	Lines   int64
}

// Conn is the transport side of a worker session. The engine calls it from
// its own goroutines; implementations queue the message and return at once
// (they must not block on the network).
type Conn interface {
	Dispatch(tasks []Task)
	Cancel(ref RunRef, reason string)
	ResultAcks(acks []ResultAck)
	// LogsCapped tells the worker that these attempts' runs are past
	// their log caps: it may stop sending their lines and report how
	// many it dropped instead (Session.LogDrops).
	LogsCapped(refs []RunRef)
	// MapAck answers a Map (Session.Map).
	MapAck(a MapAck)
	Drain(resume bool)
	Shutdown(restart bool)
	// Command sends a remote command; the worker answers with a
	// CommandReply carrying id (Session.CommandReply). timeout is how long
	// the engine waits for the answer.
	Command(id, name string, args json.RawMessage, timeout time.Duration)
	// Close ends the session's stream (the worker was declared dead or
	// reconnected elsewhere).
	Close(reason string)
}

// WorkerState is a worker session's liveness.
type WorkerState string

const (
	WorkerAlive   WorkerState = "alive"
	WorkerSuspect WorkerState = "suspect"
	WorkerDead    WorkerState = "dead"
)

// WorkerInfo is a snapshot of one worker for the API and console.
type WorkerInfo struct {
	ID            string
	Group         string
	State         WorkerState
	Capacity      int
	Window        int
	Running       int // runs the worker holds (dispatched or running)
	CPU           float64
	MemBytes      uint64
	Handlers      []string
	Version       string
	Hostname      string
	ConnectedAt   time.Time
	LastHeartbeat time.Time
	Server        string
	// Draining: the worker takes no new runs (the server drained it, or
	// the worker announced a window of zero). Leaving: it was told to shut
	// down or restart.
	Draining bool
	Leaving  bool
	Commands []string // remote commands the worker answers
	// Loads are the loads of the last heartbeats (at most 30), oldest
	// first.
	Loads []Load
}
