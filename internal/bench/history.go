package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// History mode (--history N, burndown): the store is first filled with N
// finished runs through the backend's bulk path (store.HistoryLoader), so
// that the burndown and the lists are measured on a store of that size.
// The burndown runs twice in one process — on the empty store, then after
// the load — so the two throughputs compare on the same machine state.

// HistoryReport is what --history adds to a report.
type HistoryReport struct {
	Runs        int     `json:"runs"`
	LoadSeconds float64 `json:"load_s"`
	LoadRate    float64 `json:"load_runs_per_s"`
	// EmptyThroughput is the burndown on the empty store, before the load;
	// Report.Throughput is the one after it.
	EmptyThroughput float64       `json:"empty_throughput_runs_per_s"`
	Ratio           float64       `json:"throughput_ratio"` // after / empty
	Lists           []ListLatency `json:"lists"`
}

// ListLatency is one list filter's first page through the HTTP API
// (limit 100), called listCalls times.
type ListLatency struct {
	Name  string  `json:"name"`
	Query string  `json:"query"`
	P50   float64 `json:"p50_ms"`
	Max   float64 `json:"max_ms"`
	Runs  int     `json:"runs"` // on the page
	More  bool    `json:"more"` // the page had a next cursor
}

const (
	listCalls = 7
	// listBarMs is the bar every list filter must meet at 10M runs.
	listBarMs = 50
)

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

// historyRun makes run i of n, created between start and start+span.
func historyRun(i, n int, start time.Time) *store.Run {
	x := uint64(i+1) * 0x9E3779B97F4A7C15 // a cheap, fixed shuffle of i
	x ^= x >> 29
	created := start.Add(time.Duration(float64(historySpan) * float64(i) / float64(n)))
	r := &store.Run{
		ID:    fmt.Sprintf("h_%010d", i),
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

// loadHistory fills st with n finished runs.
func loadHistory(ctx context.Context, st store.Store, n int) (time.Duration, error) {
	hl, ok := st.(store.HistoryLoader)
	if !ok {
		return 0, fmt.Errorf("bench: --history: the %s store has no bulk loader", st.Name())
	}
	start := time.Now().Add(-time.Hour - historySpan)
	t0 := time.Now()
	if err := hl.LoadHistory(ctx, n, func(i int) *store.Run { return historyRun(i, n, start) }); err != nil {
		return 0, fmt.Errorf("bench: --history: %w", err)
	}
	return time.Since(t0), nil
}

// listCases are the filters measured, as GET /api/v1/runs queries.
func listCases(now time.Time) [][2]string {
	day := func(d int) string {
		return url.QueryEscape(now.Add(-time.Duration(d) * 24 * time.Hour).Format(time.RFC3339))
	}
	hourAfter := func(d int) string {
		return url.QueryEscape(now.Add(-time.Duration(d)*24*time.Hour + time.Hour).Format(time.RFC3339))
	}
	return [][2]string{
		{"all", ""},
		{"all, oldest first", "order=asc"},
		{"status succeeded", "status=succeeded"},
		{"status failed", "status=failed"},
		{"status cancelled", "status=cancelled"},
		{"status failed, oldest first", "status=failed&order=asc"},
		{"status queued (none)", "status=queued"},
		{"group", "group=hist-3"},
		{"job", "job=job-07"},
		{"type", "type=type-05"},
		{"worker", "worker=hist-w-09"},
		{"created: 1 h, 3 days ago", "created_after=" + day(3) + "&created_before=" + hourAfter(3)},
		{"finished: 1 h, 2 days ago", "finished_after=" + day(2) + "&finished_before=" + hourAfter(2)},
		{"finished after, 6 days ago", "finished_after=" + day(6) + "&order=asc"},
		{"error substring", "error=disk+full"},
		{"error, rare", "error=code+999%29"},
		{"group+type+failed", "group=hist-1&type=type-02&status=failed"},
		{"type+worker", "type=type-11&worker=hist-w-40"},
		{"job+failed", "job=job-03&status=failed,timed_out"},
		{"group+created, oldest first", "group=hist-6&created_after=" + day(5) + "&order=asc"},
		{"error+created", "error=refused&created_after=" + day(4) + "&created_before=" + day(3)},
	}
}

// measureLists times each list filter's first page through the HTTP API.
func measureLists(ctx context.Context, hc *http.Client, base string) ([]ListLatency, error) {
	var out []ListLatency
	for _, c := range listCases(time.Now()) {
		l := ListLatency{Name: c[0], Query: c[1]}
		var times []float64
		for range listCalls {
			t0 := time.Now()
			page, err := getRuns(ctx, hc, base+"/api/v1/runs?limit=100&"+c[1])
			if err != nil {
				return nil, fmt.Errorf("bench: list %s: %w", c[0], err)
			}
			times = append(times, ms(time.Since(t0)))
			l.Runs, l.More = len(page.Items), page.NextCursor != ""
		}
		p := percentiles(times)
		l.P50, l.Max = p.P50, p.Max
		out = append(out, l)
	}
	return out, nil
}

type runsPage struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor"`
}

func getRuns(ctx context.Context, hc *http.Client, u string) (*runsPage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var page runsPage
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return &page, nil
}

// finishCounter counts committed terminal runs; wait's channel closes
// once the count reaches a target.
type finishCounter struct {
	mu     sync.Mutex
	n      int64
	target int64
	ch     chan struct{}
}

func (c *finishCounter) add() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
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

func (h *HistoryReport) text(b *strings.Builder) {
	fmt.Fprintf(b, "history:          %d finished runs loaded in %.1fs (%.0f runs/s)\n", h.Runs, h.LoadSeconds, h.LoadRate)
	fmt.Fprintf(b, "burndown:         %.0f runs/s on the empty store, %.0f%% of it after the load\n", h.EmptyThroughput, h.Ratio*100)
	fmt.Fprintf(b, "lists (first page of 100 through the HTTP API, %d calls each; bar %d ms):\n", listCalls, listBarMs)
	width := 0
	for _, l := range h.Lists {
		width = max(width, len(l.Name))
	}
	for _, l := range h.Lists {
		more := ""
		if l.More {
			more = ", more"
		}
		flag := ""
		if l.Max > listBarMs {
			flag = "  OVER THE BAR"
		}
		fmt.Fprintf(b, "  %-*s  p50 %6.2f ms  max %6.2f ms  (%d runs%s)%s\n", width, l.Name, l.P50, l.Max, l.Runs, more, flag)
	}
}
