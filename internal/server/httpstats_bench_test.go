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
