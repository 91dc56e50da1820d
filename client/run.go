package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// Status is a run's lifecycle state.
type Status string

// Run statuses. A run starts pending (waiting for its time), blocked
// (waiting for upstream runs) or queued, is dispatched to a worker, runs,
// and ends in one of the terminal statuses.
const (
	StatusPending    Status = "pending"
	StatusBlocked    Status = "blocked"
	StatusQueued     Status = "queued"
	StatusDispatched Status = "dispatched"
	StatusRunning    Status = "running"
	StatusSucceeded  Status = "succeeded"
	StatusFailed     Status = "failed"
	StatusCancelled  Status = "cancelled"
	StatusTimedOut   Status = "timed_out"
	StatusSkipped    Status = "skipped"
)

// Terminal reports whether no further transition leaves s: succeeded,
// failed, cancelled, timed_out or skipped.
func (s Status) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusCancelled, StatusTimedOut, StatusSkipped:
		return true
	}
	return false
}

// Run is one execution of a job or a one-shot submission.
//
// Its JSON form is the HTTP API's run object (GET /api/v1/runs/{id}):
// unset optional values (Job, ParentID, Shard, Key, LogicalTime, StartedAt,
// FinishedAt, WorkerID, Payload, Result, Error, Timeout, Routing) are null,
// times are RFC 3339 in UTC, and Timeout is a Go duration string ("30m").
type Run struct {
	ID       string `json:"id"`
	Job      string `json:"job"`       // "" for a one-shot submission
	ParentID string `json:"parent_id"` // the parent of a shard
	Shard    *int   `json:"shard"`     // shard index, nil when not a shard
	// ShardCount is a fan-out's number of children, on its parent and on
	// each child (0 otherwise).
	ShardCount  int             `json:"shard_count,omitempty"`
	Type        string          `json:"type"`    // handler type
	Group       string          `json:"group"`   // worker group
	Payload     json.RawMessage `json:"payload"` // JSON; nil means null
	Priority    int             `json:"priority"`
	Status      Status          `json:"status"`
	Attempt     int             `json:"attempt"`      // current attempt; 0 before the first dispatch
	MaxAttempts int             `json:"max_attempts"` // attempts that may fail before the run fails
	Key         string          `json:"key"`          // idempotency key
	LogicalTime time.Time       `json:"logical_time"` // schedule slot (cron fire time, backfill date)
	RunAt       time.Time       `json:"run_at"`       // when it becomes (or became) due
	CreatedAt   time.Time       `json:"created_at"`
	StartedAt   time.Time       `json:"started_at"`
	FinishedAt  time.Time       `json:"finished_at"`
	WorkerID    string          `json:"worker_id"`
	Result      json.RawMessage `json:"result"` // JSON; nil means null
	Error       string          `json:"error"`
	Timeout     time.Duration   `json:"timeout"` // per attempt; 0: none
	Routing     string          `json:"routing"` // routing strategy; "": the default
	// CallbackURL is where the run's outcome is POSTed when it ends
	// ("": nowhere); Callback is the state of that delivery (nil without
	// a URL).
	CallbackURL string    `json:"callback_url"`
	Callback    *Callback `json:"callback"`

	// Existing is set by Submit and SubmitBatch: true when the spec's Key
	// already named a run, which is returned and nothing new was created.
	// It is not part of the run's JSON.
	Existing bool `json:"-"`
}

// Terminal reports whether the run has finished (see Status.Terminal).
func (r *Run) Terminal() bool { return r.Status.Terminal() }

// Succeeded reports whether the run finished successfully.
func (r *Run) Succeeded() bool { return r.Status == StatusSucceeded }

// DecodeResult unmarshals the run's JSON result into v. A run without a
// result (not finished, or its handler returned none) leaves v unchanged
// and returns nil; check Succeeded and Error for how the run ended.
func (r *Run) DecodeResult(v any) error {
	if len(r.Result) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Result, v); err != nil {
		return fmt.Errorf("pluto: decode result of run %s: %w", r.ID, err)
	}
	return nil
}

