package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/client"
	"github.com/pluto-sched/pluto/internal/store"
)

// History mode (--history N, burndown): the store is filled with N
// finished runs through the backend's bulk path (store.HistoryLoader), so
// that the reads (lists.go) and the burndown are measured on a store of
// that size. With CompareEmpty the burndown runs twice in one process — on
// the empty store, then after the load — so the two throughputs compare
// on the same machine state.

// HistoryReport is what --history adds to a report.
type HistoryReport struct {
	Runs        int     `json:"runs"`
	LoadSeconds float64 `json:"load_s"`
	LoadRate    float64 `json:"load_runs_per_s"`
	// StoredRuns is what GET /api/v1/stats counted after the load: the
	// history and the runs of the first burndown.
	StoredRuns int64 `json:"stored_runs"`
	// Lists and Stats are the reads timed after the load (lists.go).
	Lists []ReadLatency `json:"lists"`
	Stats []ReadLatency `json:"stats"`
	// Pages are the console's pages, timed after the reads (pages.go).
	Pages []ReadLatency `json:"pages"`
	// With CompareEmpty: the burndown on the empty store, before the
	// load (Report.Throughput is the one after it), their ratio, and
	// whether the ratio met the bar (after ≥ 90% of empty).
	EmptyThroughput float64 `json:"empty_throughput_runs_per_s,omitempty"`
	Ratio           float64 `json:"throughput_ratio,omitempty"`
	RatioPass       bool    `json:"throughput_ratio_pass,omitempty"`
}

// ratioBar is the burndown bar: after the load at least 90% of the
// throughput on the empty store.
const ratioBar = 0.90

// history generation: a week of runs ending an hour ago, in creation
// order, over historyGroups groups, historyTypes types, historyWorkers
// workers; 5% belong to one of historyJobs jobs. Outcomes: 93%
// succeeded, 5% failed, 1% timed out, 0.7% cancelled, 0.3% skipped.
const (
	historyGroups  = 8
	historyTypes   = 20
	historyWorkers = 64
	historyJobs    = 50
	historySpan    = 7 * 24 * time.Hour
)

var historyErrors = []string{
	"exit status 1", "connection refused", "disk full", "context deadline exceeded",
	"upstream returned 503", "permission denied", "no such file or directory",
	"invalid input: missing field", "out of memory", "TLS handshake timeout",
}

// historyRunID is the id of history run i.
func historyRunID(i int) string { return fmt.Sprintf("h_%010d", i) }

// historyRun makes run i of n, created between start and start+span.
func historyRun(i, n int, start time.Time) *store.Run {
	x := uint64(i+1) * 0x9E3779B97F4A7C15 // a cheap, fixed shuffle of i
	x ^= x >> 29
	created := start.Add(time.Duration(float64(historySpan) * float64(i) / float64(n)))
	r := &store.Run{
		ID:    historyRunID(i),
		Type:  fmt.Sprintf("type-%02d", x%historyTypes),
		Group: fmt.Sprintf("hist-%d", (x>>8)%historyGroups), Status: store.StatusSucceeded,
		Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), Attempt: 1, MaxAttempts: 3,
		RunAt: created, CreatedAt: created, WorkerID: fmt.Sprintf("hist-w-%02d", (x>>16)%historyWorkers),
		Result: json.RawMessage(`{"ok":true}`),
	}
	if (x>>24)%100 < 5 {
		r.Job = fmt.Sprintf("job-%02d", (x>>32)%historyJobs)
	}
	r.StartedAt = created.Add(time.Duration((x>>40)%2000) * time.Millisecond)
	r.FinishedAt = r.StartedAt.Add(time.Duration((x>>48)%30000) * time.Millisecond)
	switch p := (x >> 20) % 1000; {
	case p < 50:
		r.Status, r.Failures, r.Result = store.StatusFailed, 3, nil
		r.Error = fmt.Sprintf("attempt 3: %s (code %d)", historyErrors[(x>>12)%uint64(len(historyErrors))], x%1000)
	case p < 60:
		r.Status, r.Failures, r.Result, r.Error = store.StatusTimedOut, 3, nil, "timed out after 5m0s"
	case p < 67:
		r.Status, r.Result, r.Error = store.StatusCancelled, nil, "cancelled by admin"
	case p < 70:
		r.Status, r.Result, r.Error, r.Attempt = store.StatusSkipped, nil, "skipped: upstream failed", 0
		r.WorkerID, r.StartedAt, r.FinishedAt = "", time.Time{}, created
	}
	return r
}

