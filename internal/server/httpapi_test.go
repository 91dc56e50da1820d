package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// httpFakeEngine is an in-memory Engine for the HTTP tests.
type httpFakeEngine struct {
	mu        sync.Mutex
	runs      map[string]*store.Run
	seq       int
	submits   [][]engine.SubmitSpec
	submitErr error
	listArgs  []store.RunListParams
	page      *store.RunPage
	listErr   error
	workers   []engine.WorkerInfo
	logs      map[string][]store.LogEntry
	logArgs   []store.LogListParams
	readyErr  error
	cancelArg string
	// waitHook, if set, replaces Wait.
	waitHook func(ctx context.Context, id string) (*store.Run, error)
	// followers are the FollowLogs channels, by run; logStats the runs'
	// log counters.
	followers map[string][]chan struct{}
	logStats  map[string]store.LogStats
	// attempts are the runs' recorded attempts.
	attempts map[string][]store.Attempt
}

var httpT0 = time.Date(2026, 11, 21, 8, 0, 0, 123000000, time.UTC)

func newHTTPFake() *httpFakeEngine {
	return &httpFakeEngine{runs: map[string]*store.Run{}, logs: map[string][]store.LogEntry{}}
}

func (f *httpFakeEngine) put(r *store.Run) *store.Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	cp := *r
	f.runs[r.ID] = &cp
	return r
}

func (f *httpFakeEngine) Submit(ctx context.Context, specs []engine.SubmitSpec) ([]engine.SubmitResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submits = append(f.submits, specs)
	if f.submitErr != nil {
		return nil, f.submitErr
	}
	out := make([]engine.SubmitResult, len(specs))
	for i, s := range specs {
		if s.Key != "" {
			var found *store.Run
			for _, r := range f.runs {
				if r.Key == s.Key {
					found = r
				}
			}
			if found != nil {
				cp := *found
				out[i] = engine.SubmitResult{Run: &cp, Existing: true}
				continue
			}
		}
		f.seq++
		r := &store.Run{
			ID: fmt.Sprintf("r_%03d", f.seq), Seq: int64(f.seq), Type: s.Type, Group: s.Group, Payload: s.Payload,
			Priority: s.Priority, Status: store.StatusQueued, MaxAttempts: s.Retries + 1, Key: s.Key,
			RunAt: httpT0, CreatedAt: httpT0, Timeout: s.Timeout, Routing: s.Routing, RoutingKey: s.RoutingKey,
		}
		if s.Delay > 0 || !s.RunAt.IsZero() {
			r.Status = store.StatusPending
		}
		f.runs[r.ID] = r
		cp := *r
		out[i] = engine.SubmitResult{Run: &cp}
	}
	return out, nil
}

func (f *httpFakeEngine) Get(ctx context.Context, id string) (*store.Run, error) {
	if id == "panic" {
		panic("boom")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.runs[id]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", id, store.ErrNotFound)
	}
	cp := *r
	return &cp, nil
}

func (f *httpFakeEngine) List(ctx context.Context, p store.RunListParams) (store.RunPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listArgs = append(f.listArgs, p)
	if f.listErr != nil {
		return store.RunPage{}, f.listErr
	}
	if f.page != nil {
		return *f.page, nil
	}
	var page store.RunPage
	for _, r := range f.runs {
		cp := *r
		page.Runs = append(page.Runs, &cp)
	}
	sort.Slice(page.Runs, func(i, j int) bool { return page.Runs[i].Seq > page.Runs[j].Seq })
	return page, nil
}

func (f *httpFakeEngine) Wait(ctx context.Context, id string) (*store.Run, error) {
	if f.waitHook != nil {
		return f.waitHook(ctx, id)
	}
	r, err := f.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Status.Terminal() {
		return r, nil
	}
	<-ctx.Done()
	return r, ctx.Err()
}

