package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pluto-sched/pluto/client"
)

// serverAddr is the gRPC address of the in-process server the examples
// use; nothing answers at downAddr.
var serverAddr, downAddr string

func TestMain(m *testing.M) {
	f, err := startFake("ex")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverAddr = f.addr
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	downAddr = ln.Addr().String()
	ln.Close()
	code := m.Run()
	f.stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// setup starts a fake server and a client of it.
func setup(t *testing.T, opts ...client.Option) (*fakeServer, *client.Client) {
	t.Helper()
	f, err := startFake("r")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.stop)
	c, err := client.Dial(f.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return f, c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSubmitAndGet(t *testing.T) {
	f, c := setup(t)
	ctx := ctxT(t)
	runAt := time.Now().Add(time.Hour).Truncate(time.Millisecond).UTC()
	run, err := c.Submit(ctx, client.RunSpec{
		Type: "email.send", Group: "mail", Payload: map[string]any{"to": "a@b", "n": 1},
		Priority: 7, RunAt: runAt, Timeout: 90 * time.Second, Retries: 2, Key: "k-1",
		Routing: "hash", RoutingKey: "cust-9", Job: "welcome", CallbackURL: "https://hooks.example.com/x",
	})
	if err != nil {
		t.Fatal(err)
	}
	if run.ID == "" || run.Existing || run.Status != client.StatusPending || run.Type != "email.send" ||
		run.Group != "mail" || run.Priority != 7 || run.MaxAttempts != 3 || run.Key != "k-1" ||
		run.Job != "welcome" || run.Timeout != 90*time.Second || run.Routing != "hash" || !run.RunAt.Equal(runAt) {
		t.Errorf("run = %+v", run)
	}
	if got := string(run.Payload); got != `{"n":1,"to":"a@b"}` {
		t.Errorf("payload = %s", got)
	}
	if run.CreatedAt.IsZero() || run.CreatedAt.Location() != time.UTC || !run.StartedAt.IsZero() {
		t.Errorf("times: created %v started %v", run.CreatedAt, run.StartedAt)
	}

	spec := f.lastSubmit().Runs[0]
	if spec.RunAtUnixMs != runAt.UnixMilli() || spec.TimeoutMs != 90000 || spec.Retries != 2 ||
		spec.RoutingKey != "cust-9" || spec.DelayMs != 0 || spec.CallbackUrl != "https://hooks.example.com/x" {
		t.Errorf("wire spec = %v", spec)
	}

	got, err := c.Get(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(run, got); diff != "" {
		t.Errorf("Get (-submitted +got):\n%s", diff)
	}

	// Same key: the existing run comes back, nothing new is created.
	again, err := c.Submit(ctx, client.RunSpec{Type: "email.send", Group: "g", Key: "k-1"})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != run.ID || !again.Existing {
		t.Errorf("resubmit = %s existing=%v, want %s existing", again.ID, again.Existing, run.ID)
	}
}

func TestSubmitDelay(t *testing.T) {
	f, c := setup(t)
	if _, err := c.Submit(ctxT(t), client.RunSpec{Type: "t", Group: "g", Delay: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if got := f.lastSubmit().Runs[0].DelayMs; got != 1500 {
		t.Errorf("delay_ms = %d", got)
	}
}

func TestSubmitBatch(t *testing.T) {
	f, c := setup(t)
	ctx := ctxT(t)
	if _, err := c.Submit(ctx, client.RunSpec{Type: "a", Group: "g", Key: "dup"}); err != nil {
		t.Fatal(err)
	}
	runs, err := c.SubmitBatch(ctx, []client.RunSpec{
		{Type: "a", Group: "g", Payload: 1},
		{Type: "b", Group: "g", Key: "dup"},
		{Type: "c", Group: "g", Payload: "three"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("%d runs", len(runs))
	}
	var got []string
	for _, r := range runs {
		got = append(got, fmt.Sprintf("%s %s %v", r.Type, r.Payload, r.Existing))
	}
	want := []string{"a 1 false", "a  true", `c "three" false`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("batch (-want +got):\n%s", diff)
	}
	if n := len(f.lastSubmit().Runs); n != 3 {
		t.Errorf("batch sent as %d specs in one request", n)
	}

	before := len(f.authSeen())
	runs, err = c.SubmitBatch(ctx, nil)
	if runs != nil || err != nil || len(f.authSeen()) != before {
		t.Errorf("empty batch = %v, %v (calls %d→%d)", runs, err, before, len(f.authSeen()))
	}
}

func TestPayloadForms(t *testing.T) {
	f, c := setup(t)
	ctx := ctxT(t)
	tests := []struct {
		name    string
		payload any
		want    string
	}{
		{"nil is null", nil, ""},
		{"raw passes through", json.RawMessage(`{"b": 2,  "a": 1}`), `{"b": 2,  "a": 1}`},
		{"bytes pass through", []byte(`[1, 2]`), `[1, 2]`},
		{"empty raw is null", json.RawMessage(nil), ""},
		{"struct", struct {
			Cmd string `json:"cmd"`
		}{"echo hi"}, `{"cmd":"echo hi"}`},
		{"string", "hi", `"hi"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run, err := c.Submit(ctx, client.RunSpec{Type: "t", Group: "g", Payload: tt.payload})
			if err != nil {
				t.Fatal(err)
			}
			if got := string(f.lastSubmit().Runs[0].Payload); got != tt.want {
				t.Errorf("sent %q, want %q", got, tt.want)
			}
			if tt.want == "" && run.Payload != nil {
				t.Errorf("run payload = %q, want nil", run.Payload)
			}
		})
	}

	bad := []any{json.RawMessage(`{nope`), []byte("plain text"), make(chan int)}
	for _, p := range bad {
		_, err := c.Submit(ctx, client.RunSpec{Type: "t", Group: "g", Payload: p})
		var fe *client.FieldError
		if !errors.As(err, &fe) || fe.Field != "payload" || !errors.Is(err, client.ErrInvalid) {
			t.Errorf("payload %T: err = %v, want a payload FieldError", p, err)
		}
	}
	_, err := c.SubmitBatch(ctx, []client.RunSpec{{Type: "t", Group: "g"}, {Type: "t", Group: "g", Payload: json.RawMessage("{")}})
	var fe *client.FieldError
	if !errors.As(err, &fe) || fe.Field != "payload" || !strings.Contains(fe.Message, "run 1") {
		t.Errorf("batch: err = %v, want a payload FieldError naming run 1", err)
	}
	if st, ok := status.FromError(err); !ok || st.Code() != codes.InvalidArgument {
		t.Errorf("local field error status = %v", st)
	}
}

func TestListPaging(t *testing.T) {
	_, c := setup(t)
	ctx := ctxT(t)
	var ids []string
	for i := range 7 {
		group := "g1"
		if i%2 == 1 {
			group = "g2"
		}
		r, err := c.Submit(ctx, client.RunSpec{Type: "t", Group: group})
		if err != nil {
			t.Fatal(err)
		}
		ids = append([]string{r.ID}, ids...) // newest first
	}

	var got []string
	var pages []int
	opts := client.ListOptions{Limit: 3}
	for {
		page, err := c.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, len(page.Runs))
		for _, r := range page.Runs {
			got = append(got, r.ID)
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("paged ids (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{3, 3, 1}, pages); diff != "" {
		t.Errorf("page sizes (-want +got):\n%s", diff)
	}

	got = nil
	for r, err := range c.ListAll(ctx, client.ListOptions{Limit: 2, Group: "g2"}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.ID)
	}
	if diff := cmp.Diff([]string{ids[1], ids[3], ids[5]}, got); diff != "" {
		t.Errorf("ListAll g2 (-want +got):\n%s", diff)
	}

	// Breaking out of ListAll early is fine.
	n := 0
	for range c.ListAll(ctx, client.ListOptions{Limit: 2}) {
		n++
		if n == 3 {
			break
		}
	}
	if n != 3 {
		t.Errorf("early break after %d", n)
	}

	page, err := c.List(ctx, client.ListOptions{Status: []client.Status{client.StatusSucceeded}})
	if err != nil || len(page.Runs) != 0 {
		t.Errorf("succeeded = %v, %v", page, err)
	}
	page, err = c.List(ctx, client.ListOptions{Status: []client.Status{client.StatusQueued}, Limit: 100})
	if err != nil || len(page.Runs) != 7 {
		t.Errorf("queued: %d runs, %v", len(page.Runs), err)
	}

	_, err = c.List(ctx, client.ListOptions{Status: []client.Status{"exploded"}})
	var fe *client.FieldError
	if !errors.As(err, &fe) || fe.Field != "status" {
		t.Errorf("bad status: err = %v", err)
	}
	for _, err := range c.ListAll(ctx, client.ListOptions{Status: []client.Status{"exploded"}}) {
		if !errors.As(err, &fe) {
			t.Errorf("ListAll bad status: err = %v", err)
		}
	}
}

func TestWaitLoopsUntilTerminal(t *testing.T) {
	f, c := setup(t, client.WithPollInterval(30*time.Millisecond))
	ctx := ctxT(t)
	run, err := c.Submit(ctx, client.RunSpec{Type: "manual", Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(200*time.Millisecond, func() { f.finish(run.ID, "succeeded", []byte(`{"n":42}`), "") })
	got, err := c.Wait(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Succeeded() || !got.Terminal() || got.FinishedAt.IsZero() {
		t.Errorf("run = %+v", got)
	}
	var res struct{ N int }
	if err := got.DecodeResult(&res); err != nil || res.N != 42 {
		t.Errorf("result = %+v, %v", res, err)
	}
	polls := f.polls()
	if len(polls) < 3 {
		t.Errorf("%d polls, want the client to poll again after each 30ms long poll", len(polls))
	}
	for _, p := range polls {
		if p <= 0 || p > 30 {
			t.Errorf("poll timeout_ms = %d, want (0, 30]", p)
		}
	}
}

func TestWaitFailedRunIsNotAnError(t *testing.T) {
	_, c := setup(t)
	ctx := ctxT(t)
	run, err := c.Submit(ctx, client.RunSpec{Type: "fail", Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Wait(ctx, run.ID)
	if err != nil || got.Status != client.StatusFailed || got.Succeeded() || got.Error != "boom" {
		t.Errorf("Wait = %+v, %v", got, err)
	}
}

func TestWaitContextEnds(t *testing.T) {
	f, c := setup(t)
	run, err := c.Submit(ctxT(t), client.RunSpec{Type: "manual", Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	got, err := c.Wait(ctx, run.ID)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Wait returned after %v", el)
	}
	// The server was asked to answer before the deadline, so the caller
	// has the run as it is now.
	if got == nil || got.ID != run.ID || got.Status != client.StatusQueued {
		t.Errorf("last run = %+v", got)
	}
	if polls := f.polls(); len(polls) == 0 || polls[0] > 300 {
		t.Errorf("polls = %v, want the first below the 300ms deadline", polls)
	}

	// Cancelled while waiting.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = c.Wait(ctx, run.ID)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestWaitNotFound(t *testing.T) {
	_, c := setup(t)
	_, err := c.Wait(ctxT(t), "nope")
	if !errors.Is(err, client.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

func TestCancelRetry(t *testing.T) {
	_, c := setup(t)
	ctx := ctxT(t)
	run, err := c.Submit(ctx, client.RunSpec{Type: "manual", Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Retry(ctx, run.ID)
	if !errors.Is(err, client.ErrConflict) {
		t.Errorf("retry of a queued run: err = %v, want ErrConflict", err)
	}
	got, err := c.Cancel(ctx, run.ID, "changed my mind")
	if err != nil || got.Status != client.StatusCancelled || got.Error != "changed my mind" || !got.Terminal() {
		t.Fatalf("Cancel = %+v, %v", got, err)
	}
	again, err := c.Cancel(ctx, run.ID, "again")
	if err != nil || again.Status != client.StatusCancelled || again.Error != "changed my mind" {
		t.Errorf("second Cancel = %+v, %v", again, err)
	}
	got, err = c.Retry(ctx, run.ID)
	if err != nil || got.Status != client.StatusQueued || got.Terminal() {
		t.Errorf("Retry = %+v, %v", got, err)
	}
	if _, err := c.Cancel(ctx, "missing", ""); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("cancel missing: %v", err)
	}
	if _, err := c.Retry(ctx, "missing"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("retry missing: %v", err)
	}
}

func TestErrorDecoding(t *testing.T) {
	f, c := setup(t)
	ctx := ctxT(t)

	_, err := c.Get(ctx, "r_missing")
	var ce *client.Error
	if !errors.Is(err, client.ErrNotFound) || !errors.As(err, &ce) || ce.Code != codes.NotFound {
		t.Errorf("missing: %v", err)
	}
	if st, ok := status.FromError(err); !ok || st.Code() != codes.NotFound || st.Message() != "run r_missing: store: not found" {
		t.Errorf("status of %v = %v", err, st)
	}
	if want := "pluto: run r_missing: store: not found (NotFound)"; err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}

	_, err = c.Submit(ctx, client.RunSpec{})
	var fe *client.FieldError
	if !errors.As(err, &fe) || fe.Field != "type" || fe.Message != "is required" || !errors.Is(err, client.ErrInvalid) {
		t.Errorf("no type: %v", err)
	}
	if err.Error() != "pluto: invalid type: is required" {
		t.Errorf("field error message %q", err.Error())
	}

	_, err = c.Submit(ctx, client.RunSpec{Type: "t", Group: "g", Payload: strings.Repeat("x", 2000)})
	if !errors.Is(err, client.ErrPayloadTooLarge) {
		t.Errorf("large payload: %v", err)
	}

	tests := []struct {
		code codes.Code
		want error
	}{
		{codes.FailedPrecondition, client.ErrConflict},
		{codes.Aborted, client.ErrConflict},
		{codes.Unavailable, client.ErrUnavailable},
		{codes.Unauthenticated, client.ErrUnauthenticated},
		{codes.PermissionDenied, client.ErrPermissionDenied},
		{codes.InvalidArgument, client.ErrInvalid},
		{codes.Internal, nil},
	}
	for _, tt := range tests {
		id := "err-" + tt.code.String()
		f.setErr(id, status.Error(tt.code, "scripted"))
		_, err := c.Get(ctx, id)
		if !errors.As(err, &ce) || ce.Code != tt.code || !strings.Contains(ce.Message, "scripted") {
			t.Errorf("%v: err = %#v", tt.code, err)
			continue
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%v: errors.Is(%v, %v) = false", tt.code, err, tt.want)
		}
		for _, other := range []error{client.ErrNotFound, client.ErrConflict, client.ErrUnavailable, client.ErrInvalid} {
			if other != tt.want && errors.Is(err, other) {
				t.Errorf("%v: also matches %v", tt.code, other)
			}
		}
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Get(cctx, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
}

func TestUnavailableServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Submit(ctxT(t), client.RunSpec{Type: "t", Group: "g"})
	if !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
	_, err = c.Get(ctxT(t), "x") // retried by gRPC, then given up
	if !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
}

func TestToken(t *testing.T) {
	f, c := setup(t, client.WithToken("s3cret"))
	if _, err := c.Submit(ctxT(t), client.RunSpec{Type: "t", Group: "g"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctxT(t), "x"); !errors.Is(err, client.ErrNotFound) {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Bearer s3cret", "Bearer s3cret"}, f.authSeen()); diff != "" {
		t.Errorf("authorization (-want +got):\n%s", diff)
	}

	f2, c2 := setup(t)
	if _, err := c2.Submit(ctxT(t), client.RunSpec{Type: "t", Group: "g"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{""}, f2.authSeen()); diff != "" {
		t.Errorf("no token: authorization (-want +got):\n%s", diff)
	}
}

func TestWithTimeout(t *testing.T) {
	_, c := setup(t, client.WithTimeout(100*time.Millisecond))
	start := time.Now()
	_, err := c.Get(context.Background(), "slow")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v", el)
	}
	// A deadline of the caller's own wins.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := c.Get(ctx, "slow"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("caller's 300ms deadline cut after %v", el)
	}
}

func TestDialErrors(t *testing.T) {
	for _, target := range []string{"", " , ", "127.0.0.1:1,unix:///tmp/x.sock"} {
		if c, err := client.Dial(target); err == nil {
			c.Close()
			t.Errorf("Dial(%q) succeeded", target)
		}
	}
}

func TestRunJSON(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	shard := 0
	full := client.Run{
		ID: "r_1", Job: "nightly-report", Shard: &shard, ParentID: "r_0", Type: "shell", Group: "default",
		Payload: json.RawMessage(`{"cmd":"echo hi"}`), Priority: 0, Status: client.StatusSucceeded, Attempt: 1,
		MaxAttempts: 3, Key: "order-42", LogicalTime: t0, RunAt: t0, CreatedAt: t0, StartedAt: t0.Add(time.Second),
		FinishedAt: t0.Add(2 * time.Second), WorkerID: "w-host-1", Result: json.RawMessage(`{"exit_code":0}`),
		Timeout: 30 * time.Minute, Routing: "least-recent", Existing: true,
		CallbackURL: "https://hooks.example.com/h",
		Callback:    &client.Callback{State: client.CallbackPending, Attempts: 2, NextAt: t0.Add(5 * time.Second), LastError: "HTTP 500"},
	}
	b, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"r_1","job":"nightly-report","parent_id":"r_0","shard":0,"type":"shell","group":"default",` +
		`"payload":{"cmd":"echo hi"},"priority":0,"status":"succeeded","attempt":1,"max_attempts":3,"key":"order-42",` +
		`"logical_time":"2026-11-21T00:00:00Z","run_at":"2026-11-21T00:00:00Z","created_at":"2026-11-21T00:00:00Z",` +
		`"started_at":"2026-11-21T00:00:01Z","finished_at":"2026-11-21T00:00:02Z","worker_id":"w-host-1",` +
		`"result":{"exit_code":0},"error":null,"timeout":"30m","routing":"least-recent",` +
		`"callback_url":"https://hooks.example.com/h","callback":{"state":"pending","attempts":2,` +
		`"next_at":"2026-11-21T00:00:05Z","last_error":"HTTP 500","delivered_at":null}}`
	if string(b) != want {
		t.Errorf("marshal:\n got %s\nwant %s", b, want)
	}
	var back client.Run
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	full.Existing = false // not part of the JSON
	if diff := cmp.Diff(full, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}

	// A fresh one-shot run: unset optional values are null.
	b, err = json.Marshal(&client.Run{ID: "r_2", Type: "t", Group: "g", Status: client.StatusQueued, MaxAttempts: 1, CreatedAt: t0, RunAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	want = `{"id":"r_2","job":null,"parent_id":null,"shard":null,"type":"t","group":"g","payload":null,"priority":0,` +
		`"status":"queued","attempt":0,"max_attempts":1,"key":null,"logical_time":null,"run_at":"2026-11-21T00:00:00Z",` +
		`"created_at":"2026-11-21T00:00:00Z","started_at":null,"finished_at":null,"worker_id":null,"result":null,"error":null,` +
		`"timeout":null,"routing":null,"callback_url":null,"callback":null}`
	if string(b) != want {
		t.Errorf("marshal:\n got %s\nwant %s", b, want)
	}

	// The documented run example (with nulls and a missing field) decodes.
	design := `{"id": "r_01J", "job": "nightly-report", "parent_id": null, "shard": null,
	 "type": "shell", "group": "default", "payload": {"cmd": "echo hi"},
	 "priority": 0, "status": "succeeded", "attempt": 1, "max_attempts": 3,
	 "key": "order-42", "logical_time": "2026-11-21T00:00:00Z",
	 "run_at": "2026-11-21T00:00:00Z", "created_at": "2026-11-21T00:00:00Z", "started_at": "2026-11-21T00:00:01Z",
	 "finished_at": "2026-11-21T00:00:02+08:00", "worker_id": "w-host-1", "result": {"exit_code": 0, "stdout": "hi\n"}, "error": null}`
	var r client.Run
	if err := json.Unmarshal([]byte(design), &r); err != nil {
		t.Fatal(err)
	}
	if r.ID != "r_01J" || r.ParentID != "" || r.Shard != nil || r.Error != "" || !r.Succeeded() ||
		string(r.Payload) != `{"cmd": "echo hi"}` || !r.LogicalTime.Equal(t0) || r.Timeout != 0 {
		t.Errorf("decoded %+v", r)
	}
	var res struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	if err := r.DecodeResult(&res); err != nil || res.Stdout != "hi\n" {
		t.Errorf("result %+v, %v", res, err)
	}
	// Times are written in UTC whatever zone they were read in.
	if b, err := json.Marshal(r); err != nil || !strings.Contains(string(b), `"finished_at":"2026-11-20T16:00:02Z"`) {
		t.Errorf("re-marshalled %s, %v", b, err)
	}
	var nulls client.Run
	if err := json.Unmarshal([]byte(`{"id":"x","payload":null,"result":null}`), &nulls); err != nil {
		t.Fatal(err)
	}
	if nulls.Payload != nil || nulls.Result != nil {
		t.Errorf("null payload/result = %q/%q, want nil", nulls.Payload, nulls.Result)
	}
	if err := json.Unmarshal([]byte(`{"id":"x","timeout":"soon"}`), &nulls); err == nil {
		t.Error("bad timeout decoded")
	}
}

func TestRunHelpers(t *testing.T) {
	for _, s := range []client.Status{client.StatusPending, client.StatusBlocked, client.StatusQueued, client.StatusDispatched, client.StatusRunning} {
		if s.Terminal() || (&client.Run{Status: s}).Terminal() {
			t.Errorf("%s is terminal", s)
		}
	}
	for _, s := range []client.Status{client.StatusSucceeded, client.StatusFailed, client.StatusCancelled, client.StatusTimedOut, client.StatusSkipped} {
		if !s.Terminal() {
			t.Errorf("%s is not terminal", s)
		}
		if got := (&client.Run{Status: s}).Succeeded(); got != (s == client.StatusSucceeded) {
			t.Errorf("%s: Succeeded = %v", s, got)
		}
	}
	v := 7
	if err := (&client.Run{}).DecodeResult(&v); err != nil || v != 7 {
		t.Errorf("no result: %v, %d", err, v)
	}
	if err := (&client.Run{Result: json.RawMessage(`"str"`)}).DecodeResult(&v); err == nil {
		t.Error("decoding a string into an int succeeded")
	}
	var p map[string]int
	if err := (&client.Run{Payload: json.RawMessage(`{"a":1}`)}).DecodePayload(&p); err != nil || p["a"] != 1 {
		t.Errorf("payload %v, %v", p, err)
	}
}

// Every list filter reaches the server as the protocol names it.
func TestListFilters(t *testing.T) {
	f, c := setup(t)
	after := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	_, err := c.List(ctxT(t), client.ListOptions{
		Type: "email.send", WorkerID: "w7", Error: "timeout", Oldest: true,
		CreatedAfter: after, CreatedBefore: after.Add(time.Hour), FinishedAfter: after.Add(time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	req := f.lastList
	f.mu.Unlock()
	if req.GetType() != "email.send" || req.GetWorker() != "w7" || req.GetError() != "timeout" || req.GetOrder() != "asc" ||
		req.GetCreatedAfterUnixMs() != after.UnixMilli() || req.GetCreatedBeforeUnixMs() != after.Add(time.Hour).UnixMilli() ||
		req.GetFinishedAfterUnixMs() != after.Add(time.Minute).UnixMilli() || req.GetFinishedBeforeUnixMs() != 0 {
		t.Fatalf("list request %v", req)
	}
}
