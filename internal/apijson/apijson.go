// Package apijson defines the JSON shapes of Pluto's HTTP API (docs/api.md)
// in one place: the server encodes them and the CLI decodes them. Field
// names are part of the public contract.
package apijson

import "encoding/json"

// Run is a run as the API shows it. Optional fields are null when
// unset; times are RFC 3339 in UTC; payload and result are raw JSON.
type Run struct {
	ID       string  `json:"id"`
	Job      *string `json:"job"`
	ParentID *string `json:"parent_id"`
	Shard    *int    `json:"shard"`
	// ShardCount is a fan-out's number of children, on its parent and on
	// each child (omitted otherwise).
	ShardCount  int             `json:"shard_count,omitempty"`
	Type        string          `json:"type"`
	Group       string          `json:"group"`
	Payload     json.RawMessage `json:"payload"`
	Priority    int             `json:"priority"`
	Status      string          `json:"status"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	Key         *string         `json:"key"`
	LogicalTime *string         `json:"logical_time"`
	RunAt       *string         `json:"run_at"`
	CreatedAt   *string         `json:"created_at"`
	// DispatchedAt is when the current attempt was handed out (omitted
	// before the first).
	DispatchedAt *string         `json:"dispatched_at,omitempty"`
	StartedAt    *string         `json:"started_at"`
	FinishedAt   *string         `json:"finished_at"`
	WorkerID     *string         `json:"worker_id"`
	Result       json.RawMessage `json:"result"`
	Error        *string         `json:"error"`
	// Beyond the original contract: the run's timeout as a Go duration string
	// (null: none) and its routing strategy (null: the default).
	Timeout *string `json:"timeout"`
	Routing *string `json:"routing"`
	// Feedback: where the run's outcome is POSTed when it ends (null:
	// nowhere), and the state of that delivery (null without a URL).
	CallbackURL *string   `json:"callback_url"`
	Callback    *Callback `json:"callback"`
	// LogLinesDropped counts the log lines dropped past the run's log cap.
	// Shown by GET /api/v1/runs/{id} only, and omitted when 0.
	LogLinesDropped int64 `json:"log_lines_dropped,omitempty"`
	// Fanout is a parent's join state: shown by GET /api/v1/runs/{id} of
	// a fan-out's parent only.
	Fanout *Fanout `json:"fanout,omitempty"`
}

// Fanout is a parent's join state: of its Children, how many ended and
// how many of those did not succeed; how many must succeed; its merge
// type and merge run (null before it is made).
type Fanout struct {
	Children   int     `json:"children"`
	Ended      int     `json:"ended"`
	Failed     int     `json:"failed"`
	MinSuccess int     `json:"min_success"`
	Merge      *string `json:"merge"`
	MergeRunID *string `json:"merge_run_id"`
}

// Callback is the state of a run's result delivery to its callback URL.
// State is none (the run has not ended), pending (owed; due at next_at),
// delivered or failed. Attempts counts the POSTs started.
type Callback struct {
	State       string  `json:"state"`
	Attempts    int     `json:"attempts"`
	NextAt      *string `json:"next_at"`
	LastError   *string `json:"last_error"`
	DeliveredAt *string `json:"delivered_at"`
}

// Worker is a connected worker.
type Worker struct {
	ID            string   `json:"id"`
	Group         string   `json:"group"`
	State         string   `json:"state"`
	Capacity      int      `json:"capacity"`
	Running       int      `json:"running"`
	CPU           float64  `json:"cpu"`
	MemBytes      uint64   `json:"mem_bytes"`
	Handlers      []string `json:"handlers"`
	Version       string   `json:"version"`
	ConnectedAt   *string  `json:"connected_at"`
	LastHeartbeat *string  `json:"last_heartbeat"`
	Server        string   `json:"server"`
	// Beyond the original contract (remote control): draining — the worker
	// takes no new runs (drained, or it announced a window of zero);
	// leaving — it was told to shut down or restart; commands — the
	// remote commands it answers (POST /workers/{id}/command).
	Draining bool     `json:"draining"`
	Leaving  bool     `json:"leaving"`
	Commands []string `json:"commands"`
	// CPUHistory and MemHistory are the worker's CPU and memory as its
	// last heartbeats (at most 30) reported them, oldest first.
	CPUHistory []float64 `json:"cpu_history"`
	MemHistory []uint64  `json:"mem_history"`
}

// LogLine is one stored log line of a run.
type LogLine struct {
	Seq     int64   `json:"seq"`
	Time    *string `json:"time"`
	Stream  string  `json:"stream"`
	Level   string  `json:"level"`
	Text    string  `json:"text"`
	Attempt int     `json:"attempt"`
}

// List is the envelope of every list endpoint. NextCursor is omitted
// when there is nothing after this page.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// Error is the error envelope: {"error": {"code", "message", "field"}}.
type Error struct {
	Error ErrorBody `json:"error"`
}

type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Terminal reports whether the run's status is final.
func (r *Run) Terminal() bool {
	switch r.Status {
	case "succeeded", "failed", "cancelled", "timed_out", "skipped":
		return true
	}
	return false
}

// Cluster is GET /api/v1/cluster: the store, the leader and its term, and
// every registered server.
type Cluster struct {
	Store   string          `json:"store"`
	Leader  string          `json:"leader"`
	Term    int64           `json:"term"`
	Servers []ClusterServer `json:"servers"`
}

// ClusterServer is one registered server. Alive: seen within the lease TTL.
type ClusterServer struct {
	ID        string  `json:"id"`
	HTTP      string  `json:"http"`
	GRPC      string  `json:"grpc"`
	Leader    bool    `json:"leader"`
	Alive     bool    `json:"alive"`
	StartedAt *string `json:"started_at"`
	LastSeen  *string `json:"last_seen"`
}

// Job is a job definition as the API shows it and takes (PUT
// /api/v1/jobs/{name}): the documented fields plus misfire_max, version,
// created_at and updated_at. On input the read-only fields (next_fire,
// version, created_at, updated_at) are accepted and ignored, so what GET
// answers can be PUT back. timeout is a Go duration string (null: none);
// routing null means the server default; schedule "" means the job runs
// only when triggered; timezone "" means UTC; times are RFC 3339 in UTC.
type Job struct {
	Name      string          `json:"name"`
	Type      string          `json:"type"`
	Group     string          `json:"group"`
	Payload   json.RawMessage `json:"payload"`
	Schedule  string          `json:"schedule"`
	Timezone  string          `json:"timezone"`
	DependsOn []Dependency    `json:"depends_on"`
	// TriggerRule is when a run waiting on its upstream runs may go:
	// all_success (the default with depends_on), all_done, one_success or
	// none_failed.
	TriggerRule string  `json:"trigger_rule,omitempty"`
	Misfire     string  `json:"misfire"`
	MisfireMax  int     `json:"misfire_max"`
	Overlap     string  `json:"overlap"`
	Routing     *string `json:"routing"`
	Priority    int     `json:"priority"`
	Timeout     *string `json:"timeout"`
	Retries     int     `json:"retries"`
	Shards      int     `json:"shards"`
	// MinSuccess and Merge are a sharded or broadcast job's: how many of
	// a run's children must succeed (a count, or a fraction below 1; 0:
	// all) and the handler type that merges their results (null: none).
	MinSuccess float64 `json:"min_success"`
	Merge      *string `json:"merge"`
	Paused     bool    `json:"paused"`
	// CallbackURL is copied into the job's runs (null: none).
	CallbackURL *string `json:"callback_url"`
	// Keep is how long the job's finished runs are kept, a duration
	// string such as "30d" (null: the server's retention per status);
	// KeepLast is how many of its newest finished runs are never deleted
	// for their age (0: none).
	Keep     *string `json:"keep"`
	KeepLast int     `json:"keep_last"`
	// Alerts are the job's alert rules (null: its group's default).
	Alerts    *AlertRules `json:"alerts"`
	NextFire  *string     `json:"next_fire"`
	Version   int64       `json:"version"`
	CreatedAt *string     `json:"created_at"`
	UpdatedAt *string     `json:"updated_at"`
}

// JobTrigger is the optional body of POST /api/v1/jobs/{name}/trigger: a
// payload for this one run instead of the job's (absent or null: the
// job's); a logical time (RFC 3339) makes it the job's run for that slot,
// which waits for its upstream runs and brings the runs for it of the
// jobs depending on it that have no schedule — with cascade, of every job
// downstream. Without a logical time the run is a one-off: nothing
// downstream follows it.
type JobTrigger struct {
	Payload     json.RawMessage `json:"payload"`
	LogicalTime string          `json:"logical_time,omitempty"`
	Cascade     bool            `json:"cascade,omitempty"`
}