func (f *httpFakeEngine) Cancel(ctx context.Context, id, reason string) (*store.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.runs[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	f.cancelArg = reason
	if !r.Status.Terminal() {
		r.Status = store.StatusCancelled
		r.FinishedAt = httpT0.Add(time.Second)
		r.Error = "cancelled: " + reason
	}
	cp := *r
	return &cp, nil
}

func (f *httpFakeEngine) Retry(ctx context.Context, id string) (*store.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.runs[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	if !r.Status.Terminal() || r.Status == store.StatusSucceeded {
		return nil, fmt.Errorf("retry %s: %w", id, store.ErrConflict)
	}
	r.Status = store.StatusQueued
	cp := *r
	return &cp, nil
}

func (f *httpFakeEngine) Workers() []engine.WorkerInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.workers)
}

func (f *httpFakeEngine) Logs(ctx context.Context, p store.LogListParams) ([]store.LogEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logArgs = append(f.logArgs, p)
	var out []store.LogEntry
	for _, e := range f.logs[p.RunID] {
		if e.Seq > p.After && len(out) < p.Limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *httpFakeEngine) Fanout(context.Context, string) (*store.Fanout, error) {
	return nil, store.ErrNotFound
}

func (f *httpFakeEngine) LogStats(ctx context.Context, id string) (store.LogStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logStats[id], nil
}

func (f *httpFakeEngine) RunAttempts(ctx context.Context, id string) ([]store.Attempt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[id], nil
}

func (f *httpFakeEngine) FollowLogs(ctx context.Context, id string) (<-chan struct{}, func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.followers == nil {
		f.followers = map[string][]chan struct{}{}
	}
	ch := make(chan struct{}, 1)
	f.followers[id] = append(f.followers[id], ch)
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.followers[id] = slices.DeleteFunc(f.followers[id], func(c chan struct{}) bool { return c == ch })
	}, nil
}

// appendLog adds a line to run id's log and wakes its followers; status,
// if not empty, ends the run in the same step.
func (f *httpFakeEngine) appendLog(id, text string, status store.RunStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seq := int64(len(f.logs[id]) + 1)
	f.logs[id] = append(f.logs[id], store.LogEntry{Seq: seq, LogLine: store.LogLine{RunID: id, Attempt: 1, Time: httpT0, Stream: "stdout", Text: text}})
	if status != "" {
		f.runs[id].Status = status
	}
	for _, ch := range f.followers[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// following reports how many followers run id has.
func (f *httpFakeEngine) following(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.followers[id])
}

func (f *httpFakeEngine) Ready(ctx context.Context) error { return f.readyErr }
func (f *httpFakeEngine) Cluster(ctx context.Context) (engine.ClusterInfo, error) {
	return engine.ClusterInfo{Store: "fake"}, nil
}

func (f *httpFakeEngine) submitCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.submits)
}

// ---- helpers ----

type httpResp struct {
	status int
	header http.Header
	body   []byte
}

func (r httpResp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

func (r httpResp) errBody(t *testing.T) (code, message, field string) {
	t.Helper()
	m := r.json(t)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error envelope in %s", r.body)
	}
	code, _ = e["code"].(string)
	message, _ = e["message"].(string)
	field, _ = e["field"].(string)
	if code == "" || message == "" {
		t.Fatalf("error envelope without code or message: %s", r.body)
	}
	return code, message, field
}

func newHTTPTestAPI(t *testing.T, f *httpFakeEngine, opts HTTPOptions) *httptest.Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	srv := httptest.NewServer(newHTTPHandler(f, opts))
	t.Cleanup(srv.Close)
	return srv
}

// setJSON marks a state-changing request's body as JSON, as every client
// must (the server answers 415 otherwise).
func setJSON(req *http.Request) {
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		req.Header.Set("Content-Type", "application/json")
	}
}

func httpDo(t *testing.T, srv *httptest.Server, method, path, body string) httpResp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	setJSON(req)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); method != http.MethodHead && !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "application/x-ndjson") {
		t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, b)
	}
	return httpResp{status: res.StatusCode, header: res.Header, body: b}
}

var httpRunKeys = []string{
	"id", "job", "parent_id", "shard", "type", "group", "payload", "priority", "status", "attempt",
	"max_attempts", "key", "logical_time", "run_at", "created_at", "started_at", "finished_at",
	"worker_id", "result", "error", "timeout", "routing", "callback_url", "callback",
}

func checkHTTPRunKeys(t *testing.T, m map[string]any) {
	t.Helper()
	var got []string
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	want := slices.Clone(httpRunKeys)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("run keys\n got %v\nwant %v", got, want)
	}
}

