package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// fakeRunAPI answers the API routes the run page reads: run r3 took three
// attempts, r1 one.
func fakeRunAPI(t *testing.T, calls *[]string) http.Handler {
	mux := http.NewServeMux()
	run := func(id string, attempt int, extra map[string]any) map[string]any {
		r := map[string]any{"id": id, "type": "t", "group": "g", "status": "succeeded", "attempt": attempt, "max_attempts": 3,
			"created_at": "2026-11-21T08:00:00Z", "run_at": "2026-11-21T08:00:00Z", "dispatched_at": "2026-11-21T08:00:20Z",
			"started_at": "2026-11-21T08:00:21Z", "finished_at": "2026-11-21T08:00:22Z", "worker_id": "w-2"}
		for k, v := range extra {
			r[k] = v
		}
		return r
	}
	answer := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /api/v1/runs/r3", func(w http.ResponseWriter, r *http.Request) { answer(w, run("r3", 3, nil)) })
	mux.HandleFunc("GET /api/v1/runs/r1", func(w http.ResponseWriter, r *http.Request) {
		answer(w, run("r1", 1, map[string]any{"status": "queued", "started_at": nil, "finished_at": nil, "dispatched_at": nil}))
	})
	mux.HandleFunc("GET /api/v1/runs/{id}/attempts", func(w http.ResponseWriter, r *http.Request) {
		answer(w, map[string]any{"attempts": []any{
			map[string]any{"attempt": 1, "worker_id": "w-1", "dispatched_at": "2026-11-21T08:00:01Z", "started_at": "2026-11-21T08:00:02Z",
				"ended_at": "2026-11-21T08:00:03Z", "outcome": "failed", "error": "exit <3>"},
			map[string]any{"attempt": 2, "dispatched_at": "2026-11-21T08:00:10Z", "ended_at": "2026-11-21T08:00:12Z", "outcome": "lost"},
			map[string]any{"attempt": 3, "worker_id": "w-2", "dispatched_at": "2026-11-21T08:00:20Z", "started_at": "2026-11-21T08:00:21Z",
				"ended_at": "2026-11-21T08:00:22Z", "outcome": "succeeded"},
		}})
	})
	mux.HandleFunc("GET /api/v1/runs/{id}/logs", func(w http.ResponseWriter, r *http.Request) { answer(w, map[string]any{"items": []any{}}) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*calls = append(*calls, r.URL.Path)
		mux.ServeHTTP(w, r)
	})
}

func TestRunPageAttempts(t *testing.T) {
	var calls []string
	c, err := New(Options{API: fakeRunAPI(t, &calls), AuthDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, lang string) string {
		t.Helper()
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Accept-Language", lang)
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	page := get("/runs/r3?part=summary", "en")
	steps := regexp.MustCompile(`(?s)<ol id="run-timeline".*?</ol>`).FindString(page)
	for _, want := range []string{`aria-label="Timeline"`, `Created</span> <time datetime="2026-11-21T08:00:00Z">2026-11-21 08:00:00</time>`,
		`Dispatched</span> <time datetime="2026-11-21T08:00:20Z">`, `Started</span> <time`, `Finished</span> <time datetime="2026-11-21T08:00:22Z">`} {
		if !strings.Contains(steps, want) {
			t.Errorf("timeline lacks %q:\n%s", want, steps)
		}
	}
	table := regexp.MustCompile(`(?s)<table id="run-attempts".*?</table>`).FindString(page)
	rows := regexp.MustCompile(`(?s)<tr>.*?</tr>`).FindAllString(table, -1)
	if !strings.Contains(table, "<caption>Attempts</caption>") || len(rows) != 4 {
		t.Fatalf("attempts table (%d rows):\n%s", len(rows), table)
	}
	if n := strings.Count(rows[0], `<th scope="col">`); n != 7 {
		t.Errorf("header has %d column headers, want 7: %s", n, rows[0])
	}
	cell, tag := regexp.MustCompile(`(?s)<t[hd][^>]*>(.*?)</t[hd]>`), regexp.MustCompile(`<[^>]+>`)
	text := func(row string) string {
		var cells []string
		for _, m := range cell.FindAllStringSubmatch(row, -1) {
			cells = append(cells, strings.TrimSpace(tag.ReplaceAllString(m[1], "")))
		}
		return strings.Join(cells, "|")
	}
	for i, want := range []string{
		"1|w-1|2026-11-21 08:00:01|2026-11-21 08:00:02|2026-11-21 08:00:03|failed|exit &lt;3&gt;",
		"2||2026-11-21 08:00:10||2026-11-21 08:00:12|lost|",
		"3|w-2|2026-11-21 08:00:20|2026-11-21 08:00:21|2026-11-21 08:00:22|succeeded|",
	} {
		if got := text(rows[i+1]); got != want {
			t.Errorf("row %d: %s, want %s", i+1, got, want)
		}
	}
	if !strings.Contains(rows[1], `<th scope="row">1</th>`) || !strings.Contains(rows[2], `class="status st-lost"`) {
		t.Errorf("rows: %s %s", rows[1], rows[2])
	}
	if zh := get("/runs/r3?part=summary", "zh-CN"); !strings.Contains(zh, "<caption>历次尝试</caption>") || !strings.Contains(zh, "丢失") {
		t.Error("the Chinese page lacks the attempts caption or outcome")
	}

	// One attempt: no table, and the attempts are not read; steps not
	// reached show as such.
	calls = nil
	page = get("/runs/r1", "en")
	if strings.Contains(page, "run-attempts") {
		t.Error("a run with one attempt shows an attempts table")
	}
	for _, p := range calls {
		if strings.HasSuffix(p, "/attempts") {
			t.Errorf("the attempts of a run with one attempt were read: %v", calls)
		}
	}
	if !strings.Contains(page, `<li><span class="step-name">Dispatched</span> <span class="step-none">—</span></li>`) {
		t.Errorf("a step not reached:\n%s", regexp.MustCompile(`(?s)<ol id="run-timeline".*?</ol>`).FindString(page))
	}
}
