package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// Fuzz targets for the HTTP API's input parsers. They drive the handler
// directly (no sockets) against the in-memory httpFakeEngine, so an
// iteration costs microseconds. Run one with
//
//	go test -run '^$' -fuzz FuzzSubmitRuns -fuzztime 60s ./internal/server/
//
// Invariants, for any input:
//   - no panic (the handler's recover would turn one into a logged 500) and
//     nothing logged at all: the handler logs only panics and engine bugs;
//   - no 5xx: the fake engine never fails, so every error is the caller's;
//   - every answer is JSON (NDJSON for a log follow) and every non-2xx
//     carries the error envelope with a code that matches the status;
//   - a 2xx only when the engine was called with well-formed arguments,
//     and a 4xx only when it was not called at all.

// fuzzMaxPayload is small so that the fuzzer reaches the payload limit.
const fuzzMaxPayload = 256

// fuzzEngine is httpFakeEngine whose List rejects an undecodable cursor the
// way the SQLite store does (a plain error the API maps to 400).
type fuzzEngine struct{ *httpFakeEngine }

func (f fuzzEngine) List(ctx context.Context, p store.RunListParams) (store.RunPage, error) {
	page, err := f.httpFakeEngine.List(ctx, p)
	if err != nil {
		return page, err
	}
	if p.Cursor != "" {
		if _, err := strconv.ParseInt(p.Cursor, 10, 64); err != nil {
			return store.RunPage{}, &engine.FieldError{Field: "cursor", Message: fmt.Sprintf("%q is not a cursor this server issued", p.Cursor)}
		}
	}
	return page, nil
}

