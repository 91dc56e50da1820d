package bench

// Console pages at scale (--history): after the list and stats reads,
// every page of the web console is fetched readCalls times with a
// session cookie, as a signed-in browser asks for it, and judged against
// the console's bar (100 ms at 10 million stored runs). The time is the
// whole request on loopback, an upper bound of the server's time.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/console"
)

// pageBarMs is the console's bar at 10M runs.
const pageBarMs = 100

// pageJob is the job the job page is timed on: a name the history's runs
// carry, so that its page and slot timeline read a week of them. It is
// created paused (its schedule never fires into the burndown).
const pageJob = "job-07"

// pageCases are the console pages measured. run is a stored run's id.
func pageCases(run string) []readCase {
	day := url.QueryEscape(time.Now().Add(-3 * 24 * time.Hour).Format(time.RFC3339))
	return []readCase{
		{"overview", "/"},
		{"runs", "/runs"},
		{"runs, failed", "/runs?status=failed"},
		{"runs, group + error", "/runs?group=hist-4&error=refused"},
		{"runs, created before", "/runs?created_before=" + day},
		{"run", "/runs/" + run},
		{"failures", "/failures"},
		{"jobs", "/jobs"},
		{"job (slot timeline)", "/jobs/" + pageJob},
		{"workers", "/workers"},
		{"cluster", "/cluster"},
		{"audit", "/audit"},
	}
}

// measurePages creates the paused job, then times every page.
func measurePages(ctx context.Context, hc *http.Client, base, token, run string, h *HistoryReport) error {
	if err := jobRequest(ctx, hc, http.MethodPut, base, pageJob, map[string]any{
		"type": "noop", "group": "hist-3", "schedule": "0 */5 * * * ?", "paused": true,
	}); err != nil {
		return fmt.Errorf("bench: console job: %w", err)
	}
	for _, c := range pageCases(run) {
		l, err := timePage(ctx, hc, base, token, c)
		if err != nil {
			return err
		}
		h.Pages = append(h.Pages, l)
	}
	return nil
}

// timePage fetches one page readCalls times and judges its p99.
func timePage(ctx context.Context, hc *http.Client, base, token string, c readCase) (ReadLatency, error) {
	return timeCalls(c, pageBarMs, func() error {
		return getPage(ctx, hc, base+c.path, token)
	})
}

// getPage GETs a console page as a signed-in browser (the session cookie
// holds the token) and reads it whole; anything but a 200 HTML page is an
// error.
func getPage(ctx context.Context, hc *http.Client, u, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.AddCookie(&http.Cookie{Name: console.SessionCookie, Value: token})
	}
	req.Header.Set("Accept", "text/html")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		return fmt.Errorf("GET %s: %s %s", u, resp.Status, resp.Header.Get("Content-Type"))
	}
	if resp.Request.URL.Path == "/login" {
		return fmt.Errorf("GET %s: sent to the login page: the session was refused", u)
	}
	if len(body) == 0 {
		return fmt.Errorf("GET %s: empty page", u)
	}
	return nil
}
