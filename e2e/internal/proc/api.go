package proc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// API is a minimal HTTP JSON client for the tests.
type API struct {
	T    *testing.T
	Base string // http://host:port
}

// NewAPI is an API for a server's HTTP address (host:port).
func NewAPI(t *testing.T, httpAddr string) API { return API{T: t, Base: "http://" + httpAddr} }

// Do is Try that fails the test on a transport error.
func (a API) Do(method, path string, body any, out any) int {
	a.T.Helper()
	code, err := a.Try(method, path, body, out)
	if err != nil {
		a.T.Fatalf("%s %s: %v", method, path, err)
	}
	return code
}

// Try sends body as JSON, decodes the answer into out (if not nil) and
// returns the status code, or a transport error (a server that is gone).
func (a API) Try(method, path string, body any, out any) (int, error) {
	return a.TryWithin(2*time.Minute, method, path, body, out)
}

// TryWithin is Try bounded by d instead of two minutes.
func (a API) TryWithin(d time.Duration, method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.Base+path, rd)
	if err != nil {
		return 0, err
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok := Token(a.T); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%d %s: %w", resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode, nil
}

// Run is a run as the API shows it (the fields the tests read).
type Run struct {
	ID         string          `json:"id"`
	Status     string          `json:"status"`
	Attempt    int             `json:"attempt"`
	WorkerID   *string         `json:"worker_id"`
	Result     json.RawMessage `json:"result"`
	Error      *string         `json:"error"`
	CreatedAt  *time.Time      `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at"`
}

// Terminal reports whether the run's status is final.
func (r Run) Terminal() bool { return Terminal(r.Status) }

// Terminal reports whether status is a final one.
func Terminal(status string) bool {
	switch status {
	case "succeeded", "failed", "cancelled", "timed_out", "skipped":
		return true
	}
	return false
}

// Wait long-polls until the run is terminal.
func (a API) Wait(id string, within time.Duration) Run {
	a.T.Helper()
	deadline := time.Now().Add(within)
	for {
		var r Run
		if code := a.Do("GET", "/api/v1/runs/"+id+"/wait?timeout=10s", nil, &r); code != 200 {
			a.T.Fatalf("wait %s: HTTP %d", id, code)
		}
		if r.Terminal() {
			return r
		}
		if time.Now().After(deadline) {
			a.T.Fatalf("run %s still %s after %v", id, r.Status, within)
		}
	}
}

// List returns every run matching query (e.g. "status=running"), following
// the cursor, or an error if the server does not answer.
func (a API) List(query string) ([]Run, error) { return ListOf[Run](a, query) }

// ListOf is List decoding each run into a T, for a test that reads fields
// Run does not have.
func ListOf[T any](a API, query string) ([]T, error) {
	var all []T
	cursor := ""
	for {
		var page struct {
			Items      []T    `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		q := "limit=1000&cursor=" + url.QueryEscape(cursor)
		if query != "" {
			q = strings.TrimSuffix(query, "&") + "&" + q
		}
		code, err := a.TryWithin(30*time.Second, "GET", "/api/v1/runs?"+q, nil, &page)
		if err != nil {
			return nil, err
		}
		if code != 200 {
			return nil, fmt.Errorf("list runs ?%s: HTTP %d", q, code)
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// MustList is List that fails the test on an error.
func (a API) MustList(query string) []Run {
	a.T.Helper()
	return MustListOf[Run](a, query)
}

// MustListOf is ListOf that fails the test on an error.
func MustListOf[T any](a API, query string) []T {
	a.T.Helper()
	runs, err := ListOf[T](a, query)
	if err != nil {
		a.T.Fatal(err)
	}
	return runs
}

// ClusterJSON is GET /api/v1/cluster.
type ClusterJSON struct {
	Leader  string `json:"leader"`
	Term    int64  `json:"term"`
	Servers []struct {
		ID    string `json:"id"`
		Alive bool   `json:"alive"`
	} `json:"servers"`
}

// Cluster is GET /api/v1/cluster, or an error if the server does not
// answer.
func (a API) Cluster() (ClusterJSON, error) {
	var c ClusterJSON
	code, err := a.TryWithin(10*time.Second, "GET", "/api/v1/cluster", nil, &c)
	if err == nil && code != 200 {
		err = fmt.Errorf("GET /api/v1/cluster: HTTP %d", code)
	}
	return c, err
}

// LogLine is a run's log line as GET /api/v1/runs/{id}/logs shows it.
type LogLine struct {
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Stream  string    `json:"stream"`
	Level   string    `json:"level"`
	Text    string    `json:"text"`
	Attempt int       `json:"attempt"`
}

// Logs returns every log line of a run, following the cursor, and the
// bytes the server sent; an error if the server does not answer, answers
// other than 200, or sends what is not valid UTF-8 JSON (Go's decoder
// would silently replace invalid bytes: they are checked first).
func (a API) Logs(id string) (lines []LogLine, size int, err error) {
	after := int64(0)
	for {
		var raw json.RawMessage
		q := fmt.Sprintf("/api/v1/runs/%s/logs?limit=10000&after=%d", url.PathEscape(id), after)
		code, err := a.TryWithin(30*time.Second, "GET", q, nil, &raw)
		if err != nil {
			return lines, size, err
		}
		if code != 200 {
			return lines, size, fmt.Errorf("GET %s: HTTP %d: %.200s", q, code, raw)
		}
		size += len(raw)
		if !utf8.Valid(raw) {
			return lines, size, fmt.Errorf("GET %s: the answer is not valid UTF-8", q)
		}
		var page struct {
			Items      []LogLine `json:"items"`
			NextCursor string    `json:"next_cursor"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return lines, size, fmt.Errorf("GET %s: %w", q, err)
		}
		lines = append(lines, page.Items...)
		if page.NextCursor == "" || len(page.Items) == 0 {
			return lines, size, nil
		}
		after = page.Items[len(page.Items)-1].Seq
	}
}

// Get returns the run as stored now.
func (a API) Get(id string) Run {
	a.T.Helper()
	var r Run
	if code := a.Do("GET", "/api/v1/runs/"+id, nil, &r); code != 200 {
		a.T.Fatalf("get %s: HTTP %d", id, code)
	}
	return r
}

// WaitStatus reads the run until it is in status (failing the test if it
// ends in another, or is not there within the time).
func (a API) WaitStatus(id, status string, within time.Duration) Run {
	a.T.Helper()
	deadline := time.Now().Add(within)
	for {
		r := a.Get(id)
		switch {
		case r.Status == status:
			return r
		case r.Terminal():
			a.T.Fatalf("run %s ended %s while waiting for %s", id, r.Status, status)
		case time.Now().After(deadline):
			a.T.Fatalf("run %s still %s after %v (waiting for %s)", id, r.Status, within, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