// fuzzServe sends one request straight to a fresh handler and returns the
// recorded answer and everything the handler logged.
func fuzzServe(eng Engine, req *http.Request) (*httptest.ResponseRecorder, string) {
	var logBuf bytes.Buffer
	h := newHTTPHandler(eng, HTTPOptions{
		MaxPayload: fuzzMaxPayload,
		Logger:     slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	rec := httptest.NewRecorder()
	req.Host = "localhost" // httptest's example.com is no name of this server
	h.ServeHTTP(rec, req)
	return rec, logBuf.String()
}

// checkFuzzAnswer checks what every answer must satisfy and returns the
// decoded error envelope of a non-2xx answer.
func checkFuzzAnswer(t *testing.T, what string, rec *httptest.ResponseRecorder, logged string) *errorBody {
	t.Helper()
	if logged != "" {
		t.Fatalf("%s: the handler logged (panic or engine bug):\n%s", what, logged)
	}
	if rec.Code >= 500 {
		t.Fatalf("%s: status %d: %s", what, rec.Code, rec.Body.Bytes())
	}
	ct := rec.Header().Get("Content-Type")
	if ct == "application/x-ndjson" {
		for line := range bytes.SplitSeq(bytes.TrimSpace(rec.Body.Bytes()), []byte("\n")) {
			if len(line) > 0 && !json.Valid(line) {
				t.Fatalf("%s: NDJSON line is not JSON: %q", what, line)
			}
		}
		return nil
	}
	if ct != "application/json" {
		t.Fatalf("%s: Content-Type %q, status %d: %s", what, ct, rec.Code, rec.Body.Bytes())
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("%s: body is not JSON: %q", what, rec.Body.Bytes())
	}
	if rec.Code < 300 {
		return nil
	}
	var env struct {
		Error *errorBody `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Error == nil || env.Error.Code == "" || env.Error.Message == "" {
		t.Fatalf("%s: status %d without a complete error envelope: %s", what, rec.Code, rec.Body.Bytes())
	}
	want := map[int][]string{
		http.StatusBadRequest:            {codeBadRequest, codeBadJSON},
		http.StatusNotFound:              {codeNotFound},
		http.StatusRequestEntityTooLarge: {codePayloadTooLarge},
	}[rec.Code]
	if !slices.Contains(want, env.Error.Code) {
		t.Fatalf("%s: status %d with code %q: %s", what, rec.Code, env.Error.Code, rec.Body.Bytes())
	}
	return env.Error
}

var submitSeeds = []string{
	// valid
	`{"type":"shell","group":"default","payload":{"cmd":"echo hi"},"priority":5,"delay":"30s","timeout":"5m","retries":2,"key":"k1","routing":"hash","routing_key":"x"}`,
	`{"type":"noop","group":"g","run_at":"2026-12-01T10:00:00+08:00","payload":null}`,
	`{"type":"noop","group":"g","delay":"30","timeout":" 1h30m "}`,
	`{"type":" t ","group":" g ","payload":"  [1, 2, {\"a\" : null}] "}`,
	`{"runs":[{"type":"a","group":"g"},{"type":"b","group":"g","payload":[1,2]}]}`,
	`{"runs":[{"type":"a","group":"g","key":"same"},{"type":"a","group":"g","key":"same"}]}`,
	`{"TYPE":"t","Group":"g"}`,
	// malformed
	"{\"type\":\"t\",\n \"group\": }",
	`{"type":"t"`,
	`{"type":"t","group":"g"} x`,
	`{"type":"t","group":"g"}{}`,
	``,
	` `,
	`null`,
	`[1]`,
	`"x"`,
	`1e999`,
	"\xef\xbb\xbf{\"type\":\"t\",\"group\":\"g\"}",
	`{"type":"t","group":"g","payload":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	// huge numbers
	`{"type":"t","group":"g","priority":1e400}`,
	`{"type":"t","group":"g","priority":9223372036854775808}`,
	`{"type":"t","group":"g","retries":99999999999999999999}`,
	`{"type":"t","group":"g","payload":1e999999}`,
	`{"type":"t","group":"g","delay":"9223372036854775807"}`,
	`{"type":"t","group":"g","delay":"9223372036"}`,
	`{"type":"t","group":"g","delay":"-9223372036854775808"}`,
	`{"type":"t","group":"g","timeout":"2562048h"}`,
	`{"type":"t","group":"g","timeout":"9223372036854775807ns"}`,
	`{"type":"t","group":"g","run_at":"9999-12-31T23:59:59.999999999Z"}`,
	`{"type":"t","group":"g","run_at":"0001-01-01T00:00:00Z"}`,
	`{"type":"t","group":"g","payload":"` + strings.Repeat("x", fuzzMaxPayload) + `"}`,
	// wrong types
	`{"type":7,"group":"g"}`,
	`{"type":"t","group":["g"]}`,
	`{"type":"t","group":"g","priority":"high"}`,
	`{"type":"t","group":"g","retries":1.5}`,
	`{"type":"t","group":"g","delay":30}`,
	`{"type":"t","group":"g","run_at":true}`,
	`{"type":"t","group":"g","key":{}}`,
	`{"runs":{}}`,
	`{"runs":null}`,
	`{"runs":[]}`,
	`{"runs":[1,"x",null]}`,
	`{"runs":[[]]}`,
	// unknown and duplicate fields
	`{"type":"t","group":"g","colour":"red"}`,
	`{"type":"t","group":"g","type":"u"}`,
	`{"runs":[{"type":"t","group":"g"}],"type":"t"}`,
	`{"runs":[{"type":"t","group":"g","x":1}]}`,
	`{"runs":[],"runs":[{"type":"t","group":"g"}]}`,
	`{"Runs":[{"type":"t","group":"g"}]}`,
	// odd strings
	`{"type":"\u0000","group":"\ud800"}`,
	"{\"type\":\"\xff\xfe\",\"group\":\"g\",\"key\":\"\x80\"}",
	`{"type":"t","group":"g","delay":"1s","run_at":"2026-01-01T00:00:00Z"}`,
	`{"type":"t","group":"g","delay":"-1s"}`,
	`{"type":"t","group":"g","timeout":"-5m"}`,
	`{"type":"t","group":"g","retries":-1,"priority":-3}`,
	`{"runs":[{"type":"t","group":"g"},{"type":"t","group":"g","retries":-1}]}`,
	`{"type":"t","group":"g","run_at":"tomorrow"}`,
}

func FuzzSubmitRuns(f *testing.F) {
	for _, s := range submitSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fake := newHTTPFake()
		req := httptest.NewRequest(http.MethodPost, "/api/v1/runs", bytes.NewReader(body))
		setJSON(req)
		req.Header.Set("Content-Type", "application/json")
		rec, logged := fuzzServe(fake, req)
		checkFuzzAnswer(t, "POST /api/v1/runs", rec, logged)

		calls := fake.submits
		if rec.Code >= 300 {
			if len(calls) != 0 {
				t.Fatalf("status %d, yet the engine was called with %+v: %s", rec.Code, calls, rec.Body.Bytes())
			}
			return
		}
		if len(calls) != 1 {
			t.Fatalf("status %d after %d engine calls", rec.Code, len(calls))
		}
		specs := calls[0]

		// The body must have been an object; "runs" makes it a batch.
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err != nil || top == nil {
			t.Fatalf("status %d for a body that is not a JSON object: %q", rec.Code, body)
		}
		var raws []json.RawMessage
		if runs, batch := top["runs"]; batch {
			if len(top) != 1 {
				t.Fatalf("batch with other top-level keys accepted: %q", body)
			}
			if err := json.Unmarshal(runs, &raws); err != nil {
				t.Fatalf("runs is not an array, yet status %d: %q", rec.Code, body)
			}
			if rec.Code != http.StatusCreated {
				t.Fatalf("batch answered %d, want 201", rec.Code)
			}
			var list listJSON[runJSON]
			if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Items) != len(specs) {
				t.Fatalf("batch answer does not list the %d runs: %s", len(specs), rec.Body.Bytes())
			}
		} else {
			raws = []json.RawMessage{body}
			if rec.Code != http.StatusCreated { // a fresh fake has no key to repeat
				t.Fatalf("single submit answered %d, want 201", rec.Code)
			}
			var run runJSON
			if err := json.Unmarshal(rec.Body.Bytes(), &run); err != nil || run.ID == "" || run.Type != specs[0].Type {
				t.Fatalf("single answer is not the run: %s", rec.Body.Bytes())
			}
		}
		if len(raws) != len(specs) || len(specs) == 0 || len(specs) > maxBatch {
			t.Fatalf("%d runs in the body, %d specs to the engine", len(raws), len(specs))
		}
		for i, s := range specs {
			checkFuzzSpec(t, i, s, raws[i])
		}
	})
}

// checkFuzzSpec checks one spec the engine received against the HTTP
// layer's contract and against an independent decoding of its JSON.
func checkFuzzSpec(t *testing.T, i int, s engine.SubmitSpec, raw json.RawMessage) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("spec %d %+v from %q: %s", i, s, raw, fmt.Sprintf(format, args...))
	}
	switch {
	case s.Type == "" || s.Type != strings.TrimSpace(s.Type):
		fail("type is empty or untrimmed")
	case s.Group == "" || s.Group != strings.TrimSpace(s.Group):
		fail("group is empty or untrimmed")
	case s.Delay < 0:
		fail("negative delay")
	case s.Timeout < 0:
		fail("negative timeout")
	case s.Retries < 0:
		fail("negative retries")
	case s.Delay > 0 && !s.RunAt.IsZero():
		fail("both delay and run_at")
	case s.Job != "":
		fail("the HTTP API does not set job")
	}
	if s.Payload != nil {
		var buf bytes.Buffer
		if err := json.Compact(&buf, s.Payload); err != nil {
			fail("payload is not JSON: %v", err)
		}
		switch {
		case !bytes.Equal(buf.Bytes(), s.Payload):
			fail("payload is not compact")
		case len(s.Payload) > fuzzMaxPayload:
			fail("payload of %d bytes is over the limit", len(s.Payload))
		case string(s.Payload) == "null":
			fail("a null payload must be no payload")
		}
	}

	// Decode the run the way a client library would and compare.
	var in struct {
		Type     string          `json:"type"`
		Group    string          `json:"group"`
		Payload  json.RawMessage `json:"payload"`
		Priority int             `json:"priority"`
		Retries  int             `json:"retries"`
		Key      string          `json:"key"`
		Delay    string          `json:"delay"`
		RunAt    string          `json:"run_at"`
		Timeout  string          `json:"timeout"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		fail("accepted, but it does not decode: %v", err)
	}
	switch {
	case strings.TrimSpace(in.Type) != s.Type, strings.TrimSpace(in.Group) != s.Group:
		fail("type/group differ from the body's %q/%q", in.Type, in.Group)
	case in.Priority != s.Priority, in.Retries != s.Retries, in.Key != s.Key:
		fail("priority/retries/key differ from the body's %d/%d/%q", in.Priority, in.Retries, in.Key)
	case in.Delay == "" && s.Delay != 0:
		fail("a delay the body did not give")
	case in.RunAt != "" && in.Delay != "":
		fail("both delay and run_at in the body")
	case in.Timeout == "" && s.Timeout != 0:
		fail("a timeout the body did not give")
	}
	if in.RunAt != "" {
		want, err := time.Parse(time.RFC3339Nano, in.RunAt)
		if err != nil || !want.Equal(s.RunAt) {
			fail("run_at %q parsed as %v", in.RunAt, s.RunAt)
		}
	}
	if p := bytes.TrimSpace(in.Payload); len(p) > 0 && string(p) != "null" {
		var buf bytes.Buffer
		_ = json.Compact(&buf, p)
		if !bytes.Equal(buf.Bytes(), s.Payload) {
			fail("payload differs from the body's %q", p)
		}
	} else if s.Payload != nil {
		fail("a payload the body did not give")
	}
}

var listSeeds = []string{
	"",
	"status=running,queued&status=failed&status=running&group=g&job=j&limit=1&cursor=42",
	"status=RUNNING&status=%20succeeded%20,,&limit=1000",
	"status=nope",
	"status=running,bogus",
	"status=",
	"limit=0",
	"limit=1001",
	"limit=ten",
	"limit=-5",
	"limit=+5",
	"limit=99999999999999999999",
	"limit=1&limit=2000",
	"cursor=zz",
	"cursor=-1",
	"cursor=9223372036854775808",
	"group=%zz&job=%00",
	"a;b=c&status=failed",
	"after=3&limit=2",
	"after=x",
	"after=-1",
	"cursor=3&after=",
	"follow=1",
	"follow=maybe",
	"follow=true&after=2&limit=10000",
	"timeout=0",
	"timeout=5m",
	"timeout=5m1s",
	"timeout=-1s",
	"timeout=30",
	"timeout=9223372036854775807",
	"%",
	"&&&==&",
}

func FuzzListQuery(f *testing.F) {
	for _, s := range listSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		q, _ := url.ParseQuery(rawQuery) // what Request.URL.Query sees: bad pairs are dropped

		// GET /api/v1/runs
		fake := fuzzEngine{newHTTPFake()}
		for i := 1; i <= 3; i++ {
			fake.put(&store.Run{ID: fmt.Sprintf("r_%d", i), Seq: int64(i), Type: "t", Group: "g", Status: store.StatusQueued, CreatedAt: httpT0, RunAt: httpT0})
		}
		rec, logged := fuzzServe(fake, fuzzGet("/api/v1/runs", rawQuery))
		e := checkFuzzAnswer(t, "GET /api/v1/runs?"+rawQuery, rec, logged)
		wantField := expectListError(q)
		switch {
		case wantField == "" && rec.Code != http.StatusOK:
			t.Fatalf("valid query %q answered %d: %s", rawQuery, rec.Code, rec.Body.Bytes())
		case wantField != "" && (e == nil || rec.Code != http.StatusBadRequest || e.Field != wantField):
			t.Fatalf("query %q: want 400 on %q, got %d: %s", rawQuery, wantField, rec.Code, rec.Body.Bytes())
		}
		if wantField == "status" || wantField == "limit" {
			if len(fake.listArgs) != 0 {
				t.Fatalf("query %q: the engine was called despite a bad %s", rawQuery, wantField)
			}
		} else {
			if len(fake.listArgs) != 1 {
				t.Fatalf("query %q: %d engine calls", rawQuery, len(fake.listArgs))
			}
			p := fake.listArgs[0]
			if p.Limit < 1 || p.Limit > maxListLimit || p.Group != q.Get("group") || p.Job != q.Get("job") || p.Cursor != q.Get("cursor") {
				t.Fatalf("query %q gave params %+v", rawQuery, p)
			}
			for i, s := range p.Statuses {
				if !s.Valid() || slices.Contains(p.Statuses[:i], s) {
					t.Fatalf("query %q gave statuses %v", rawQuery, p.Statuses)
				}
			}
		}
		if rec.Code == http.StatusOK {
			var list listJSON[runJSON]
			if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Items) != 3 {
				t.Fatalf("query %q: list answer %s", rawQuery, rec.Body.Bytes())
			}
		}

		// The same query on the other query-string parsers: a run's logs
		// (after, cursor, limit, follow) and wait (timeout). The run is
		// finished, so neither blocks.
		lf := newHTTPFake()
		lf.put(&store.Run{ID: "r_1", Seq: 1, Type: "t", Group: "g", Status: store.StatusSucceeded, CreatedAt: httpT0, RunAt: httpT0, FinishedAt: httpT0})
		for i := int64(1); i <= 5; i++ {
			lf.logs["r_1"] = append(lf.logs["r_1"], store.LogEntry{Seq: i, LogLine: store.LogLine{RunID: "r_1", Attempt: 1, Time: httpT0, Stream: "stdout", Text: "x"}})
		}
		rec, logged = fuzzServe(lf, fuzzGet("/api/v1/runs/r_1/logs", rawQuery))
		checkFuzzAnswer(t, "GET logs?"+rawQuery, rec, logged)
		if valid := validLogQuery(q); valid != (rec.Code == http.StatusOK) {
			t.Fatalf("logs query %q (valid %v) answered %d: %s", rawQuery, valid, rec.Code, rec.Body.Bytes())
		}
		for _, p := range lf.logArgs {
			if p.After < 0 || p.Limit < 1 || p.Limit > maxLogLimit || p.RunID != "r_1" {
				t.Fatalf("logs query %q gave params %+v", rawQuery, p)
			}
		}

		rec, logged = fuzzServe(lf, fuzzGet("/api/v1/runs/r_1/wait", rawQuery))
		checkFuzzAnswer(t, "GET wait?"+rawQuery, rec, logged)
		valid := true
		if v := q.Get("timeout"); v != "" {
			d, err := parseDuration(v)
			valid = err == nil && d >= 0 && d <= maxWaitTimeout
		}
		if valid != (rec.Code == http.StatusOK) {
			t.Fatalf("wait query %q (valid %v) answered %d: %s", rawQuery, valid, rec.Code, rec.Body.Bytes())
		}
	})
}

// fuzzGet is a GET of path with a raw (possibly malformed) query string.
func fuzzGet(path, rawQuery string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.URL.RawQuery = rawQuery
	return req
}

// expectListError is the field a list query is rejected on ("" if valid),
// worked out independently of the handler.
func expectListError(q url.Values) string {
	for _, v := range q["status"] {
		for _, s := range strings.Split(v, ",") {
			s = strings.ToLower(strings.TrimSpace(s))
			if s != "" && !slices.Contains(store.AllStatuses, store.RunStatus(s)) {
				return "status"
			}
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return "limit"
		}
	}
	if c := q.Get("cursor"); c != "" {
		if _, err := strconv.ParseInt(c, 10, 64); err != nil {
			return "cursor"
		}
	}
	return ""
}

// validLogQuery reports whether the logs endpoint should accept q.
func validLogQuery(q url.Values) bool {
	after := q.Get("after")
	if after == "" {
		after = q.Get("cursor")
	}
	if after != "" {
		if n, err := strconv.ParseInt(after, 10, 64); err != nil || n < 0 {
			return false
		}
	}
	if v := q.Get("limit"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > maxLogLimit {
			return false
		}
	}
	if v := q.Get("follow"); v != "" {
		if _, err := strconv.ParseBool(v); err != nil {
			return false
		}
	}
	return true
}

// FuzzLogResume: any Last-Event-ID and Accept on a follow of a finished
// run. A non-negative line number streams the lines after it (as events
// with their seq as id and a final end event, when Accept names
// text/event-stream); anything else is a 400 naming Last-Event-ID.
func FuzzLogResume(f *testing.F) {
	for _, s := range []string{"0", "3", "5", "-1", "x", "", " 2", "99999999999999999999", "1\x00", "1e3"} {
		f.Add(s, "text/event-stream")
		f.Add(s, "application/json")
	}
	f.Fuzz(func(t *testing.T, lastID, accept string) {
		lf := newHTTPFake()
		lf.put(&store.Run{ID: "r_1", Seq: 1, Type: "t", Group: "g", Status: store.StatusSucceeded, CreatedAt: httpT0, RunAt: httpT0, FinishedAt: httpT0})
		for i := int64(1); i <= 5; i++ {
			lf.logs["r_1"] = append(lf.logs["r_1"], store.LogEntry{Seq: i, LogLine: store.LogLine{RunID: "r_1", Attempt: 1, Time: httpT0, Stream: "stdout", Text: "x"}})
		}
		req := fuzzGet("/api/v1/runs/r_1/logs", "follow=1")
		req.Header.Set("Last-Event-ID", lastID)
		req.Header.Set("Accept", accept)
		rec, logged := fuzzServe(lf, req)
		if logged != "" || rec.Code >= 500 {
			t.Fatalf("Last-Event-ID %q: %d, logged %q", lastID, rec.Code, logged)
		}
		n, err := strconv.ParseInt(lastID, 10, 64)
		if err != nil || n < 0 {
			var env errorJSON
			if rec.Code != http.StatusBadRequest || json.Unmarshal(rec.Body.Bytes(), &env) != nil || env.Error.Field != "Last-Event-ID" {
				t.Fatalf("Last-Event-ID %q: %d %s, want 400 naming Last-Event-ID", lastID, rec.Code, rec.Body.Bytes())
			}
			return
		}
		if rec.Code != http.StatusOK {
			t.Fatalf("Last-Event-ID %q: %d %s", lastID, rec.Code, rec.Body.Bytes())
		}
		want := max(0, 5-min(n, 5))
		body := rec.Body.String()
		if rec.Header().Get("Content-Type") == "text/event-stream" {
			if got := int64(strings.Count(body, "\nid: ") + strings.Count(body[:min(len(body), 4)], "id: ")); got != want || !strings.HasSuffix(body, "event: end\ndata: {\"status\":\"succeeded\"}\n\n") {
				t.Fatalf("Last-Event-ID %q: %d events, want %d, and the end: %q", lastID, got, want, body)
			}
			return
		}
		checkFuzzAnswer(t, "follow, Last-Event-ID "+lastID, rec, logged)
		if got := int64(strings.Count(body, "\n")); got != want {
			t.Fatalf("Last-Event-ID %q: %d lines, want %d: %q", lastID, got, want, body)
		}
	})
}
