package bench

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// TestMain fails the package if Run leaves a goroutine behind: its server,
// workers, client and submitters must all be stopped when it returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRunBurndown(t *testing.T) {
	rep := runBench(t, Options{Mode: "burndown", Runs: 300, Workers: 2, Capacity: 16, BatchSize: 100})
	if rep.SubmitRate <= 0 {
		t.Errorf("submit rate %v", rep.SubmitRate)
	}
}

// TestRunTLS runs the burndown and cron modes over TLS (mutual on gRPC):
// the workers, the gRPC client and cron's HTTP client all get through.
func TestRunTLS(t *testing.T) {
	rep := runBench(t, Options{Mode: "burndown", Runs: 200, Workers: 2, Capacity: 16, BatchSize: 100, TLS: true})
	if !rep.TLS || !strings.Contains(rep.Text(), "TLS") {
		t.Errorf("the report does not say TLS:\n%s", rep.Text())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := Run(ctx, Options{Mode: "cron", Jobs: 1, Runs: 2, Workers: 1, Capacity: 4, TLS: true}); err != nil {
		t.Fatalf("cron over TLS: %v", err)
	}
}

func TestRunSteady(t *testing.T) {
	rep := runBench(t, Options{Mode: "steady", Runs: 200, Rate: 500, Workers: 2, Capacity: 16})
	if rep.Rate != 500 {
		t.Errorf("rate %v, want 500", rep.Rate)
	}
	// 200 runs at 500/s take at least 0.4 s to submit.
	if rep.ElapsedSeconds < 0.39 {
		t.Errorf("elapsed %.3fs: the submits were not paced", rep.ElapsedSeconds)
	}
}

// TestRunFanout: both parents end with every child's result, joined and
// merged.
func TestRunFanout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Mode: "fanout", Shards: 300, Workers: 2, Capacity: 8})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Fanout == nil || len(rep.Fanout.Rows) != 2 || rep.Runs != 600 {
		t.Fatalf("report: %+v", rep)
	}
	for _, row := range rep.Fanout.Rows {
		if strings.HasPrefix(row.Result, "WRONG") || row.Seconds <= 0 || row.Shards != 300 {
			t.Errorf("row %+v", row)
		}
	}
	if text := rep.Text(); !strings.Contains(text, "merge counted 300 results") || !strings.Contains(text, "300 results in shard order") {
		t.Errorf("text:\n%s", text)
	}
}

// runBench runs one benchmark and checks what every report must show.
func runBench(t *testing.T, opts Options) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", rep.Text())
	if rep.Runs != opts.Runs || rep.Mode != opts.Mode || rep.Workers != opts.Workers || rep.Capacity != opts.Capacity {
		t.Errorf("report echoes the wrong options: %+v", rep)
	}
	if rep.Succeeded != opts.Runs {
		t.Errorf("%d of %d runs succeeded", rep.Succeeded, opts.Runs)
	}
	if rep.Throughput <= 0 || rep.ElapsedSeconds <= 0 {
		t.Errorf("throughput %v runs/s over %vs", rep.Throughput, rep.ElapsedSeconds)
	}
	for name, p := range map[string]Percentiles{"submit→start": rep.SubmitToStart, "submit→finish": rep.SubmitToFinish} {
		if !(0 <= p.P50 && p.P50 <= p.P90 && p.P90 <= p.P99 && p.P99 <= p.Max) || p.Max <= 0 {
			t.Errorf("%s percentiles out of order: %+v", name, p)
		}
	}
	if rep.SubmitToStart.P50 > rep.SubmitToFinish.P50 {
		t.Errorf("median start %v ms after median finish %v ms", rep.SubmitToStart.P50, rep.SubmitToFinish.P50)
	}
	var back Report
	if err := json.Unmarshal(rep.JSON(), &back); err != nil || back.Succeeded != rep.Succeeded {
		t.Errorf("JSON report does not round-trip: %v\n%s", err, rep.JSON())
	}
	if !strings.Contains(rep.Text(), "succeeded:") {
		t.Errorf("text report:\n%s", rep.Text())
	}
	return rep
}

