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
	Counts     map[string]int64 `json:"counts"`
	QueueDepth int64            `json:"queue_depth"`
	// OldestQueuedAgeSeconds is now minus the earliest run_at among the
	// heads of the group's queues (one per handler type); 0 when nothing
	// is queued.
	OldestQueuedAgeSeconds float64 `json:"oldest_queued_age_seconds"`
	// Workers and Slots are the workers of the group connected to this
	// server and their capacity.
	Workers int        `json:"workers"`
	Slots   int        `json:"slots"`
	Jobs    []JobStats `json:"jobs,omitempty"`
}

// JobStats is the counts of one job's runs ("" for runs of no job).
type JobStats struct {
	Job    string           `json:"job"`
	Counts map[string]int64 `json:"counts"`
}

// StatsTotals sums the groups.
type StatsTotals struct {
	Counts     map[string]int64 `json:"counts"`
	QueueDepth int64            `json:"queue_depth"`
	Workers    int              `json:"workers"`
	Slots      int              `json:"slots"`
}
