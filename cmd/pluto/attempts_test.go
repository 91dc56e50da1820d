package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A run that took three attempts (r_retried) and its attempts route.
func init() { fakeRoutes = append(fakeRoutes, addAttemptRoutes) }

func addAttemptRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/runs/r_retried", func(w http.ResponseWriter, r *http.Request) {
		run := fakeRun("r_retried", "succeeded")
		run["attempt"], run["dispatched_at"] = 3, "2026-11-21T08:00:20Z"
		writeJSONResp(w, 200, run)
	})
	mux.HandleFunc("GET /api/v1/runs/{id}/attempts", func(w http.ResponseWriter, r *http.Request) {
		writeJSONResp(w, 200, map[string]any{"attempts": []any{
			map[string]any{"attempt": 1, "worker_id": "w-1", "dispatched_at": "2026-11-21T08:00:01Z", "started_at": "2026-11-21T08:00:02Z",
				"ended_at": "2026-11-21T08:00:03Z", "outcome": "failed", "error": "exit status 3\nand more"},
			map[string]any{"attempt": 2, "dispatched_at": "2026-11-21T08:00:10Z", "ended_at": "2026-11-21T08:00:12Z", "outcome": "lost"},
			map[string]any{"attempt": 3, "worker_id": "w-2", "dispatched_at": "2026-11-21T08:00:20Z", "started_at": "2026-11-21T08:00:21Z",
				"ended_at": "2026-11-21T08:00:22Z", "outcome": "succeeded"},
		}})
	})
}

func TestRunGetAttempts(t *testing.T) {
	f := newFakeAPI(t)
	env := envFor(f)
	r := runCLI(t, env, "run", "get", "r_retried")
	if r.code != 0 {
		t.Fatalf("get: %d %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "Dispatched:  2026-11-21T08:00:20Z") {
		t.Errorf("no dispatch time:\n%s", r.stdout)
	}
	_, table, ok := strings.Cut(r.stdout, "\n\n")
	if !ok {
		t.Fatalf("no attempts table:\n%s", r.stdout)
	}
	var rows []string
	for _, l := range strings.Split(strings.TrimSpace(table), "\n") {
		rows = append(rows, strings.Join(strings.Fields(l), " "))
	}
	want := []string{
		"ATTEMPT WORKER DISPATCHED STARTED ENDED OUTCOME ERROR",
		"1 w-1 2026-11-21T08:00:01Z 2026-11-21T08:00:02Z 2026-11-21T08:00:03Z failed exit status 3",
		"2 - 2026-11-21T08:00:10Z - 2026-11-21T08:00:12Z lost -",
		"3 w-2 2026-11-21T08:00:20Z 2026-11-21T08:00:21Z 2026-11-21T08:00:22Z succeeded -",
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("attempts table:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}

	// One attempt: no table, and no request for it.
	r = runCLI(t, env, "run", "get", "r_ok")
	if r.code != 0 || strings.Contains(r.stdout, "ATTEMPT") || strings.HasSuffix(f.last().path, "/attempts") {
		t.Errorf("get of a run with one attempt: %d %q (last request %s)", r.code, r.stdout, f.last().path)
	}
	// JSON: the run as the server sent it, no table.
	r = runCLI(t, env, "run", "get", "r_retried", "-o", "json")
	var run map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &run) != nil || run["dispatched_at"] != "2026-11-21T08:00:20Z" ||
		strings.HasSuffix(f.last().path, "/attempts") {
		t.Errorf("get json: %d %q", r.code, r.stdout)
	}
}
