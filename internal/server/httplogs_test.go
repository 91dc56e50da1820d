package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

func TestHTTPLogs(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	f.put(&store.Run{ID: "r_1", Type: "t", Group: "g", Status: store.StatusSucceeded, RunAt: httpT0, CreatedAt: httpT0})
	for i := 1; i <= 5; i++ {
		f.logs["r_1"] = append(f.logs["r_1"], store.LogEntry{Seq: int64(i), LogLine: store.LogLine{RunID: "r_1", Attempt: 1,
			Time: httpT0.Add(time.Duration(i) * time.Second), Stream: "stdout", Level: "info", Text: fmt.Sprintf("line %d", i)}})
	}

	r := httpDo(t, srv, "GET", "/api/v1/runs/r_1/logs", "")
	m := r.json(t)
	items := m["items"].([]any)
	if r.status != 200 || len(items) != 5 || m["next_cursor"] != nil {
		t.Fatalf("%d %s", r.status, r.body)
	}
	first := items[0].(map[string]any)
	var keys []string
	for k := range first {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if fmt.Sprint(keys) != "[attempt level seq stream text time]" {
		t.Errorf("log keys %v", keys)
	}
	if first["seq"] != 1.0 || first["text"] != "line 1" || first["time"] != "2026-11-21T08:00:01.123Z" || first["attempt"] != 1.0 {
		t.Errorf("first line %v", first)
	}

	r = httpDo(t, srv, "GET", "/api/v1/runs/r_1/logs?after=1&limit=2", "")
	m = r.json(t)
	if items := m["items"].([]any); len(items) != 2 || items[0].(map[string]any)["seq"] != 2.0 || m["next_cursor"] != "3" {
		t.Fatalf("page: %s", r.body)
	}
	r = httpDo(t, srv, "GET", "/api/v1/runs/r_1/logs?cursor=3", "")
	if items := r.json(t)["items"].([]any); len(items) != 2 {
		t.Fatalf("cursor: %s", r.body)
	}

	for _, c := range []struct{ path, code, field string }{
		{"/api/v1/runs/nope/logs", "not_found", ""},
		{"/api/v1/runs/r_1/logs?after=x", "bad_request", "after"},
		{"/api/v1/runs/r_1/logs?after=-1", "bad_request", "after"},
		{"/api/v1/runs/r_1/logs?limit=0", "bad_request", "limit"},
		{"/api/v1/runs/r_1/logs?follow=maybe", "bad_request", "follow"},
	} {
		r := httpDo(t, srv, "GET", c.path, "")
		if code, _, field := r.errBody(t); code != c.code || field != c.field {
			t.Errorf("%s: %d code %q field %q", c.path, r.status, code, field)
		}
	}
}

// waitFollowing waits until run id has n followers.
func waitFollowing(t *testing.T, f *httpFakeEngine, id string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.following(id) != n {
		if time.Now().After(deadline) {
			t.Fatalf("run %s has %d followers, want %d", id, f.following(id), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// An NDJSON follow sends the lines as they are written (woken by
// FollowLogs, not by a poll) and ends once the run is terminal.
func TestHTTPLogsFollow(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	f.put(&store.Run{ID: "r_1", Type: "t", Group: "g", Status: store.StatusRunning, RunAt: httpT0, CreatedAt: httpT0})
	f.appendLog("r_1", "one", "")
	res, err := srv.Client().Get(srv.URL + "/api/v1/runs/r_1/logs?follow=1&after=0")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(res.Body)
	var got []string
	for sc.Scan() {
		var l logJSON
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, l.Text)
		switch l.Text {
		case "one":
			waitFollowing(t, f, "r_1", 1)
			f.appendLog("r_1", "two", "")
		case "two":
			f.appendLog("r_1", "three", store.StatusSucceeded)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[one two three]" {
		t.Fatalf("followed %v", got)
	}
	waitFollowing(t, f, "r_1", 0)
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, event, data string
}

// readSSE reads events until the stream ends or stop says so.
func readSSE(t *testing.T, sc *bufio.Scanner, stop func(sseEvent) bool) []sseEvent {
	t.Helper()
	var (
		out []sseEvent
		cur sseEvent
	)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur != (sseEvent{}) {
				out = append(out, cur)
				if stop(cur) {
					return out
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data += line[6:]
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sseGet(t *testing.T, srv *httptest.Server, path, lastID string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if ct := res.Header.Get("Content-Type"); res.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("status %d, content type %q", res.StatusCode, ct)
	}
	return res
}

// An event stream names each line by its seq; a client that drops the
// connection resumes with Last-Event-ID and gets every line once; the
// stream ends with an end event once the run is terminal.
func TestHTTPLogsFollowSSE(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	f.put(&store.Run{ID: "r_1", Type: "t", Group: "g", Status: store.StatusRunning, RunAt: httpT0, CreatedAt: httpT0})
	for _, x := range []string{"a", "b", "c"} {
		f.appendLog("r_1", x, "")
	}
	res := sseGet(t, srv, "/api/v1/runs/r_1/logs?follow=1", "")
	first := readSSE(t, bufio.NewScanner(res.Body), func(e sseEvent) bool { return e.id == "2" })
	res.Body.Close() // the connection drops after line 2
	waitFollowing(t, f, "r_1", 0)
	f.appendLog("r_1", "d", "")

	res = sseGet(t, srv, "/api/v1/runs/r_1/logs?follow=1&after=1", first[len(first)-1].id)
	sc := bufio.NewScanner(res.Body)
	second := readSSE(t, sc, func(e sseEvent) bool { return e.id == "4" })
	waitFollowing(t, f, "r_1", 1)
	f.appendLog("r_1", "e", store.StatusFailed)
	second = append(second, readSSE(t, sc, func(sseEvent) bool { return false })...)

	var texts, ids []string
	for _, e := range append(first, second...) {
		if e.event != "" {
			continue
		}
		var l logJSON
		if err := json.Unmarshal([]byte(e.data), &l); err != nil {
			t.Fatalf("event %+v: %v", e, err)
		}
		if strconv.FormatInt(l.Seq, 10) != e.id {
			t.Errorf("event id %q for line %d", e.id, l.Seq)
		}
		texts, ids = append(texts, l.Text), append(ids, e.id)
	}
	if fmt.Sprint(texts) != "[a b c d e]" || fmt.Sprint(ids) != "[1 2 3 4 5]" {
		t.Errorf("lines %v ids %v, want each of a…e once", texts, ids)
	}
	last := second[len(second)-1]
	if last.event != "end" || last.data != `{"status":"failed"}` {
		t.Errorf("last event %+v, want end with the run's status", last)
	}
}

// A follow of a run that already ended sends what is left and ends.
func TestHTTPLogsFollowEnded(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	f.put(&store.Run{ID: "r_1", Type: "t", Group: "g", Status: store.StatusSucceeded, RunAt: httpT0, CreatedAt: httpT0})
	f.appendLog("r_1", "a", "")
	f.appendLog("r_1", "b", "")
	res := sseGet(t, srv, "/api/v1/runs/r_1/logs?follow=1", "1")
	got := readSSE(t, bufio.NewScanner(res.Body), func(sseEvent) bool { return false })
	if len(got) != 2 || got[0].id != "2" || got[1].event != "end" {
		t.Errorf("events %+v, want line 2 then end", got)
	}
}

// Garbage where a line number belongs is a 400 naming the field it came in.
func TestHTTPLogsBadResume(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	f.put(&store.Run{ID: "r_1", Type: "t", Group: "g", Status: store.StatusRunning, RunAt: httpT0, CreatedAt: httpT0})
	for _, c := range []struct {
		path   string
		header []string
		field  string
	}{
		{"/api/v1/runs/r_1/logs?follow=1", []string{"x"}, "Last-Event-ID"},
		{"/api/v1/runs/r_1/logs?follow=1", []string{"-1"}, "Last-Event-ID"},
		{"/api/v1/runs/r_1/logs?follow=1", []string{""}, "Last-Event-ID"},
		{"/api/v1/runs/r_1/logs?follow=1", []string{"1", "2"}, "Last-Event-ID"},
		{"/api/v1/runs/r_1/logs?follow=1&after=2", []string{"99999999999999999999"}, "Last-Event-ID"},
		{"/api/v1/runs/r_1/logs?follow=1&after=%00", nil, "after"},
		{"/api/v1/runs/r_1/logs?after=1e3", nil, "after"},
	} {
		req, _ := http.NewRequest("GET", srv.URL+c.path, nil)
		req.Header.Set("Accept", "text/event-stream")
		for _, v := range c.header {
			req.Header.Add("Last-Event-ID", v)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var e errorJSON
		if err := json.Unmarshal(body, &e); err != nil || res.StatusCode != 400 || e.Error.Field != c.field {
			t.Errorf("%s %q: %d %s, want 400 naming %s", c.path, c.header, res.StatusCode, body, c.field)
		}
	}
}

func TestAcceptsEventStream(t *testing.T) {
	for accept, want := range map[string]bool{
		"text/event-stream":                       true,
		"application/json, text/event-stream;q=1": true,
		"TEXT/EVENT-STREAM":                       true,
		"text/event-stream;q=0":                   false,
		"application/x-ndjson":                    false,
		"":                                        false,
		"text/*":                                  false,
	} {
		if got := acceptsEventStream(accept); got != want {
			t.Errorf("acceptsEventStream(%q) = %v", accept, got)
		}
	}
}

// GET of one run shows the lines its log dropped past the cap.
func TestHTTPRunLogLinesDropped(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	f.put(&store.Run{ID: "r_1", Type: "t", Group: "g", Status: store.StatusRunning, RunAt: httpT0, CreatedAt: httpT0})
	f.put(&store.Run{ID: "r_2", Type: "t", Group: "g", Status: store.StatusRunning, RunAt: httpT0, CreatedAt: httpT0})
	f.logStats = map[string]store.LogStats{"r_1": {Lines: 10, Dropped: 7}}
	for id, want := range map[string]string{"r_1": `"log_lines_dropped":7`, "r_2": ""} {
		r := httpDo(t, srv, "GET", "/api/v1/runs/"+id, "")
		body := string(r.body)
		if has := strings.Contains(body, "log_lines_dropped"); r.status != 200 || (want == "") == has || want != "" && !strings.Contains(body, want) {
			t.Errorf("%s: %d %s, want %q", id, r.status, body, want)
		}
	}
}
