package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// fakeServer is an in-memory stand-in for a Pluto server's ClientService.
// It answers with the same status codes and error details as the real
// adapter (internal/server/clientsvc.go). Runs of type "echo" succeed
// shortly after submission with their payload as result, runs of type
// "fail" fail; others stay queued until finish is called.
type fakeServer struct {
	plutov1.UnimplementedClientServiceServer
	name       string
	maxPayload int

	mu        sync.Mutex
	seq       int
	runs      map[string]*plutov1.Run
	order     []string
	keys      map[string]string
	changed   chan struct{}
	submits   []*plutov1.SubmitRequest
	auth      []string // authorization metadata of each call
	waitPolls []int64  // timeout_ms of each Wait
	errFor    map[string]error
	lose      string // "unavailable": store a submission, then answer Unavailable; "hang": store it, then never answer

	srv      *grpc.Server
	addr     string
	done     chan struct{}
	lastList *plutov1.ListRequest // the last List request, as received
}

// startFake serves a fake on 127.0.0.1:0. Call stop when done.
func startFake(name string) (*fakeServer, error) { return startFakeAt(name, "127.0.0.1:0") }

// startFakeAt serves a fake on addr.
func startFakeAt(name, addr string) (*fakeServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	f := &fakeServer{
		name: name, maxPayload: 1024,
		runs: map[string]*plutov1.Run{}, keys: map[string]string{}, errFor: map[string]error{},
		changed: make(chan struct{}), addr: ln.Addr().String(), done: make(chan struct{}),
	}
	f.srv = grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		auth := ""
		if a := md.Get("authorization"); len(a) > 0 {
			auth = a[0]
		}
		f.mu.Lock()
		f.auth = append(f.auth, auth)
		f.mu.Unlock()
		return h(ctx, req)
	}))
	plutov1.RegisterClientServiceServer(f.srv, f)
	go func() { defer close(f.done); _ = f.srv.Serve(ln) }()
	return f, nil
}

// gracefulStop ends the server after its calls in flight (GOAWAY first).
func (f *fakeServer) gracefulStop() {
	f.srv.GracefulStop()
	<-f.done
}

// stop ends the server at once (connections are cut).
func (f *fakeServer) stop() {
	f.srv.Stop()
	<-f.done
}

func fieldErr(field, msg string) error {
	st := status.New(codes.InvalidArgument, field+": "+msg)
	st, _ = st.WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg}},
	})
	return st.Err()
}

func notFound(id string) error {
	return status.Errorf(codes.NotFound, "run %s: store: not found", id)
}

func nowMs() int64 { return time.Now().UnixMilli() }

func terminal(s string) bool {
	switch s {
	case "succeeded", "failed", "cancelled", "timed_out", "skipped":
		return true
	}
	return false
}

// notifyLocked wakes waiters; f.mu must be held.
func (f *fakeServer) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeServer) copyRun(id string) *plutov1.Run {
	return clone(f.runs[id])
}

func clone(r *plutov1.Run) *plutov1.Run {
	c := r
	return &plutov1.Run{
		Id: c.Id, Job: c.Job, ParentId: c.ParentId, Shard: c.Shard, HasShard: c.HasShard, Type: c.Type,
		Group: c.Group, Payload: c.Payload, Priority: c.Priority, Status: c.Status, Attempt: c.Attempt,
		MaxAttempts: c.MaxAttempts, Key: c.Key, LogicalTimeUnixMs: c.LogicalTimeUnixMs,
		RunAtUnixMs: c.RunAtUnixMs, CreatedAtUnixMs: c.CreatedAtUnixMs, StartedAtUnixMs: c.StartedAtUnixMs,
		FinishedAtUnixMs: c.FinishedAtUnixMs, WorkerId: c.WorkerId, Result: c.Result, Error: c.Error,
		TimeoutMs: c.TimeoutMs, Routing: c.Routing,
	}
}

