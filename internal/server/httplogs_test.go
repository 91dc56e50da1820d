package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
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

func TestHTTPLogsFollow(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	f.put(&store.Run{ID: "r_1", Type: "t", Group: "g", Status: store.StatusRunning, RunAt: httpT0, CreatedAt: httpT0})
	f.logs["r_1"] = []store.LogEntry{{Seq: 1, LogLine: store.LogLine{Text: "one", Stream: "stdout"}}}
	var finish sync.Once
	done := make(chan struct{})
	f.waitHook = func(ctx context.Context, id string) (*store.Run, error) {
		select {
		case <-done:
			return f.Get(ctx, id)
		case <-ctx.Done():
			r, _ := f.Get(context.Background(), id)
			return r, ctx.Err()
		}
	}

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
		if l.Text == "one" {
			// More output, then the run ends.
			finish.Do(func() {
				go func() {
					time.Sleep(50 * time.Millisecond)
					f.mu.Lock()
					f.logs["r_1"] = append(f.logs["r_1"], store.LogEntry{Seq: 2, LogLine: store.LogLine{Text: "two"}})
					f.mu.Unlock()
					time.Sleep(700 * time.Millisecond)
					f.mu.Lock()
					f.logs["r_1"] = append(f.logs["r_1"], store.LogEntry{Seq: 3, LogLine: store.LogLine{Text: "three"}})
					f.runs["r_1"].Status = store.StatusSucceeded
					f.mu.Unlock()
					close(done)
				}()
			})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[one two three]" {
		t.Fatalf("followed %v", got)
	}
}
