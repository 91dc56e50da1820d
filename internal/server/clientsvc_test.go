package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/pluto-sched/pluto/client"
	"github.com/pluto-sched/pluto/internal/engine"
	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
	"github.com/pluto-sched/pluto/internal/store"
)

// csFakeEngine is a scriptable Engine: each method returns what its field
// says and records its arguments.
type csFakeEngine struct {
	mu sync.Mutex

	submitted [][]engine.SubmitSpec
	submitFn  func([]engine.SubmitSpec) ([]engine.SubmitResult, error)

	getFn    func(id string) (*store.Run, error)
	listArgs []store.RunListParams
	listFn   func(store.RunListParams) (store.RunPage, error)
	waitFn   func(ctx context.Context, id string) (*store.Run, error)
	cancelFn func(id, reason string) (*store.Run, error)
	retryFn  func(id string) (*store.Run, error)
}

var _ Engine = (*csFakeEngine)(nil)

func (f *csFakeEngine) Submit(ctx context.Context, specs []engine.SubmitSpec) ([]engine.SubmitResult, error) {
	f.mu.Lock()
	f.submitted = append(f.submitted, specs)
	f.mu.Unlock()
	if f.submitFn != nil {
		return f.submitFn(specs)
	}
	out := make([]engine.SubmitResult, len(specs))
	for i, s := range specs {
		out[i] = engine.SubmitResult{Run: &store.Run{
			ID: fmt.Sprintf("r_%d", i+1), Type: s.Type, Group: s.Group, Payload: s.Payload,
			Priority: s.Priority, Status: store.StatusQueued, MaxAttempts: s.Retries + 1, Key: s.Key,
		}}
	}
	return out, nil
}

func (f *csFakeEngine) Get(ctx context.Context, id string) (*store.Run, error) {
	if f.getFn != nil {
		return f.getFn(id)
	}
	return nil, fmt.Errorf("run %s: %w", id, store.ErrNotFound)
}

func (f *csFakeEngine) List(ctx context.Context, p store.RunListParams) (store.RunPage, error) {
	f.mu.Lock()
	f.listArgs = append(f.listArgs, p)
	f.mu.Unlock()
	if f.listFn != nil {
		return f.listFn(p)
	}
	return store.RunPage{}, nil
}

func (f *csFakeEngine) Wait(ctx context.Context, id string) (*store.Run, error) {
	return f.waitFn(ctx, id)
}

func (f *csFakeEngine) Cancel(ctx context.Context, id, reason string) (*store.Run, error) {
	return f.cancelFn(id, reason)
}

func (f *csFakeEngine) Retry(ctx context.Context, id string) (*store.Run, error) {
	return f.retryFn(id)
}

func (f *csFakeEngine) Workers() []engine.WorkerInfo { return nil }
func (f *csFakeEngine) Logs(ctx context.Context, p store.LogListParams) ([]store.LogEntry, error) {
	return nil, nil
}
func (f *csFakeEngine) Fanout(context.Context, string) (*store.Fanout, error) {
	return nil, store.ErrNotFound
}

func (f *csFakeEngine) LogStats(ctx context.Context, id string) (store.LogStats, error) {
	return store.LogStats{}, nil
}
func (f *csFakeEngine) RunAttempts(ctx context.Context, id string) ([]store.Attempt, error) {
	return nil, nil
}
func (f *csFakeEngine) FollowLogs(ctx context.Context, id string) (<-chan struct{}, func(), error) {
	return make(chan struct{}), func() {}, nil
}
func (f *csFakeEngine) Ready(ctx context.Context) error { return nil }
func (f *csFakeEngine) Cluster(ctx context.Context) (engine.ClusterInfo, error) {
	return engine.ClusterInfo{Store: "fake"}, nil
}

func newTestClientSvc(eng Engine, maxPayload int64) *clientService {
	return newClientService(eng, maxPayload).(*clientService)
}

// csStatusOf returns the gRPC code of err and the field named by its
// BadRequest detail, if any.
func csStatusOf(t *testing.T, err error) (codes.Code, string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v (%T) is not a gRPC status", err, err)
	}
	field := ""
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 {
			field = br.FieldViolations[0].Field
		}
	}
	return st.Code(), field
}