func TestOptionsRejected(t *testing.T) {
	for _, o := range []Options{
		{Runs: -1}, {Workers: -1}, {Capacity: -1}, {Mode: "sideways"}, {Rate: -5},
		{Mode: "cron", Jobs: -1}, {Mode: "delayed", BatchSize: -1}, {Mode: "fanout", Shards: -1},
	} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v) accepted", o)
		}
	}
}

func TestRunCron(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// 2 jobs × 3 slots: about 3–4 s.
	rep, err := Run(ctx, Options{Mode: "cron", Jobs: 2, Runs: 6, Workers: 1, Capacity: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", rep.Text())
	c := rep.Cron
	if c == nil || rep.Mode != "cron" || rep.Runs != 6 || c.Jobs != 2 {
		t.Fatalf("report: %+v", rep)
	}
	if c.Ticks < 3 || c.Ticks > c.Slots {
		t.Errorf("%d ticks for %d slots", c.Ticks, c.Slots)
	}
	if c.Slots < 6 || c.Succeeded != c.Slots || rep.Succeeded != c.Slots {
		t.Errorf("%d slots fired, %d succeeded; want ≥ 6, all", c.Slots, c.Succeeded)
	}
	if c.MissingSlots != 0 || c.DuplicateSlots != 0 || c.Skipped != 0 {
		t.Errorf("one fire per slot: %d missing, %d duplicate, %d skipped", c.MissingSlots, c.DuplicateSlots, c.Skipped)
	}
	if c.Seconds < 2 {
		t.Errorf("slots span %v s, want ≥ 2 (3 slots a job)", c.Seconds)
	}
	for name, p := range map[string]Percentiles{"fire": c.FireLateness, "start": c.StartLateness} {
		if !(0 <= p.P50 && p.P50 <= p.P90 && p.P90 <= p.P99 && p.P99 <= p.Max) || p.Max <= 0 {
			t.Errorf("%s lateness out of order: %+v", name, p)
		}
	}
	if c.StartLateness.P50 < c.FireLateness.P50 {
		t.Errorf("median start %v ms before median fire %v ms", c.StartLateness.P50, c.FireLateness.P50)
	}
	if c.TimerLateness.Max <= 0 {
		t.Errorf("control timer: %+v", c.TimerLateness)
	}
	var back Report
	if err := json.Unmarshal(rep.JSON(), &back); err != nil || back.Cron == nil || back.Cron.Slots != c.Slots {
		t.Errorf("JSON report does not round-trip: %v\n%s", err, rep.JSON())
	}
	if !strings.Contains(rep.Text(), "fire lateness:") {
		t.Errorf("text report:\n%s", rep.Text())
	}
}

func TestRunDelayed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Mode: "delayed", Runs: 5000, BatchSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", rep.Text())
	d := rep.Delayed
	if d == nil || rep.Mode != "delayed" || rep.Runs != 5000 {
		t.Fatalf("report: %+v", rep)
	}
	if d.Pending != 5000 {
		t.Errorf("%d of 5000 runs pending", d.Pending)
	}
	if !d.NextPendingOK {
		t.Errorf("next pending at %s, earliest run_at submitted %s", d.NextPendingAt, d.EarliestRunAt)
	}
	if d.SamplesChecked < 50 || d.SampleErrors != 0 {
		t.Errorf("%d samples checked, %d mismatches", d.SamplesChecked, d.SampleErrors)
	}
	if d.StoreRate <= 0 || d.StoreBytes <= 0 || d.StoreFileBytes <= 0 {
		t.Errorf("store rate %v runs/s, %d bytes on disk", d.StoreRate, d.StoreBytes)
	}
	if d.Before.HeapLiveBytes == 0 || d.After.RSSBytes == 0 {
		t.Errorf("memory not measured: %+v → %+v", d.Before, d.After)
	}
	// Loose: 5,000 runs held in memory would be a few MiB; the server
	// holds none.
	if d.HeapGrowth > 16<<20 {
		t.Errorf("live heap grew by %d bytes for 5000 delayed runs", d.HeapGrowth)
	}
	var back Report
	if err := json.Unmarshal(rep.JSON(), &back); err != nil || back.Delayed == nil || back.Delayed.Pending != d.Pending {
		t.Errorf("JSON report does not round-trip: %v\n%s", err, rep.JSON())
	}
	if !strings.Contains(rep.Text(), "Go live heap:") {
		t.Errorf("text report:\n%s", rep.Text())
	}
}

// TestCronSlots checks the one-fire-per-slot accounting on made-up runs.
func TestCronSlots(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	run := func(slot int, st store.RunStatus) *store.Run {
		at := t0.Add(time.Duration(slot) * time.Second)
		return &store.Run{LogicalTime: at, Status: st, CreatedAt: at.Add(2 * time.Millisecond), StartedAt: at.Add(5 * time.Millisecond)}
	}
	ok := store.StatusSucceeded
	runs := map[string][]*store.Run{
		// Complete; a triggered run (no slot) does not count.
		"a": {run(1, ok), run(2, ok), run(3, ok), run(4, ok), {Status: ok, CreatedAt: t0}},
		"b": {run(1, ok), run(3, ok), run(3, ok), run(4, ok)},      // slot 2 missing, slot 3 twice
		"c": {run(2, ok), run(3, store.StatusSkipped), run(4, ok)}, // slot 1 missing, slot 3 skipped
	}
	var c CronReport
	c.BarP99 = cronBarP99
	// Created just before slot 1; deleted 1.5 s after slot 4.
	if err := cronSlots(&c, runs, t0.Add(500*time.Millisecond), t0.Add(600*time.Millisecond), t0.Add(5500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if c.MissingSlots != 3 || c.DuplicateSlots != 1 || c.Skipped != 1 || c.Slots != 10 || c.Succeeded != 10 {
		t.Errorf("missing %d (want 3), duplicate %d (1), skipped %d (1), fired %d (10), succeeded %d (10)",
			c.MissingSlots, c.DuplicateSlots, c.Skipped, c.Slots, c.Succeeded)
	}
	if c.Ticks != 4 { // every run made up fires at slot + 2 ms
		t.Errorf("%d ticks, want 4", c.Ticks)
	}
	if c.FireLateness.P99 != 2 || c.StartLateness.Max != 5 || c.BarMet {
		t.Errorf("fire %+v, start %+v, bar met %v", c.FireLateness, c.StartLateness, c.BarMet)
	}
}

func TestPercentiles(t *testing.T) {
	if p := percentiles(nil); p != (Percentiles{}) {
		t.Errorf("empty: %+v", p)
	}
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(100 - i) // 100 … 1, unsorted
	}
	if p := percentiles(xs); p != (Percentiles{P50: 50, P90: 90, P99: 99, Max: 100}) {
		t.Errorf("1..100: %+v", p)
	}
}

// The logs mode follows every printed line and finds the printer's log
// capped (on SQLite: one server).
func TestRunLogs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Mode: "logs", Runs: 200, Workers: 1, Capacity: 8, Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", rep.Text())
	l := rep.Logs
	if l == nil || l.Received != 200 || l.Latency.Max <= 0 || l.Servers != 1 {
		t.Fatalf("follow: %+v", l)
	}
	if l.CapStored != engine.DefaultLogMaxLines+1 || l.CapDropped <= 0 || l.CapDropped > capLines-engine.DefaultLogMaxLines {
		t.Errorf("capped run: %d stored, %d dropped", l.CapStored, l.CapDropped)
	}
	if l.StartBaseline.Max <= 0 || l.StartPrinting.Max <= 0 || !strings.Contains(rep.Text(), "beside the printer") {
		t.Errorf("submit → start not measured:\n%s", rep.Text())
	}
}