// ---- tests ----

func TestHTTPSubmitOne(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	r := httpDo(t, srv, "POST", "/api/v1/runs", `{"type":"shell","group":"default","payload":{"cmd": "echo hi"},
		"priority":5,"delay":"30s","timeout":"5m","retries":2,"key":"k1","routing":"hash","routing_key":"x"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	m := r.json(t)
	checkHTTPRunKeys(t, m)
	for k, want := range map[string]any{
		"id": "r_001", "type": "shell", "group": "default", "priority": 5.0, "status": "pending",
		"attempt": 0.0, "max_attempts": 3.0, "key": "k1", "timeout": "5m", "routing": "hash",
		"run_at": "2026-11-21T08:00:00.123Z", "created_at": "2026-11-21T08:00:00.123Z",
	} {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	for _, k := range []string{"job", "parent_id", "shard", "logical_time", "started_at", "finished_at", "worker_id", "result", "error"} {
		if m[k] != nil {
			t.Errorf("%s = %#v, want null", k, m[k])
		}
	}
	if p, _ := json.Marshal(m["payload"]); string(p) != `{"cmd":"echo hi"}` {
		t.Errorf("payload %s", p)
	}
	if loc := r.header.Get("Location"); loc != "/api/v1/runs/r_001" {
		t.Errorf("Location %q", loc)
	}
	spec := f.submits[0][0]
	if spec.Delay != 30*time.Second || spec.Timeout != 5*time.Minute || spec.Retries != 2 || spec.RoutingKey != "x" || string(spec.Payload) != `{"cmd":"echo hi"}` {
		t.Errorf("spec %+v", spec)
	}

	// Same idempotency key: 200 with the existing run.
	r = httpDo(t, srv, "POST", "/api/v1/runs", `{"type":"shell","group":"default","key":"k1"}`)
	if r.status != http.StatusOK || r.json(t)["id"] != "r_001" {
		t.Fatalf("idempotent resubmit: %d %s", r.status, r.body)
	}

	// run_at is passed through; null payload is no payload.
	r = httpDo(t, srv, "POST", "/api/v1/runs", `{"type":"noop","group":"g","run_at":"2026-12-01T10:00:00+08:00","payload":null}`)
	if r.status != http.StatusCreated {
		t.Fatalf("run_at: %d %s", r.status, r.body)
	}
	spec = f.submits[2][0]
	if !spec.RunAt.Equal(time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)) || spec.Payload != nil {
		t.Errorf("spec %+v", spec)
	}
	if m := r.json(t); m["payload"] != nil {
		t.Errorf("payload %v", m["payload"])
	}
}

func TestHTTPSubmitBatch(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	r := httpDo(t, srv, "POST", "/api/v1/runs", `{"runs":[{"type":"a","group":"g"},{"type":"b","group":"g","payload":[1,2]}]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	items, _ := r.json(t)["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("items: %s", r.body)
	}
	for i, it := range items {
		checkHTTPRunKeys(t, it.(map[string]any))
		if it.(map[string]any)["type"] != []string{"a", "b"}[i] {
			t.Errorf("item %d: %v", i, it)
		}
	}
}

func TestHTTPSubmitBadInput(t *testing.T) {
	big := strings.Repeat("x", 2000)
	tests := []struct {
		name       string
		opts       HTTPOptions
		body       string
		status     int
		code       string
		field      string
		msgHas     string
		engineErr  error
		engineCall bool
	}{
		{name: "missing type", body: `{"group":"g"}`, status: 400, code: "bad_request", field: "type"},
		{name: "blank type", body: `{"type":"  ","group":"g"}`, status: 400, code: "bad_request", field: "type"},
		{name: "missing group", body: `{"type":"t"}`, status: 400, code: "bad_request", field: "group"},
		{name: "malformed", body: "{\"type\":\"t\",\n \"group\": }", status: 400, code: "bad_json", msgHas: "line 2"},
		{name: "truncated", body: `{"type":"t"`, status: 400, code: "bad_json"},
		{name: "trailing garbage", body: `{"type":"t","group":"g"} x`, status: 400, code: "bad_json"},
		{name: "two objects", body: `{"type":"t","group":"g"}{}`, status: 400, code: "bad_json"},
		{name: "empty", body: ` `, status: 400, code: "bad_json"},
		{name: "array", body: `[1]`, status: 400, code: "bad_json"},
		{name: "string", body: `"x"`, status: 400, code: "bad_json"},
		{name: "null", body: `null`, status: 400, code: "bad_json"},
		{name: "unknown field", body: `{"type":"t","group":"g","colour":"red"}`, status: 400, code: "bad_request", field: "colour", msgHas: "colour"},
		{name: "wrong type", body: `{"type":"t","group":"g","priority":"high"}`, status: 400, code: "bad_request", field: "priority"},
		{name: "fractional int", body: `{"type":"t","group":"g","retries":1.5}`, status: 400, code: "bad_request", field: "retries"},
		{name: "type not string", body: `{"type":7,"group":"g"}`, status: 400, code: "bad_request", field: "type"},
		{name: "bad delay", body: `{"type":"t","group":"g","delay":"soon"}`, status: 400, code: "bad_request", field: "delay"},
		{name: "delay number", body: `{"type":"t","group":"g","delay":30}`, status: 400, code: "bad_request", field: "delay"},
		{name: "negative delay", body: `{"type":"t","group":"g","delay":"-1s"}`, status: 400, code: "bad_request", field: "delay"},
		{name: "bad run_at", body: `{"type":"t","group":"g","run_at":"tomorrow"}`, status: 400, code: "bad_request", field: "run_at"},
		{name: "delay and run_at", body: `{"type":"t","group":"g","delay":"1s","run_at":"2026-01-01T00:00:00Z"}`, status: 400, code: "bad_request", field: "run_at"},
		{name: "bad timeout", body: `{"type":"t","group":"g","timeout":"5 minutes"}`, status: 400, code: "bad_request", field: "timeout"},
		{name: "negative retries", body: `{"type":"t","group":"g","retries":-1}`, status: 400, code: "bad_request", field: "retries"},
		{name: "payload too large", opts: HTTPOptions{MaxPayload: 1000}, body: `{"type":"t","group":"g","payload":"` + big + `"}`, status: 413, code: "payload_too_large", field: "payload"},
		{name: "body too large", opts: HTTPOptions{MaxPayload: 1000, MaxBody: 1500}, body: `{"type":"t","group":"g","payload":"` + big + `"}`, status: 413, code: "payload_too_large"},
		{name: "default limit", body: `{"type":"t","group":"g","payload":"` + strings.Repeat("y", 1<<20+10) + `"}`, status: 413, code: "payload_too_large", field: "payload"},
		{name: "batch not array", body: `{"runs":{}}`, status: 400, code: "bad_request", field: "runs"},
		{name: "batch empty", body: `{"runs":[]}`, status: 400, code: "bad_request", field: "runs"},
		{name: "batch extra key", body: `{"runs":[{"type":"t","group":"g"}],"type":"t"}`, status: 400, code: "bad_request", field: "type"},
		{name: "batch element missing type", body: `{"runs":[{"type":"t","group":"g"},{"group":"g"}]}`, status: 400, code: "bad_request", field: "runs[1].type"},
		{name: "batch element unknown field", body: `{"runs":[{"type":"t","group":"g","x":1}]}`, status: 400, code: "bad_request", field: "runs[0].x"},
		{name: "batch element not object", body: `{"runs":[1]}`, status: 400, code: "bad_request", field: "runs[0]"},
		{name: "batch too big", body: `{"runs":[` + strings.TrimSuffix(strings.Repeat(`{"type":"t","group":"g"},`, 1001), ",") + `]}`, status: 400, code: "bad_request", field: "runs"},
		{name: "engine field error", body: `{"type":"t","group":"g","routing":"sideways"}`, engineErr: &engine.FieldError{Field: "routing", Message: "unknown routing strategy"}, status: 400, code: "bad_request", field: "routing", engineCall: true},
		{name: "engine too large", body: `{"type":"t","group":"g"}`, engineErr: fmt.Errorf("x: %w", engine.ErrPayloadTooLarge), status: 413, code: "payload_too_large", field: "payload", engineCall: true},
		{name: "engine stopped", body: `{"type":"t","group":"g"}`, engineErr: engine.ErrStopped, status: 503, code: "unavailable", engineCall: true},
		{name: "engine broken", body: `{"type":"t","group":"g"}`, engineErr: errors.New("disk on fire"), status: 500, code: "internal", msgHas: "disk on fire", engineCall: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newHTTPFake()
			f.submitErr = tt.engineErr
			srv := newHTTPTestAPI(t, f, tt.opts)
			r := httpDo(t, srv, "POST", "/api/v1/runs", tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			code, msg, field := r.errBody(t)
			if code != tt.code || field != tt.field {
				t.Errorf("code %q field %q, want %q %q (message %q)", code, field, tt.code, tt.field, msg)
			}
			if tt.msgHas != "" && !strings.Contains(msg, tt.msgHas) {
				t.Errorf("message %q does not mention %q", msg, tt.msgHas)
			}
			if called := f.submitCount() > 0; called != tt.engineCall {
				t.Errorf("engine called: %v, want %v", called, tt.engineCall)
			}
		})
	}
}

func TestHTTPListRuns(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})

	r := httpDo(t, srv, "GET", "/api/v1/runs", "")
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"items":[]}` {
		t.Fatalf("empty list: %d %s", r.status, r.body)
	}
	if got := f.listArgs[0]; got.Limit != 100 || got.Statuses != nil {
		t.Errorf("defaults %+v", got)
	}

	f.put(&store.Run{ID: "r_1", Seq: 1, Type: "t", Group: "g", Status: store.StatusRunning, CreatedAt: httpT0, RunAt: httpT0, StartedAt: httpT0, WorkerID: "w1", Attempt: 1})
	f.page = &store.RunPage{Runs: []*store.Run{f.runs["r_1"]}, NextCursor: "17"}
	r = httpDo(t, srv, "GET", "/api/v1/runs?status=running,queued&status=failed&status=running&group=g&job=j&limit=1&cursor=42", "")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["next_cursor"] != "17" {
		t.Errorf("next_cursor %v", m["next_cursor"])
	}
	items := m["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("items %v", items)
	}
	checkHTTPRunKeys(t, items[0].(map[string]any))
	got := f.listArgs[1]
	want := store.RunListParams{Statuses: []store.RunStatus{"running", "queued", "failed"}, Group: "g", Job: "j", Limit: 1, Cursor: "42"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("params %+v, want %+v", got, want)
	}

	for _, q := range []struct{ query, field string }{
		{"status=nope", "status"},
		{"status=running,bogus", "status"},
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"limit=-5", "limit"},
		{"order=up", "order"},
		{"created_after=yesterday", "created_after"},
		{"created_before=2026-01-02", "created_before"},
		{"finished_after=1700000000", "finished_after"},
		{"finished_before=2026-13-01T00:00:00Z", "finished_before"},
	} {
		r := httpDo(t, srv, "GET", "/api/v1/runs?"+q.query, "")
		if r.status != 400 {
			t.Errorf("%s: status %d", q.query, r.status)
			continue
		}
		if code, _, field := r.errBody(t); code != "bad_request" || field != q.field {
			t.Errorf("%s: code %q field %q", q.query, code, field)
		}
	}

	r = httpDo(t, srv, "GET", "/api/v1/runs?type=email&worker=w-1&created_after=2026-01-02T03:04:05Z&created_before=2026-01-03T00:00:00%2B08:00"+
		"&finished_after=2026-01-02T03:04:05.5Z&finished_before=2026-01-04T00:00:00Z&order=asc&error=disk+full", "")
	if r.status != 200 {
		t.Fatalf("new filters: %d %s", r.status, r.body)
	}
	got = f.listArgs[len(f.listArgs)-1]
	day := func(d int) time.Time { return time.Date(2026, 1, d, 0, 0, 0, 0, time.UTC) }
	if got.Type != "email" || got.WorkerID != "w-1" || got.Order != store.OrderAsc || got.ErrorContains != "disk full" ||
		!got.CreatedAfter.Equal(day(2).Add(3*time.Hour+4*time.Minute+5*time.Second)) || !got.CreatedBefore.Equal(day(2).Add(16*time.Hour)) ||
		!got.FinishedAfter.Equal(day(2).Add(3*time.Hour+4*time.Minute+5500*time.Millisecond)) || !got.FinishedBefore.Equal(day(4)) {
		t.Errorf("new filters: params %+v", got)
	}
	if r = httpDo(t, srv, "GET", "/api/v1/runs?order=desc", ""); r.status != 200 || f.listArgs[len(f.listArgs)-1].Order != "" {
		t.Errorf("order=desc: %d %+v", r.status, f.listArgs[len(f.listArgs)-1])
	}

	f.page = nil
	f.listErr = &engine.FieldError{Field: "cursor", Message: "is not a cursor this server issued"}
	r = httpDo(t, srv, "GET", "/api/v1/runs?cursor=zz", "")
	if _, _, field := r.errBody(t); r.status != 400 || field != "cursor" {
		t.Errorf("bad cursor: %d %s", r.status, r.body)
	}
}

func TestHTTPGetCancelRetry(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	shard := 2
	f.put(&store.Run{ID: "r_1", Type: "t", Group: "g", Status: store.StatusSucceeded, Attempt: 1, MaxAttempts: 3,
		Job: "nightly", ParentID: "r_0", Shard: &shard, LogicalTime: httpT0, RunAt: httpT0, CreatedAt: httpT0, StartedAt: httpT0,
		FinishedAt: httpT0.Add(90 * time.Second), WorkerID: "w1", Result: json.RawMessage(`{"exit_code":0}`), Timeout: 90 * time.Minute})
	f.put(&store.Run{ID: "r_2", Type: "t", Group: "g", Status: store.StatusQueued, RunAt: httpT0, CreatedAt: httpT0})

	r := httpDo(t, srv, "GET", "/api/v1/runs/r_1", "")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := r.json(t)
	checkHTTPRunKeys(t, m)
	for k, want := range map[string]any{"job": "nightly", "parent_id": "r_0", "shard": 2.0, "logical_time": "2026-11-21T08:00:00.123Z",
		"finished_at": "2026-11-21T08:01:30.123Z", "worker_id": "w1", "timeout": "1h30m", "error": nil, "routing": nil} {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	if res, _ := json.Marshal(m["result"]); string(res) != `{"exit_code":0}` {
		t.Errorf("result %s", res)
	}

	r = httpDo(t, srv, "GET", "/api/v1/runs/r_nope", "")
	if code, msg, _ := r.errBody(t); r.status != 404 || code != "not_found" || !strings.Contains(msg, "r_nope") {
		t.Errorf("missing run: %d %s", r.status, r.body)
	}

	// cancel
	r = httpDo(t, srv, "POST", "/api/v1/runs/r_2/cancel", `{"reason":"changed my mind"}`)
	if r.status != 200 || r.json(t)["status"] != "cancelled" || f.cancelArg != "changed my mind" {
		t.Fatalf("cancel: %d %s (reason %q)", r.status, r.body, f.cancelArg)
	}
	r = httpDo(t, srv, "POST", "/api/v1/runs/r_1/cancel", "")
	if r.status != 200 || r.json(t)["status"] != "succeeded" {
		t.Fatalf("cancel terminal: %d %s", r.status, r.body)
	}
	for _, c := range []struct {
		path, body string
		status     int
		code       string
		field      string
	}{
		{"/api/v1/runs/r_nope/cancel", "", 404, "not_found", ""},
		{"/api/v1/runs/r_2/cancel", `{"reason":`, 400, "bad_json", ""},
		{"/api/v1/runs/r_2/cancel", `{"why":"x"}`, 400, "bad_request", "why"},
		{"/api/v1/runs/r_2/cancel", `{"reason":5}`, 400, "bad_request", "reason"},
		{"/api/v1/runs/r_2/cancel", `"x"`, 400, "bad_json", ""},
		{"/api/v1/runs/r_2/cancel", `{"reason":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "payload_too_large", ""},
		{"/api/v1/runs/r_1/retry", "", 409, "conflict", ""},
		{"/api/v1/runs/r_nope/retry", "", 404, "not_found", ""},
	} {
		r := httpDo(t, srv, "POST", c.path, c.body)
		if r.status != c.status {
			t.Errorf("%s %.20s: status %d, want %d: %s", c.path, c.body, r.status, c.status, r.body)
			continue
		}
		if code, _, field := r.errBody(t); code != c.code || field != c.field {
			t.Errorf("%s %.20s: code %q field %q", c.path, c.body, code, field)
		}
	}

	// retry a cancelled run
	r = httpDo(t, srv, "POST", "/api/v1/runs/r_2/retry", "")
	if r.status != 200 || r.json(t)["status"] != "queued" {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
}

