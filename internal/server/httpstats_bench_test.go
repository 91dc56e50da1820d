package server

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// BenchmarkStatsResponse shapes and encodes GET /api/v1/stats for the
// counters of `pluto bench --history`'s mix: 8 groups, 50 jobs each plus
// one-off runs, 5 statuses (2,040 counters).
func BenchmarkStatsResponse(b *testing.B) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var st store.Stats
	for g := range 8 {
		for j := range 51 {
			job := ""
			if j > 0 {
				job = fmt.Sprintf("job-%02d-%02d", g, j)
			}
			for _, s := range []store.RunStatus{store.StatusSucceeded, store.StatusFailed, store.StatusCancelled, store.StatusTimedOut, store.StatusSkipped} {
				st.Counts = append(st.Counts, store.RunCount{CountKey: store.CountKey{Group: fmt.Sprintf("group-%d", g), Job: job, Status: s}, Count: 12345})
			}
		}
	}
	p := store.StatsParams{Now: now}
	for b.Loop() {
		w := httptest.NewRecorder()
		writeJSON(w, 200, buildStats(st, p, nil))
	}
}

// Jobs without throughput share one zero value, which a job's own rows
// never change.
func TestBuildStatsSharedZeroThroughput(t *testing.T) {
	ck := func(g, j string) store.CountKey {
		return store.CountKey{Group: g, Job: j, Status: store.StatusSucceeded}
	}
	st := store.Stats{
		Counts: []store.RunCount{{CountKey: ck("g", "a"), Count: 1}, {CountKey: ck("g", "b"), Count: 2}, {CountKey: ck("g", "c"), Count: 3}},
		Throughput: []store.Throughput{{Group: "g", Job: "b", Status: store.StatusSucceeded, LastMinute: 5, LastHour: 6, LastDay: 7},
			{Group: "g", Job: "b", Status: store.StatusFailed, LastDay: 1}},
	}
	out := buildStats(st, store.StatsParams{Now: time.Now()}, nil)
	for _, js := range out.Groups[0].Jobs {
		tp := js.Throughput
		want := int64(0)
		if js.Job == "b" {
			want = 7
		}
		if tp.LastDay["succeeded"] != want || len(tp.LastDay) != 5 {
			t.Errorf("job %s: last day %v, want succeeded %d and every terminal status", js.Job, tp.LastDay, want)
		}
	}
	if got := out.Groups[0].Throughput.LastDay["failed"]; got != 1 {
		t.Errorf("group failed last day %d, want 1", got)
	}
}
