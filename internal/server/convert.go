package server

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/pluto-sched/pluto/internal/engine"
	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
	"github.com/pluto-sched/pluto/internal/store"
)

// Conversions between the protobuf wire types of the client service and the
// engine/store types. Times on the wire are Unix milliseconds with 0 meaning
// unset; durations are milliseconds.

// pbMillis converts t to Unix milliseconds; the zero time is 0.
func pbMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// pbTime converts Unix milliseconds to a UTC time; 0 is the zero time.
func pbTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// runToPB converts a stored run to its wire form.
func runToPB(r *store.Run) *plutov1.Run {
	if r == nil {
		return nil
	}
	p := &plutov1.Run{
		Id:                r.ID,
		Job:               r.Job,
		ParentId:          r.ParentID,
		Type:              r.Type,
		Group:             r.Group,
		Payload:           []byte(r.Payload),
		Priority:          int32(r.Priority),
		Status:            string(r.Status),
		Attempt:           int32(r.Attempt),
		MaxAttempts:       int32(r.MaxAttempts),
		Key:               r.Key,
		LogicalTimeUnixMs: pbMillis(r.LogicalTime),
		RunAtUnixMs:       pbMillis(r.RunAt),
		CreatedAtUnixMs:   pbMillis(r.CreatedAt),
		StartedAtUnixMs:   pbMillis(r.StartedAt),
		FinishedAtUnixMs:  pbMillis(r.FinishedAt),
		WorkerId:          r.WorkerID,
		Result:            []byte(r.Result),
		Error:             r.Error,
		TimeoutMs:         r.Timeout.Milliseconds(),
		Routing:           r.Routing,
		CallbackUrl:       r.CallbackURL,
	}
	if r.CallbackURL != "" {
		state := string(r.Callback.State)
		if state == "" {
			state = "none"
		}
		p.Callback = &plutov1.CallbackState{
			State:             state,
			Attempts:          int32(r.Callback.Attempts),
			NextAtUnixMs:      pbMillis(r.Callback.NextAt),
			LastError:         r.Callback.LastError,
			DeliveredAtUnixMs: pbMillis(r.Callback.DeliveredAt),
		}
	}
	if r.Shard != nil {
		p.Shard = int32(*r.Shard)
		p.HasShard = true
	}
	p.ShardCount = int32(r.ShardCount)
	return p
}

// specFromPB converts one submitted RunSpec. index is its position in
// the batch (for error messages) and n the batch size. The payload must be
// JSON (empty means null); a payload larger than maxPayload (when > 0)
// gives engine.ErrPayloadTooLarge.
func specFromPB(s *plutov1.RunSpec, index, n int, maxPayload int64) (engine.SubmitSpec, error) {
	where := ""
	if n > 1 {
		where = fmt.Sprintf("run %d: ", index)
	}
	if s == nil {
		return engine.SubmitSpec{}, &engine.FieldError{Field: "runs", Message: where + "missing run spec"}
	}
	var payload json.RawMessage
	if len(s.Payload) > 0 {
		if maxPayload > 0 && int64(len(s.Payload)) > maxPayload {
			return engine.SubmitSpec{}, fmt.Errorf("%spayload is %d bytes, the limit is %d: %w",
				where, len(s.Payload), maxPayload, engine.ErrPayloadTooLarge)
		}
		if !json.Valid(s.Payload) {
			return engine.SubmitSpec{}, &engine.FieldError{Field: "payload", Message: where + "not valid JSON"}
		}
		payload = json.RawMessage(s.Payload)
	}
	return engine.SubmitSpec{
		Type:        s.Type,
		Group:       s.Group,
		Payload:     payload,
		Priority:    int(s.Priority),
		Delay:       time.Duration(s.DelayMs) * time.Millisecond,
		RunAt:       pbTime(s.RunAtUnixMs),
		Timeout:     time.Duration(s.TimeoutMs) * time.Millisecond,
		Retries:     int(s.Retries),
		Key:         s.Key,
		Routing:     s.Routing,
		RoutingKey:  s.RoutingKey,
		Job:         s.Job,
		CallbackURL: s.CallbackUrl,
		Shards:      int(s.Shards),
		Parts:       rawParts(s.Parts),
		MinSuccess:  s.MinSuccess,
		Merge:       s.Merge,
	}, nil
}

// rawParts are a fan-out's parts (nil for none).
func rawParts(ps [][]byte) []json.RawMessage {
	if ps == nil {
		return nil
	}
	out := make([]json.RawMessage, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// listParamsFromPB converts a list request; an unknown status is a
// field error on "status".
func listParamsFromPB(req *plutov1.ListRequest) (store.RunListParams, error) {
	ms := func(v int64) time.Time {
		if v == 0 {
			return time.Time{}
		}
		return time.UnixMilli(v).UTC()
	}
	p := store.RunListParams{
		Group:          req.GetGroup(),
		Job:            req.GetJob(),
		Type:           req.GetType(),
		WorkerID:       req.GetWorker(),
		CreatedAfter:   ms(req.GetCreatedAfterUnixMs()),
		CreatedBefore:  ms(req.GetCreatedBeforeUnixMs()),
		FinishedAfter:  ms(req.GetFinishedAfterUnixMs()),
		FinishedBefore: ms(req.GetFinishedBeforeUnixMs()),
		ErrorContains:  req.GetError(),
		Limit:          int(req.GetLimit()),
		Cursor:         req.GetCursor(),
	}
	if p.Limit < 0 {
		return p, &engine.FieldError{Field: "limit", Message: "must not be negative"}
	}
	switch req.GetOrder() {
	case "", "desc":
	case "asc":
		p.Order = store.OrderAsc
	default:
		return p, &engine.FieldError{Field: "order", Message: fmt.Sprintf("must be asc or desc, not %q", req.GetOrder())}
	}
	for _, s := range req.GetStatus() {
		st := store.RunStatus(s)
		if !st.Valid() {
			return p, &engine.FieldError{Field: "status", Message: fmt.Sprintf("unknown status %q", s)}
		}
		p.Statuses = append(p.Statuses, st)
	}
	return p, nil
}
