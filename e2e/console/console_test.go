package console_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// env is a server and a shell worker as processes, and the console's URL.
type env struct {
	api  proc.API
	base string
}

func start(t *testing.T) env {
	dir := t.TempDir()
	_, httpAddr, grpcAddr := proc.StartServer(t, "server", "--store", "sqlite:"+filepath.Join(dir, "pluto.db"))
	w := proc.Start(t, "worker", "worker", "--server", grpcAddr, "--id", "w1", "--capacity", "4", "--shell")
	w.Await(20*time.Second, "connected")
	return env{api: proc.NewAPI(t, httpAddr), base: "http://" + httpAddr}
}

func (e env) submit(t *testing.T, cmd string) proc.Run {
	t.Helper()
	var r proc.Run
	if code := e.api.Do("POST", "/api/v1/runs", map[string]any{"type": "shell", "group": "default", "payload": map[string]string{"cmd": cmd}}, &r); code != 201 {
		t.Fatalf("submit %q: HTTP %d", cmd, code)
	}
	return r
}

// token creates a token of role and returns its secret.
func (e env) token(t *testing.T, name, role string) string {
	t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	if code := e.api.Do("POST", "/api/v1/tokens", map[string]any{"name": name, "role": role}, &out); code != 201 || out.Token == "" {
		t.Fatalf("create %s token: HTTP %d", role, code)
	}
	return out.Token
}

func signIn(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	do(t, ctx, "sign in", 20*time.Second,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("logout")),
	)
}

// acceptConfirms makes the page's confirm() dialogs answer yes (what a
// user clicking OK does).
var acceptConfirms = chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`)

// TestConsoleOperatorFlow: sign in, watch a submitted run appear and
// finish without a reload, follow a live log, cancel a running run from
// its page, bulk-retry failed runs, switch language, sign out.
func TestConsoleOperatorFlow(t *testing.T) {
	e := start(t)
	ctx := browser(t)
	signIn(t, ctx, e.base, proc.Token(t))

	// A run submitted from the API appears in the open list and finishes
	// there, with no reload.
	do(t, ctx, "open runs", 10*time.Second, chromedp.Navigate(e.base+"/runs"), chromedp.WaitVisible(chromedp.ID("rows")))
	r := e.submit(t, "sleep 1; echo done")
	do(t, ctx, "run appears and succeeds live", 20*time.Second,
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-run=%q][data-status="succeeded"]`, r.ID))))

	// A log followed live: lines printed after the page opened arrive.
	r = e.submit(t, `for i in 1 2 3 4 5; do echo "tick-$i"; sleep 0.4; done`)
	do(t, ctx, "follow the log", 20*time.Second,
		chromedp.Navigate(e.base+"/runs/"+r.ID),
		chromedp.WaitVisible(chromedp.ID("log")),
		chromedp.WaitVisible(chromedp.Search(`//pre[@id="log"]/span[contains(., "tick-5")]`)),
		chromedp.WaitVisible(chromedp.CSS(`#run-status[data-status="succeeded"]`)))

	// Cancel a running run from its page (the confirm is accepted).
	r = e.submit(t, "echo started; sleep 60")
	e.api.WaitStatus(r.ID, "running", 20*time.Second)
	do(t, ctx, "cancel from the run page", 20*time.Second,
		chromedp.Navigate(e.base+"/runs/"+r.ID),
		chromedp.WaitVisible(chromedp.ID("cancel")),
		acceptConfirms,
		chromedp.Click(chromedp.ID("cancel")),
		chromedp.WaitVisible(chromedp.CSS(`#run-status[data-status="cancelled"]`)))
	if got := e.api.Wait(r.ID, 10*time.Second); got.Status != "cancelled" {
		t.Fatalf("cancelled from the console: the API says %s", got.Status)
	}

	// Bulk retry: two failed runs selected and retried.
	f1, f2 := e.submit(t, "exit 3"), e.submit(t, "exit 4")
	e.api.Wait(f1.ID, 20*time.Second)
	e.api.Wait(f2.ID, 20*time.Second)
	do(t, ctx, "bulk retry", 20*time.Second,
		chromedp.Navigate(e.base+"/runs?status=failed"),
		chromedp.WaitVisible(chromedp.ID("select-all")),
		chromedp.Click(chromedp.ID("select-all")),
		chromedp.Click(chromedp.ID("bulk-retry")),
		chromedp.WaitVisible(chromedp.CSS(`#rows .flash`)))
	if flash := value(t, ctx, "read the note", chromedp.Text(chromedp.CSS(`#rows .flash`))); !strings.Contains(flash, "Retried 2 of 2") {
		t.Fatalf("bulk retry note: %q", flash)
	}
	for _, id := range []string{f1.ID, f2.ID} {
		if got := e.api.Wait(id, 20*time.Second); got.Attempt < 2 {
			t.Fatalf("run %s was not retried (attempt %d)", id, got.Attempt)
		}
	}

	// Language: the switch turns the page Chinese, and it stays so.
	do(t, ctx, "switch language", 20*time.Second,
		chromedp.Navigate(e.base+"/runs"),
		chromedp.WaitVisible(chromedp.ID("lang-switch")),
		// What choosing in the list does (console.js submits on change).
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("lang-switch"); s.value = "zh"; s.form.submit(); })()`),
		chromedp.WaitVisible(chromedp.Search(`//h1[.="运行记录"]`)),
		chromedp.Navigate(e.base+"/"),
		chromedp.WaitVisible(chromedp.CSS("h1")))
	if title := value(t, ctx, "overview title", chromedp.Text(chromedp.CSS("h1"))); title != "概览" {
		t.Fatalf("after switching to Chinese the overview is titled %q", title)
	}

	// Sign out: back to the sign-in page, and the console is closed.
	do(t, ctx, "sign out", 20*time.Second,
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.Navigate(e.base+"/runs"),
		chromedp.WaitVisible(chromedp.ID("token")))
}

