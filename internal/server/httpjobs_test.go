package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// The fakes answer the jobs methods as a store without jobs would; the
// jobs endpoints are tested against a real engine on SQLite below.

func (f *httpFakeEngine) JobPut(ctx context.Context, j store.Job) (*store.Job, bool, error) {
	return nil, false, fmt.Errorf("fake engine: no jobs")
}
func (f *httpFakeEngine) JobGet(ctx context.Context, name string) (*store.Job, error) {
	return nil, store.ErrNotFound
}
func (f *httpFakeEngine) JobList(ctx context.Context) ([]*store.Job, error) { return nil, nil }
func (f *httpFakeEngine) JobDelete(ctx context.Context, name string) error  { return store.ErrNotFound }
func (f *httpFakeEngine) JobPause(ctx context.Context, name string, paused bool) (*store.Job, error) {
	return nil, store.ErrNotFound
}
func (f *httpFakeEngine) JobTriggerSlot(ctx context.Context, name string, payload json.RawMessage, at time.Time, cascade bool) (*store.Run, bool, error) {
	return nil, false, errors.New("fake: no slots")
}

func (f *httpFakeEngine) JobTrigger(ctx context.Context, name string, payload json.RawMessage) (*store.Run, error) {
	return nil, store.ErrNotFound
}

func (f *csFakeEngine) JobPut(ctx context.Context, j store.Job) (*store.Job, bool, error) {
	return nil, false, fmt.Errorf("fake engine: no jobs")
}
func (f *csFakeEngine) JobGet(ctx context.Context, name string) (*store.Job, error) {
	return nil, store.ErrNotFound
}
func (f *csFakeEngine) JobList(ctx context.Context) ([]*store.Job, error) { return nil, nil }
func (f *csFakeEngine) JobDelete(ctx context.Context, name string) error  { return store.ErrNotFound }
func (f *csFakeEngine) JobPause(ctx context.Context, name string, paused bool) (*store.Job, error) {
	return nil, store.ErrNotFound
}
func (f *csFakeEngine) JobTriggerSlot(ctx context.Context, name string, payload json.RawMessage, at time.Time, cascade bool) (*store.Run, bool, error) {
	return nil, false, errors.New("fake: no slots")
}

func (f *csFakeEngine) JobTrigger(ctx context.Context, name string, payload json.RawMessage) (*store.Run, error) {
	return nil, store.ErrNotFound
}

// jobsMaxPayload is small so the tests reach the payload limit cheaply.
const jobsMaxPayload = 4096

