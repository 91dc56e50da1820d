package console_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// TestConsoleDependenciesAndBackfill: a job's page shows its upstream and
// downstream jobs with their runs for the job's latest slot; its backfill
// form previews the plan (a dry run) and starts the backfill, whose page
// follows it to done.
func TestConsoleDependenciesAndBackfill(t *testing.T) {
	e := start(t)
	for _, j := range []map[string]any{
		{"name": "extract", "depends_on": []string{}},
		{"name": "transform", "depends_on": []string{"extract"}},
		{"name": "publish", "depends_on": []string{"transform"}},
	} {
		name := j["name"].(string)
		j["type"], j["group"], j["payload"] = "shell", "default", map[string]string{"cmd": "echo " + name}
		if code := e.api.Do("PUT", "/api/v1/jobs/"+name, j, nil); code != 201 {
			t.Fatalf("PUT %s: HTTP %d", name, code)
		}
	}
	var r proc.Run
	if code := e.api.Do("POST", "/api/v1/jobs/extract/trigger", map[string]any{"logical_time": "2026-11-30T00:00:00Z"}, &r); code != 201 {
		t.Fatalf("trigger: HTTP %d", code)
	}
	e.api.Wait(r.ID, time.Minute)

	ctx := browser(t)
	signIn(t, ctx, e.base, proc.Token(t))
	do(t, ctx, "the dependency card", 20*time.Second,
		chromedp.Navigate(e.base+"/jobs/transform"),
		chromedp.WaitVisible(chromedp.ID("depgraph")),
		chromedp.WaitVisible(chromedp.Search(`//*[@id="depgraph"]//a[@href="/jobs/extract"]`)),
		chromedp.WaitVisible(chromedp.Search(`//*[@id="depgraph"]//a[@href="/jobs/publish"]`)))
	card := value(t, ctx, "read the card", chromedp.Text(chromedp.ID("depgraph")))
	if !strings.Contains(card, "succeeded") {
		t.Errorf("the card %q does not show extract's run for the slot as succeeded", card)
	}

	do(t, ctx, "the grid of the graph", 20*time.Second,
		chromedp.Click(chromedp.ID("grid-link")),
		chromedp.WaitVisible(chromedp.ID("grid")))
	row := value(t, ctx, "read extract's row", chromedp.Text(chromedp.CSS(`#grid tr[data-job="extract"]`)))
	if !strings.Contains(row, "succeeded") && !strings.Contains(row, "Succeeded") {
		t.Errorf("extract's row in the grid %q shows no succeeded run", row)
	}

	do(t, ctx, "preview a backfill", 30*time.Second,
		chromedp.Navigate(e.base+"/jobs/extract"),
		chromedp.WaitVisible(chromedp.ID("bf-from")),
		chromedp.SendKeys(chromedp.ID("bf-from"), "2026-11-01"),
		chromedp.SendKeys(chromedp.ID("bf-to"), "2026-11-30"),
		chromedp.SetValue(chromedp.ID("bf-parallel"), "4"),
		chromedp.Click(chromedp.ID("bf-cascade")),
		chromedp.Click(chromedp.ID("bf-preview")),
		chromedp.WaitVisible(chromedp.ID("bf-summary")))
	summary := value(t, ctx, "read the plan", chromedp.Text(chromedp.ID("bf-summary")))
	if !strings.Contains(summary, "30 slots: 29 to create, 0 to rerun, 1 kept") {
		t.Fatalf("the plan says %q, want 30 slots, 29 to create and the triggered one kept", summary)
	}
	do(t, ctx, "start it and follow it to done", 120*time.Second,
		chromedp.Click(chromedp.ID("bf-start")),
		chromedp.WaitVisible(chromedp.ID("bf-progress")),
		chromedp.WaitVisible(chromedp.Search(`//*[@id="bf-state"][contains(., "done")]`)))
	progress := value(t, ctx, "read the progress", chromedp.Text(chromedp.ID("bf-progress")))
	for _, job := range []string{"extract", "transform", "publish"} {
		if !strings.Contains(progress, job+"\t30") && !strings.Contains(progress, job+" 30") {
			t.Errorf("progress %q: want %s with 30 done", progress, job)
		}
	}
}

// A job's alert rules and the alert a failed run raised, on the job's
// page and on the overview.
func TestConsoleAlerts(t *testing.T) {
	e := start(t)
	job := map[string]any{"type": "shell", "group": "default", "payload": map[string]string{"cmd": "exit 3"},
		"alerts": map[string]any{"on": []string{"failed"}, "max_duration": "1h"}}
	if code := e.api.Do("PUT", "/api/v1/jobs/flaky", job, nil); code != 201 {
		t.Fatalf("PUT flaky: HTTP %d", code)
	}
	var r proc.Run
	if code := e.api.Do("POST", "/api/v1/jobs/flaky/trigger", nil, &r); code != 201 {
		t.Fatalf("trigger: HTTP %d", code)
	}
	e.api.Wait(r.ID, time.Minute)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var l struct{ Items []map[string]any }
		if code := e.api.Do("GET", "/api/v1/alerts", nil, &l); code == 200 && len(l.Items) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no alert stored for the failed run")
		}
	}

	ctx := browser(t)
	signIn(t, ctx, e.base, proc.Token(t))
	sel := `#alerts tr[data-rule="failed"]`
	do(t, ctx, "the alert on the overview", 30*time.Second,
		chromedp.Navigate(e.base+"/"),
		chromedp.WaitVisible(chromedp.ID("h-alerts")),
		chromedp.WaitVisible(chromedp.Search(sel)))
	row := value(t, ctx, "read the alert", chromedp.Text(chromedp.Search(sel)))
	if !strings.Contains(row, "flaky") || !strings.Contains(row, r.ID) {
		t.Errorf("the overview's alert %q does not name the job and its run %s", row, r.ID)
	}
	do(t, ctx, "the job's alerts", 20*time.Second,
		chromedp.Navigate(e.base+"/jobs/flaky"),
		chromedp.WaitVisible(chromedp.ID("alert-rules")),
		chromedp.WaitVisible(chromedp.Search(sel)))
	rules := value(t, ctx, "read the rules", chromedp.Text(chromedp.ID("alert-rules")))
	if !strings.Contains(rules, "failed") || !strings.Contains(rules, "1h") {
		t.Errorf("the job's rules read %q, want failed and 1h", rules)
	}
}
