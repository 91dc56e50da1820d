package storetest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// rt0 is the rates tests' reference time: the start of an hour, so the
// bucket each end falls in is known.
var rt0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))

var rateSeq atomic.Int64

// activeRuns inserts n queued runs of (group, job) created at created,
// due at due, and claims them for server "srv": dispatched runs.
func activeRuns(t *testing.T, s store.Store, group, job string, n int, created, due time.Time) []*store.Run {
	t.Helper()
	typ := fmt.Sprintf("rt%d", rateSeq.Add(1))
	ps := make([]store.RunInsertParams, n)
	for i := range ps {
		ps[i] = store.RunInsertParams{ID: fmt.Sprintf("%s-%d", typ, i), Type: typ, Group: group, Job: job,
			Status: store.StatusQueued, MaxAttempts: 3, RunAt: due, Now: created}
	}
	insert(t, s, ps...)
	runs := claim(t, s, store.RunClaimParams{Group: group, Types: []string{typ}, Limit: n, ServerID: "srv", Now: due})
	if len(runs) != n {
		t.Fatalf("claimed %d runs, want %d", len(runs), n)
	}
	return runs
}

// endRuns makes n runs of (group, job) end with status at (a finish).
func endRuns(t *testing.T, s store.Store, group, job string, n int, status store.RunStatus, at time.Time) {
	t.Helper()
	runs := activeRuns(t, s, group, job, n, at.Add(-time.Second), at.Add(-time.Second))
	ps := make([]store.RunFinishParams, n)
	for i, r := range runs {
		ps[i] = store.RunFinishParams{ID: r.ID, Attempt: r.Attempt, Status: status, Now: at,
			Failure: status != store.StatusSucceeded, RunAt: at.Add(time.Minute)}
	}
	for _, res := range finish(t, s, ps...) {
		if !res.Accepted {
			t.Fatalf("finish of %s refused", res.ID)
		}
	}
}

// throughput returns RunStats' throughput as a map.
func throughput(t *testing.T, s store.Store, p store.StatsParams) map[string][3]int64 {
	t.Helper()
	st, err := s.RunStats(ctx, p)
	if err != nil {
		t.Fatalf("RunStats: %v", err)
	}
	out := map[string][3]int64{}
	for _, tp := range st.Throughput {
		out[tp.Group+"/"+tp.Job+"/"+string(tp.Status)] = [3]int64{tp.LastMinute, tp.LastHour, tp.LastDay}
	}
	return out
}

