package apijson

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// FromRun is a stored run as the API shows it. The server answers with it
// and the feedback deliverer POSTs it to a run's callback URL.
func FromRun(r *store.Run) Run {
	out := Run{
		ID:           r.ID,
		Job:          OptString(r.Job),
		ParentID:     OptString(r.ParentID),
		Shard:        r.Shard,
		ShardCount:   r.ShardCount,
		Type:         r.Type,
		Group:        r.Group,
		Payload:      RawJSON(r.Payload),
		Priority:     r.Priority,
		Status:       string(r.Status),
		Attempt:      r.Attempt,
		MaxAttempts:  r.MaxAttempts,
		Key:          OptString(r.Key),
		LogicalTime:  OptTime(r.LogicalTime),
		RunAt:        OptTime(r.RunAt),
		CreatedAt:    OptTime(r.CreatedAt),
		DispatchedAt: OptTime(r.DispatchedAt),
		StartedAt:    OptTime(r.StartedAt),
		FinishedAt:   OptTime(r.FinishedAt),
		WorkerID:     OptString(r.WorkerID),
		Result:       RawJSON(r.Result),
		Error:        OptString(r.Error),
		Timeout:      OptDuration(r.Timeout),
		Routing:      OptString(r.Routing),
		CallbackURL:  OptString(r.CallbackURL),
	}
	if r.CallbackURL != "" {
		state := string(r.Callback.State)
		if state == "" {
			state = "none"
		}
		out.Callback = &Callback{
			State:       state,
			Attempts:    r.Callback.Attempts,
			NextAt:      OptTime(r.Callback.NextAt),
			LastError:   OptString(r.Callback.LastError),
			DeliveredAt: OptTime(r.Callback.DeliveredAt),
		}
	}
	return out
}

// FromFanout is a join state as the API shows it.
func FromFanout(fo *store.Fanout) *Fanout {
	return &Fanout{Children: fo.Total, Ended: fo.Ended, Failed: fo.Failed, MinSuccess: fo.MinSuccess,
		Merge: OptString(fo.Merge), MergeRunID: OptString(fo.MergeID)}
}

// OptString is s, or nil for "".
func OptString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// FormatTime is the API's time format: RFC 3339 in UTC with as many
// fractional digits as needed.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// OptTime is FormatTime, or nil for the zero time.
func OptTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := FormatTime(t)
	return &s
}

// FormatDuration is a Go duration string without trailing zero units:
// "30m" rather than "30m0s", "1h" rather than "1h0m0s".
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// OptDuration is FormatDuration, or nil for 0.
func OptDuration(d time.Duration) *string {
	if d == 0 {
		return nil
	}
	s := FormatDuration(d)
	return &s
}

// RawJSON makes stored JSON safe to embed: empty becomes null, and bytes
// that are not valid JSON (which a correct store never holds) become a JSON
// string rather than corrupting the document.
func RawJSON(b json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if !json.Valid(b) {
		s, _ := json.Marshal(string(b))
		return s
	}
	return b
}
