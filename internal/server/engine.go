package server

import (
	"context"
	"encoding/json"
	"time"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// Engine is what the transports need from the scheduler; *engine.Engine
// implements it. Keeping the transports behind this interface keeps them
// thin adapters.
type Engine interface {
	Submit(ctx context.Context, specs []engine.SubmitSpec) ([]engine.SubmitResult, error)
	Get(ctx context.Context, id string) (*store.Run, error)
	List(ctx context.Context, p store.RunListParams) (store.RunPage, error)
	// Wait blocks until the run is terminal and returns it. If ctx ends
	// first it returns the run as it is now together with ctx.Err().
	Wait(ctx context.Context, id string) (*store.Run, error)
	Cancel(ctx context.Context, id, reason string) (*store.Run, error)
	Retry(ctx context.Context, id string) (*store.Run, error)
	Workers() []engine.WorkerInfo
	Logs(ctx context.Context, p store.LogListParams) ([]store.LogEntry, error)
	// LogStats returns a run's log counters (lines dropped past its cap).
	LogStats(ctx context.Context, id string) (store.LogStats, error)
	Fanout(ctx context.Context, parentID string) (*store.Fanout, error)
	// RunAttempts returns a run's recorded earlier attempts, in order
	// (none for an unknown run).
	RunAttempts(ctx context.Context, id string) ([]store.Attempt, error)
	// FollowLogs registers a follower of a run's log: wake fires when new
	// lines may have been written or the run may have ended; stop must be
	// called.
	FollowLogs(ctx context.Context, id string) (wake <-chan struct{}, stop func(), err error)
	// Cluster reports the leader and the servers sharing the store.
	Cluster(ctx context.Context) (engine.ClusterInfo, error)
	// Ready reports whether the engine has started and its store answers.
	Ready(ctx context.Context) error

	// Jobs (docs/scheduling.md). Invalid definitions are *engine.FieldError; an
	// unknown job is store.ErrNotFound.
	JobPut(ctx context.Context, j store.Job) (saved *store.Job, created bool, err error)
	JobGet(ctx context.Context, name string) (*store.Job, error)
	JobList(ctx context.Context) ([]*store.Job, error)
	JobDelete(ctx context.Context, name string) error
	// JobPause pauses (true) or resumes (false) a job.
	JobPause(ctx context.Context, name string, paused bool) (*store.Job, error)
	// JobTrigger runs a job now, with payload instead of the job's when
	// payload is not nil.
	JobTrigger(ctx context.Context, name string, payload json.RawMessage) (*store.Run, error)
	JobTriggerSlot(ctx context.Context, name string, payload json.RawMessage, at time.Time, cascade bool) (*store.Run, bool, error)
}

var _ Engine = (*engine.Engine)(nil)