// finish ends a run as a worker would.
func (f *fakeServer) finish(id, st string, result []byte, errMsg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runs[id]
	if r == nil || terminal(r.Status) {
		return
	}
	r.Status, r.Result, r.Error = st, result, errMsg
	r.Attempt = max(r.Attempt, 1)
	r.WorkerId = f.name + "-worker"
	if r.StartedAtUnixMs == 0 {
		r.StartedAtUnixMs = nowMs()
	}
	r.FinishedAtUnixMs = nowMs()
	f.notifyLocked()
}

func (f *fakeServer) Submit(ctx context.Context, req *plutov1.SubmitRequest) (*plutov1.SubmitResponse, error) {
	for _, s := range req.Runs {
		if s.Type == "" {
			return nil, fieldErr("type", "is required")
		}
		if s.Group == "" {
			return nil, fieldErr("group", "is required")
		}
		if len(s.Payload) > f.maxPayload {
			return nil, status.Errorf(codes.ResourceExhausted, "payload is %d bytes, the limit is %d: engine: payload too large", len(s.Payload), f.maxPayload)
		}
		if len(s.Payload) > 0 && !json.Valid(s.Payload) {
			return nil, fieldErr("payload", "not valid JSON")
		}
		if s.Priority > 1<<20 || s.Priority < -1<<20 {
			return nil, fieldErr("priority", "must be within ±1048576")
		}
	}
	resp, lose := f.store(req)
	switch lose {
	case "unavailable":
		return nil, status.Error(codes.Unavailable, "connection lost before the reply")
	case "hang":
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return resp, nil
}

// store stores a submission.
func (f *fakeServer) store(req *plutov1.SubmitRequest) (*plutov1.SubmitResponse, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submits = append(f.submits, req)
	resp := &plutov1.SubmitResponse{}
	for _, s := range req.Runs {
		if id, ok := f.keys[s.Key]; ok && s.Key != "" {
			resp.Runs = append(resp.Runs, f.copyRun(id))
			resp.Existing = append(resp.Existing, true)
			continue
		}
		f.seq++
		id := fmt.Sprintf("%s_%d", f.name, f.seq)
		now := nowMs()
		r := &plutov1.Run{
			Id: id, Job: s.Job, Type: s.Type, Group: s.Group, Payload: s.Payload, Priority: s.Priority,
			Status: "queued", MaxAttempts: s.Retries + 1, Key: s.Key, RunAtUnixMs: now, CreatedAtUnixMs: now,
			TimeoutMs: s.TimeoutMs, Routing: s.Routing,
		}
		if s.RunAtUnixMs != 0 {
			r.RunAtUnixMs = s.RunAtUnixMs
		}
		if s.DelayMs > 0 {
			r.RunAtUnixMs = now + s.DelayMs
		}
		if r.RunAtUnixMs > now {
			r.Status = "pending"
		}
		f.runs[id] = r
		f.order = append(f.order, id)
		if s.Key != "" {
			f.keys[s.Key] = id
		}
		switch s.Type {
		case "echo":
			time.AfterFunc(20*time.Millisecond, func() { f.finish(id, "succeeded", s.Payload, "") })
		case "fail":
			time.AfterFunc(20*time.Millisecond, func() { f.finish(id, "failed", nil, "boom") })
		}
		resp.Runs = append(resp.Runs, f.copyRun(id))
		resp.Existing = append(resp.Existing, false)
	}
	return resp, f.lose
}

// setLose makes the fake lose (or, with "", send) the replies to
// submissions it stores.
func (f *fakeServer) setLose(mode string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lose = mode
}

// createdKeys returns the keys of the runs created, in creation order.
func (f *fakeServer) createdKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var keys []string
	for _, id := range f.order {
		keys = append(keys, f.runs[id].Key)
	}
	return keys
}

// runWithKey returns a copy of the run created for key, or nil.
func (f *fakeServer) runWithKey(key string) *plutov1.Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.keys[key]; ok {
		return f.copyRun(id)
	}
	return nil
}

// submitCount is the number of submit requests stored.
func (f *fakeServer) submitCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.submits)
}