func TestClientSvcRunToProto(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	shard := 0
	tests := []struct {
		name string
		in   *store.Run
		want *plutov1.Run
	}{
		{"nil", nil, nil},
		{
			name: "minimal",
			in:   &store.Run{ID: "r_1", Type: "t", Group: "g", Status: store.StatusQueued, CreatedAt: t0},
			want: &plutov1.Run{Id: "r_1", Type: "t", Group: "g", Status: "queued", CreatedAtUnixMs: t0.UnixMilli()},
		},
		{
			name: "full",
			in: &store.Run{
				ID: "r_2", Seq: 7, Job: "nightly", ParentID: "r_1", Shard: &shard, Type: "shell", Group: "default",
				Payload: json.RawMessage(`{"cmd":"echo hi"}`), Priority: -3, Status: store.StatusSucceeded,
				Attempt: 2, MaxAttempts: 3, Failures: 1, Key: "k", LogicalTime: t0, RunAt: t0.Add(time.Second),
				CreatedAt: t0.Add(2 * time.Second), StartedAt: t0.Add(3 * time.Second), FinishedAt: t0.Add(4 * time.Second),
				WorkerID: "w1", ServerID: "s1", Result: json.RawMessage(`{"exit_code":0}`), Error: "boom",
				Timeout: 90 * time.Second, Routing: "hash", RoutingKey: "rk",
			},
			want: &plutov1.Run{
				Id: "r_2", Job: "nightly", ParentId: "r_1", Shard: 0, HasShard: true, Type: "shell", Group: "default",
				Payload: []byte(`{"cmd":"echo hi"}`), Priority: -3, Status: "succeeded", Attempt: 2, MaxAttempts: 3,
				Key: "k", LogicalTimeUnixMs: t0.UnixMilli(), RunAtUnixMs: t0.UnixMilli() + 1000,
				CreatedAtUnixMs: t0.UnixMilli() + 2000, StartedAtUnixMs: t0.UnixMilli() + 3000,
				FinishedAtUnixMs: t0.UnixMilli() + 4000, WorkerId: "w1", Result: []byte(`{"exit_code":0}`),
				Error: "boom", TimeoutMs: 90000, Routing: "hash",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, runToPB(tt.in), protocmp.Transform()); diff != "" {
				t.Errorf("runToPB (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClientSvcSubmitConvertsSpecs(t *testing.T) {
	runAt := time.Date(2027, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	eng := &csFakeEngine{}
	svc := newTestClientSvc(eng, 1<<10)
	req := &plutov1.SubmitRequest{Runs: []*plutov1.RunSpec{
		{
			Type: "email.send", Group: "mail", Payload: []byte(`{"to":"a@b"}`), Priority: 5,
			DelayMs: 1500, TimeoutMs: 30000, Retries: 2, Key: "order-42", Routing: "hash",
			RoutingKey: "cust-7", Job: "j",
		},
		{Type: "noop", RunAtUnixMs: runAt.UnixMilli()},
	}}
	resp, err := svc.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]engine.SubmitSpec{{
		{
			Type: "email.send", Group: "mail", Payload: json.RawMessage(`{"to":"a@b"}`), Priority: 5,
			Delay: 1500 * time.Millisecond, Timeout: 30 * time.Second, Retries: 2, Key: "order-42",
			Routing: "hash", RoutingKey: "cust-7", Job: "j",
		},
		{Type: "noop", RunAt: runAt},
	}}
	if diff := cmp.Diff(want, eng.submitted, cmpopts.IgnoreUnexported(engine.SubmitSpec{})); diff != "" {
		t.Errorf("engine got (-want +got):\n%s", diff)
	}
	if len(resp.Runs) != 2 || resp.Runs[0].Id != "r_1" || resp.Runs[1].Id != "r_2" {
		t.Fatalf("runs = %v", resp.Runs)
	}
	if diff := cmp.Diff([]bool{false, false}, resp.Existing); diff != "" {
		t.Errorf("existing (-want +got):\n%s", diff)
	}
	if got := string(resp.Runs[0].Payload); got != `{"to":"a@b"}` {
		t.Errorf("payload = %s", got)
	}
}

func TestClientSvcSubmitExistingAndEmpty(t *testing.T) {
	eng := &csFakeEngine{submitFn: func(specs []engine.SubmitSpec) ([]engine.SubmitResult, error) {
		return []engine.SubmitResult{
			{Run: &store.Run{ID: "r_old", Key: "k"}, Existing: true},
			{Run: &store.Run{ID: "r_new"}},
		}, nil
	}}
	svc := newTestClientSvc(eng, 0)
	resp, err := svc.Submit(context.Background(), &plutov1.SubmitRequest{Runs: []*plutov1.RunSpec{{Type: "a", Key: "k"}, {Type: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Runs[0].Id != "r_old" || !resp.Existing[0] || resp.Runs[1].Id != "r_new" || resp.Existing[1] {
		t.Errorf("resp = %v", resp)
	}
	if len(eng.submitted) != 1 {
		t.Errorf("engine.Submit called %d times, want once for the batch", len(eng.submitted))
	}

	resp, err = svc.Submit(context.Background(), &plutov1.SubmitRequest{})
	if err != nil || len(resp.Runs) != 0 {
		t.Errorf("empty submit = %v, %v", resp, err)
	}
	if len(eng.submitted) != 1 {
		t.Errorf("empty submit reached the engine")
	}
}

func TestClientSvcSubmitPayloadChecks(t *testing.T) {
	tests := []struct {
		name      string
		payloads  []string
		max       int64
		wantCode  codes.Code
		wantField string
	}{
		{"empty is null", []string{""}, 10, codes.OK, ""},
		{"valid", []string{`[1,2,3]`}, 10, codes.OK, ""},
		{"at limit", []string{`"12345678"`}, 10, codes.OK, ""},
		{"not json", []string{`{nope`}, 0, codes.InvalidArgument, "payload"},
		{"not json in batch", []string{`1`, `hello`}, 0, codes.InvalidArgument, "payload"},
		{"too large", []string{`"123456789"`}, 10, codes.ResourceExhausted, ""},
		{"no limit", []string{`"123456789"`}, 0, codes.OK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng := &csFakeEngine{}
			svc := newTestClientSvc(eng, tt.max)
			req := &plutov1.SubmitRequest{}
			for _, p := range tt.payloads {
				req.Runs = append(req.Runs, &plutov1.RunSpec{Type: "t", Payload: []byte(p)})
			}
			_, err := svc.Submit(context.Background(), req)
			code, field := codes.OK, ""
			if err != nil {
				code, field = csStatusOf(t, err)
			}
			if code != tt.wantCode || field != tt.wantField {
				t.Fatalf("got %v field %q (%v), want %v field %q", code, field, err, tt.wantCode, tt.wantField)
			}
			if code != codes.OK && len(eng.submitted) != 0 {
				t.Errorf("a rejected batch reached the engine")
			}
			if code == codes.OK && tt.payloads[0] == "" && eng.submitted[0][0].Payload != nil {
				t.Errorf("empty payload = %q, want nil", eng.submitted[0][0].Payload)
			}
		})
	}
}

func TestClientSvcErrorMapping(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantCode  codes.Code
		wantField string
		wantMsg   string
	}{
		{"field", &engine.FieldError{Field: "type", Message: "required"}, codes.InvalidArgument, "type", "type: required"},
		{"wrapped field", fmt.Errorf("submit: %w", &engine.FieldError{Field: "group", Message: "bad"}), codes.InvalidArgument, "group", "submit: group: bad"},
		{"not found", fmt.Errorf("run r_9: %w", store.ErrNotFound), codes.NotFound, "", "run r_9: store: not found"},
		{"conflict", fmt.Errorf("retry: %w", store.ErrConflict), codes.FailedPrecondition, "", "retry: store: conflict"},
		{"too large", engine.ErrPayloadTooLarge, codes.ResourceExhausted, "", "engine: payload too large"},
		{"stopped", engine.ErrStopped, codes.Unavailable, "", "engine: stopped"},
		{"store closed", store.ErrClosed, codes.Unavailable, "", "store: closed"},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded, "", "context deadline exceeded"},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), codes.Canceled, "", "x: context canceled"},
		{"status passes", status.Error(codes.PermissionDenied, "nope"), codes.PermissionDenied, "", "nope"},
		{"other", errors.New("disk on fire"), codes.Internal, "", "disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := map[string]func(*clientService) error{
				"Submit": func(s *clientService) error {
					_, err := s.Submit(context.Background(), &plutov1.SubmitRequest{Runs: []*plutov1.RunSpec{{Type: "t"}}})
					return err
				},
				"Get": func(s *clientService) error {
					_, err := s.Get(context.Background(), &plutov1.GetRequest{Id: "r_1"})
					return err
				},
				"List": func(s *clientService) error {
					_, err := s.List(context.Background(), &plutov1.ListRequest{})
					return err
				},
				"Wait": func(s *clientService) error {
					_, err := s.Wait(context.Background(), &plutov1.WaitRequest{Id: "r_1", TimeoutMs: 1000})
					return err
				},
				"Cancel": func(s *clientService) error {
					_, err := s.Cancel(context.Background(), &plutov1.CancelRequest{Id: "r_1"})
					return err
				},
				"Retry": func(s *clientService) error {
					_, err := s.Retry(context.Background(), &plutov1.RetryRequest{Id: "r_1"})
					return err
				},
			}
			eng := &csFakeEngine{
				submitFn: func([]engine.SubmitSpec) ([]engine.SubmitResult, error) { return nil, tt.err },
				getFn:    func(string) (*store.Run, error) { return nil, tt.err },
				listFn:   func(store.RunListParams) (store.RunPage, error) { return store.RunPage{}, tt.err },
				waitFn:   func(context.Context, string) (*store.Run, error) { return nil, tt.err },
				cancelFn: func(string, string) (*store.Run, error) { return nil, tt.err },
				retryFn:  func(string) (*store.Run, error) { return nil, tt.err },
			}
			svc := newTestClientSvc(eng, 0)
			for method, call := range calls {
				err := call(svc)
				code, field := csStatusOf(t, err)
				if code != tt.wantCode || field != tt.wantField {
					t.Errorf("%s: got %v field %q, want %v field %q", method, code, field, tt.wantCode, tt.wantField)
				}
				if msg := status.Convert(err).Message(); msg != tt.wantMsg {
					t.Errorf("%s: message %q, want %q", method, msg, tt.wantMsg)
				}
			}
		})
	}
}

func TestClientSvcFieldViolationDetail(t *testing.T) {
	err := grpcStatusError(&engine.FieldError{Field: "delay", Message: "must not be negative"})
	st := status.Convert(err)
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		if b, ok := d.(*errdetails.BadRequest); ok {
			br = b
		}
	}
	if br == nil || len(br.FieldViolations) != 1 {
		t.Fatalf("details = %v", st.Details())
	}
	if fv := br.FieldViolations[0]; fv.Field != "delay" || fv.Description != "must not be negative" {
		t.Errorf("violation = %v", fv)
	}
	if grpcStatusError(nil) != nil {
		t.Error("grpcStatusError(nil) != nil")
	}
}

