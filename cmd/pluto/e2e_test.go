package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBinary builds the pluto binary and checks help and exit codes for
// real.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "pluto")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := func(args ...string) (int, string, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, out.String(), errb.String()
		case errors.As(err, &ee):
			return ee.ExitCode(), out.String(), errb.String()
		}
		t.Fatalf("%v: %v", args, err)
		return 0, "", ""
	}
	code, out, _ := run("--help")
	if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "submit") || !strings.Contains(out, "worker") {
		t.Errorf("--help: %d\n%s", code, out)
	}
	code, _, errOut := run("submit", "--payload", "{}")
	if code != 2 || !strings.Contains(errOut, `"type"`) {
		t.Errorf("usage error: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = run("frobnicate")
	if code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = run("run", "get", "r_1", "--server", "http://127.0.0.1:1")
	if code != 1 || !strings.Contains(errOut, "cannot reach") {
		t.Errorf("unreachable: exit %d, stderr %q", code, errOut)
	}
	// The logs benchmark runs its printer on a worker process of its own
	// (this binary's `pluto worker --shell`), whose run is capped.
	code, out, errOut = run("bench", "--mode", "logs", "--runs", "50", "--rate", "200", "--workers", "1", "-o", "json")
	var rep struct {
		Logs struct {
			Process bool  `json:"cap_worker_process"`
			Rounds  int   `json:"cap_rounds"`
			Stored  int   `json:"cap_stored"`
			Dropped int64 `json:"cap_dropped"`
		} `json:"logs"`
	}
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || !rep.Logs.Process || rep.Logs.Rounds != 4 ||
		rep.Logs.Stored != 10001 || rep.Logs.Dropped != 90000 {
		t.Errorf("bench --mode logs: exit %d, %v, %+v\n%s\n%s", code, err, rep.Logs, out, errOut)
	}
}

// startCLI runs a long-running command in the background; cancel ctx to
// stop it and read its exit code from the channel.
func startCLI(t *testing.T, ctx context.Context, args ...string) (*syncBuffer, *syncBuffer, <-chan int) {
	t.Helper()
	out, errb := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	a := newApp(strings.NewReader(""), out, errb, func(string) string { return "" })
	a.reexec = func() error { return errors.New("reexec in a test") }
	go func() { done <- a.run(ctx, args) }()
	return out, errb, done
}

// waitFor polls out until re matches, or fails the test.
func waitFor(t *testing.T, out, errb *syncBuffer, done <-chan int, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		select {
		case code := <-done:
			t.Fatalf("command exited %d before printing %v\nstdout:\n%s\nstderr:\n%s", code, re, out, errb)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("no %v in\n%s\nstderr:\n%s", re, out, errb)
	return nil
}

func waitExit(t *testing.T, what string, done <-chan int, errb *syncBuffer) {
	t.Helper()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("%s exited %d:\n%s", what, code, errb)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not stop", what)
	}
}

// startServerCLI runs pluto server in-process on SQLite in dir, on loopback
// ports: its API URL, its gRPC address, and a function that stops it and
// waits for it to exit (also called at cleanup).
func startServerCLI(t *testing.T, dir string) (httpURL, grpcAddr, token string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tokenFile := filepath.Join(dir, "admin.token")
	out, errb, done := startCLI(t, ctx, "server", "--store", "sqlite:"+filepath.Join(dir, "pluto.db"),
		"--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--heartbeat", "1s", "--log-level", "warn", "--admin-token-file", tokenFile)
	m := waitFor(t, out, errb, done, regexp.MustCompile(`API (http://\S+)/api/v1, gRPC (\S+),`))
	if !strings.Contains(errb.String(), "admin token: plt_") {
		t.Fatalf("the first start printed no admin token:\n%s", errb)
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			waitExit(t, "server", done, errb)
		})
	}
	t.Cleanup(stop)
	return m[1], m[2], strings.TrimSpace(string(b)), stop
}