// DecodePayload unmarshals the run's JSON payload into v; a null payload
// leaves v unchanged.
func (r *Run) DecodePayload(v any) error {
	if len(r.Payload) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Payload, v); err != nil {
		return fmt.Errorf("pluto: decode payload of run %s: %w", r.ID, err)
	}
	return nil
}

// Callback is the state of the delivery of a run's outcome to its
// CallbackURL.
type Callback struct {
	// State is CallbackNone until the run ends, then CallbackPending until
	// a POST is answered 2xx (CallbackDelivered) or the delivery expires
	// (CallbackFailed).
	State       string
	Attempts    int       // POSTs started
	NextAt      time.Time // when a pending delivery is next tried
	LastError   string    // why the last attempt failed
	DeliveredAt time.Time
}

// Callback states.
const (
	CallbackNone      = "none"
	CallbackPending   = "pending"
	CallbackDelivered = "delivered"
	CallbackFailed    = "failed"
)

// callbackJSON is Callback's wire JSON form.
type callbackJSON struct {
	State       string     `json:"state"`
	Attempts    int        `json:"attempts"`
	NextAt      *time.Time `json:"next_at"`
	LastError   *string    `json:"last_error"`
	DeliveredAt *time.Time `json:"delivered_at"`
}

func (c *Callback) toJSON() *callbackJSON {
	if c == nil {
		return nil
	}
	return &callbackJSON{State: c.State, Attempts: c.Attempts, NextAt: optTime(c.NextAt),
		LastError: optString(c.LastError), DeliveredAt: optTime(c.DeliveredAt)}
}

func (j *callbackJSON) callback() *Callback {
	if j == nil {
		return nil
	}
	c := &Callback{State: j.State, Attempts: j.Attempts}
	if j.NextAt != nil {
		c.NextAt = *j.NextAt
	}
	if j.LastError != nil {
		c.LastError = *j.LastError
	}
	if j.DeliveredAt != nil {
		c.DeliveredAt = *j.DeliveredAt
	}
	return c
}

