package bench

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
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
	} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v) accepted", o)
		}
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
