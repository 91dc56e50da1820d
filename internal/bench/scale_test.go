package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestRunHistory runs --history on a small store: every read is timed and
// judged, the filters find what the generated history holds, and the
// burndown ran on the empty store too.
func TestRunHistory(t *testing.T) {
	const hist = 5000
	rep := runBenchRuns(t, Options{Mode: "burndown", Runs: 200, Workers: 2, Capacity: 16, BatchSize: 100,
		History: hist, CompareEmpty: true}, 400)
	h := rep.History
	if h == nil {
		t.Fatal("no history report")
	}
	if h.StoredRuns != hist+200 {
		t.Errorf("stats counts %d runs, want %d (history + first burndown)", h.StoredRuns, hist+200)
	}
	if len(h.Lists) != len(listCases(time.Now(), "1")) || len(h.Stats) != len(statsCases()) {
		t.Errorf("%d lists and %d stats timed, want %d and %d (deep pages included)",
			len(h.Lists), len(h.Stats), len(listCases(time.Now(), "1")), len(statsCases()))
	}
	if len(h.Pages) != len(pageCases("r")) {
		t.Errorf("%d console pages timed, want %d", len(h.Pages), len(pageCases("r")))
	}
	found := map[string]int{}
	for _, l := range slices.Concat(h.Lists, h.Stats, h.Pages) {
		found[l.Name] = l.Runs
		if !(0 < l.P50 && l.P50 <= l.P99 && l.P99 <= l.Max) {
			t.Errorf("%s: percentiles out of order: %+v", l.Name, l)
		}
		if l.Pass != (l.P99 <= l.BarMs) || l.BarMs == 0 {
			t.Errorf("%s: pass %v with p99 %v against bar %v", l.Name, l.Pass, l.P99, l.BarMs)
		}
	}
	// The generated spread gives every filter something to find (the
	// first page of 100 of 5,000 runs: 5% failed, 8 groups, 50 jobs…).
	for _, name := range []string{"all", "status failed", "status cancelled", "group", "job", "type", "worker",
		"created: 1 h, 3 days ago", "finished: 1 h, 2 days ago", "error substring", "status failed + group",
		"deep page (half-way)", "deep page, group"} {
		if found[name] == 0 {
			t.Errorf("list %q found no runs", name)
		}
	}
	if found["status queued (none)"] != 0 {
		t.Errorf("status queued listed %d runs of a finished history", found["status queued (none)"])
	}
	if h.EmptyThroughput <= 0 || h.Ratio <= 0 || h.RatioPass != (h.Ratio >= ratioBar) {
		t.Errorf("empty throughput %v, ratio %v, pass %v", h.EmptyThroughput, h.Ratio, h.RatioPass)
	}
	text := rep.Text()
	for _, want := range []string{"deep page (half-way)", "stats, group", "burndown:", "(≤ 50 ms)", "(≤ 20 ms)",
		"console pages", "job (slot timeline)", "(≤ 100 ms)"} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q:\n%s", want, text)
		}
	}
	var back Report
	if err := json.Unmarshal(rep.JSON(), &back); err != nil || back.History == nil || len(back.History.Lists) != len(h.Lists) {
		t.Errorf("JSON report does not round-trip: %v", err)
	}
}

// TestRunHistoryNoCompare: without CompareEmpty the burndown runs once.
func TestRunHistoryNoCompare(t *testing.T) {
	rep := runBench(t, Options{Mode: "burndown", Runs: 100, Workers: 1, Capacity: 16, BatchSize: 100, History: 1000})
	if h := rep.History; h == nil || h.EmptyThroughput != 0 || h.StoredRuns != 1000 {
		t.Errorf("history report: %+v", h)
	}
	if strings.Contains(rep.Text(), "burndown:") {
		t.Errorf("a comparison was printed without one:\n%s", rep.Text())
	}
}

// TestRunSteadySized runs steady mode with retention and a row a second:
// the rows show what was submitted and stored, the latencies of each
// interval, the store's size, and retention deleting runs.
func TestRunSteadySized(t *testing.T) {
	runSteadySized(t, "")
}

// TestRunSteadySizedPostgres is the same on PostgreSQL (a schema of its
// own, dropped afterwards): the size is split by table.
func TestRunSteadySizedPostgres(t *testing.T) {
	base := testPostgres(t)
	st := runSteadySized(t, base)
	last := st.Intervals[len(st.Intervals)-1].Size
	if last.RunsBytes <= 0 || last.LogsBytes <= 0 || last.OtherBytes <= 0 || last.FileBytes != 0 {
		t.Errorf("PostgreSQL size not split by table: %+v", last)
	}
	if st.Autovacuum != "on" && st.Autovacuum != "off" {
		t.Errorf("autovacuum setting %q", st.Autovacuum)
	}
}

