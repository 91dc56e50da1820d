package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// statsBody is a /api/v1/stats answer with throughput and latency.
const statsBody = `{"groups":[{"group":"mail","counts":{"queued":2,"succeeded":7},"queue_depth":2,
	"oldest_queued_age_seconds":3.5,"workers":1,"slots":4,
	"throughput":{"last_minute":{"succeeded":3,"failed":1},"last_hour":{"succeeded":40,"failed":5,"timed_out":2},
		"last_day":{"succeeded":900,"failed":50,"cancelled":9}},
	"dispatch_latency_seconds":{"p50":0.0057,"p99":1.41,"samples":12},
	"jobs":[{"job":"digest","counts":{"succeeded":7},"throughput":{"last_minute":{},"last_hour":{"succeeded":6},"last_day":{"succeeded":6}}}]}],
	"totals":{"counts":{"queued":2,"succeeded":7},"queue_depth":2,"workers":1,"slots":4,
	"throughput":{"last_minute":{"succeeded":3,"failed":1},"last_hour":{"succeeded":40,"failed":5,"timed_out":2},
		"last_day":{"succeeded":900,"failed":50,"cancelled":9}}},"callbacks_owed":1}`

func TestStatsCommand(t *testing.T) {
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/stats" {
			http.NotFound(w, r)
			return
		}
		query = r.URL.RawQuery
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(statsBody))
	}))
	defer srv.Close()
	env := map[string]string{envServer: srv.URL}

	r := runCLI(t, env, "stats", "--group", "mail", "--job", "digest")
	if r.code != 0 {
		t.Fatalf("stats: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if query != "group=mail&job=digest" {
		t.Errorf("query %q", query)
	}
	lines := strings.Split(r.stdout, "\n")
	var grp, job string
	for _, l := range lines {
		f := strings.Fields(l)
		switch {
		case len(f) > 1 && f[0] == "mail" && f[1] == "*":
			grp = strings.Join(f, " ")
		case len(f) > 0 && f[0] == "digest":
			job = strings.Join(f, " ")
		}
	}
	// ENDED 1M/1H/1D, FAILED 1H/1D, P50, P99, STARTS.
	if grp != "mail * 4 47 959 7 50 5.7ms 1.41s 12" {
		t.Errorf("group row %q in\n%s", grp, r.stdout)
	}
	if job != "digest 0 6 6 0 0" {
		t.Errorf("job row %q in\n%s", job, r.stdout)
	}
	if !strings.Contains(r.stdout, "LATENCY P99") || !strings.Contains(r.stdout, "callbacks owed: 1") {
		t.Errorf("output:\n%s", r.stdout)
	}

	r = runCLI(t, env, "stats", "-o", "json")
	var v struct {
		Groups []struct {
			Throughput struct {
				LastDay map[string]int64 `json:"last_day"`
			}
			Latency struct{ Samples int64 } `json:"dispatch_latency_seconds"`
		}
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || len(v.Groups) != 1 ||
		v.Groups[0].Throughput.LastDay["cancelled"] != 9 || v.Groups[0].Latency.Samples != 12 {
		t.Errorf("stats -o json: %d %s %s", r.code, r.stdout, r.stderr)
	}
}
