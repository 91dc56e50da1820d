package server

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/store"
)

// submitAndCancel submits a run of group as admin and cancels it: one
// end (cancelled) in the group's throughput.
func (en *authEnv) submitAndCancel(group, job string) {
	en.t.Helper()
	st, b := en.do(en.admin, "POST", "/api/v1/runs", mustJSON(map[string]any{"type": "t", "group": group}))
	if st != http.StatusCreated {
		en.t.Fatalf("submit to %s: %d %s", group, st, b)
	}
	var run struct{ ID string }
	_ = json.Unmarshal(b, &run)
	if st, b := en.do(en.admin, "POST", "/api/v1/runs/"+run.ID+"/cancel", ""); st != http.StatusOK {
		en.t.Fatalf("cancel: %d %s", st, b)
	}
}

func (en *authEnv) getJSON(token, path string, want int, v any) {
	en.t.Helper()
	st, b := en.do(token, "GET", path, "")
	if st != want {
		en.t.Fatalf("GET %s: %d %s, want %d", path, st, b, want)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			en.t.Fatalf("GET %s: %v in %s", path, err, b)
		}
	}
}

func TestStatsThroughputAndLimitedToken(t *testing.T) {
	en := newAuthEnv(t)
	en.submitAndCancel("mailers", "")
	en.submitAndCancel("billing", "")
	en.submitAndCancel("billing", "")

	var all apijson.Stats
	en.getJSON(en.tokens["view"], "/api/v1/stats", http.StatusOK, &all)
	byGroup := map[string]apijson.GroupStats{}
	for _, g := range all.Groups {
		byGroup[g.Group] = g
	}
	for g, n := range map[string]int64{"mailers": 1, "billing": 2} {
		gs, ok := byGroup[g]
		if !ok {
			t.Fatalf("group %s missing: %+v", g, all.Groups)
		}
		tp := gs.Throughput
		if tp.LastMinute["cancelled"] != n || tp.LastHour["cancelled"] != n || tp.LastDay["cancelled"] != n {
			t.Errorf("%s throughput %+v, want %d cancelled in each window", g, tp, n)
		}
		if len(tp.LastMinute) != 5 || tp.LastDay["succeeded"] != 0 {
			t.Errorf("%s throughput %+v: want every terminal status", g, tp)
		}
		if len(gs.Jobs) != 1 || gs.Jobs[0].Throughput.LastHour["cancelled"] != n {
			t.Errorf("%s jobs %+v, want one with %d cancelled", g, gs.Jobs, n)
		}
		if gs.DispatchLatencySeconds != (apijson.DispatchLatency{}) {
			t.Errorf("%s latency %+v without starts", g, gs.DispatchLatencySeconds)
		}
	}
	if all.Totals.Throughput.LastMinute["cancelled"] != 3 {
		t.Errorf("totals %+v, want 3 cancelled", all.Totals.Throughput)
	}

	// A token limited to mailers sees mailers only.
	var lim apijson.Stats
	en.getJSON(en.tokens["mailer"], "/api/v1/stats", http.StatusOK, &lim)
	if len(lim.Groups) != 1 || lim.Groups[0].Group != "mailers" || lim.Totals.Throughput.LastHour["cancelled"] != 1 {
		t.Errorf("limited token sees %+v", lim)
	}
	en.getJSON(en.tokens["mailer"], "/api/v1/stats?group=billing", http.StatusForbidden, nil)
	en.getJSON(en.tokens["mailer"], "/api/v1/stats?group=mailers", http.StatusOK, &lim)
	if len(lim.Groups) != 1 || lim.Groups[0].Group != "mailers" {
		t.Errorf("limited token, group=mailers: %+v", lim.Groups)
	}
}

func sumSeries(s apijson.StatsSeries) (cancelled int64) {
	for _, p := range s.Points {
		cancelled += p.Cancelled
	}
	return cancelled
}

func TestStatsSeries(t *testing.T) {
	en := newAuthEnv(t)
	en.submitAndCancel("mailers", "")
	en.submitAndCancel("billing", "")

	var s apijson.StatsSeries
	en.getJSON(en.tokens["view"], "/api/v1/stats/series?window=hour", http.StatusOK, &s)
	if s.Window != "hour" || s.StepSeconds != 60 || len(s.Points) != 60 || sumSeries(s) != 2 {
		t.Fatalf("hour series: %+v", s)
	}
	first, err := time.Parse(time.RFC3339, s.Points[0].T)
	last, err2 := time.Parse(time.RFC3339, s.Points[59].T)
	if err != nil || err2 != nil || last.Sub(first) != 59*time.Minute || time.Since(last) > 2*time.Minute {
		t.Errorf("hour series from %s to %s (%v, %v)", s.Points[0].T, s.Points[59].T, err, err2)
	}
	if s.Points[59].Cancelled+s.Points[58].Cancelled != 2 {
		t.Errorf("the ends are not in the last steps: %+v", s.Points[57:])
	}
	en.getJSON(en.tokens["view"], "/api/v1/stats/series?window=day&group=billing", http.StatusOK, &s)
	if s.Window != "day" || s.StepSeconds != 3600 || len(s.Points) != 24 || sumSeries(s) != 1 {
		t.Fatalf("day series of billing: %+v", s)
	}
	en.getJSON(en.tokens["view"], "/api/v1/stats/series?window=hour&job=nope", http.StatusOK, &s)
	if sumSeries(s) != 0 {
		t.Errorf("series of job nope: %d cancelled", sumSeries(s))
	}
	// A token limited to mailers: its group only.
	en.getJSON(en.tokens["mailer"], "/api/v1/stats/series?window=hour", http.StatusOK, &s)
	if sumSeries(s) != 1 {
		t.Errorf("limited token's series: %d cancelled, want 1", sumSeries(s))
	}
	en.getJSON(en.tokens["mailer"], "/api/v1/stats/series?window=hour&group=billing", http.StatusForbidden, nil)
	var e struct{ Error struct{ Code, Field string } }
	en.getJSON(en.tokens["view"], "/api/v1/stats/series?window=week", http.StatusBadRequest, &e)
	if e.Error.Field != "window" {
		t.Errorf("window=week: %+v", e)
	}
	en.getJSON(en.tokens["view"], "/api/v1/stats/series", http.StatusBadRequest, nil)
}

func TestBuildSeriesSumsAllowedGroups(t *testing.T) {
	from := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	s := store.Series{Step: time.Minute, From: from, Steps: 3, Points: []store.SeriesPoint{
		{Start: from, Group: "a", Status: store.StatusSucceeded, Count: 2},
		{Start: from, Group: "b", Status: store.StatusSucceeded, Count: 5},
		{Start: from.Add(2 * time.Minute), Group: "a", Status: store.StatusFailed, Count: 1},
		{Start: from.Add(2 * time.Minute), Group: "a", Status: store.StatusSkipped, Count: 4},
	}}
	got := buildSeries("hour", s, func(g string) bool { return g == "a" })
	want := []apijson.SeriesPoint{
		{T: "2026-01-02T03:00:00Z", Succeeded: 2}, {T: "2026-01-02T03:01:00Z"},
		{T: "2026-01-02T03:02:00Z", Failed: 1, Skipped: 4},
	}
	if len(got.Points) != 3 || got.StepSeconds != 60 {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got.Points[i] != want[i] {
			t.Errorf("point %d: %+v, want %+v", i, got.Points[i], want[i])
		}
	}
}