func testRatesThroughput(t *testing.T, s store.Store) {
	endRuns(t, s, "g1", "j1", 4, store.StatusSucceeded, rt0.Add(-2*time.Hour+30*time.Second)) // in the day only
	endRuns(t, s, "g1", "j1", 3, store.StatusSucceeded, rt0.Add(10*time.Second))
	endRuns(t, s, "g1", "j1", 2, store.StatusFailed, rt0.Add(70*time.Second))
	endRuns(t, s, "g1", "j1", 1, store.StatusPending, rt0.Add(70*time.Second)) // not an end
	endRuns(t, s, "g1", "j1", 1, store.StatusQueued, rt0.Add(70*time.Second))  // not an end
	endRuns(t, s, "g2", "", 1, store.StatusTimedOut, rt0.Add(70*time.Second))
	at := rt0.Add(70 * time.Second)
	cancelled := insert(t, s, store.RunInsertParams{ID: "rc", Type: "t", Group: "g2", Status: store.StatusQueued, Now: at})[0]
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: cancelled.ID, Now: at})
		return err
	})
	insert(t, s, store.RunInsertParams{ID: "rs", Type: "t", Group: "g2", Job: "j2", Status: store.StatusSkipped,
		LogicalTime: at, Now: at, Error: "overlap"})

	// At a minute boundary: the last minute is exactly the minute before.
	want := map[string][3]int64{
		"g1/j1/succeeded": {0, 3, 7},
		"g1/j1/failed":    {2, 2, 2},
		"g2//timed_out":   {1, 1, 1},
		"g2//cancelled":   {1, 1, 1},
		"g2/j2/skipped":   {1, 1, 1},
	}
	if d := cmp.Diff(want, throughput(t, s, store.StatsParams{Now: rt0.Add(2 * time.Minute)})); d != "" {
		t.Fatalf("throughput at +2m (-want +got):\n%s", d)
	}
	// Half way into minute 1: all of it, half of minute 0 (3 x 0.5 rounds
	// to 2).
	want["g1/j1/succeeded"] = [3]int64{2, 3, 7}
	if d := cmp.Diff(want, throughput(t, s, store.StatsParams{Now: rt0.Add(90 * time.Second)})); d != "" {
		t.Fatalf("throughput at +1m30s (-want +got):\n%s", d)
	}
	// Filters.
	g2 := map[string][3]int64{"g2//timed_out": {1, 1, 1}, "g2//cancelled": {1, 1, 1}, "g2/j2/skipped": {1, 1, 1}}
	if d := cmp.Diff(g2, throughput(t, s, store.StatsParams{Now: rt0.Add(2 * time.Minute), Group: "g2"})); d != "" {
		t.Fatalf("throughput of g2 (-want +got):\n%s", d)
	}
	j2 := map[string][3]int64{"g2/j2/skipped": {1, 1, 1}}
	if d := cmp.Diff(j2, throughput(t, s, store.StatsParams{Now: rt0.Add(2 * time.Minute), Job: "j2"})); d != "" {
		t.Fatalf("throughput of j2 (-want +got):\n%s", d)
	}
	// An hour and a half later the minute buckets are out of the hour; a
	// day later the hour buckets are out of the day, but the one the
	// window starts in, weighted.
	late := map[string][3]int64{"g1/j1/succeeded": {0, 0, 7}, "g1/j1/failed": {0, 0, 2},
		"g2//timed_out": {0, 0, 1}, "g2//cancelled": {0, 0, 1}, "g2/j2/skipped": {0, 0, 1}}
	if d := cmp.Diff(late, throughput(t, s, store.StatsParams{Now: rt0.Add(90 * time.Minute)})); d != "" {
		t.Fatalf("throughput at +1h30m (-want +got):\n%s", d)
	}
	// At +22h30m the day starts at -1h30m: the hour of -2h counts half
	// (4 x 0.5), the hour of rt0 fully.
	late = map[string][3]int64{"g1/j1/succeeded": {0, 0, 5}, "g1/j1/failed": {0, 0, 2},
		"g2//timed_out": {0, 0, 1}, "g2//cancelled": {0, 0, 1}, "g2/j2/skipped": {0, 0, 1}}
	if d := cmp.Diff(late, throughput(t, s, store.StatsParams{Now: rt0.Add(22*time.Hour + 30*time.Minute)})); d != "" {
		t.Fatalf("throughput at +22h30m (-want +got):\n%s", d)
	}
	if got := throughput(t, s, store.StatsParams{Now: rt0.Add(30 * time.Hour)}); len(got) != 0 {
		t.Fatalf("throughput at +30h: %v, want none", got)
	}

	// Retention deletes the runs, not their ends.
	before := throughput(t, s, store.StatsParams{Now: rt0.Add(2 * time.Minute)})
	cut := rt0.Add(time.Hour)
	deleted, _ := deleteFinished(t, s, store.RunDeleteParams{FinishedBefore: map[store.RunStatus]time.Time{
		store.StatusSucceeded: cut, store.StatusFailed: cut, store.StatusTimedOut: cut,
		store.StatusCancelled: cut, store.StatusSkipped: cut}})
	if len(deleted) != 12 {
		t.Fatalf("retention deleted %d runs, want 12", len(deleted))
	}
	if d := cmp.Diff(before, throughput(t, s, store.StatsParams{Now: rt0.Add(2 * time.Minute)})); d != "" {
		t.Fatalf("throughput after retention (-before +after):\n%s", d)
	}
}

// startRuns starts n runs of group created at created, due at due, at
// start.
func startRuns(t *testing.T, s store.Store, group string, n int, created, due, at time.Time) {
	t.Helper()
	runs := activeRuns(t, s, group, "", n, created, due)
	ps := make([]store.RunStartParams, n)
	for i, r := range runs {
		ps[i] = store.RunStartParams{ID: r.ID, Attempt: r.Attempt, WorkerID: "w", Now: at}
	}
	for i, ok := range start(t, s, ps...) {
		if !ok {
			t.Fatalf("start of %s refused", ps[i].ID)
		}
	}
}

func latency(t *testing.T, s store.Store, p store.StatsParams) []store.DispatchLatency {
	t.Helper()
	st, err := s.RunStats(ctx, p)
	if err != nil {
		t.Fatalf("RunStats: %v", err)
	}
	return st.Latency
}