// TestServerAndWorkerCommands runs pluto server and pluto worker in-process
// and drives them with the client commands.
func TestServerAndWorkerCommands(t *testing.T) {
	dir := t.TempDir()
	httpURL, grpcAddr, token, stopServer := startServerCLI(t, dir)
	env := map[string]string{envServer: httpURL, envToken: token}

	wctx, stopWorker := context.WithCancel(context.Background())
	defer stopWorker()
	_, werr, wdone := startCLI(t, wctx, "worker", "--server", grpcAddr, "--group", "default", "--capacity", "2", "--id", "w-test", "--log-level", "warn", "--token", token)

	r := runCLI(t, env, "submit", "--type", "noop", "--wait", "--wait-timeout", "30s", "-o", "json")
	var run map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &run) != nil || run["status"] != "succeeded" || run["worker_id"] != "w-test" {
		t.Fatalf("submit --wait: %d\n%s\n%s\nworker:\n%s", r.code, r.stdout, r.stderr, werr)
	}
	r = runCLI(t, env, "worker", "ls")
	if r.code != 0 || !strings.Contains(r.stdout, "w-test") || !strings.Contains(r.stdout, "noop") {
		t.Errorf("worker ls: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "shell") || strings.Contains(r.stdout, "http") {
		t.Errorf("a worker without --shell and --http announces shell or http:\n%s", r.stdout)
	}
	r = runCLI(t, env, "run", "ls", "--status", "succeeded")
	if r.code != 0 || !strings.Contains(r.stdout, run["id"].(string)) {
		t.Errorf("run ls: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// This worker has no --shell: a shell run is never taken.
	r = runCLI(t, env, "submit", "--type", "shell", "--payload", `{"cmd":"touch `+filepath.Join(dir, "pwned")+`"}`, "--wait", "--wait-timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stdout, "queued") {
		t.Errorf("shell on a worker without --shell: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Errorf("a worker without --shell ran a shell command")
	}
	r = runCLI(t, env, "run", "get", "r_missing")
	if r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("run get missing: %d %q", r.code, r.stderr)
	}

	stopWorker()
	waitExit(t, "worker", wdone, werr)
	stopServer()
}

// TestWorkerOutboundFlags runs a worker with --http, --http-allow and
// --shell: an http run reaches a loopback server only because it is
// allowed, a refused destination fails at once, and a shell run does not
// see the worker's environment.
func TestWorkerOutboundFlags(t *testing.T) {
	t.Setenv("PLUTO_TEST_WORKER_SECRET", "s3cret")
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pong") }))
	defer target.Close()
	httpURL, grpcAddr, token, stopServer := startServerCLI(t, t.TempDir())
	env := map[string]string{envServer: httpURL, envToken: token}
	wctx, stopWorker := context.WithCancel(context.Background())
	defer stopWorker()
	_, werr, wdone := startCLI(t, wctx, "worker", "--server", grpcAddr, "--capacity", "2", "--id", "w-out", "--token", token,
		"--shell", "--http", "--http-allow", "127.0.0.1/32", "--log-level", "warn")

	submit := func(typ, payload string) map[string]any {
		t.Helper()
		r := runCLI(t, env, "submit", "--type", typ, "--payload", payload, "--wait", "--wait-timeout", "30s", "-o", "json")
		var run map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &run); err != nil {
			t.Fatalf("submit %s: %d\n%s\n%s\nworker:\n%s", typ, r.code, r.stdout, r.stderr, werr)
		}
		return run
	}
	run := submit("http", `{"url":"`+target.URL+`/ping"}`)
	if res, _ := run["result"].(map[string]any); run["status"] != "succeeded" || res["body"] != "pong" {
		t.Errorf("http run to an allowed loopback server: %v", run)
	}
	run = submit("http", `{"url":"http://169.254.169.254/latest/meta-data/"}`)
	if e, _ := run["error"].(string); run["status"] != "failed" || !strings.Contains(e, "link-local address") {
		t.Errorf("http run to the metadata address: %v", run)
	}
	run = submit("shell", `{"cmd":"echo \"[$PLUTO_TEST_WORKER_SECRET]\""}`)
	if res, _ := run["result"].(map[string]any); run["status"] != "succeeded" || res["stdout"] != "[]\n" {
		t.Errorf("shell run sees the worker's environment: %v", run)
	}
	stopWorker()
	waitExit(t, "worker", wdone, werr)
	stopServer()
}

// TestDevCommand runs pluto dev in-process: server plus local worker.
func TestDevCommand(t *testing.T) {
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	out, errb, done := startCLI(t, ctx, "dev", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--log-level", "warn")
	m := waitFor(t, out, errb, done, regexp.MustCompile(`API:\s+(http://\S+)/api/v1`))
	if !strings.Contains(out.String(), "pluto submit --server "+m[1]) {
		t.Errorf("banner has no ready-to-paste submit:\n%s", out)
	}
	// No token given: the CLI finds the one pluto dev wrote to its data
	// directory (the server is on loopback).
	env := map[string]string{envServer: m[1], envData: filepath.Join(dir, "data")}
	r := runCLI(t, env, "submit", "--type", "noop", "--wait", "--wait-timeout", "30s")
	if r.code != 0 || !strings.Contains(r.stdout, "succeeded") {
		t.Fatalf("submit --wait: %d\n%s\n%s\ndev:\n%s", r.code, r.stdout, r.stderr, errb)
	}
	r = runCLI(t, env, "worker", "ls", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"group": "default"`) || !strings.Contains(r.stdout, `"shell"`) {
		t.Errorf("worker ls: %d\n%s", r.code, r.stdout)
	}

	// shell is on in dev: output comes back as the result and as log lines.
	r = runCLI(t, env, "submit", "--type", "shell", "--payload", `{"cmd":"echo hello; echo oops >&2"}`, "--wait", "--wait-timeout", "30s", "-o", "json")
	var run map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &run) != nil || run["status"] != "succeeded" {
		t.Fatalf("shell --wait: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if res, _ := run["result"].(map[string]any); res["stdout"] != "hello\n" || res["exit_code"] != 0.0 {
		t.Errorf("shell result %v", run["result"])
	}
	id := run["id"].(string)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = runCLI(t, env, "run", "logs", id)
		if r.code == 0 && strings.Contains(r.stdout, "hello") && strings.Contains(r.stdout, "oops") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run logs: %d %q %q", r.code, r.stdout, r.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r = runCLI(t, env, "run", "logs", id, "-f"); r.code != 0 || !strings.Contains(r.stdout, "hello") {
		t.Errorf("run logs -f of a finished run: %d %q %q", r.code, r.stdout, r.stderr)
	}

	// A failing command: --wait exits 1; retry puts it back.
	r = runCLI(t, env, "submit", "--type", "shell", "--payload", `{"cmd":"exit 3"}`, "--wait", "--wait-timeout", "30s")
	if r.code != 1 || !strings.Contains(r.stdout, "failed") {
		t.Fatalf("failing shell: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// Cancel a running command; wait then exits 1.
	r = runCLI(t, env, "submit", "--type", "shell", "--payload", `{"cmd":"sleep 30"}`, "-o", "json")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &run) != nil {
		t.Fatalf("submit sleep: %d %s %s", r.code, r.stdout, r.stderr)
	}
	id = run["id"].(string)
	if r = runCLI(t, env, "run", "cancel", id, "--reason", "test"); r.code != 0 {
		t.Fatalf("cancel: %d %s", r.code, r.stderr)
	}
	r = runCLI(t, env, "run", "wait", id, "--timeout", "30s")
	if r.code != 1 || !strings.Contains(r.stdout, "cancelled") {
		t.Errorf("wait cancelled: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r = runCLI(t, env, "run", "retry", id); r.code != 0 {
		t.Errorf("retry cancelled: %d %q", r.code, r.stderr)
	}
	runCLI(t, env, "run", "cancel", id)
	stop()
	waitExit(t, "dev", done, errb)
}
