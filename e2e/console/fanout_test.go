package console_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// TestConsoleFanoutGrid: a parent's page shows its children as a grid, a
// cell per shard with its state, and the join state in a sentence — seven
// of eight done, one running on the worker.
func TestConsoleFanoutGrid(t *testing.T) {
	e := start(t)
	spec := map[string]any{"type": "shell", "group": "default", "shards": 8,
		"payload": map[string]string{"cmd": `if [ "$PLUTO_SHARD" = 6 ]; then sleep 60; fi`}}
	var p proc.Run
	if code := e.api.Do("POST", "/api/v1/runs", spec, &p); code != 201 {
		t.Fatalf("submit: HTTP %d", code)
	}
	t.Cleanup(func() { e.api.Do("POST", "/api/v1/runs/"+p.ID+"/cancel", nil, nil) })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var got struct {
			Fanout struct{ Ended int } `json:"fanout"`
		}
		if code := e.api.Do("GET", "/api/v1/runs/"+p.ID, nil, &got); code == 200 && got.Fanout.Ended == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("seven children did not end within 30s")
		}
	}

	ctx := browser(t)
	signIn(t, ctx, e.base, proc.Token(t))
	do(t, ctx, "the parent's grid", 30*time.Second,
		chromedp.Navigate(e.base+"/runs/"+p.ID),
		chromedp.WaitVisible(chromedp.ID("shards")),
		chromedp.WaitVisible(chromedp.Search(`#shards a.cell[data-shard="6"][data-status="running"]`)))
	if n := value(t, ctx, "count the cells", chromedp.Evaluate[int](`document.querySelectorAll("#shards a.cell").length`)); n != 8 {
		t.Fatalf("%d cells, want 8", n)
	}
	if n := value(t, ctx, "count the succeeded", chromedp.Evaluate[int](`document.querySelectorAll('#shards a.cell[data-status="succeeded"]').length`)); n != 7 {
		t.Errorf("%d cells succeeded, want 7", n)
	}
	state := value(t, ctx, "read the join state", chromedp.Text(chromedp.ID("join-state")))
	if !strings.Contains(state, "7 of 8 done") || !strings.Contains(state, "1 running on w1") {
		t.Errorf("join state %q, want 7 of 8 done, 1 running on w1", state)
	}
	label := value(t, ctx, "read a cell", chromedp.Evaluate[string](`document.querySelector('#shards a.cell[data-shard="6"]').getAttribute("aria-label")`))
	if !strings.Contains(label, "shard 6") || !strings.Contains(label, "running") || !strings.Contains(label, "w1") {
		t.Errorf("cell label %q", label)
	}
}
