package store

import (
	"context"
	"encoding/json"
	"time"
)

// Misfire policies: what a job does with slots missed while no leader
// fired them (docs/scheduling.md).
const (
	MisfireSkip = "skip" // record missed slots as skipped runs; fire the next one
	MisfireOnce = "once" // fire one run now for the newest missed slot; record the rest as skipped
	MisfireAll  = "all"  // fire every missed slot, up to MisfireMax
)

// Overlap policies: what a slot does when a run of its job is still going.
const (
	OverlapAllow   = "allow"   // run anyway
	OverlapForbid  = "forbid"  // record the new slot as skipped
	OverlapQueue   = "queue"   // the new run waits (blocked) until the earlier ones end
	OverlapReplace = "replace" // cancel the earlier runs and run the new one
)

// Job is a stored definition. Runs copy its spec when they are created, so
// editing a job never changes runs already created.
type Job struct {
	Name     string
	Type     string
	Group    string
	Payload  json.RawMessage // JSON; nil means null
	Schedule string          // cron expression; "" for a job that runs only when triggered
	Timezone string          // IANA zone of the schedule; "" means UTC
	// DependsOn are the upstream jobs, each a Dependency's stored form
	// (deps.go); TriggerRule is when a run may go (TriggerRules; ""
	// stored as given). Both are stored as given; the engine checks them.
	DependsOn   []string
	TriggerRule string
	Misfire     string // MisfireSkip, MisfireOnce or MisfireAll ("" is stored as given)
	MisfireMax  int    // bound on slots fired by MisfireAll and on skipped records
	Overlap     string // OverlapAllow, OverlapForbid, OverlapQueue or OverlapReplace
	Routing     string
	Priority    int
	Timeout     time.Duration // 0: none
	Retries     int
	// Shards, if not 0, splits each of the job's runs into that many
	// children when it is dispatched; MinSuccess (a count, or a fraction
	// of Shards below 1; 0: all) and Merge (a handler type, "" for none)
	// are the fan-out's, as a submit's min_success and merge.
	Shards     int
	MinSuccess float64
	Merge      string
	// CallbackURL is copied into the job's runs ("" for none).
	CallbackURL string
	// Alerts are the job's alert rules (alerts.go); nil: its group's
	// default rules apply.
	Alerts *AlertRules
	// Keep, if not 0, is how long the job's finished runs are kept, in
	// every terminal status (it replaces the server's retention per
	// status); KeepLast, if not 0, is how many of its newest finished
	// runs are never deleted for their age (store/retention.go).
	Keep     time.Duration
	KeepLast int
	Paused   bool
	// NextFire is the next slot the cron loop fires; zero means none (no
	// schedule, or a schedule without future slots). The engine computes
	// it; the store keeps it.
	NextFire  time.Time
	Version   int64 // 1 on create, +1 on every change (put, pause, resume, advance)
	CreatedAt time.Time
	UpdatedAt time.Time
}

// JobPutParams creates or replaces the job named Job.Name. The store sets
// Version, CreatedAt (kept on replace) and UpdatedAt (Now); every other
// field is stored as given, Paused and NextFire included.
type JobPutParams struct {
	Job Job
	Now time.Time
}

// JobPauseParams pauses or resumes a job. NextFire replaces the stored one
// (the engine passes the stored one when pausing, and the next slot after
// now when resuming). ErrNotFound when there is no such job.
type JobPauseParams struct {
	Name     string
	Paused   bool
	NextFire time.Time
	Now      time.Time
}

// JobListDueParams lists unpaused jobs whose NextFire is set and <= Now,
// earliest NextFire first, at most Limit. On a store shared by several
// servers the rows are locked until the transaction ends and rows locked
// by another transaction are skipped, so two leaders never fire the same
// job at once.
type JobListDueParams struct {
	Now   time.Time
	Limit int
}

// JobAdvanceParams moves a job's NextFire from From to To (zero To: no
// more slots) only if it is still From: a compare-and-set, so a slot is
// advanced past once even if two servers try. Version+1, UpdatedAt = Now.
type JobAdvanceParams struct {
	Name string
	From time.Time
	To   time.Time
	Now  time.Time
}

// JobStore is the read side for jobs; part of Store.
type JobStore interface {
	// JobGet returns a job or ErrNotFound.
	JobGet(ctx context.Context, name string) (*Job, error)
	// JobList returns every job ordered by name.
	JobList(ctx context.Context) ([]*Job, error)
	// JobNextFire is the earliest NextFire of unpaused jobs, or the zero
	// time when none has one.
	JobNextFire(ctx context.Context) (time.Time, error)
}

// JobTx is the write side for jobs; part of Tx.
//
// Runs of a job carry its name (Run.Job). RunInsert treats (Job,
// LogicalTime) as unique when both are set: an insert naming a slot that
// already has a run returns that run with Existing true and writes
// nothing, exactly like an idempotency key. That is what makes a cron slot
// fire once.
type JobTx interface {
	// JobPut creates or replaces a job; created says which.
	JobPut(ctx context.Context, p JobPutParams) (job *Job, created bool, err error)
	// JobDelete removes a job (ErrNotFound if absent). Its runs stay.
	JobDelete(ctx context.Context, name string) error
	JobPause(ctx context.Context, p JobPauseParams) (*Job, error)
	JobListDue(ctx context.Context, p JobListDueParams) ([]*Job, error)
	// JobAdvance applies each compare-and-set independently and reports,
	// in input order, which applied (a tick advances all its due jobs in
	// one call). Of two elements naming one job with the same From, at
	// most one applies.
	JobAdvance(ctx context.Context, ps []JobAdvanceParams) ([]bool, error)
	// RunListActiveForJob returns the job's runs that are not terminal
	// (pending, blocked, queued, dispatched, running), oldest first, at
	// most limit.
	RunListActiveForJob(ctx context.Context, job string, limit int) ([]*Run, error)
	// RunUnblockNext moves the job's oldest blocked run to queued if none
	// of the job's runs is pending, queued, dispatched or running, and
	// returns it (nil when nothing moved). On a shared store it first
	// locks the job's row (when the job exists), so it serialises with a
	// cron tick of the same job that holds the row from JobListDue.
	RunUnblockNext(ctx context.Context, job string, now time.Time) (*Run, error)
}