// runJSON is Run's wire JSON form.
type runJSON struct {
	ID          string          `json:"id"`
	Job         *string         `json:"job"`
	ParentID    *string         `json:"parent_id"`
	Shard       *int            `json:"shard"`
	Type        string          `json:"type"`
	Group       string          `json:"group"`
	Payload     json.RawMessage `json:"payload"`
	Priority    int             `json:"priority"`
	Status      Status          `json:"status"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	Key         *string         `json:"key"`
	LogicalTime *time.Time      `json:"logical_time"`
	RunAt       *time.Time      `json:"run_at"`
	CreatedAt   *time.Time      `json:"created_at"`
	StartedAt   *time.Time      `json:"started_at"`
	FinishedAt  *time.Time      `json:"finished_at"`
	WorkerID    *string         `json:"worker_id"`
	Result      json.RawMessage `json:"result"`
	Error       *string         `json:"error"`
	Timeout     *string         `json:"timeout"`
	Routing     *string         `json:"routing"`
	CallbackURL *string         `json:"callback_url"`
	Callback    *callbackJSON   `json:"callback"`
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// formatDuration is the API's duration form: a Go duration string without
// trailing zero units ("30m", not "30m0s").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func optRaw(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return nil // marshals as null
	}
	return m
}

// MarshalJSON encodes the run in the HTTP API's shape.
func (r Run) MarshalJSON() ([]byte, error) {
	j := runJSON{
		ID:          r.ID,
		Job:         optString(r.Job),
		ParentID:    optString(r.ParentID),
		Shard:       r.Shard,
		Type:        r.Type,
		Group:       r.Group,
		Payload:     optRaw(r.Payload),
		Priority:    r.Priority,
		Status:      r.Status,
		Attempt:     r.Attempt,
		MaxAttempts: r.MaxAttempts,
		Key:         optString(r.Key),
		LogicalTime: optTime(r.LogicalTime),
		RunAt:       optTime(r.RunAt),
		CreatedAt:   optTime(r.CreatedAt),
		StartedAt:   optTime(r.StartedAt),
		FinishedAt:  optTime(r.FinishedAt),
		WorkerID:    optString(r.WorkerID),
		Result:      optRaw(r.Result),
		Error:       optString(r.Error),
		Routing:     optString(r.Routing),
		CallbackURL: optString(r.CallbackURL),
		Callback:    r.Callback.toJSON(),
	}
	if r.Timeout != 0 {
		d := formatDuration(r.Timeout)
		j.Timeout = &d
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes the HTTP API's run object; null and missing
// optional values become zero values.
func (r *Run) UnmarshalJSON(data []byte) error {
	var j runJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	deref := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	tm := func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	}
	raw := func(m json.RawMessage) json.RawMessage {
		if len(m) == 0 || bytes.Equal(m, []byte("null")) {
			return nil
		}
		return m
	}
	var timeout time.Duration
	if j.Timeout != nil && *j.Timeout != "" {
		d, err := time.ParseDuration(*j.Timeout)
		if err != nil {
			return fmt.Errorf("pluto: run timeout: %w", err)
		}
		timeout = d
	}
	*r = Run{
		ID:          j.ID,
		Job:         deref(j.Job),
		ParentID:    deref(j.ParentID),
		Shard:       j.Shard,
		Type:        j.Type,
		Group:       j.Group,
		Payload:     raw(j.Payload),
		Priority:    j.Priority,
		Status:      j.Status,
		Attempt:     j.Attempt,
		MaxAttempts: j.MaxAttempts,
		Key:         deref(j.Key),
		LogicalTime: tm(j.LogicalTime),
		RunAt:       tm(j.RunAt),
		CreatedAt:   tm(j.CreatedAt),
		StartedAt:   tm(j.StartedAt),
		FinishedAt:  tm(j.FinishedAt),
		WorkerID:    deref(j.WorkerID),
		Result:      raw(j.Result),
		Error:       deref(j.Error),
		Timeout:     timeout,
		Routing:     deref(j.Routing),
		CallbackURL: deref(j.CallbackURL),
		Callback:    j.Callback.callback(),
	}
	return nil
}

func fromUnixMs(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func rawOrNil(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}

// runFromProto converts a wire run.
func runFromProto(p *plutov1.Run) *Run {
	if p == nil {
		return nil
	}
	r := &Run{
		ID:          p.GetId(),
		Job:         p.GetJob(),
		ParentID:    p.GetParentId(),
		ShardCount:  int(p.GetShardCount()),
		Type:        p.GetType(),
		Group:       p.GetGroup(),
		Payload:     rawOrNil(p.GetPayload()),
		Priority:    int(p.GetPriority()),
		Status:      Status(p.GetStatus()),
		Attempt:     int(p.GetAttempt()),
		MaxAttempts: int(p.GetMaxAttempts()),
		Key:         p.GetKey(),
		LogicalTime: fromUnixMs(p.GetLogicalTimeUnixMs()),
		RunAt:       fromUnixMs(p.GetRunAtUnixMs()),
		CreatedAt:   fromUnixMs(p.GetCreatedAtUnixMs()),
		StartedAt:   fromUnixMs(p.GetStartedAtUnixMs()),
		FinishedAt:  fromUnixMs(p.GetFinishedAtUnixMs()),
		WorkerID:    p.GetWorkerId(),
		Result:      rawOrNil(p.GetResult()),
		Error:       p.GetError(),
		Timeout:     time.Duration(p.GetTimeoutMs()) * time.Millisecond,
		Routing:     p.GetRouting(),
		CallbackURL: p.GetCallbackUrl(),
	}
	if c := p.GetCallback(); c != nil {
		r.Callback = &Callback{
			State: c.GetState(), Attempts: int(c.GetAttempts()), NextAt: fromUnixMs(c.GetNextAtUnixMs()),
			LastError: c.GetLastError(), DeliveredAt: fromUnixMs(c.GetDeliveredAtUnixMs()),
		}
	}
	if p.GetHasShard() {
		s := int(p.GetShard())
		r.Shard = &s
	}
	return r
}
