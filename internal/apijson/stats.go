package apijson

// Stats is the body of GET /api/v1/stats: run counts per group (and per
// job within it) from the store's incremental counters, the queues, and
// the workers this server has connected.
type Stats struct {
	Groups []GroupStats `json:"groups"`
	Totals StatsTotals  `json:"totals"`
	// CallbacksOwed counts runs whose callback delivery is pending, across
	// groups, at most 100,000 (a bounded read).
	CallbacksOwed int64 `json:"callbacks_owed"`
}

// GroupStats is one group's statistics.
type GroupStats struct {
	Group string `json:"group"`
	// Counts has every status, zeros included.
	Counts     Counts `json:"counts"`
	QueueDepth int64  `json:"queue_depth"`
	// OldestQueuedAgeSeconds is now minus the earliest run_at among the
	// heads of the group's queues (one per handler type); 0 when nothing
	// is queued.
	OldestQueuedAgeSeconds float64 `json:"oldest_queued_age_seconds"`
	// Workers and Slots are the workers of the group connected to this
	// server and their capacity.
	Workers int `json:"workers"`
	Slots   int `json:"slots"`
	// Throughput is the runs of the group that ended, per terminal status.
	Throughput Throughput `json:"throughput"`
	// DispatchLatencySeconds is the group's submit-to-start latency over
	// the last minute (zeros without samples).
	DispatchLatencySeconds DispatchLatency `json:"dispatch_latency_seconds"`
	Jobs                   []JobStats      `json:"jobs,omitempty"`
}

// JobStats is the counts of one job's runs ("" for runs of no job).
type JobStats struct {
	Job        string     `json:"job"`
	Counts     Counts     `json:"counts"`
	Throughput Throughput `json:"throughput"`
}

// Throughput is the number of runs that ended in the last minute, hour
// and day, per terminal status (every terminal status, zeros included).
// The oldest bucket of each window is weighted by the part of it inside
// the window, so a window may be off by that bucket's share (docs/api.md).
type Throughput struct {
	LastMinute Counts `json:"last_minute"`
	LastHour   Counts `json:"last_hour"`
	LastDay    Counts `json:"last_day"`
}

// DispatchLatency is the time from when a run was due (created, or its
// run_at if later) to its start, in seconds: the 50th and 99th
// percentiles (upper bounds of log-scale histogram buckets, at most 41%
// above the true value) and the number of starts sampled.
type DispatchLatency struct {
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	Samples int64   `json:"samples"`
}

// StatsSeries is the body of GET /api/v1/stats/series: runs ended per
// step of the window, oldest first, one point per step (zeros included).
type StatsSeries struct {
	Window      string        `json:"window"`
	StepSeconds int           `json:"step_seconds"`
	Points      []SeriesPoint `json:"points"`
}

// SeriesPoint is the runs that ended, per terminal status, in the step
// starting at T (RFC 3339, UTC).
type SeriesPoint struct {
	T         string `json:"t"`
	Succeeded int64  `json:"succeeded"`
	Failed    int64  `json:"failed"`
	TimedOut  int64  `json:"timed_out"`
	Cancelled int64  `json:"cancelled"`
	Skipped   int64  `json:"skipped"`
}

// StatsTotals sums the groups.
type StatsTotals struct {
	Counts     Counts     `json:"counts"`
	QueueDepth int64      `json:"queue_depth"`
	Workers    int        `json:"workers"`
	Slots      int        `json:"slots"`
	Throughput Throughput `json:"throughput"`
}

// Backfill is a backfill as the API shows it (GET /api/v1/backfills/{id};
// docs/workflows.md#backfill). Progress is only in a single backfill's
// answer.
type Backfill struct {
	ID         string             `json:"id"`
	Job        string             `json:"job"`
	From       string             `json:"from"`
	To         string             `json:"to"`
	Parallel   int                `json:"parallel"`
	Cascade    bool               `json:"cascade"`
	Order      string             `json:"order"`
	Rerun      string             `json:"rerun"`
	State      string             `json:"state"`
	Next       *string            `json:"next"`
	Started    int                `json:"started"`
	Kept       int                `json:"kept"`
	CreatedAt  *string            `json:"created_at"`
	UpdatedAt  *string            `json:"updated_at"`
	FinishedAt *string            `json:"finished_at"`
	Progress   []BackfillProgress `json:"progress,omitempty"`
}

// BackfillProgress is one job's runs in a backfill's range: done
// (succeeded), running (not ended), failed (ended otherwise).
type BackfillProgress struct {
	Job     string `json:"job"`
	Done    int    `json:"done"`
	Running int    `json:"running"`
	Failed  int    `json:"failed"`
}

// BackfillPlan is a backfill's dry run: the jobs each slot runs, each slot
// and what it gets, and the totals with an estimate.
type BackfillPlan struct {
	Jobs            []string   `json:"jobs"`
	Slots           []PlanSlot `json:"slots"`
	Create          int        `json:"create"`
	Rerun           int        `json:"rerun"`
	Keep            int        `json:"keep"`
	EstimateSeconds float64    `json:"estimate_seconds"`
}

// PlanSlot is one slot of a BackfillPlan: create, rerun or keep, with the
// run it has.
type PlanSlot struct {
	LogicalTime string  `json:"logical_time"`
	Action      string  `json:"action"`
	RunID       *string `json:"run_id"`
	Status      *string `json:"status"`
}