func testRatesLatency(t *testing.T, s store.Store) {
	if k := store.LatencyBucket(5 * time.Millisecond); k != 5 {
		t.Fatalf("LatencyBucket(5ms) = %d, want 5", k)
	}
	// 10 runs start 5 ms after they were created and due; one, due a
	// second after it was created, 200 ms after it was due; in group ga.
	created := rt0.Add(10 * time.Second)
	startRuns(t, s, "ga", 10, created, created, created.Add(5*time.Millisecond))
	startRuns(t, s, "ga", 1, created, created.Add(time.Second), created.Add(1200*time.Millisecond))
	// In group gb, 2 starts two minutes before, 10 s after they were due.
	startRuns(t, s, "gb", 2, rt0.Add(-110*time.Second), rt0.Add(-110*time.Second), rt0.Add(-100*time.Second))
	// Dispatched, never started: no sample.
	activeRuns(t, s, "gc", "", 1, rt0, rt0)

	p5, p200 := store.LatencyBound(5), store.LatencyBound(16)
	if p5 < 5*time.Millisecond || p5 > 5*time.Millisecond*1415/1000 {
		t.Fatalf("the bound of 5 ms is %v", p5)
	}
	if p200 < 200*time.Millisecond || p200 > 200*time.Millisecond*1415/1000 {
		t.Fatalf("the bound of 200 ms is %v", p200)
	}
	want := []store.DispatchLatency{{Group: "ga", P50: p5, P99: p200, Samples: 11}}
	if d := cmp.Diff(want, latency(t, s, store.StatsParams{Now: rt0.Add(30 * time.Second)})); d != "" {
		t.Fatalf("latency at +30s (-want +got):\n%s", d)
	}
	p10s := store.LatencyBound(store.LatencyBucket(10 * time.Second))
	want = []store.DispatchLatency{{Group: "gb", P50: p10s, P99: p10s, Samples: 2}}
	if d := cmp.Diff(want, latency(t, s, store.StatsParams{Now: rt0.Add(-90 * time.Second), Group: "gb"})); d != "" {
		t.Fatalf("latency of gb at -1m30s (-want +got):\n%s", d)
	}
	// The previous minute weighs a half: 5.5 samples of ga.
	want = []store.DispatchLatency{{Group: "ga", P50: p5, P99: p200, Samples: 6}}
	if d := cmp.Diff(want, latency(t, s, store.StatsParams{Now: rt0.Add(90 * time.Second)})); d != "" {
		t.Fatalf("latency at +1m30s (-want +got):\n%s", d)
	}
	if got := latency(t, s, store.StatsParams{Now: rt0.Add(3 * time.Minute)}); len(got) != 0 {
		t.Fatalf("latency at +3m: %v, want none", got)
	}
}