// burndownHistory runs the burndown; with --history, first on the empty
// store (CompareEmpty), then loads the history, times the reads and burns
// down again.
func burndownHistory(ctx context.Context, srv *benchServer, cl *client.Client, opts Options, done *finishCounter, rep *Report) error {
	if opts.History == 0 {
		return burndown(ctx, srv, cl, opts, done, rep)
	}
	h := &HistoryReport{Runs: opts.History}
	if opts.CompareEmpty {
		if err := burndown(ctx, srv, cl, opts, done, rep); err != nil {
			return err
		}
		h.EmptyThroughput = rep.Throughput
	}
	start := time.Now().Add(-time.Hour - historySpan)
	took, err := loadHistory(ctx, srv.Store(), opts.History, start)
	if err != nil {
		return err
	}
	h.LoadSeconds, h.LoadRate = took.Seconds(), float64(opts.History)/took.Seconds()
	hc := srv.httpClient(opts)
	defer hc.CloseIdleConnections()
	if err := measureReads(ctx, hc, srv.HTTPURL(), start.Add(historySpan/2), h); err != nil {
		return err
	}
	if err := measurePages(ctx, hc, srv.HTTPURL(), srv.token, historyRunID(opts.History/2), h); err != nil {
		return err
	}
	if err := burndown(ctx, srv, cl, opts, done, rep); err != nil {
		return err
	}
	if opts.CompareEmpty {
		h.Ratio = rep.Throughput / h.EmptyThroughput
		h.RatioPass = h.Ratio >= ratioBar
	}
	rep.History = h
	return nil
}

// loadHistory fills st with n finished runs.
func loadHistory(ctx context.Context, st store.Store, n int, start time.Time) (time.Duration, error) {
	hl, ok := st.(store.HistoryLoader)
	if !ok {
		return 0, fmt.Errorf("bench: --history: the %s store has no bulk loader", st.Name())
	}
	t0 := time.Now()
	if err := hl.LoadHistory(ctx, n, func(i int) *store.Run { return historyRun(i, n, start) }); err != nil {
		return 0, fmt.Errorf("bench: --history: %w", err)
	}
	return time.Since(t0), nil
}

// finishCounter counts committed terminal runs, and the succeeded ones;
// wait's channel closes once the count reaches a target.
type finishCounter struct {
	mu        sync.Mutex
	n         int64
	succeeded int64
	target    int64
	ch        chan struct{}
}

func (c *finishCounter) add(s store.RunStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if s == store.StatusSucceeded {
		c.succeeded++
	}
	if c.ch != nil && c.n >= c.target {
		close(c.ch)
		c.ch = nil
	}
}

func (c *finishCounter) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *finishCounter) succeededCount() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.succeeded
}

func (c *finishCounter) wait(target int64) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan struct{})
	if c.n >= target {
		close(ch)
	} else {
		c.target, c.ch = target, ch
	}
	return ch
}

func (h *HistoryReport) text(b *strings.Builder, throughput float64) {
	fmt.Fprintf(b, "history:          %d finished runs loaded in %.1fs (%.0f runs/s); GET /api/v1/stats counts %d runs\n",
		h.Runs, h.LoadSeconds, h.LoadRate, h.StoredRuns)
	readsText(b, fmt.Sprintf("lists, after the load (GET /api/v1/runs, first page of 100 unless a cursor is given, %d calls each):", readCalls), h.Lists)
	readsText(b, fmt.Sprintf("stats, after the load (%d calls each):", readCalls), h.Stats)
	readsText(b, fmt.Sprintf("console pages, after the load (signed in, whole request on loopback, %d calls each):", readCalls), h.Pages)
	if h.EmptyThroughput > 0 {
		fmt.Fprintf(b, "burndown:         %.0f runs/s on the empty store, %.0f runs/s after the load: %.0f%%  %s (≥ %.0f%%)\n",
			h.EmptyThroughput, throughput, h.Ratio*100, passFail(h.RatioPass), ratioBar*100)
	}
}
