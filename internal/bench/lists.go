package bench

// Reads at scale (--history): after the load and before the measured
// burndown, every filter of GET /api/v1/runs, alone and combined, and
// GET /api/v1/stats are called readCalls times each through the HTTP API
// of the in-process server, and each line is judged against its bar
// (the figures the API promises at 10 million stored runs).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ReadLatency is one read through the HTTP API, called readCalls times.
type ReadLatency struct {
	Name  string  `json:"name"`
	Path  string  `json:"path"` // path and query, after /api/v1
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	BarMs float64 `json:"bar_ms"`
	Pass  bool    `json:"pass"`           // p99 ≤ BarMs
	Runs  int     `json:"runs,omitempty"` // lists: on the page
	More  bool    `json:"more,omitempty"` // lists: the page had a next cursor
}

const (
	// readCalls is how often each read is timed. With 20 calls the p99 is
	// the slowest call: a line passes only if every call met the bar.
	readCalls = 20
	// listBarMs and statsBarMs are the bars at 10M runs.
	listBarMs  = 50
	statsBarMs = 20
)

// readCase is one timed read.
type readCase struct{ name, path string }

// listCases are the list filters measured, as GET /api/v1/runs queries
// (limit 100). deep is the cursor of a run created half-way through the
// history: the page a client paging that far would ask for next.
func listCases(now time.Time, deep string) []readCase {
	day := func(d int) string {
		return url.QueryEscape(now.Add(-time.Duration(d) * 24 * time.Hour).Format(time.RFC3339))
	}
	hourAfter := func(d int) string {
		return url.QueryEscape(now.Add(-time.Duration(d)*24*time.Hour + time.Hour).Format(time.RFC3339))
	}
	cs := []readCase{
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
		{"status failed + group", "status=failed&group=hist-5"},
		{"job + status failed, timed out", "job=job-03&status=failed,timed_out"},
		{"group + type + failed", "group=hist-1&type=type-02&status=failed"},
		{"type + worker", "type=type-11&worker=hist-w-40"},
		{"group + created, oldest first", "group=hist-6&created_after=" + day(5) + "&order=asc"},
		{"error + created", "error=refused&created_after=" + day(4) + "&created_before=" + day(3)},
	}
	if deep != "" {
		cs = append(cs,
			readCase{"deep page (half-way)", "cursor=" + deep},
			readCase{"deep page, group", "group=hist-2&cursor=" + deep},
			readCase{"deep page, status failed", "status=failed&cursor=" + deep},
		)
	}
	for i := range cs {
		cs[i].path = "/runs?limit=100&" + cs[i].path
	}
	return cs
}

// statsCases are the GET /api/v1/stats reads measured.
func statsCases() []readCase {
	return []readCase{
		{"stats", "/stats"},
		{"stats, group", "/stats?group=hist-3"},
		{"stats, job", "/stats?job=job-07"},
	}
}

// measureReads times the list filters and the stats through the HTTP API.
// mid is a time half-way through the history, where the deep page starts.
func measureReads(ctx context.Context, hc *http.Client, base string, mid time.Time, h *HistoryReport) error {
	deep, err := cursorAt(ctx, hc, base, mid)
	if err != nil {
		return err
	}
	for _, c := range listCases(time.Now(), deep) {
		l, err := timeRead(ctx, hc, base, c, listBarMs)
		if err != nil {
			return err
		}
		h.Lists = append(h.Lists, l)
	}
	for _, c := range statsCases() {
		l, err := timeCalls(c, statsBarMs, func() error { return getBody(ctx, hc, base+"/api/v1"+c.path) })
		if err != nil {
			return err
		}
		h.Stats = append(h.Stats, l)
	}
	h.StoredRuns, err = storedRuns(ctx, hc, base)
	return err
}

// cursorAt is the cursor a client holds after paging (newest first) down
// to the runs created before at: the last run before at is found with a
// one-run page, whose next cursor points just past it.
func cursorAt(ctx context.Context, hc *http.Client, base string, at time.Time) (string, error) {
	var page runsPage
	q := "/api/v1/runs?limit=1&created_before=" + url.QueryEscape(at.Format(time.RFC3339Nano))
	if err := getJSON(ctx, hc, base+q, &page); err != nil {
		return "", fmt.Errorf("bench: deep cursor: %w", err)
	}
	return page.NextCursor, nil
}

// timeRead calls one read readCalls times and judges its p99 against bar.
func timeRead(ctx context.Context, hc *http.Client, base string, c readCase, bar float64) (ReadLatency, error) {
	var page runsPage
	l, err := timeCalls(c, bar, func() error {
		page = runsPage{}
		return getJSON(ctx, hc, base+"/api/v1"+c.path, &page)
	})
	l.Runs, l.More = len(page.Items), page.NextCursor != ""
	return l, err
}

// timeCalls times readCalls calls of get and judges their p99 against
// bar.
func timeCalls(c readCase, bar float64, get func() error) (ReadLatency, error) {
	l := ReadLatency{Name: c.name, Path: c.path, BarMs: bar}
	times := make([]float64, 0, readCalls)
	for range readCalls {
		t0 := time.Now()
		if err := get(); err != nil {
			return l, fmt.Errorf("bench: %s: %w", c.name, err)
		}
		times = append(times, ms(time.Since(t0)))
	}
	p := percentiles(times)
	l.P50, l.P99, l.Max = p.P50, p.P99, p.Max
	l.Pass = l.P99 <= bar
	return l, nil
}

// storedRuns is the number of runs GET /api/v1/stats counts in all
// statuses.
func storedRuns(ctx context.Context, hc *http.Client, base string) (int64, error) {
	var st struct {
		Totals struct {
			Counts map[string]int64 `json:"counts"`
		} `json:"totals"`
	}
	if err := getJSON(ctx, hc, base+"/api/v1/stats", &st); err != nil {
		return 0, fmt.Errorf("bench: stats: %w", err)
	}
	var n int64
	for _, c := range st.Totals.Counts {
		n += c
	}
	return n, nil
}

type runsPage struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor"`
}

// getJSON GETs u and decodes its 200 answer into v (the whole body is
// read, so that the time includes the transfer).
func getJSON(ctx context.Context, hc *http.Client, u string, v any) error {
	return get(ctx, hc, u, func(body io.Reader) error { return json.NewDecoder(body).Decode(v) })
}

// getBody GETs u and reads its 200 answer whole, without decoding it: the
// statistics' time is the server's and the transfer's (its answer, 175 KB
// for 400 jobs, took the client 3 ms more to decode).
func getBody(ctx context.Context, hc *http.Client, u string) error {
	return get(ctx, hc, u, func(body io.Reader) error { _, err := io.Copy(io.Discard, body); return err })
}

// get GETs u and hands a 200 answer's body to read.
func get(ctx context.Context, hc *http.Client, u string, read func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(msg)))
	}
	if err := read(resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// readsText prints one table of reads.
func readsText(b *strings.Builder, title string, ls []ReadLatency) {
	width := 0
	for _, l := range ls {
		width = max(width, len(l.Name))
	}
	fmt.Fprintf(b, "%s\n", title)
	for _, l := range ls {
		page := ""
		if strings.HasPrefix(l.Path, "/runs?limit=") { // a list, not a console page
			page = fmt.Sprintf("  %3d runs", l.Runs)
			if l.More {
				page += ", more"
			} else {
				page += "      "
			}
		}
		fmt.Fprintf(b, "  %-*s  p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms%s  %s (≤ %.0f ms)\n",
			width, l.Name, l.P50, l.P99, l.Max, page, passFail(l.Pass), l.BarMs)
	}
}
