package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/sqlite"
)

// BenchmarkGraphResolve times a graph of 1,000 jobs for one slot, on the
// embedded store: 10 roots and 990 jobs that each join 2 or 3 of them.
// Each iteration triggers the roots for a new logical time with cascade
// (every dependent's run is created blocked), then reports the roots'
// runs succeeded and times until no run is blocked any more. The bar:
// within 1 s of the roots succeeding.
//
//	go test -run '^$' -bench GraphResolve -benchtime 5x ./internal/engine/
func BenchmarkGraphResolve(b *testing.B) {
	const roots, jobs = 10, 1000
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "pluto.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	e, err := New(testConfig(st))
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer e.Stop(context.Background())
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range jobs {
		j := store.Job{Name: fmt.Sprintf("j%04d", i), Type: "noop", Group: "g"}
		if i >= roots {
			for _, k := range rng.Perm(roots)[:2+rng.IntN(2)] {
				j.DependsOn = append(j.DependsOn, fmt.Sprintf("j%04d", k))
			}
		}
		if _, _, err := e.JobPut(ctx, j); err != nil {
			b.Fatal(err)
		}
	}
	c := &fakeConn{}
	s, _, err := e.Connect(ctx, Hello{WorkerID: "w", Group: "g", Capacity: jobs, Window: jobs, Types: []string{"noop"}}, c)
	if err != nil {
		b.Fatal(err)
	}
	blocked := func() int64 {
		stats, err := st.RunStats(ctx, store.StatsParams{Now: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for _, c := range stats.Counts {
			if c.Status == store.StatusBlocked {
				n += c.Count
			}
		}
		return n
	}
	var worst time.Duration
	b.ResetTimer()
	b.StopTimer()
	for i := range b.N {
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i)
		seen := len(c.Tasks())
		for r := range roots {
			if _, _, err := e.JobTriggerSlot(ctx, fmt.Sprintf("j%04d", r), nil, at, true); err != nil {
				b.Fatal(err)
			}
		}
		if n := blocked(); n != jobs-roots {
			b.Fatalf("%d runs blocked after the cascade, want %d", n, jobs-roots)
		}
		var ts []Task
		for deadline := time.Now().Add(10 * time.Second); len(ts) < roots; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d root runs dispatched, want %d", len(ts), roots)
			}
			ts = c.Tasks()[seen:]
		}
		b.StartTimer()
		t0 := time.Now()
		rs := make([]Result, len(ts))
		for k, t := range ts {
			rs[k] = Result{RunID: t.RunID, Attempt: t.Attempt, Outcome: OutcomeSucceeded}
		}
		s.Results(rs)
		for blocked() > 0 {
			if time.Since(t0) > 30*time.Second {
				b.Fatal("the graph did not resolve in 30 s")
			}
			time.Sleep(time.Millisecond)
		}
		worst = max(worst, time.Since(t0))
		b.StopTimer()
		// The dependents ran: report them so the next slot starts clean.
		for deadline := time.Now().Add(10 * time.Second); len(c.Tasks()) < seen+jobs; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d dependents dispatched", len(c.Tasks())-seen-roots, jobs-roots)
			}
		}
		var done []Result
		for _, t := range c.Tasks()[seen+roots:] {
			done = append(done, Result{RunID: t.RunID, Attempt: t.Attempt, Outcome: OutcomeSucceeded})
		}
		s.Results(done)
	}
	b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
}
