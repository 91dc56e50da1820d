package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pluto-sched/pluto/internal/netguard"
	"github.com/pluto-sched/pluto/internal/store"
)

// Limits on submitted fields.
const (
	maxNameLen    = 200
	maxKeyLen     = 512
	maxRetries    = 1000
	maxPriority   = 1 << 20
	maxBatchSpecs = 10000
)

// Submit validates and stores runs, all in one transaction, and returns
// them once committed. A spec whose idempotency key already names a run
// returns that run (Existing) and creates nothing.
func (e *Engine) Submit(ctx context.Context, specs []SubmitSpec) ([]SubmitResult, error) {
	if len(specs) == 0 {
		return nil, &FieldError{Field: "runs", Message: "at least one run is required"}
	}
	if len(specs) > maxBatchSpecs {
		return nil, &FieldError{Field: "runs", Message: fmt.Sprintf("at most %d runs per batch", maxBatchSpecs)}
	}
	for i := range specs {
		if isBroadcast(specs[i].Routing) || specs[i].jobShards > 0 {
			if specs[i].fanout() {
				return nil, &FieldError{Field: "routing", Message: "a broadcast makes one child per worker; give shards or parts without it"}
			}
			continue // split when dispatched (insertParams)
		}
		if !specs[i].fanout() && specs[i].MinSuccess == 0 && specs[i].Merge == "" {
			continue
		}
		if len(specs) > 1 {
			return nil, &FieldError{Field: fmt.Sprintf("runs[%d].shards", i), Message: "a fan-out (shards or parts) is submitted on its own, not in a batch"}
		}
		if !specs[i].fanout() {
			field := map[bool]string{true: "merge", false: "min_success"}[specs[i].Merge != ""]
			return nil, &FieldError{Field: field, Message: "applies to a fan-out only: give shards or parts"}
		}
		r, err := e.submitFanout(ctx, &specs[i])
		if err != nil {
			return nil, err
		}
		return []SubmitResult{r}, nil
	}
	now := e.now()
	params := make([]store.RunInsertParams, len(specs))
	for i := range specs {
		p, err := e.insertParams(&specs[i], now)
		if err != nil {
			if fe, ok := err.(*FieldError); ok && len(specs) > 1 {
				fe.Field = fmt.Sprintf("runs[%d].%s", i, fe.Field)
			}
			return nil, err
		}
		params[i] = p
	}
	done := make(chan struct{})
	o := &insertOp{params: params}
	o.done = func() {
		if o.err == nil {
			e.disp.mu.Lock()
			for _, r := range o.res {
				if !r.Existing {
					e.created(r.Run)
				}
			}
			e.disp.mu.Unlock()
		}
		close(done)
	}
	e.submitOp(o)
	if err := e.await(ctx, o, done); err != nil {
		return nil, err
	}
	out := make([]SubmitResult, len(o.res))
	for i, r := range o.res {
		out[i] = SubmitResult{Run: r.Run, Existing: r.Existing}
	}
	return out, nil
}

// created reacts to a committed new run. Called with e.disp.mu held.
func (e *Engine) created(r *store.Run) {
	switch r.Status {
	case store.StatusQueued:
		e.wake(r.Group)
	case store.StatusPending:
		e.notePending(r.RunAt)
	case store.StatusBlocked:
		if r.Job != "" && !r.LogicalTime.IsZero() {
			e.gate.note(gateNote{job: r.Job, at: r.LogicalTime, run: r.ID}) // its upstream runs may have ended
		}
	}
}

