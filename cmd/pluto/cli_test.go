package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is an httptest server that answers like the Pluto HTTP API.
type fakeAPI struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recorded
}

type recorded struct {
	method, path string
	query        url.Values
	body         string
	auth         string
	lastEventID  string
}

func (f *fakeAPI) reqs() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.requests...)
}

func (f *fakeAPI) last() recorded {
	r := f.reqs()
	if len(r) == 0 {
		return recorded{}
	}
	return r[len(r)-1]
}

func fakeRun(id, status string) map[string]any {
	r := map[string]any{
		"id": id, "job": nil, "parent_id": nil, "shard": nil, "type": "noop", "group": "default",
		"payload": map[string]any{"n": 1}, "priority": 0, "status": status, "attempt": 1, "max_attempts": 3,
		"key": nil, "logical_time": nil, "run_at": "2026-11-21T08:00:00.5Z", "created_at": "2026-11-21T08:00:00.5Z",
		"started_at": nil, "finished_at": nil, "worker_id": "w-1", "result": nil, "error": nil, "timeout": nil, "routing": nil,
	}
	switch status {
	case "succeeded":
		r["result"] = map[string]any{"exit_code": 0}
	case "failed":
		r["error"] = "exit status 3"
	}
	return r
}

func writeJSONResp(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, status int, code, msg, field string) {
	e := map[string]any{"code": code, "message": msg}
	if field != "" {
		e["field"] = field
	}
	writeJSONResp(w, status, map[string]any{"error": e})
}

// statusOfID: r_ok succeeds, r_bad fails, r_slow never finishes.
func statusOfID(id string) string {
	switch id {
	case "r_ok":
		return "succeeded"
	case "r_bad":
		return "failed"
	}
	return "running"
}

// fakeRoutes add the routes of other test files to newFakeAPI's server
// (from an init function).
var fakeRoutes []func(*http.ServeMux)

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/runs", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &body)
		switch body["type"] {
		case "rejected":
			apiErr(w, 400, "bad_request", "unknown routing strategy \"sideways\"", "routing")
		case "ok":
			writeJSONResp(w, 201, fakeRun("r_ok", "queued"))
		case "bad":
			writeJSONResp(w, 201, fakeRun("r_bad", "queued"))
		default:
			writeJSONResp(w, 201, fakeRun("r_new", "queued"))
		}
	})
	mux.HandleFunc("GET /api/v1/runs", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, map[string]any{"items": []any{fakeRun("r_ok", "succeeded"), fakeRun("r_bad", "failed")}, "next_cursor": "c2"})
	})
	mux.HandleFunc("GET /api/v1/runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if id == "nope" {
			apiErr(w, 404, "not_found", "run nope not found", "")
			return
		}
		writeJSONResp(w, 200, fakeRun(id, statusOfID(id)))
	})
	mux.HandleFunc("GET /api/v1/runs/{id}/wait", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if id == "nope" {
			apiErr(w, 404, "not_found", "run nope not found", "")
			return
		}
		if statusOfID(id) == "running" {
			d, _ := time.ParseDuration(r.URL.Query().Get("timeout"))
			select {
			case <-time.After(d):
			case <-r.Context().Done():
			}
		}
		writeJSONResp(w, 200, fakeRun(id, statusOfID(id)))
	})
	mux.HandleFunc("POST /api/v1/runs/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, fakeRun(r.PathValue("id"), "cancelled"))
	})
	mux.HandleFunc("POST /api/v1/runs/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "r_ok" {
			apiErr(w, 409, "conflict", "run r_ok cannot be retried: it succeeded", "")
			return
		}
		writeJSONResp(w, 200, fakeRun(r.PathValue("id"), "queued"))
	})
	mux.HandleFunc("GET /api/v1/runs/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		line := func(seq int, text string) map[string]any {
			return map[string]any{"seq": seq, "time": "2026-11-21T08:00:01Z", "stream": "stdout", "level": "info", "text": text, "attempt": 1}
		}
		if r.URL.Query().Get("follow") == "1" && strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			// The first stream breaks after line 1; the resumed one sends
			// line 2 and ends.
			w.Header().Set("Content-Type", "text/event-stream")
			enc := json.NewEncoder(w)
			if r.Header.Get("Last-Event-ID") == "" {
				fmt.Fprint(w, ": keep-alive\n\nid: 1\ndata: ")
				_ = enc.Encode(line(1, "hello"))
				fmt.Fprint(w, "\n")
				return
			}
			fmt.Fprint(w, "id: 2\ndata: ")
			_ = enc.Encode(line(2, "world"))
			fmt.Fprint(w, "\nevent: end\ndata: {\"status\":\"succeeded\"}\n\n")
			return
		}
		if r.URL.Query().Get("follow") == "1" {
			w.Header().Set("Content-Type", "application/x-ndjson")
			enc := json.NewEncoder(w)
			_ = enc.Encode(line(1, "hello"))
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
			_ = enc.Encode(line(2, "world"))
			return
		}
		switch r.URL.Query().Get("after") {
		case "0":
			writeJSONResp(w, 200, map[string]any{"items": []any{line(1, "hello"), line(2, "world\n")}, "next_cursor": "2"})
		case "2":
			writeJSONResp(w, 200, map[string]any{"items": []any{line(3, "bye")}})
		default:
			writeJSONResp(w, 200, map[string]any{"items": []any{}})
		}
	})
	mux.HandleFunc("GET /api/v1/workers", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, map[string]any{"items": []any{map[string]any{
			"id": "w-1", "group": "default", "state": "alive", "capacity": 8, "running": 3, "cpu": 0.41,
			"mem_bytes": 123456789, "handlers": []string{"shell", "http"}, "version": "v0", "connected_at": "2026-11-21T08:00:00Z",
			"last_heartbeat": "2026-11-21T08:00:05Z", "server": "s-1",
		}}})
	})
	for _, add := range fakeRoutes {
		add(mux)
	}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.requests = append(f.requests, recorded{method: r.Method, path: r.URL.Path, query: r.URL.Query(), body: string(body), auth: r.Header.Get("Authorization"), lastEventID: r.Header.Get("Last-Event-ID")})
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command tree in-process.
func runCLI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return runCLICtx(t, context.Background(), env, "", args...)
}