func testRatesRollback(t *testing.T, s store.Store) {
	runs := activeRuns(t, s, "g", "j", 2, rt0, rt0)
	other := insert(t, s, store.RunInsertParams{ID: "rb-q", Type: "t", Group: "g", Status: store.StatusQueued, Now: rt0})[0]
	errBoom := errors.New("boom")
	err := s.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.RunStart(ctx, []store.RunStartParams{{ID: runs[0].ID, Attempt: runs[0].Attempt, Now: rt0}}); err != nil {
			return err
		}
		if _, err := tx.RunFinish(ctx, []store.RunFinishParams{{ID: runs[1].ID, Attempt: runs[1].Attempt,
			Status: store.StatusSucceeded, Now: rt0}}); err != nil {
			return err
		}
		if _, err := tx.RunCancel(ctx, store.RunCancelParams{ID: other.ID, Now: rt0}); err != nil {
			return err
		}
		if _, err := tx.RunInsert(ctx, []store.RunInsertParams{{ID: "rb-s", Type: "t", Group: "g", Job: "j",
			Status: store.StatusSkipped, LogicalTime: rt0, Now: rt0}}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Tx: %v, want boom", err)
	}
	st, err := s.RunStats(ctx, store.StatsParams{Now: rt0.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Throughput) != 0 || len(st.Latency) != 0 {
		t.Fatalf("a rolled-back transaction left throughput %v, latency %v", st.Throughput, st.Latency)
	}
	// The same changes committed are seen (the test can fail).
	endRuns(t, s, "g", "j", 1, store.StatusSucceeded, rt0)
	startRuns(t, s, "g", 1, rt0, rt0, rt0)
	st, err = s.RunStats(ctx, store.StatsParams{Now: rt0.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Throughput) != 1 || len(st.Latency) != 1 {
		t.Fatalf("committed: throughput %v, latency %v", st.Throughput, st.Latency)
	}
}

func testRatesPruned(t *testing.T, s store.Store, opts Options) {
	if opts.OldestBuckets == nil {
		t.Fatal("the backend gives no Options.OldestBuckets: the pruning of rate buckets cannot be checked")
	}
	for _, at := range []time.Duration{0, 3 * time.Hour, 30 * time.Hour} {
		endRuns(t, s, "g", "j", 1, store.StatusSucceeded, rt0.Add(at))
		startRuns(t, s, "g", 1, rt0.Add(at), rt0.Add(at), rt0.Add(at))
	}
	minute, hour, lat, err := opts.OldestBuckets(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	newest := store.MinuteOf(rt0.Add(30 * time.Hour))
	if minute != newest || hour != newest/60 || lat != newest {
		t.Fatalf("oldest buckets: minute %d, hour %d, latency %d; want %d, %d, %d (older ones pruned)",
			minute, hour, lat, newest, newest/60, newest)
	}
	if got := throughput(t, s, store.StatsParams{Now: rt0.Add(30*time.Hour + time.Second)}); !cmp.Equal(got,
		map[string][3]int64{"g/j/succeeded": {1, 1, 1}}) {
		t.Fatalf("throughput after pruning: %v", got)
	}
	// Within the keep nothing is pruned.
	endRuns(t, s, "g", "j", 1, store.StatusSucceeded, rt0.Add(31*time.Hour))
	if minute, hour, _, err = opts.OldestBuckets(ctx, s); err != nil {
		t.Fatal(err)
	}
	if minute != newest || hour != newest/60 {
		t.Fatalf("oldest buckets after an hour: minute %d, hour %d; want %d, %d", minute, hour, newest, newest/60)
	}
}

func testRatesSeries(t *testing.T, s store.Store) {
	endRuns(t, s, "g1", "j1", 2, store.StatusSucceeded, rt0.Add(10*time.Second))
	endRuns(t, s, "g1", "j1", 1, store.StatusFailed, rt0.Add(130*time.Second))
	endRuns(t, s, "g2", "", 3, store.StatusSucceeded, rt0.Add(130*time.Second))
	endRuns(t, s, "g2", "", 5, store.StatusSucceeded, rt0.Add(-3*time.Hour)) // in the day only
	now := rt0.Add(10 * time.Minute)
	m := func(d time.Duration) time.Time { return rt0.Add(d).UTC() }
	series := func(p store.SeriesParams) store.Series {
		t.Helper()
		p.Now = now
		got, err := s.RunSeries(ctx, p)
		if err != nil {
			t.Fatalf("RunSeries(%+v): %v", p, err)
		}
		return got
	}
	got := series(store.SeriesParams{Window: store.SeriesHour})
	want := store.Series{Step: time.Minute, From: m(-49 * time.Minute), Steps: 60, Points: []store.SeriesPoint{
		{Start: m(0), Group: "g1", Status: store.StatusSucceeded, Count: 2},
		{Start: m(2 * time.Minute), Group: "g1", Status: store.StatusFailed, Count: 1},
		{Start: m(2 * time.Minute), Group: "g2", Status: store.StatusSucceeded, Count: 3},
	}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("hour series (-want +got):\n%s", d)
	}
	got = series(store.SeriesParams{Window: store.SeriesHour, Group: "g1", Job: "j1"})
	want.Points = want.Points[:2]
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("hour series of g1/j1 (-want +got):\n%s", d)
	}
	got = series(store.SeriesParams{Window: store.SeriesDay, Group: "g2"})
	want = store.Series{Step: time.Hour, From: m(-23 * time.Hour), Steps: 24, Points: []store.SeriesPoint{
		{Start: m(-3 * time.Hour), Group: "g2", Status: store.StatusSucceeded, Count: 5},
		{Start: m(0), Group: "g2", Status: store.StatusSucceeded, Count: 3},
	}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("day series of g2 (-want +got):\n%s", d)
	}
	if _, err := s.RunSeries(ctx, store.SeriesParams{Window: "week", Now: now}); err == nil {
		t.Fatal("RunSeries accepted window week")
	}
}