func TestClientSvcRequestValidation(t *testing.T) {
	svc := newTestClientSvc(&csFakeEngine{}, 0)
	ctx := context.Background()
	tests := []struct {
		name      string
		call      func() error
		wantField string
	}{
		{"get id", func() error { _, err := svc.Get(ctx, &plutov1.GetRequest{}); return err }, "id"},
		{"wait id", func() error { _, err := svc.Wait(ctx, &plutov1.WaitRequest{}); return err }, "id"},
		{"cancel id", func() error { _, err := svc.Cancel(ctx, &plutov1.CancelRequest{}); return err }, "id"},
		{"retry id", func() error { _, err := svc.Retry(ctx, &plutov1.RetryRequest{}); return err }, "id"},
		{"list status", func() error {
			_, err := svc.List(ctx, &plutov1.ListRequest{Status: []string{"queued", "exploded"}})
			return err
		}, "status"},
		{"list limit", func() error { _, err := svc.List(ctx, &plutov1.ListRequest{Limit: -1}); return err }, "limit"},
		{"list order", func() error { _, err := svc.List(ctx, &plutov1.ListRequest{Order: "up"}); return err }, "order"},
		{"nil spec", func() error {
			_, err := svc.Submit(ctx, &plutov1.SubmitRequest{Runs: []*plutov1.RunSpec{nil}})
			return err
		}, "runs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, field := csStatusOf(t, tt.call())
			if code != codes.InvalidArgument || field != tt.wantField {
				t.Errorf("got %v field %q, want InvalidArgument field %q", code, field, tt.wantField)
			}
		})
	}
}