// TestConsoleRunAttempts: a run that failed once and succeeded on its
// retry shows both attempts on its page, with the worker and the error of
// the first, and its timeline.
func TestConsoleRunAttempts(t *testing.T) {
	e := start(t)
	var r proc.Run
	if code := e.api.Do("POST", "/api/v1/runs", map[string]any{"type": "shell", "group": "default", "retries": 1,
		"payload": map[string]string{"cmd": `[ "$PLUTO_ATTEMPT" -gt 1 ] || exit 7; echo second`}}, &r); code != 201 {
		t.Fatalf("submit: HTTP %d", code)
	}
	if got := e.api.Wait(r.ID, 30*time.Second); got.Status != "succeeded" || got.Attempt != 2 {
		t.Fatalf("the run ended %s at attempt %d, want succeeded at 2", got.Status, got.Attempt)
	}
	ctx := browser(t)
	signIn(t, ctx, e.base, proc.Token(t))
	do(t, ctx, "open the run", 20*time.Second,
		chromedp.Navigate(e.base+"/runs/"+r.ID),
		chromedp.WaitVisible(chromedp.CSS(`#run-attempts tbody tr:nth-child(2)`)),
		chromedp.WaitVisible(chromedp.CSS(`#run-timeline`)))
	first := value(t, ctx, "read the first attempt", chromedp.Text(chromedp.CSS(`#run-attempts tbody tr:first-child`)))
	for _, want := range []string{"w1", "exit code 7"} {
		if !strings.Contains(first, want) {
			t.Errorf("the first attempt's row %q lacks %q", first, want)
		}
	}
	if n := value(t, ctx, "count rows", chromedp.Evaluate[int](`document.querySelectorAll("#run-attempts tbody tr").length`)); n != 2 {
		t.Errorf("%d attempt rows, want 2", n)
	}
}

// TestConsoleViewerCannotCancel: a viewer sees no cancel button, and a
// cancel it posts anyway (with its own valid CSRF token) is refused 403.
func TestConsoleViewerCannotCancel(t *testing.T) {
	e := start(t)
	viewer := e.token(t, "viewer-1", "viewer")
	r := e.submit(t, "sleep 60")
	e.api.WaitStatus(r.ID, "running", 20*time.Second)

	ctx := browser(t)
	signIn(t, ctx, e.base, viewer)
	do(t, ctx, "viewer opens a running run", 20*time.Second,
		chromedp.Navigate(e.base+"/runs/"+r.ID),
		chromedp.WaitVisible(chromedp.CSS(`#run-status[data-status="running"]`)))
	if n := value(t, ctx, "count buttons", chromedp.Evaluate[int](`document.querySelectorAll("#cancel, #retry, #again").length`)); n != 0 {
		t.Fatalf("a viewer sees %d action buttons", n)
	}
	status := value(t, ctx, "post a cancel", chromedp.Evaluate[int](fmt.Sprintf(`(async () => {
		const csrf = document.querySelector('meta[name="csrf-token"]').content;
		const res = await fetch("/runs/%s/cancel", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "csrf=" + encodeURIComponent(csrf)});
		return res.status;
	})()`, r.ID), chromedp.EvalAwaitPromise))
	if status != 403 {
		t.Fatalf("a viewer's cancel answered %d, want 403", status)
	}
	if got := e.api.Get(r.ID); got.Status != "running" {
		t.Fatalf("after the viewer's refused cancel the run is %s", got.Status)
	}
}