func runSteadySized(t *testing.T, storeURL string) *SteadyReport {
	t.Helper()
	var progress bytes.Buffer
	opts := Options{Mode: "steady", Rate: 200, Duration: 4 * time.Second, SizeEvery: time.Second, Workers: 2, Capacity: 16,
		Retention: "succeeded=1s", LogsPerRun: 2, Store: storeURL, Progress: &progress}
	rep := runBenchRuns(t, opts, 800)
	st := rep.Steady
	if st == nil || len(st.Intervals) < 4 {
		t.Fatalf("steady report: %+v", st)
	}
	if !strings.HasPrefix(st.Retention, "succeeded=1s,") || st.LogsPerRun != 2 || st.SizeEvery != "1s" {
		t.Errorf("settings echoed: %+v", st)
	}
	last := st.Intervals[len(st.Intervals)-1]
	if !last.Partial || last.Submitted != 800 || last.Finished != 800 {
		t.Errorf("last row: %+v, want partial with 800 submitted and finished", last)
	}
	starts := 0
	for i, iv := range st.Intervals {
		starts += iv.Starts
		if iv.Size.Bytes <= 0 || iv.End <= 0 || (i > 0 && iv.End < st.Intervals[i-1].End) { // the last, partial row may end in the same 10 ms
			t.Errorf("row %d: %+v", i, iv)
		}
		if !iv.Partial && (iv.Starts == 0 || iv.SubmitToStart.Max <= 0) {
			t.Errorf("row %d measured no starts: %+v", i, iv)
		}
	}
	if starts != 800 || rep.SubmitToStart.Max <= 0 {
		t.Errorf("%d starts measured over the rows, want 800; overall %+v", starts, rep.SubmitToStart)
	}
	// Runs older than a second are deleted by sweeps a second apart: at
	// the end at most the last ~2 s of runs (400) are stored.
	if last.Stored >= 800 || last.Stored <= 0 {
		t.Errorf("%d runs stored at the end: retention deleted none", last.Stored)
	}
	if st.Compare == nil || st.Compare.To != len(st.Intervals)-2 || st.Compare.SizeRatio <= 0 {
		t.Errorf("compare: %+v", st.Compare)
	}
	header := 2
	if st.Autovacuum == "off" {
		header++ // the warning
	}
	if n := strings.Count(progress.String(), "\n"); n != len(st.Intervals)+header {
		t.Errorf("progress has %d lines, want the header's %d and one a row (%d):\n%s", n, header, len(st.Intervals), progress.String())
	}
	for _, want := range []string{"retention:        succeeded=1s", "store size", "end "} {
		if !strings.Contains(rep.Text(), want) {
			t.Errorf("text report lacks %q:\n%s", want, rep.Text())
		}
	}
	return st
}

// TestCompareIntervals picks the row at a third of the run and the last
// full one, and judges the size against the 10% bar.
func TestCompareIntervals(t *testing.T) {
	row := func(mib int64, partial bool) Interval {
		return Interval{Size: StoreSize{Bytes: mib << 20}, Partial: partial}
	}
	ivs := []Interval{row(10, false), row(40, false), row(41, false), row(42, false), row(43, false), row(42, false), row(1, true)}
	c := compareIntervals(ivs)
	if c == nil || c.From != 1 || c.To != 5 || c.SizeRatio != 1.05 || !c.SizePass {
		t.Errorf("6 full rows: %+v, want 1 → 5, ratio 1.05, pass", c)
	}
	ivs[5] = row(45, false)
	if c := compareIntervals(ivs); c == nil || c.SizePass {
		t.Errorf("+12.5%% passed: %+v", c)
	}
	if c := compareIntervals(ivs[:2]); c != nil {
		t.Errorf("2 rows compared: %+v", c)
	}
}

func TestScaleOptionsRejected(t *testing.T) {
	for _, o := range []Options{
		{Mode: "burndown", Duration: time.Second},
		{Mode: "burndown", Retention: "succeeded=1s"},
		{Mode: "cron", SizeEvery: time.Second},
		{Mode: "steady", Retention: "done=1s"},
		{Mode: "steady", Retention: "succeeded=soon"},
		{Mode: "steady", SizeEvery: -time.Second},
		{Mode: "delayed", LogsPerRun: 3},
		{Mode: "steady", LogsPerRun: -1},
	} {
		if err := Validate(o); err == nil {
			t.Errorf("Validate(%+v) accepted", o)
		}
	}
	o := Options{Mode: "steady", Rate: 50, Duration: 3 * time.Second}
	if err := o.defaults(); err != nil || o.Runs != 150 || o.SizeEvery != time.Minute {
		t.Errorf("steady --duration 3s at 50/s: %v, %d runs, rows every %v", err, o.Runs, o.SizeEvery)
	}
}

// runBenchRuns is runBench for reports whose succeeded runs are not
// opts.Runs (the history's two burndowns; the steady rows).
func runBenchRuns(t *testing.T, opts Options, succeeded int) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", rep.Text())
	if rep.Succeeded != succeeded {
		t.Errorf("%d runs succeeded, want %d", rep.Succeeded, succeeded)
	}
	if rep.Throughput <= 0 || rep.SubmitToStart.P50 <= 0 {
		t.Errorf("throughput %v, submit→start %+v", rep.Throughput, rep.SubmitToStart)
	}
	return rep
}

// testPostgres is the database of PLUTO_TEST_POSTGRES (the bench makes a
// schema of its own in it). Unreachable, the test fails under CI and is
// skipped, saying why, elsewhere.
func testPostgres(t *testing.T) string {
	t.Helper()
	base := os.Getenv("PLUTO_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL unreachable at %s: %v", base, err)
		}
		t.Skipf("PostgreSQL unreachable at %s: SKIPPING: %v", base, err)
	}
	conn.Close(ctx)
	return base
}