// startJobsServer starts a whole server (real engine, SQLite) on free
// ports and returns it with an HTTP client for it.
func startJobsServer(t testing.TB) (*Server, *jobsClient) {
	t.Helper()
	s, err := Start(context.Background(), Config{
		Store:      "sqlite:" + filepath.Join(t.TempDir(), "pluto.db"),
		HTTPAddr:   "127.0.0.1:0",
		GRPCAddr:   "127.0.0.1:0",
		MaxPayload: jobsMaxPayload,
		Logger:     slog.New(slog.DiscardHandler),
		// Callback receivers in these tests are httptest servers, on
		// loopback, which callbacks may not reach by default.
		Engine: engine.Config{CallbackAllow: []string{"127.0.0.1/32"}},
		Auth:   AuthConfig{Disabled: true}, // auth has its own tests (auth_test.go)
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	c := &jobsClient{t: t, base: s.HTTPURL(), hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s, c
}

type jobsClient struct {
	t    testing.TB
	base string
	hc   *http.Client
}

func (c *jobsClient) do(method, path, body string) httpResp {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	setJSON(req)
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusNoContent && ct != "application/json" {
		c.t.Fatalf("%s %s: %d with Content-Type %q: %s", method, path, res.StatusCode, ct, b)
	}
	return httpResp{status: res.StatusCode, header: res.Header, body: b}
}

// want checks the status and returns the body as an object.
func (c *jobsClient) want(status int, method, path, body string) map[string]any {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.status != status {
		c.t.Fatalf("%s %s %s: status %d, want %d: %s", method, path, body, r.status, status, r.body)
	}
	if status == http.StatusNoContent {
		if len(r.body) != 0 {
			c.t.Fatalf("%s %s: 204 with a body: %q", method, path, r.body)
		}
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		c.t.Fatalf("%s %s: not a JSON object: %s", method, path, r.body)
	}
	return m
}

var httpJobKeys = []string{
	"name", "type", "group", "payload", "schedule", "timezone", "depends_on", "misfire", "overlap",
	"routing", "priority", "timeout", "retries", "shards", "min_success", "merge", "paused", "next_fire",
	"misfire_max", "version", "created_at", "updated_at", "callback_url", "keep", "keep_last", "alerts",
}

func checkJobKeys(t *testing.T, m map[string]any) {
	t.Helper()
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	want := slices.Clone(httpJobKeys)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("job keys\n got %v\nwant %v", got, want)
	}
}

func parseAPITime(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%v is not an RFC 3339 time", v)
	}
	return tm
}

func TestHTTPJobsLifecycle(t *testing.T) {
	_, c := startJobsServer(t)

	// Nothing yet.
	list := c.want(200, "GET", "/api/v1/jobs", "")
	if items, ok := list["items"].([]any); !ok || len(items) != 0 {
		t.Fatalf("empty list: %v", list)
	}

	before := time.Now()
	r := c.do("PUT", "/api/v1/jobs/nightly-report", `{"type":"shell","payload":{"cmd": "echo hi"},
		"schedule":"0 0 2 * * ?","timezone":"Asia/Shanghai","misfire":"once","overlap":"forbid",
		"routing":"least-loaded","priority":3,"timeout":"30m","retries":2,"keep":"30d","keep_last":5}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if loc := r.header.Get("Location"); loc != "/api/v1/jobs/nightly-report" {
		t.Errorf("Location %q", loc)
	}
	m := r.json(t)
	checkJobKeys(t, m)
	for k, want := range map[string]any{
		"name": "nightly-report", "type": "shell", "group": "default", "schedule": "0 0 2 * * ?",
		"timezone": "Asia/Shanghai", "misfire": "once", "overlap": "forbid", "routing": "least-loaded",
		"priority": 3.0, "timeout": "30m", "retries": 2.0, "shards": 0.0, "paused": false,
		"version": 1.0, "misfire_max": 100.0, "keep": "30d", "keep_last": 5.0,
	} {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	if p, _ := json.Marshal(m["payload"]); string(p) != `{"cmd":"echo hi"}` {
		t.Errorf("payload %s", p)
	}
	if d, ok := m["depends_on"].([]any); !ok || len(d) != 0 {
		t.Errorf("depends_on %#v, want []", m["depends_on"])
	}
	// The next 02:00 in Shanghai is 18:00 UTC, within a day.
	next := parseAPITime(t, m["next_fire"])
	if next.Before(before) || next.After(before.Add(25*time.Hour)) || next.UTC().Hour() != 18 || next.Minute() != 0 {
		t.Errorf("next_fire %v", next)
	}
	created := parseAPITime(t, m["created_at"])

	// The same PUT again replaces it: 200, version 2, created_at kept.
	m = c.want(200, "PUT", "/api/v1/jobs/nightly-report", `{"name":"nightly-report","type":"shell","payload":{"cmd":"echo bye"},
		"schedule":"0 0 2 * * ?","timezone":"Asia/Shanghai","misfire":"once","overlap":"forbid"}`)
	if m["version"] != 2.0 || m["routing"] != nil || m["timeout"] != nil || m["retries"] != 0.0 || m["keep"] != nil || m["keep_last"] != 0.0 {
		t.Errorf("replaced: %v", m)
	}
	if !parseAPITime(t, m["created_at"]).Equal(created) || parseAPITime(t, m["updated_at"]).Before(created) {
		t.Errorf("created_at %v / updated_at %v, first created %v", m["created_at"], m["updated_at"], created)
	}

	// What GET answers can be PUT back as it is (read-only fields ignored).
	got := c.do("GET", "/api/v1/jobs/nightly-report", "")
	if got.status != 200 {
		t.Fatalf("get: %d %s", got.status, got.body)
	}
	checkJobKeys(t, got.json(t))
	m = c.want(200, "PUT", "/api/v1/jobs/nightly-report", string(got.body))
	if m["version"] != 3.0 || m["misfire"] != "once" {
		t.Errorf("put back: %v", m)
	}

	// A trigger-only job (no schedule) has no next fire.
	m = c.want(201, "PUT", "/api/v1/jobs/adhoc", `{"type":"noop","group":"batch","paused":true}`)
	if m["next_fire"] != nil || m["schedule"] != "" || m["paused"] != true || m["misfire"] != "skip" || m["overlap"] != "allow" {
		t.Errorf("adhoc: %v", m)
	}

	// List: by name.
	list = c.want(200, "GET", "/api/v1/jobs", "")
	items, _ := list["items"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["name"] != "adhoc" || items[1].(map[string]any)["name"] != "nightly-report" {
		t.Fatalf("list: %v", list)
	}
	if _, ok := list["next_cursor"]; ok {
		t.Errorf("next_cursor on the only page: %v", list)
	}
	checkJobKeys(t, items[0].(map[string]any))

	// Pause and resume.
	m = c.want(200, "POST", "/api/v1/jobs/nightly-report/pause", "")
	if m["paused"] != true || m["name"] != "nightly-report" {
		t.Errorf("pause: %v", m)
	}
	m = c.want(200, "GET", "/api/v1/jobs/nightly-report", "")
	if m["paused"] != true {
		t.Errorf("get after pause: %v", m)
	}
	m = c.want(200, "POST", "/api/v1/jobs/nightly-report/resume", "")
	if m["paused"] != false || m["next_fire"] == nil {
		t.Errorf("resume: %v", m)
	}

	// Delete: 204, then 404 everywhere.
	c.want(204, "DELETE", "/api/v1/jobs/nightly-report", "")
	for _, req := range [][2]string{
		{"GET", "/api/v1/jobs/nightly-report"},
		{"DELETE", "/api/v1/jobs/nightly-report"},
		{"POST", "/api/v1/jobs/nightly-report/pause"},
		{"POST", "/api/v1/jobs/nightly-report/resume"},
		{"POST", "/api/v1/jobs/nightly-report/trigger"},
	} {
		r := c.do(req[0], req[1], "")
		if r.status != 404 {
			t.Errorf("%s %s after delete: %d %s", req[0], req[1], r.status, r.body)
			continue
		}
		if code, msg, _ := r.errBody(t); code != codeNotFound || !strings.Contains(msg, "job nightly-report not found") {
			t.Errorf("%s %s: %s %q", req[0], req[1], code, msg)
		}
	}
	list = c.want(200, "GET", "/api/v1/jobs", "")
	if items, _ := list["items"].([]any); len(items) != 1 {
		t.Errorf("list after delete: %v", list)
	}

	// Methods the paths do not take.
	for _, req := range [][2]string{{"POST", "/api/v1/jobs/adhoc"}, {"GET", "/api/v1/jobs/adhoc/trigger"}, {"PUT", "/api/v1/jobs"}} {
		if r := c.do(req[0], req[1], "{}"); r.status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d %s", req[0], req[1], r.status, r.body)
		}
	}
}

func TestHTTPJobPutBadInput(t *testing.T) {
	_, c := startJobsServer(t)
	big := `"` + strings.Repeat("x", jobsMaxPayload) + `"`
	for i, tc := range []struct {
		body   string
		status int
		code   string
		field  string
		msg    string // a part of the message
	}{
		{``, 400, codeBadJSON, "", "empty"},
		{`[]`, 400, codeBadJSON, "", "must be a JSON object"},
		{`null`, 400, codeBadJSON, "", "must be a JSON object"},
		{`{"type":"noop",`, 400, codeBadJSON, "", "line 1"},
		{`{"type":"noop"} {}`, 400, codeBadJSON, "", "malformed"},
		{`{"type":"noop","colour":"red"}`, 400, codeBadRequest, "colour", `unknown field "colour"`},
		{`{"type":"noop","Schedule":"@daily","cron":"@daily"}`, 400, codeBadRequest, "cron", "unknown field"},
		{`{"type":"noop","priority":"high"}`, 400, codeBadRequest, "priority", "an integer"},
		{`{"type":"noop","retries":1.5}`, 400, codeBadRequest, "retries", ""},
		{`{"type":"noop","paused":"no"}`, 400, codeBadRequest, "paused", "a boolean"},
		{`{"type":"noop","depends_on":"a"}`, 400, codeBadRequest, "depends_on", "an array"},
		{`{"type":"noop","schedule":5}`, 400, codeBadRequest, "schedule", "a string"},
		{`{"type":"noop","timeout":30}`, 400, codeBadRequest, "timeout", "a string"},
		{`{"type":"noop","timeout":"soon"}`, 400, codeBadRequest, "timeout", `"soon"`},
		{`{"type":"noop","timeout":"-5m"}`, 400, codeBadRequest, "timeout", "negative"},
		{`{"type":"noop","keep":"-1d"}`, 400, codeBadRequest, "keep", "negative"},
		{`{"type":"noop","keep":"a while"}`, 400, codeBadRequest, "keep", `"a while"`},
		{`{"type":"noop","keep_last":-3}`, 400, codeBadRequest, "keep_last", "negative"},
		{`{"name":"other","type":"noop"}`, 400, codeBadRequest, "name", `"other"`},
		{`{"type":"noop","schedule":"0 0 25 * * ?"}`, 400, codeBadRequest, "schedule", `field 3 (hour) "25": value out of range 0-23`},
		{`{"type":"noop","schedule":"every day"}`, 400, codeBadRequest, "schedule", "cron"},
		{`{"type":"noop","schedule":"@daily","timezone":"Mars/Olympus_Mons"}`, 400, codeBadRequest, "timezone", "Mars/Olympus_Mons"},
		{`{"type":"noop","misfire":"sometimes"}`, 400, codeBadRequest, "misfire", "sometimes"},
		{`{"type":"noop","overlap":"never"}`, 400, codeBadRequest, "overlap", "never"},
		{`{"type":"noop","routing":"sideways"}`, 400, codeBadRequest, "routing", "sideways"},
		{`{"type":"noop","misfire_max":-1}`, 400, codeBadRequest, "misfire_max", ""},
		{`{"group":"default"}`, 400, codeBadRequest, "type", "required"},
		{`{"type":"noop","retries":-1}`, 400, codeBadRequest, "retries", ""},
		{`{"type":"noop","payload":` + big + `}`, 413, codePayloadTooLarge, "payload", "limit"},
		{`{"type":"noop","key":"` + strings.Repeat("x", jobsMaxPayload+70<<10) + `"}`, 413, codePayloadTooLarge, "", "limit"},
	} {
		name := fmt.Sprintf("bad-%d", i)
		r := c.do("PUT", "/api/v1/jobs/"+name, tc.body)
		body := tc.body
		if len(body) > 80 {
			body = body[:80] + "…"
		}
		if r.status != tc.status {
			t.Errorf("%s: status %d, want %d: %s", body, r.status, tc.status, r.body)
			continue
		}
		code, msg, field := r.errBody(t)
		if code != tc.code || field != tc.field || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: got %s/%q %q, want %s/%q containing %q", body, code, field, msg, tc.code, tc.field, tc.msg)
		}
		if r := c.do("GET", "/api/v1/jobs/"+name, ""); r.status != 404 {
			t.Errorf("%s: the job was saved: GET answers %d %s", body, r.status, r.body)
		}
	}

	// A name the engine refuses, named as the field.
	r := c.do("PUT", "/api/v1/jobs/.hidden", `{"type":"noop"}`)
	if _, _, field := r.errBody(t); r.status != 400 || field != "name" {
		t.Errorf(".hidden: %d %s", r.status, r.body)
	}
	list := c.want(200, "GET", "/api/v1/jobs", "")
	if items, _ := list["items"].([]any); len(items) != 0 {
		t.Errorf("bad input saved jobs: %v", list)
	}
}

func TestHTTPJobTrigger(t *testing.T) {
	_, c := startJobsServer(t)
	c.want(201, "PUT", "/api/v1/jobs/report", `{"type":"noop","group":"g1","payload":{"n":1},"priority":7,"retries":2,"timeout":"1h","paused":true}`)
	c.want(201, "PUT", "/api/v1/jobs/other", `{"type":"noop"}`)
	c.want(201, "POST", "/api/v1/runs", `{"type":"noop","group":"g1"}`) // a run of no job

	// Without a body: the job's payload and spec.
	r := c.do("POST", "/api/v1/jobs/report/trigger", "")
	if r.status != http.StatusCreated {
		t.Fatalf("trigger: %d %s", r.status, r.body)
	}
	run := r.json(t)
	checkHTTPRunKeys(t, run)
	id1, _ := run["id"].(string)
	if loc := r.header.Get("Location"); loc != "/api/v1/runs/"+id1 {
		t.Errorf("Location %q for %s", loc, id1)
	}
	if p, _ := json.Marshal(run["payload"]); string(p) != `{"n":1}` || run["job"] != "report" || run["type"] != "noop" ||
		run["group"] != "g1" || run["priority"] != 7.0 || run["max_attempts"] != 3.0 || run["timeout"] != "1h" || run["logical_time"] != nil {
		t.Errorf("triggered run %v", run)
	}

	// With a payload override; null means the job's.
	run = c.want(201, "POST", "/api/v1/jobs/report/trigger", `{"payload": {"n": 2, "why": "rerun"}}`)
	if p, _ := json.Marshal(run["payload"]); string(p) != `{"n":2,"why":"rerun"}` || run["job"] != "report" {
		t.Errorf("override: %v", run)
	}
	id2 := run["id"].(string)
	run = c.want(201, "POST", "/api/v1/jobs/report/trigger", `{"payload": null}`)
	if p, _ := json.Marshal(run["payload"]); string(p) != `{"n":1}` {
		t.Errorf("null payload: %v", run)
	}
	id3 := run["id"].(string)
	run = c.want(201, "POST", "/api/v1/jobs/report/trigger", `{"payload": "just a string"}`)
	id4 := run["id"].(string)
	if run["payload"] != "just a string" {
		t.Errorf("string payload: %v", run)
	}
	other := c.want(201, "POST", "/api/v1/jobs/other/trigger", `{}`)
	if other["job"] != "other" || other["payload"] != nil {
		t.Errorf("other: %v", other)
	}

	// Bad trigger bodies.
	for _, tc := range []struct{ body, code, field string }{
		{`{"payload":1,"extra":true}`, codeBadRequest, "extra"},
		{`[1]`, codeBadJSON, ""},
		{`{"payload":`, codeBadJSON, ""},
	} {
		r := c.do("POST", "/api/v1/jobs/report/trigger", tc.body)
		if code, _, field := r.errBody(t); r.status != 400 || code != tc.code || field != tc.field {
			t.Errorf("%s: %d %s", tc.body, r.status, r.body)
		}
	}
	r = c.do("POST", "/api/v1/jobs/report/trigger", `{"payload":"`+strings.Repeat("y", jobsMaxPayload)+`"}`)
	if _, _, field := r.errBody(t); r.status != 413 || field != "payload" {
		t.Errorf("large payload: %d %s", r.status, r.body)
	}

	// GET /runs?job= lists only that job's runs.
	list := c.want(200, "GET", "/api/v1/runs?job=report", "")
	var ids []string
	for _, it := range list["items"].([]any) {
		m := it.(map[string]any)
		if m["job"] != "report" {
			t.Errorf("run of job %v in ?job=report", m["job"])
		}
		ids = append(ids, m["id"].(string))
	}
	sort.Strings(ids)
	want := []string{id1, id2, id3, id4}
	sort.Strings(want)
	if !slices.Equal(ids, want) {
		t.Errorf("?job=report lists %v, want %v", ids, want)
	}
	list = c.want(200, "GET", "/api/v1/runs?job=other", "")
	if items := list["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != other["id"] {
		t.Errorf("?job=other: %v", list)
	}
	list = c.want(200, "GET", "/api/v1/runs", "")
	if items := list["items"].([]any); len(items) != 6 {
		t.Errorf("all runs: %d", len(items))
	}
	if items := c.want(200, "GET", "/api/v1/runs?job=nope", "")["items"].([]any); len(items) != 0 {
		t.Errorf("?job=nope: %v", items)
	}

	// The job itself is unchanged by triggers (still paused: a paused job
	// can be triggered).
	if m := c.want(200, "GET", "/api/v1/jobs/report", ""); m["paused"] != true || m["version"] != 1.0 {
		t.Errorf("job after triggers: %v", m)
	}
}