// TestConsoleJobsAndWorkers: create a job from the form (its schedule
// previewed as it is typed), see it listed, and drain a worker and resume
// it from the workers page.
func TestConsoleJobsAndWorkers(t *testing.T) {
	e := start(t)
	ctx := browser(t)
	signIn(t, ctx, e.base, proc.Token(t))

	do(t, ctx, "fill the job form", 20*time.Second,
		chromedp.Navigate(e.base+"/jobs/new"),
		chromedp.WaitVisible(chromedp.ID("f-name")),
		chromedp.SendKeys(chromedp.ID("f-name"), "report"),
		chromedp.SendKeys(chromedp.ID("f-type"), "shell"),
		chromedp.SendKeys(chromedp.ID("f-schedule"), "0 30 2 * * ?"),
		chromedp.WaitVisible(chromedp.CSS(`#next-fires li:nth-child(10)`)))
	first := value(t, ctx, "read the preview", chromedp.Text(chromedp.CSS(`#next-fires li:first-child`)))
	if !strings.Contains(first, "02:30:00") {
		t.Fatalf("the preview's first fire time is %q, want one at 02:30:00", first)
	}
	do(t, ctx, "a bad schedule is explained", 20*time.Second,
		chromedp.SendKeys(chromedp.ID("f-schedule"), " nonsense"),
		chromedp.WaitVisible(chromedp.ID("preview-error")))
	do(t, ctx, "save the job", 20*time.Second,
		chromedp.SetValue(chromedp.ID("f-schedule"), "0 30 2 * * ?"),
		chromedp.SetValue(chromedp.ID("f-payload"), `{"cmd": "echo report"}`),
		chromedp.Click(chromedp.ID("save-job")),
		chromedp.WaitVisible(chromedp.Search(`//h1[contains(., "report")]`)),
		chromedp.Navigate(e.base+"/jobs"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-job="report"]`)))
	var job struct {
		Schedule string `json:"schedule"`
	}
	if code := e.api.Do("GET", "/api/v1/jobs/report", nil, &job); code != 200 || job.Schedule != "0 30 2 * * ?" {
		t.Fatalf("the job saved from the form: HTTP %d, schedule %q", code, job.Schedule)
	}
	editJob(t, ctx, e)

	do(t, ctx, "drain the worker", 20*time.Second,
		chromedp.Navigate(e.base+"/workers"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-worker="w1"] button[data-action="drain"]`)),
		chromedp.Click(chromedp.CSS(`tr[data-worker="w1"] button[data-action="drain"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-worker="w1"][data-draining="true"]`)))
	var w struct {
		Draining bool `json:"draining"`
	}
	if code := e.api.Do("GET", "/api/v1/workers/w1", nil, &w); code != 200 || !w.Draining {
		t.Fatalf("after drain from the console: HTTP %d, draining %v", code, w.Draining)
	}
	do(t, ctx, "resume the worker", 20*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`tr[data-worker="w1"] button[data-action="resume"]`)),
		chromedp.Click(chromedp.CSS(`tr[data-worker="w1"] button[data-action="resume"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-worker="w1"][data-draining="false"]`)))
}