func (f *fakeServer) Get(ctx context.Context, req *plutov1.GetRequest) (*plutov1.Run, error) {
	if req.Id == "slow" {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errFor[req.Id]; err != nil {
		return nil, err
	}
	if f.runs[req.Id] == nil {
		return nil, notFound(req.Id)
	}
	return f.copyRun(req.Id), nil
}

func (f *fakeServer) List(ctx context.Context, req *plutov1.ListRequest) (*plutov1.ListResponse, error) {
	for _, s := range req.Status {
		if !slices.Contains([]string{"pending", "blocked", "queued", "dispatched", "running", "succeeded", "failed", "cancelled", "timed_out", "skipped"}, s) {
			return nil, fieldErr("status", fmt.Sprintf("unknown status %q", s))
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastList = req
	var match []string
	for i := len(f.order) - 1; i >= 0; i-- { // newest first
		r := f.runs[f.order[i]]
		if len(req.Status) > 0 && !slices.Contains(req.Status, r.Status) ||
			req.Group != "" && r.Group != req.Group || req.Job != "" && r.Job != req.Job {
			continue
		}
		match = append(match, r.Id)
	}
	start := 0
	if req.Cursor != "" {
		n, err := strconv.Atoi(req.Cursor)
		if err != nil {
			return nil, fieldErr("cursor", "malformed")
		}
		start = n
	}
	limit := int(req.Limit)
	if limit == 0 {
		limit = 100
	}
	resp := &plutov1.ListResponse{}
	end := min(start+limit, len(match))
	for _, id := range match[min(start, len(match)):end] {
		resp.Runs = append(resp.Runs, f.copyRun(id))
	}
	if end < len(match) {
		resp.NextCursor = strconv.Itoa(end)
	}
	return resp, nil
}

func (f *fakeServer) Wait(ctx context.Context, req *plutov1.WaitRequest) (*plutov1.Run, error) {
	var timeout <-chan time.Time
	if req.TimeoutMs > 0 {
		t := time.NewTimer(time.Duration(req.TimeoutMs) * time.Millisecond)
		defer t.Stop()
		timeout = t.C
	}
	f.mu.Lock()
	f.waitPolls = append(f.waitPolls, req.TimeoutMs)
	f.mu.Unlock()
	for {
		f.mu.Lock()
		r := f.runs[req.Id]
		if r == nil {
			f.mu.Unlock()
			return nil, notFound(req.Id)
		}
		snap, ch := clone(r), f.changed
		f.mu.Unlock()
		if terminal(snap.Status) {
			return snap, nil
		}
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-timeout:
			return snap, nil
		case <-ch:
		}
	}
}

func (f *fakeServer) Cancel(ctx context.Context, req *plutov1.CancelRequest) (*plutov1.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runs[req.Id]
	if r == nil {
		return nil, notFound(req.Id)
	}
	if !terminal(r.Status) {
		r.Status, r.Error, r.FinishedAtUnixMs = "cancelled", req.Reason, nowMs()
		f.notifyLocked()
	}
	return clone(r), nil
}

func (f *fakeServer) Retry(ctx context.Context, req *plutov1.RetryRequest) (*plutov1.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runs[req.Id]
	if r == nil {
		return nil, notFound(req.Id)
	}
	if !terminal(r.Status) || r.Status == "succeeded" {
		return nil, status.Errorf(codes.FailedPrecondition, "run %s is %s: store: conflict", r.Id, r.Status)
	}
	r.Status, r.Error, r.Result, r.FinishedAtUnixMs = "queued", "", nil, 0
	f.notifyLocked()
	return clone(r), nil
}

func (f *fakeServer) authSeen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.auth)
}

func (f *fakeServer) polls() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.waitPolls)
}

func (f *fakeServer) lastSubmit() *plutov1.SubmitRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.submits) == 0 {
		return nil
	}
	return f.submits[len(f.submits)-1]
}

func (f *fakeServer) setErr(id string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errFor[id] = err
}
