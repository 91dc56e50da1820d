package console_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// TestConsoleScreenshots opens every page of a console with some history
// and takes a picture of it: light and dark, desktop and phone width. Every
// page must render (the test fails on a page that does not). The pictures
// go to a temporary directory, or to PLUTO_SCREENSHOTS_DIR (make
// screenshots: docs/console/).
func TestConsoleScreenshots(t *testing.T) {
	e := start(t)
	seed(t, e)
	ctx := browser(t)
	signIn(t, ctx, e.base, proc.Token(t))
	dir := os.Getenv("PLUTO_SCREENSHOTS_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	failed := e.api.MustList("status=failed")
	pages := []struct{ name, path, ready string }{
		{"overview", "/", "#chart[data-points]"},
		{"runs", "/runs", "#rows"},
		{"run", "/runs/" + failed[0].ID, "#log"},
		{"jobs", "/jobs", "#jobs"},
		{"job", "/jobs/every-20s", "#preview"},
		{"job-new", "/jobs/new", "#f-name"},
		{"failures", "/failures", "#failures"},
		{"workers", "/workers", "#workers"},
		{"cluster", "/cluster", "#leader"},
		{"audit", "/audit", "main table"},
	}
	shoot := func(name string) {
		png := value(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pages {
		do(t, ctx, "open "+p.name, 20*time.Second, chromedp.Navigate(e.base+p.path), chromedp.WaitVisible(chromedp.CSS(p.ready)))
		shoot(p.name)
	}
	do(t, ctx, "dark mode", 20*time.Second, media("prefers-color-scheme", "dark"),
		chromedp.Navigate(e.base+"/runs"), chromedp.WaitVisible(chromedp.CSS("#rows")))
	shoot("runs-dark")
	do(t, ctx, "phone", 20*time.Second, media("prefers-color-scheme", "light"), chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(e.base+"/runs"), chromedp.WaitVisible(chromedp.CSS("#rows")))
	shoot("runs-phone")
}

// media emulates a CSS media feature.
func media(name, val string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: name, Value: val}}})
		return err
	})
}

// seed gives the console something to show: succeeded and failed runs
// with logs, a running one, a scheduled job and a paused one.
func seed(t *testing.T, e env) {
	for i := range 6 {
		e.submit(t, fmt.Sprintf("echo step %d; echo working; sleep 0.%d", i, i))
	}
	for i := range 4 {
		e.submit(t, fmt.Sprintf("echo 'order %d not found' >&2; exit %d", 1000+i, 3+i%2))
	}
	f := e.submit(t, "echo connecting to db; echo 'error: connection refused' >&2; exit 2")
	e.submit(t, "sleep 120")
	for _, j := range []map[string]any{
		{"name": "every-20s", "type": "shell", "group": "default", "schedule": "*/20 * * * * ?", "payload": map[string]string{"cmd": "echo tick"}},
		{"name": "nightly-report", "type": "shell", "group": "default", "schedule": "0 30 2 * * ?", "timezone": "Asia/Shanghai", "paused": true, "payload": map[string]string{"cmd": "echo report"}},
	} {
		if code := e.api.Do("PUT", "/api/v1/jobs/"+j["name"].(string), j, nil); code != 200 && code != 201 {
			t.Fatalf("put job %s: HTTP %d", j["name"], code)
		}
	}
	e.api.Wait(f.ID, 20*time.Second)
}