func (e *Engine) insertParams(s *SubmitSpec, now time.Time) (store.RunInsertParams, error) {
	switch {
	case s.Type == "":
		return store.RunInsertParams{}, &FieldError{Field: "type", Message: "is required"}
	case len(s.Type) > maxNameLen:
		return store.RunInsertParams{}, &FieldError{Field: "type", Message: fmt.Sprintf("is longer than %d bytes", maxNameLen)}
	case s.Group == "":
		return store.RunInsertParams{}, &FieldError{Field: "group", Message: "is required"}
	case len(s.Group) > maxNameLen:
		return store.RunInsertParams{}, &FieldError{Field: "group", Message: fmt.Sprintf("is longer than %d bytes", maxNameLen)}
	case int64(len(s.Payload)) > e.live().MaxPayload:
		return store.RunInsertParams{}, fmt.Errorf("%w: %d bytes, the limit is %d", ErrPayloadTooLarge, len(s.Payload), e.live().MaxPayload)
	case len(s.Payload) > 0 && !json.Valid(s.Payload):
		return store.RunInsertParams{}, &FieldError{Field: "payload", Message: "is not valid JSON"}
	case s.Priority < -maxPriority || s.Priority > maxPriority:
		return store.RunInsertParams{}, &FieldError{Field: "priority", Message: fmt.Sprintf("must be within ±%d", maxPriority)}
	case s.Delay < 0:
		return store.RunInsertParams{}, &FieldError{Field: "delay", Message: "must not be negative"}
	case s.Delay > 0 && !s.RunAt.IsZero():
		return store.RunInsertParams{}, &FieldError{Field: "delay", Message: "give delay or run_at, not both"}
	case s.Timeout < 0:
		return store.RunInsertParams{}, &FieldError{Field: "timeout", Message: "must not be negative"}
	case s.Retries < 0 || s.Retries > maxRetries:
		return store.RunInsertParams{}, &FieldError{Field: "retries", Message: fmt.Sprintf("must be between 0 and %d", maxRetries)}
	case len(s.Key) > maxKeyLen:
		return store.RunInsertParams{}, &FieldError{Field: "key", Message: fmt.Sprintf("is longer than %d bytes", maxKeyLen)}
	case s.Routing != "" && !knownRouting(s.Routing):
		return store.RunInsertParams{}, &FieldError{Field: "routing", Message: fmt.Sprintf("unknown strategy %q (known: %v)", s.Routing, routings)}
	case len(s.Payload) > 0 && !utf8.Valid(s.Payload):
		return store.RunInsertParams{}, &FieldError{Field: "payload", Message: "is not valid UTF-8"}
	}
	for _, f := range []struct{ name, v string }{{"type", s.Type}, {"group", s.Group}, {"key", s.Key}, {"routing_key", s.RoutingKey}} {
		if err := plainText(f.name, f.v); err != nil {
			return store.RunInsertParams{}, err
		}
	}
	if err := e.validateCallbackURL(s.CallbackURL); err != nil {
		return store.RunInsertParams{}, err
	}
	if err := payloadURLCredentials(s.Type, s.Payload); err != nil {
		return store.RunInsertParams{}, err
	}
	runAt := now
	if s.Delay > 0 {
		runAt = now.Add(s.Delay)
	} else if !s.RunAt.IsZero() {
		runAt = s.RunAt.Truncate(time.Microsecond)
	}
	status := store.StatusQueued
	if runAt.After(now) {
		status = store.StatusPending
	}
	payload := s.Payload
	if len(payload) == 0 {
		payload = nil
	}
	split, err := splitOf(s)
	if err != nil {
		return store.RunInsertParams{}, err
	}
	return store.RunInsertParams{
		ID: e.cfg.NewID(), Job: s.Job, Type: s.Type, Group: s.Group, Payload: payload,
		Priority: s.Priority, Status: status, MaxAttempts: s.Retries + 1, Key: s.Key,
		RunAt: runAt, Timeout: s.Timeout, Routing: s.Routing, RoutingKey: s.RoutingKey, CallbackURL: s.CallbackURL,
		Split: split, Now: now,
	}, nil
}

// splitOf is how a spec's run splits when it is dispatched: a broadcast,
// or the shards its job gives it (nil for neither). The min_success and
// merge a split takes are checked here; a count of children is checked
// against a job's shards, while a broadcast's number is known only then.
func splitOf(s *SubmitSpec) (*store.Split, error) {
	var sp *store.Split
	switch {
	case s.jobShards > 0:
		sp = &store.Split{Shards: s.jobShards}
		if _, err := minSuccess(s.MinSuccess, s.jobShards); err != nil {
			return nil, err
		}
	case isBroadcast(s.Routing):
		sp = &store.Split{Broadcast: s.Routing}
		if _, err := minSuccess(s.MinSuccess, store.MaxFanout); err != nil {
			return nil, err
		}
	default:
		return nil, nil
	}
	if err := checkMerge(s.Merge); err != nil {
		return nil, err
	}
	sp.MinSuccess, sp.Merge = s.MinSuccess, s.Merge
	return sp, nil
}

// checkMerge checks a fan-out's merge type.
func checkMerge(merge string) error {
	if len(merge) > maxNameLen {
		return &FieldError{Field: "merge", Message: fmt.Sprintf("is longer than %d bytes", maxNameLen)}
	}
	return plainText("merge", merge)
}

// plainText rejects text a store cannot keep as it is: invalid UTF-8 and
// NUL bytes (PostgreSQL text refuses both).
func plainText(field, s string) error {
	if !utf8.ValidString(s) {
		return &FieldError{Field: field, Message: "is not valid UTF-8"}
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return &FieldError{Field: field, Message: fmt.Sprintf("has a NUL byte at byte %d", i)}
	}
	return nil
}

// payloadURLCredentials refuses an http run whose URL embeds credentials
// (user:password@): the run, its payload included, is shown to whoever
// may read runs, and the http handler would refuse it anyway. Credentials
// belong in the payload's headers.
func payloadURLCredentials(typ string, payload json.RawMessage) error {
	if typ != "http" || len(payload) == 0 {
		return nil
	}
	var p struct {
		URL string `json:"url"`
	}
	if json.Unmarshal(payload, &p) != nil || p.URL == "" {
		return nil // the handler reports a payload it cannot use
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		return nil
	}
	if err := netguard.CheckCredentials(u); err != nil {
		return &FieldError{Field: "payload.url", Message: "must not embed credentials (user:password@); send them in headers"}
	}
	return nil
}