func TestHTTPWait(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	f.put(&store.Run{ID: "done", Type: "t", Group: "g", Status: store.StatusFailed, Error: "exit 1", RunAt: httpT0, CreatedAt: httpT0})
	f.put(&store.Run{ID: "busy", Type: "t", Group: "g", Status: store.StatusRunning, RunAt: httpT0, CreatedAt: httpT0})

	r := httpDo(t, srv, "GET", "/api/v1/runs/done/wait", "")
	if m := r.json(t); r.status != 200 || m["status"] != "failed" || m["error"] != "exit 1" {
		t.Fatalf("terminal: %d %s", r.status, r.body)
	}

	start := time.Now()
	r = httpDo(t, srv, "GET", "/api/v1/runs/busy/wait?timeout=100ms", "")
	if r.status != 200 || r.json(t)["status"] != "running" {
		t.Fatalf("timeout: %d %s", r.status, r.body)
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 5*time.Second {
		t.Errorf("waited %v", el)
	}
	r = httpDo(t, srv, "GET", "/api/v1/runs/busy/wait?timeout=0s", "")
	if r.status != 200 || r.json(t)["status"] != "running" {
		t.Fatalf("timeout 0: %d %s", r.status, r.body)
	}

	// Engine gives back nothing with the timeout: the handler reads the run.
	f.waitHook = func(ctx context.Context, id string) (*store.Run, error) {
		if id == "nope" {
			return nil, store.ErrNotFound
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	r = httpDo(t, srv, "GET", "/api/v1/runs/busy/wait?timeout=1", "")
	if r.status != 200 || r.json(t)["status"] != "running" {
		t.Fatalf("timeout without run: %d %s", r.status, r.body)
	}

	for _, c := range []struct {
		path   string
		status int
		code   string
		field  string
	}{
		{"/api/v1/runs/nope/wait?timeout=1s", 404, "not_found", ""},
		{"/api/v1/runs/busy/wait?timeout=forever", 400, "bad_request", "timeout"},
		{"/api/v1/runs/busy/wait?timeout=6m", 400, "bad_request", "timeout"},
		{"/api/v1/runs/busy/wait?timeout=-1s", 400, "bad_request", "timeout"},
	} {
		r := httpDo(t, srv, "GET", c.path, "")
		if r.status != c.status {
			t.Errorf("%s: status %d: %s", c.path, r.status, r.body)
			continue
		}
		if code, _, field := r.errBody(t); code != c.code || field != c.field {
			t.Errorf("%s: code %q field %q", c.path, code, field)
		}
	}
}

func TestHTTPWaitEndsWhenStopping(t *testing.T) {
	f := newHTTPFake()
	stopping := make(chan struct{})
	srv := newHTTPTestAPI(t, f, HTTPOptions{Stopping: stopping})
	f.put(&store.Run{ID: "busy", Type: "t", Group: "g", Status: store.StatusRunning, RunAt: httpT0, CreatedAt: httpT0})
	time.AfterFunc(100*time.Millisecond, func() { close(stopping) })
	start := time.Now()
	r := httpDo(t, srv, "GET", "/api/v1/runs/busy/wait?timeout=5m", "")
	if r.status != 200 || r.json(t)["status"] != "running" || time.Since(start) > 10*time.Second {
		t.Fatalf("%d %s after %v", r.status, r.body, time.Since(start))
	}
}

func TestHTTPWorkers(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	r := httpDo(t, srv, "GET", "/api/v1/workers", "")
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"items":[]}` {
		t.Fatalf("no workers: %s", r.body)
	}
	f.workers = []engine.WorkerInfo{
		{ID: "w-b", Group: "default", State: engine.WorkerAlive, Capacity: 8, Running: 3, CPU: 0.41, MemBytes: 123456789,
			Handlers: []string{"shell", "http"}, Version: "v1", Hostname: "host", ConnectedAt: httpT0, LastHeartbeat: httpT0.Add(time.Second), Server: "s1", Draining: true},
		{ID: "w-a", Group: "default", State: engine.WorkerSuspect},
	}
	r = httpDo(t, srv, "GET", "/api/v1/workers", "")
	items := r.json(t)["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("%s", r.body)
	}
	if items[0].(map[string]any)["id"] != "w-a" {
		t.Errorf("not sorted: %s", r.body)
	}
	w := items[1].(map[string]any)
	var keys []string
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// The documented fields plus the remote-control additions (commands,
	// draining, leaving) and the load history (cpu_history, mem_history).
	if fmt.Sprint(keys) != "[capacity commands connected_at cpu cpu_history draining group handlers id last_heartbeat leaving mem_bytes mem_history running server state version]" {
		t.Errorf("worker keys %v", keys)
	}
	if w["state"] != "alive" || w["capacity"] != 8.0 || w["running"] != 3.0 || w["cpu"] != 0.41 || w["mem_bytes"] != 123456789.0 ||
		fmt.Sprint(w["handlers"]) != "[shell http]" || w["connected_at"] != "2026-11-21T08:00:00.123Z" || w["server"] != "s1" ||
		w["draining"] != true || w["leaving"] != false || fmt.Sprint(w["commands"]) != "[]" {
		t.Errorf("worker %v", w)
	}
	if h := items[0].(map[string]any)["handlers"]; h == nil {
		t.Errorf("handlers null for a worker without handlers")
	}
}

func TestHTTPHealthReadyAndRouting(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	r := httpDo(t, srv, "GET", "/healthz", "")
	if r.status != 200 || r.json(t)["status"] != "ok" {
		t.Fatalf("healthz %d %s", r.status, r.body)
	}
	r = httpDo(t, srv, "GET", "/readyz", "")
	if r.status != 200 {
		t.Fatalf("readyz %d %s", r.status, r.body)
	}
	f.readyErr = errors.New("store: closed")
	r = httpDo(t, srv, "GET", "/readyz", "")
	if code, msg, _ := r.errBody(t); r.status != 503 || code != "unavailable" || !strings.Contains(msg, "store: closed") {
		t.Fatalf("readyz not ready: %d %s", r.status, r.body)
	}
	r = httpDo(t, srv, "GET", "/healthz", "")
	if r.status != 200 {
		t.Fatalf("healthz while not ready: %d", r.status)
	}

	r = httpDo(t, srv, "GET", "/api/v1/nothing", "")
	if code, _, _ := r.errBody(t); r.status != 404 || code != "not_found" {
		t.Errorf("unknown path: %d %s", r.status, r.body)
	}
	r = httpDo(t, srv, "DELETE", "/api/v1/runs/r_1", "")
	if code, _, _ := r.errBody(t); r.status != 405 || code != "method_not_allowed" || !strings.Contains(r.header.Get("Allow"), "GET") {
		t.Errorf("wrong method: %d %v %s", r.status, r.header, r.body)
	}
	r = httpDo(t, srv, "GET", "/api/v1/runs/r_1/cancel", "")
	if r.status != 405 {
		t.Errorf("GET cancel: %d", r.status)
	}

	// A handler panic is a 500 with the envelope, and the server lives on.
	r = httpDo(t, srv, "GET", "/api/v1/runs/panic", "")
	if code, _, _ := r.errBody(t); r.status != 500 || code != "internal" {
		t.Errorf("panic: %d %s", r.status, r.body)
	}
	if r := httpDo(t, srv, "GET", "/healthz", ""); r.status != 200 {
		t.Errorf("after panic: %d", r.status)
	}
}

func TestHTTPFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Second: "30s", 5 * time.Minute: "5m", time.Hour: "1h", 90 * time.Minute: "1h30m",
		time.Hour + 5*time.Second: "1h0m5s", 1500 * time.Millisecond: "1.5s", 250 * time.Millisecond: "250ms",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParseDurationDays(t *testing.T) {
	for in, want := range map[string]time.Duration{"3d": 72 * time.Hour, "1w": 168 * time.Hour, "90": 90 * time.Second, "1h30m": 90 * time.Minute} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}