func runCLICtx(t *testing.T, ctx context.Context, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb syncBuffer
	a := newApp(strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	a.reexec = func() error { return fmt.Errorf("reexec in a test") }
	code := a.run(ctx, args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func envFor(f *fakeAPI) map[string]string { return map[string]string{envServer: f.URL} }

func TestSubmit(t *testing.T) {
	f := newFakeAPI(t)
	env := envFor(f)

	r := runCLI(t, env, "submit", "--type", "noop", "--payload", `{"n": 1}`, "--delay", "30s", "--priority", "5",
		"--timeout", "5m", "--retries", "2", "--key", "k1", "--routing", "hash", "--routing-key", "x")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "ID") || !strings.Contains(r.stdout, "r_new") || !strings.Contains(r.stdout, "queued") {
		t.Errorf("stdout %q", r.stdout)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(f.last().body), &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": "noop", "group": "default", "payload": map[string]any{"n": 1.0}, "priority": 5.0,
		"delay": "30s", "timeout": "5m0s", "retries": 2.0, "key": "k1", "routing": "hash", "routing_key": "x"}
	if fmt.Sprint(body) != fmt.Sprint(want) {
		t.Errorf("body %v\nwant %v", body, want)
	}

	// --at, --group and -o json.
	r = runCLI(t, env, "submit", "--type", "noop", "--group", "gpu", "--at", "2026-12-01T10:00:00+08:00", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var run map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &run); err != nil || run["id"] != "r_new" || run["status"] != "queued" {
		t.Errorf("json output %q: %v", r.stdout, err)
	}
	body = nil
	_ = json.Unmarshal([]byte(f.last().body), &body)
	if body["run_at"] != "2026-12-01T10:00:00+08:00" || body["group"] != "gpu" || body["delay"] != nil {
		t.Errorf("body %v", body)
	}

	// Payload from a file and from stdin.
	r = runCLICtx(t, context.Background(), env, `[1, 2, 3]`, "submit", "--type", "noop", "--payload", "@-")
	if r.code != 0 || !strings.Contains(f.last().body, `"payload":[1,2,3]`) {
		t.Errorf("stdin payload: %d %s %s", r.code, r.stderr, f.last().body)
	}
}

func TestSubmitWait(t *testing.T) {
	f := newFakeAPI(t)
	env := envFor(f)
	r := runCLI(t, env, "submit", "--type", "ok", "--wait")
	if r.code != 0 || !strings.Contains(r.stdout, "succeeded") || !strings.Contains(r.stdout, "exit_code") {
		t.Fatalf("ok: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := f.last(); got.path != "/api/v1/runs/r_ok/wait" || got.query.Get("timeout") == "" {
		t.Errorf("last request %+v", got)
	}
	r = runCLI(t, env, "submit", "--type", "bad", "--wait")
	if r.code != 1 || !strings.Contains(r.stderr, "exit status 3") || !strings.Contains(r.stdout, "failed") {
		t.Fatalf("bad: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "submit", "--type", "bad", "--wait", "-o", "json")
	var run map[string]any
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &run) != nil || run["status"] != "failed" {
		t.Fatalf("bad json: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "submit", "--type", "slow", "--wait", "--wait-timeout", "200ms")
	if r.code != 1 || !strings.Contains(r.stderr, "timed out waiting") {
		t.Fatalf("slow: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	f := newFakeAPI(t)
	env := envFor(f)
	for _, args := range [][]string{
		{"nope"},
		{"--bogus"},
		{"submit"},
		{"submit", "--type", ""},
		{"submit", "--type", "x", "--payload", "{bad"},
		{"submit", "--type", "x", "--payload", "@/does/not/exist"},
		{"submit", "--type", "x", "--delay", "soon"},
		{"submit", "--type", "x", "--delay", "-5s"},
		{"submit", "--type", "x", "--delay", "1s", "--at", "2026-01-01T00:00:00Z"},
		{"submit", "--type", "x", "--at", "tomorrow"},
		{"submit", "--type", "x", "--retries", "-1"},
		{"submit", "--type", "x", "--priority", "high"},
		{"submit", "--type", "x", "-o", "yaml"},
		{"submit", "--type", "x", "--server", "ftp://host"},
		{"submit", "--type", "x", "extra"},
		{"run", "bogus"},
		{"run", "get"},
		{"run", "get", "a", "b"},
		{"run", "ls", "--limit", "0"},
		{"run", "ls", "--limit", "5000"},
		{"run", "ls", "--created-after", "yesterday"},
		{"run", "ls", "--finished-before", "-5m"},
		{"run", "wait", "x", "--timeout", "-1s"},
		{"run", "logs"},
		{"worker", "bogus"},
		{"worker", "--capacity", "0"},
		{"worker", "--server", "http://127.0.0.1:7071"},
		{"worker", "--server", "nonsense"},
		{"worker", "--prefetch", "-2"},
		{"worker", "ls", "extra"},
		{"server", "--http", "nonsense"},
		{"server", "--heartbeat", "0s"},
		{"server", "--max-payload", "0"},
		{"server", "--log-level", "loud"},
		{"dev", "--http", "0.0.0.0:7070"},
		{"dev", "--grpc", ":7071"},
		{"dev", "--capacity", "0"},
		{"bench", "--mode", "sideways"},
		{"bench", "--retention", "succeeded=30s"}, // burndown
		{"bench", "--mode", "steady", "--retention", "done=30s"},
		{"bench", "--mode", "steady", "--retention", "succeeded=soon"},
		{"bench", "--mode", "steady", "--runs", "10", "--duration", "1m"},
		{"bench", "--mode", "steady", "--size-every", "-1s"},
		{"bench", "--mode", "cron", "--logs-per-run", "2"},
	} {
		r := runCLI(t, env, args...)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, r.code, r.stderr)
			continue
		}
		if !strings.HasPrefix(r.stderr, "pluto: ") || !strings.Contains(r.stderr, "--help") {
			t.Errorf("%v: stderr %q", args, r.stderr)
		}
	}
	if n := len(f.reqs()); n != 0 {
		t.Errorf("usage errors sent %d requests: %+v", n, f.reqs())
	}
	if r := runCLI(t, env, "submit", "--type", "x", "--payload", "{bad"); !strings.Contains(r.stderr, "--payload") {
		t.Errorf("payload error does not name the flag: %q", r.stderr)
	}
}

func TestFailures(t *testing.T) {
	f := newFakeAPI(t)
	env := envFor(f)
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"run", "get", "nope"}, "run nope not found"},
		{[]string{"run", "wait", "nope"}, "run nope not found"},
		{[]string{"run", "retry", "r_ok"}, "cannot be retried"},
		{[]string{"submit", "--type", "rejected"}, "unknown routing strategy"},
		{[]string{"run", "ls", "--server", "http://127.0.0.1:1"}, "cannot reach the Pluto server at http://127.0.0.1:1"},
		{[]string{"run", "get", "x", "--server", f.URL + "/not-pluto"}, "404"},
	} {
		r := runCLI(t, env, c.args...)
		if r.code != 1 {
			t.Errorf("%v: exit %d, want 1 (stderr %q)", c.args, r.code, r.stderr)
			continue
		}
		if !strings.Contains(r.stderr, c.msg) || strings.Contains(r.stderr, "--help") {
			t.Errorf("%v: stderr %q, want %q", c.args, r.stderr, c.msg)
		}
	}
}

func TestRunCommands(t *testing.T) {
	f := newFakeAPI(t)
	env := envFor(f)

	r := runCLI(t, env, "run", "ls", "--status", "failed,queued", "--status", "running", "--group", "g", "--job", "j", "--limit", "10", "--cursor", "c1")
	if r.code != 0 {
		t.Fatalf("ls: %d %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "ID STATUS TYPE GROUP ATTEMPT WORKER CREATED" {
		t.Errorf("ls table:\n%s", r.stdout)
	}
	if strings.Join(strings.Fields(lines[1]), " ") != "r_ok succeeded noop default 1/3 w-1 2026-11-21T08:00:00Z" {
		t.Errorf("ls row %q", lines[1])
	}
	if !strings.Contains(r.stderr, "--cursor c2") {
		t.Errorf("no next cursor hint: %q", r.stderr)
	}
	q := f.last().query
	if fmt.Sprint(q["status"]) != "[failed queued running]" || q.Get("group") != "g" || q.Get("job") != "j" || q.Get("limit") != "10" || q.Get("cursor") != "c1" {
		t.Errorf("ls query %v", q)
	}
	r = runCLI(t, env, "run", "ls", "--type", "email", "--worker", "w-7", "--created-after", "2026-01-02T03:04:05Z",
		"--created-before", "2026-01-03T00:00:00+08:00", "--finished-after", "24h", "--finished-before", "2026-01-04T00:00:00Z",
		"--order", "asc", "--error", "disk full")
	if r.code != 0 {
		t.Fatalf("ls with filters: %d %s", r.code, r.stderr)
	}
	q = f.last().query
	fa, err := time.Parse(time.RFC3339Nano, q.Get("finished_after"))
	if q.Get("type") != "email" || q.Get("worker") != "w-7" || q.Get("created_after") != "2026-01-02T03:04:05Z" ||
		q.Get("created_before") != "2026-01-03T00:00:00+08:00" || q.Get("finished_before") != "2026-01-04T00:00:00Z" ||
		q.Get("order") != "asc" || q.Get("error") != "disk full" || err != nil || time.Since(fa) < 23*time.Hour || time.Since(fa) > 25*time.Hour {
		t.Errorf("ls query with filters %v", q)
	}
	r = runCLI(t, env, "run", "ls", "-o", "json")
	var page map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &page) != nil || page["next_cursor"] != "c2" {
		t.Errorf("ls json: %d %q", r.code, r.stdout)
	}

	r = runCLI(t, env, "run", "get", "r_ok")
	if r.code != 0 || !strings.Contains(r.stdout, "succeeded") || !strings.Contains(r.stdout, `{"n":1}`) {
		t.Errorf("get: %d %q", r.code, r.stdout)
	}
	r = runCLI(t, env, "run", "get", "r_ok", "-o", "json")
	var run map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &run) != nil || len(run) != 22 {
		t.Errorf("get json: %d %q", r.code, r.stdout)
	}

	r = runCLI(t, env, "run", "cancel", "r_x", "--reason", "not needed")
	if r.code != 0 || !strings.Contains(r.stdout, "cancelled") || f.last().body != `{"reason":"not needed"}` {
		t.Errorf("cancel: %d %q %q", r.code, r.stdout, f.last().body)
	}
	r = runCLI(t, env, "run", "retry", "r_bad")
	if r.code != 0 || !strings.Contains(r.stdout, "queued") || f.last().path != "/api/v1/runs/r_bad/retry" {
		t.Errorf("retry: %d %q", r.code, r.stdout)
	}

	if r = runCLI(t, env, "run", "wait", "r_ok"); r.code != 0 {
		t.Errorf("wait ok: %d %s", r.code, r.stderr)
	}
	if r = runCLI(t, env, "run", "wait", "r_bad"); r.code != 1 || !strings.Contains(r.stderr, "exit status 3") {
		t.Errorf("wait bad: %d %s", r.code, r.stderr)
	}
	start := time.Now()
	if r = runCLI(t, env, "run", "wait", "r_slow", "--timeout", "300ms"); r.code != 1 || !strings.Contains(r.stderr, "timed out") || !strings.Contains(r.stdout, "running") {
		t.Errorf("wait slow: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("wait --timeout 300ms took %v", el)
	}

	r = runCLI(t, env, "run", "logs", "r_ok")
	if r.code != 0 || r.stdout != "hello\nworld\nbye\n" {
		t.Errorf("logs: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "run", "logs", "r_ok", "-o", "json")
	var logs struct{ Items []map[string]any }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &logs) != nil || len(logs.Items) != 3 {
		t.Errorf("logs json: %d %q", r.code, r.stdout)
	}
	r = runCLI(t, env, "run", "logs", "r_ok", "-f")
	var resumed []string
	for _, q := range f.reqs() {
		if q.query.Get("follow") == "1" {
			resumed = append(resumed, q.lastEventID)
		}
	}
	if r.code != 0 || r.stdout != "hello\nworld\n" || fmt.Sprint(resumed) != "[ 1]" {
		t.Errorf("logs -f: %d %q %s; Last-Event-IDs %q, want a stream and its resumption after 1", r.code, r.stdout, r.stderr, resumed)
	}
}

func TestWorkerLs(t *testing.T) {
	f := newFakeAPI(t)
	r := runCLI(t, envFor(f), "worker", "ls")
	if r.code != 0 {
		t.Fatalf("%d %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "ID GROUP STATE RUNNING/CAPACITY CPU MEM HANDLERS" ||
		strings.Join(strings.Fields(lines[1]), " ") != "w-1 default alive 3/8 41% 118MiB http,shell" {
		t.Errorf("table:\n%s", r.stdout)
	}
	r = runCLI(t, envFor(f), "worker", "ls", "-o", "json")
	var list struct{ Items []map[string]any }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list.Items) != 1 || list.Items[0]["id"] != "w-1" {
		t.Errorf("json: %q", r.stdout)
	}
}

func TestServerAndTokenFlags(t *testing.T) {
	f := newFakeAPI(t)
	// Env gives defaults.
	r := runCLI(t, map[string]string{envServer: f.URL, envToken: "s3cret"}, "run", "get", "r_ok")
	if r.code != 0 || f.last().auth != "Bearer s3cret" {
		t.Fatalf("env token: %d %q %s", r.code, f.last().auth, r.stderr)
	}
	// Flags win over env; a bare host:port is accepted.
	host := strings.TrimPrefix(f.URL, "http://")
	r = runCLI(t, map[string]string{envServer: "http://127.0.0.1:1", envToken: "env"}, "run", "get", "r_ok", "--server", host, "--token", "flag")
	if r.code != 0 || f.last().auth != "Bearer flag" {
		t.Fatalf("flag token: %d %q %s", r.code, f.last().auth, r.stderr)
	}
	// No token, no header.
	runCLI(t, envFor(f), "run", "get", "r_ok")
	if f.last().auth != "" {
		t.Errorf("auth without token: %q", f.last().auth)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{}, {"--help"}, {"run"}, {"run", "--help"}, {"worker", "--help"}, {"submit", "--help"}} {
		r := runCLI(t, nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: %d %q", args, r.code, r.stdout)
		}
	}
	r := runCLI(t, nil, "worker", "--help")
	if !strings.Contains(r.stdout, "never takes shell runs") {
		t.Errorf("worker help does not say shell is off without --shell:\n%s", r.stdout)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0B", 1023: "1023B", 1024: "1.0KiB", 123456789: "118MiB", 5 << 30: "5.0GiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
