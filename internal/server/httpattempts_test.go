package server

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

func TestHTTPAttempts(t *testing.T) {
	f := newHTTPFake()
	srv := newHTTPTestAPI(t, f, HTTPOptions{})
	at := func(sec int) time.Time { return httpT0.Add(time.Duration(sec) * time.Second) }
	f.put(&store.Run{ID: "r_done", Type: "t", Group: "g", Status: store.StatusFailed, Attempt: 3, MaxAttempts: 3,
		RunAt: httpT0, CreatedAt: httpT0, DispatchedAt: at(20), StartedAt: at(21), FinishedAt: at(22), WorkerID: "w3", Error: "exit 3"})
	f.put(&store.Run{ID: "r_busy", Type: "t", Group: "g", Status: store.StatusRunning, Attempt: 2, MaxAttempts: 3,
		RunAt: httpT0, CreatedAt: httpT0, DispatchedAt: at(10), StartedAt: at(11), WorkerID: "w2", Error: "exit 1"})
	f.put(&store.Run{ID: "r_new", Type: "t", Group: "g", Status: store.StatusQueued, RunAt: httpT0, CreatedAt: httpT0})
	f.attempts = map[string][]store.Attempt{
		"r_done": {
			{RunID: "r_done", Attempt: 1, WorkerID: "w1", DispatchedAt: at(1), StartedAt: at(2), EndedAt: at(3), Outcome: "failed", Error: "exit 1"},
			{RunID: "r_done", Attempt: 2, DispatchedAt: at(10), EndedAt: at(12), Outcome: "lost"},
		},
		"r_busy": {{RunID: "r_busy", Attempt: 1, WorkerID: "w1", DispatchedAt: at(1), StartedAt: at(2), EndedAt: at(3), Outcome: "failed", Error: "exit 1"}},
	}
	get := func(id string) []map[string]any {
		t.Helper()
		r := httpDo(t, srv, "GET", "/api/v1/runs/"+id+"/attempts", "")
		if r.status != 200 {
			t.Fatalf("%s: %d %s", id, r.status, r.body)
		}
		var body struct{ Attempts []map[string]any }
		if err := json.Unmarshal(r.body, &body); err != nil || body.Attempts == nil {
			t.Fatalf("%s: %s (%v)", id, r.body, err)
		}
		return body.Attempts
	}
	// Times as the API writes them.
	ts := func(sec int) string { return at(sec).Format("2006-01-02T15:04:05.999999999Z07:00") }
	want := []map[string]any{
		{"attempt": 1.0, "worker_id": "w1", "dispatched_at": ts(1), "started_at": ts(2), "ended_at": ts(3), "outcome": "failed", "error": "exit 1"},
		{"attempt": 2.0, "dispatched_at": ts(10), "ended_at": ts(12), "outcome": "lost"},
		{"attempt": 3.0, "worker_id": "w3", "dispatched_at": ts(20), "started_at": ts(21), "ended_at": ts(22), "outcome": "failed", "error": "exit 3"},
	}
	if d := cmp.Diff(want, get("r_done")); d != "" {
		t.Errorf("a failed run's attempts (-want +got):\n%s", d)
	}
	// The current attempt runs: no end, and the run's error is the
	// earlier attempt's, not its own.
	want = []map[string]any{want[0], {"attempt": 2.0, "worker_id": "w2", "dispatched_at": ts(10), "started_at": ts(11), "outcome": "running"}}
	if d := cmp.Diff(want, get("r_busy")); d != "" {
		t.Errorf("a running run's attempts (-want +got):\n%s", d)
	}
	if got := get("r_new"); len(got) != 0 {
		t.Errorf("a run never dispatched: %v", got)
	}
	r := httpDo(t, srv, "GET", "/api/v1/runs/r_nope/attempts", "")
	if code, _, _ := r.errBody(t); r.status != 404 || code != "not_found" {
		t.Errorf("unknown run: %d %s", r.status, r.body)
	}

	// The run shows when its attempt was dispatched; omitted before.
	if m := httpDo(t, srv, "GET", "/api/v1/runs/r_busy", "").json(t); m["dispatched_at"] != ts(10) {
		t.Errorf("dispatched_at = %#v, want %s", m["dispatched_at"], ts(10))
	}
	if m := httpDo(t, srv, "GET", "/api/v1/runs/r_new", "").json(t); m["dispatched_at"] != nil {
		t.Errorf("dispatched_at of a queued run = %#v, want it omitted", m["dispatched_at"])
	} else if _, ok := m["dispatched_at"]; ok {
		t.Error("dispatched_at of a queued run is null, want it omitted")
	}
}