func TestClientSvcListConverts(t *testing.T) {
	eng := &csFakeEngine{listFn: func(p store.RunListParams) (store.RunPage, error) {
		return store.RunPage{Runs: []*store.Run{{ID: "r_2"}, {ID: "r_1"}}, NextCursor: "c2"}, nil
	}}
	svc := newTestClientSvc(eng, 0)
	resp, err := svc.List(context.Background(), &plutov1.ListRequest{
		Status: []string{"failed", "timed_out"}, Group: "g", Job: "j", Limit: 2, Cursor: "c1",
		Type: "t", Worker: "w", CreatedAfterUnixMs: 1_700_000_000_000, CreatedBeforeUnixMs: 1_700_000_000_500,
		FinishedAfterUnixMs: 1_700_000_001_000, FinishedBeforeUnixMs: 1_700_000_002_000, Order: "asc", Error: "disk",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.RunListParams{{
		Statuses: []store.RunStatus{store.StatusFailed, store.StatusTimedOut},
		Group:    "g", Job: "j", Limit: 2, Cursor: "c1",
		Type: "t", WorkerID: "w", CreatedAfter: time.UnixMilli(1_700_000_000_000).UTC(), CreatedBefore: time.UnixMilli(1_700_000_000_500).UTC(),
		FinishedAfter: time.UnixMilli(1_700_000_001_000).UTC(), FinishedBefore: time.UnixMilli(1_700_000_002_000).UTC(),
		Order: store.OrderAsc, ErrorContains: "disk",
	}}
	if diff := cmp.Diff(want, eng.listArgs); diff != "" {
		t.Errorf("list params (-want +got):\n%s", diff)
	}
	if len(resp.Runs) != 2 || resp.Runs[0].Id != "r_2" || resp.NextCursor != "c2" {
		t.Errorf("resp = %v", resp)
	}
}

func TestClientSvcListBadCursor(t *testing.T) {
	eng := &csFakeEngine{listFn: func(p store.RunListParams) (store.RunPage, error) {
		return store.RunPage{}, &engine.FieldError{Field: "cursor", Message: fmt.Sprintf("%q is not a cursor this server issued", p.Cursor)}
	}}
	svc := newTestClientSvc(eng, 0)
	_, err := svc.List(context.Background(), &plutov1.ListRequest{Cursor: "zz"})
	if code, field := csStatusOf(t, err); code != codes.InvalidArgument || field != "cursor" {
		t.Errorf("got %v field %q, want InvalidArgument field cursor", code, field)
	}
}

func TestClientSvcGetCancelRetry(t *testing.T) {
	var gotReason string
	eng := &csFakeEngine{
		getFn: func(id string) (*store.Run, error) { return &store.Run{ID: id, Status: store.StatusRunning}, nil },
		cancelFn: func(id, reason string) (*store.Run, error) {
			gotReason = reason
			return &store.Run{ID: id, Status: store.StatusCancelled, Error: reason}, nil
		},
		retryFn: func(id string) (*store.Run, error) { return &store.Run{ID: id, Status: store.StatusQueued}, nil },
	}
	svc := newTestClientSvc(eng, 0)
	ctx := context.Background()
	r, err := svc.Get(ctx, &plutov1.GetRequest{Id: "r_5"})
	if err != nil || r.Id != "r_5" || r.Status != "running" {
		t.Errorf("Get = %v, %v", r, err)
	}
	r, err = svc.Cancel(ctx, &plutov1.CancelRequest{Id: "r_5", Reason: "user asked"})
	if err != nil || r.Status != "cancelled" || gotReason != "user asked" {
		t.Errorf("Cancel = %v, %v (reason %q)", r, err, gotReason)
	}
	r, err = svc.Retry(ctx, &plutov1.RetryRequest{Id: "r_5"})
	if err != nil || r.Status != "queued" {
		t.Errorf("Retry = %v, %v", r, err)
	}
}

// csBlockingWait behaves like the engine's Wait for a run that never
// finishes: it returns the run as it is now with ctx.Err().
func csBlockingWait(r *store.Run, deadlines chan<- time.Duration) func(ctx context.Context, id string) (*store.Run, error) {
	return func(ctx context.Context, id string) (*store.Run, error) {
		if deadlines != nil {
			dl, _ := ctx.Deadline()
			deadlines <- time.Until(dl)
		}
		<-ctx.Done()
		return r, ctx.Err()
	}
}

func TestClientSvcWaitTerminal(t *testing.T) {
	eng := &csFakeEngine{waitFn: func(ctx context.Context, id string) (*store.Run, error) {
		return &store.Run{ID: id, Status: store.StatusSucceeded, Result: json.RawMessage(`42`)}, nil
	}}
	svc := newTestClientSvc(eng, 0)
	r, err := svc.Wait(context.Background(), &plutov1.WaitRequest{Id: "r_1"})
	if err != nil || r.Status != "succeeded" || string(r.Result) != "42" {
		t.Errorf("Wait = %v, %v", r, err)
	}
}

func TestClientSvcWaitPollTimeoutReturnsRun(t *testing.T) {
	eng := &csFakeEngine{waitFn: csBlockingWait(&store.Run{ID: "r_1", Status: store.StatusRunning}, nil)}
	svc := newTestClientSvc(eng, 0)
	start := time.Now()
	r, err := svc.Wait(context.Background(), &plutov1.WaitRequest{Id: "r_1", TimeoutMs: 50})
	if err != nil {
		t.Fatalf("poll timeout is not an error, got %v", err)
	}
	if r.Id != "r_1" || r.Status != "running" {
		t.Errorf("run = %v", r)
	}
	if el := time.Since(start); el < 50*time.Millisecond || el > 5*time.Second {
		t.Errorf("Wait took %v, want about 50ms", el)
	}
}

func TestClientSvcWaitPollTimeoutWithoutRunFallsBackToGet(t *testing.T) {
	eng := &csFakeEngine{
		waitFn: csBlockingWait(nil, nil),
		getFn:  func(id string) (*store.Run, error) { return &store.Run{ID: id, Status: store.StatusQueued}, nil },
	}
	svc := newTestClientSvc(eng, 0)
	r, err := svc.Wait(context.Background(), &plutov1.WaitRequest{Id: "r_3", TimeoutMs: 10})
	if err != nil || r.Id != "r_3" || r.Status != "queued" {
		t.Errorf("Wait = %v, %v", r, err)
	}
}

func TestClientSvcWaitPollCutStoreRead(t *testing.T) {
	// The store's read was interrupted by the poll's end and reported an
	// error of its own: the adapter reads the run again.
	eng := &csFakeEngine{
		waitFn: func(ctx context.Context, id string) (*store.Run, error) {
			<-ctx.Done()
			return nil, errors.New("sqlite: interrupted (9)")
		},
		getFn: func(id string) (*store.Run, error) { return &store.Run{ID: id, Status: store.StatusRunning}, nil },
	}
	svc := newTestClientSvc(eng, 0)
	r, err := svc.Wait(context.Background(), &plutov1.WaitRequest{Id: "r_1", TimeoutMs: 10})
	if err != nil || r.Status != "running" {
		t.Errorf("Wait = %v, %v", r, err)
	}
	// A run that vanished meanwhile is still reported as missing.
	eng.getFn = func(id string) (*store.Run, error) { return nil, store.ErrNotFound }
	_, err = svc.Wait(context.Background(), &plutov1.WaitRequest{Id: "r_1", TimeoutMs: 10})
	if code, _ := csStatusOf(t, err); code != codes.NotFound {
		t.Errorf("got %v, want NotFound", err)
	}
}

func TestClientSvcWaitTimeoutCap(t *testing.T) {
	tests := []struct {
		name      string
		timeoutMs int64
		want      time.Duration
	}{
		{"zero means cap", 0, time.Second},
		{"negative means cap", -5, time.Second},
		{"above cap", 5000, time.Second},
		{"below cap", 100, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deadlines := make(chan time.Duration, 1)
			eng := &csFakeEngine{waitFn: csBlockingWait(&store.Run{ID: "r_1", Status: store.StatusQueued}, deadlines)}
			svc := newTestClientSvc(eng, 0)
			svc.maxWait = time.Second // the real cap is 60 s; keep the test short
			if _, err := svc.Wait(context.Background(), &plutov1.WaitRequest{Id: "r_1", TimeoutMs: tt.timeoutMs}); err != nil {
				t.Fatal(err)
			}
			got := <-deadlines
			if got > tt.want || got < tt.want-500*time.Millisecond {
				t.Errorf("engine wait deadline in %v, want about %v", got, tt.want)
			}
		})
	}
	if maxWaitPoll != 60*time.Second {
		t.Errorf("maxWaitPoll = %v, want 60s", maxWaitPoll)
	}
}

func TestClientSvcWaitCallerContextEnds(t *testing.T) {
	eng := &csFakeEngine{waitFn: csBlockingWait(&store.Run{ID: "r_1", Status: store.StatusRunning}, nil)}
	svc := newTestClientSvc(eng, 0)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err := svc.Wait(ctx, &plutov1.WaitRequest{Id: "r_1", TimeoutMs: 10_000})
	if code, _ := csStatusOf(t, err); code != codes.Canceled {
		t.Errorf("cancelled caller: got %v, want Canceled", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = svc.Wait(ctx, &plutov1.WaitRequest{Id: "r_1", TimeoutMs: 10_000})
	if code, _ := csStatusOf(t, err); code != codes.DeadlineExceeded {
		t.Errorf("caller deadline: got %v, want DeadlineExceeded", err)
	}
}

func TestClientSvcWaitEndsWhenStopping(t *testing.T) {
	eng := &csFakeEngine{waitFn: csBlockingWait(&store.Run{ID: "r_1", Status: store.StatusRunning}, nil)}
	stopping := make(chan struct{})
	svc := newClientServiceStopping(eng, 0, stopping).(*clientService)
	time.AfterFunc(50*time.Millisecond, func() { close(stopping) })
	start := time.Now()
	r, err := svc.Wait(context.Background(), &plutov1.WaitRequest{Id: "r_1", TimeoutMs: 30_000})
	if err != nil || r.Status != "running" {
		t.Fatalf("Wait = %v, %v; want the run as it is now", r, err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Wait took %v after stopping", el)
	}
	// Once stopping, polls end at once.
	if r, err := svc.Wait(context.Background(), &plutov1.WaitRequest{Id: "r_1"}); err != nil || r.Id != "r_1" {
		t.Errorf("Wait while stopping = %v, %v", r, err)
	}
}

func TestClientSvcWaitNotFound(t *testing.T) {
	eng := &csFakeEngine{waitFn: func(ctx context.Context, id string) (*store.Run, error) {
		return nil, fmt.Errorf("run %s: %w", id, store.ErrNotFound)
	}}
	svc := newTestClientSvc(eng, 0)
	_, err := svc.Wait(context.Background(), &plutov1.WaitRequest{Id: "r_x", TimeoutMs: 1000})
	if code, _ := csStatusOf(t, err); code != codes.NotFound {
		t.Errorf("got %v, want NotFound", err)
	}
}

// TestClientSvcWithSDK runs the adapter behind real gRPC and talks to it
// with the public client SDK: errors decode to the SDK's sentinels and
// field errors, and a run seen through gRPC equals the same run fetched
// from the HTTP API (the JSON contract of docs/api.md).
func TestClientSvcWithSDK(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 8, 0, 0, 123_000_000, time.UTC)
	shard := 2
	stored := &store.Run{
		ID: "r_1", Seq: 1, Job: "nightly", ParentID: "r_0", Shard: &shard, Type: "shell", Group: "default",
		Payload: json.RawMessage(`{"cmd":"echo <hi> & bye"}`), Priority: 3, Status: store.StatusSucceeded,
		Attempt: 2, MaxAttempts: 3, Key: "order-42", LogicalTime: t0, RunAt: t0, CreatedAt: t0,
		StartedAt: t0.Add(time.Second), FinishedAt: t0.Add(2 * time.Second), WorkerID: "w-1",
		Result: json.RawMessage(`{"exit_code":0}`), Timeout: 90 * time.Minute, Routing: "hash",
	}
	fresh := &store.Run{ID: "r_2", Seq: 2, Type: "t", Group: "g", Status: store.StatusQueued, MaxAttempts: 1, RunAt: t0, CreatedAt: t0}
	eng := &csFakeEngine{
		getFn: func(id string) (*store.Run, error) {
			switch id {
			case "r_1":
				return stored, nil
			case "r_2":
				return fresh, nil
			}
			return nil, fmt.Errorf("run %s: %w", id, store.ErrNotFound)
		},
		submitFn: func(specs []engine.SubmitSpec) ([]engine.SubmitResult, error) {
			if specs[0].Type == "" {
				return nil, &engine.FieldError{Field: "type", Message: "required"}
			}
			return []engine.SubmitResult{{Run: fresh, Existing: true}}, nil
		},
		retryFn: func(id string) (*store.Run, error) {
			return nil, fmt.Errorf("retry %s: %w", id, store.ErrConflict)
		},
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	plutov1.RegisterClientServiceServer(gs, newClientService(eng, 64))
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()
	hs := httptest.NewServer(newHTTPHandler(eng, HTTPOptions{MaxPayload: 64}))
	defer hs.Close()

	c, err := client.Dial(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, id := range []string{"r_1", "r_2"} {
		viaGRPC, err := c.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.Get(hs.URL + "/api/v1/runs/" + id)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s %v", id, res.StatusCode, body, err)
		}
		var viaHTTP client.Run
		if err := json.Unmarshal(body, &viaHTTP); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&viaHTTP, viaGRPC); diff != "" {
			t.Errorf("%s: HTTP run vs gRPC run (-http +grpc):\n%s", id, diff)
		}
		sdkJSON, err := json.Marshal(viaGRPC)
		if err != nil {
			t.Fatal(err)
		}
		var a, b map[string]any
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(sdkJSON, &b); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("%s: HTTP JSON vs client.Run JSON (-http +sdk):\n%s", id, diff)
		}
	}

	run, err := c.Submit(ctx, client.RunSpec{Type: "t", Key: "k"})
	if err != nil || run.ID != "r_2" || !run.Existing {
		t.Errorf("Submit = %+v, %v", run, err)
	}
	_, err = c.Submit(ctx, client.RunSpec{})
	var fe *client.FieldError
	if !errors.As(err, &fe) || fe.Field != "type" || fe.Message != "required" {
		t.Errorf("no type: %v", err)
	}
	_, err = c.Submit(ctx, client.RunSpec{Type: "t", Payload: strings.Repeat("x", 100)})
	if !errors.Is(err, client.ErrPayloadTooLarge) {
		t.Errorf("large payload: %v", err)
	}
	if _, err := c.Get(ctx, "r_404"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if _, err := c.Retry(ctx, "r_1"); !errors.Is(err, client.ErrConflict) {
		t.Errorf("retry: %v", err)
	}
	_, err = c.List(ctx, client.ListOptions{Status: []client.Status{"exploded"}})
	if !errors.As(err, &fe) || fe.Field != "status" {
		t.Errorf("bad status: %v", err)
	}
}