// editJob edits the job "report": with the form (what the form does not
// show, such as retention, is kept), then as YAML, where a field the
// server does not know is refused by name.
func editJob(t *testing.T, ctx context.Context, e env) {
	if code := e.api.Do("PUT", "/api/v1/jobs/report", map[string]any{"type": "shell", "group": "default",
		"schedule": "0 30 2 * * ?", "payload": map[string]string{"cmd": "echo report"}, "keep": "30d", "keep_last": 5}, nil); code != 200 {
		t.Fatalf("set the job's retention: HTTP %d", code)
	}
	do(t, ctx, "edit with the form", 20*time.Second,
		chromedp.Navigate(e.base+"/jobs/report"),
		chromedp.WaitVisible(chromedp.ID("f-schedule")),
		chromedp.SetValue(chromedp.ID("f-schedule"), "0 45 2 * * ?"),
		chromedp.Click(chromedp.ID("save-job")),
		chromedp.WaitVisible(chromedp.Search(`//input[@id="f-schedule" and @value="0 45 2 * * ?"]`)))
	var job struct {
		Schedule string  `json:"schedule"`
		Retries  int     `json:"retries"`
		Keep     *string `json:"keep"`
		KeepLast int     `json:"keep_last"`
	}
	if code := e.api.Do("GET", "/api/v1/jobs/report", nil, &job); code != 200 || job.Schedule != "0 45 2 * * ?" ||
		job.Keep == nil || *job.Keep != "30d" || job.KeepLast != 5 {
		t.Fatalf("after editing with the form: HTTP %d, %+v (keep %v)", code, job, job.Keep)
	}
	yaml := value(t, ctx, "read the YAML", chromedp.Value(chromedp.ID("f-yaml")))
	if !strings.Contains(yaml, "keep: 30d") || !strings.Contains(yaml, "0 45 2 * * ?") {
		t.Fatalf("the YAML editor shows:\n%s", yaml)
	}
	do(t, ctx, "a field the server does not know", 20*time.Second,
		chromedp.Click(chromedp.CSS(`#yaml-editor summary`)),
		chromedp.SetValue(chromedp.ID("f-yaml"), yaml+"colour: red\n"),
		chromedp.Click(chromedp.ID("save-yaml")),
		chromedp.WaitVisible(chromedp.CSS(`#form-error[data-field="yaml"]`)))
	if msg := value(t, ctx, "read the error", chromedp.Text(chromedp.ID("form-error"))); !strings.Contains(msg, "colour") {
		t.Fatalf("the YAML error does not name the field: %q", msg)
	}
	do(t, ctx, "save as YAML", 20*time.Second,
		chromedp.SetValue(chromedp.ID("f-yaml"), strings.Replace(yaml, "retries: 0", "retries: 2", 1)),
		chromedp.Click(chromedp.ID("save-yaml")),
		chromedp.WaitVisible(chromedp.Search(`//input[@id="f-retries" and @value="2"]`)))
	if code := e.api.Do("GET", "/api/v1/jobs/report", nil, &job); code != 200 || job.Retries != 2 || job.KeepLast != 5 {
		t.Fatalf("after saving as YAML: HTTP %d, %+v", code, job)
	}
}

// TestConsoleCancelAllMatching: "cancel all matching" shows how many runs
// the filter matches, and cancels exactly those once confirmed.
func TestConsoleCancelAllMatching(t *testing.T) {
	e := start(t)
	var ids []string
	for range 3 {
		ids = append(ids, e.submit(t, "sleep 60").ID)
	}
	for _, id := range ids {
		e.api.WaitStatus(id, "running", 20*time.Second)
	}
	done := e.submit(t, "true")
	e.api.Wait(done.ID, 20*time.Second)

	ctx := browser(t)
	signIn(t, ctx, e.base, proc.Token(t))
	do(t, ctx, "ask to cancel the running runs", 20*time.Second,
		chromedp.Navigate(e.base+"/runs?status=running"),
		chromedp.Click(chromedp.ID("cancel-matching")),
		chromedp.WaitVisible(chromedp.ID("match-count")))
	if n := value(t, ctx, "read the count", chromedp.Evaluate[string](`document.getElementById("match-count").dataset.count`)); n != "3" {
		t.Fatalf("the confirmation counts %s runs, want 3", n)
	}
	do(t, ctx, "confirm", 20*time.Second,
		chromedp.Click(chromedp.ID("match-confirm")),
		chromedp.WaitVisible(chromedp.ID("match-done")))
	for _, id := range ids {
		if got := e.api.Wait(id, 20*time.Second); got.Status != "cancelled" {
			t.Fatalf("run %s is %s after cancel-all", id, got.Status)
		}
	}
	if got := e.api.Get(done.ID); got.Status != "succeeded" {
		t.Fatalf("a run outside the filter became %s", got.Status)
	}
}
