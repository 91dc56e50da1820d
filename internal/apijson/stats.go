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
