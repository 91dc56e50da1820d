package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/worker"
)

// lineLog collects a run's log lines and signals when one contains a
// wanted text.
type lineLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	found chan struct{}
	once  sync.Once
}

func newLineLog(want string) *lineLog { return &lineLog{want: want, found: make(chan struct{})} }

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.want != "" && strings.Contains(l.buf.String(), l.want) {
		l.once.Do(func() { close(l.found) })
	}
	return len(p), nil
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func shellRun(t *testing.T, payload any, log *lineLog) *worker.Run {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	if log == nil {
		log = newLineLog("")
	}
	return worker.NewTestRun(worker.TestRun{ID: "run-1", Attempt: 2, Type: TypeShell, Job: "nightly", Payload: b, Log: log})
}

func shellResult(t *testing.T, r *worker.Run) ShellResult {
	t.Helper()
	var res ShellResult
	if err := json.Unmarshal(r.Result(), &res); err != nil {
		t.Fatalf("result %s: %v", r.Result(), err)
	}
	return res
}

func TestShellSuccess(t *testing.T) {
	log := newLineLog("")
	r := shellRun(t, ShellPayload{Cmd: "echo hello; echo world; echo oops >&2; printf tail"}, log)
	if err := Shell(ShellOptions{}).ProcessRun(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	r.FlushOutput()
	res := shellResult(t, r)
	if res != (ShellResult{ExitCode: 0, Stdout: "hello\nworld\ntail", Stderr: "oops\n"}) {
		t.Errorf("result = %+v", res)
	}
	for _, want := range []string{"stdout: hello\n", "stdout: world\n", "stderr: oops\n", "stdout: tail\n"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log %q lacks %q", log.String(), want)
		}
	}
}

func TestShellFailure(t *testing.T) {
	r := shellRun(t, ShellPayload{Cmd: "echo partial; echo why >&2; exit 3"}, nil)
	err := Shell(ShellOptions{}).ProcessRun(context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), "exit code 3") {
		t.Fatalf("err = %v", err)
	}
	if worker.IsNoRetry(err) {
		t.Error("a failed command must stay retryable")
	}
	if res := shellResult(t, r); res != (ShellResult{ExitCode: 3, Stdout: "partial\n", Stderr: "why\n"}) {
		t.Errorf("result = %+v", res)
	}
}

func TestShellEnvAndDir(t *testing.T) {
	dir := t.TempDir()
	r := shellRun(t, ShellPayload{
		Cmd: `echo "$FOO|$BAR|$PLUTO_RUN_ID|$PLUTO_ATTEMPT|$PLUTO_RUN_TYPE|$PLUTO_JOB|$BASE"; pwd -P`,
		Env: map[string]string{"FOO": "foo value", "BAR": "b=r", "BASE": "overridden"},
		Dir: dir,
	}, nil)
	h := Shell(ShellOptions{Env: []string{"PATH=" + os.Getenv("PATH"), "BASE=base"}})
	if err := h.ProcessRun(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "foo value|b=r|run-1|2|shell|nightly|overridden\n" + real + "\n"
	if got := shellResult(t, r).Stdout; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}

	// Default directory from the options.
	r = shellRun(t, ShellPayload{Cmd: "pwd -P"}, nil)
	if err := Shell(ShellOptions{Dir: dir}).ProcessRun(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if got := shellResult(t, r).Stdout; got != real+"\n" {
		t.Errorf("stdout = %q", got)
	}
}

func TestShellPayloadErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o600)
	for _, tt := range []struct {
		name    string
		payload string
		field   string
		noRetry bool
	}{
		{"missing cmd", `{}`, "payload.cmd", true},
		{"blank cmd", `{"cmd": "  "}`, "payload.cmd", true},
		{"no payload", ``, "payload.cmd", true},
		{"not json", `{"cmd":`, "payload", true},
		{"cmd not a string", `{"cmd": 1}`, "payload", true},
		{"bad env", `{"cmd": "true", "env": {"A=B": "x"}}`, "payload.env", true},
		{"missing dir", `{"cmd": "true", "dir": "/no/such/dir"}`, "payload.dir", false},
		{"dir is a file", `{"cmd": "true", "dir": "` + file + `"}`, "payload.dir", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := worker.NewTestRun(worker.TestRun{Type: TypeShell, Payload: json.RawMessage(tt.payload)})
			err := Shell(ShellOptions{}).ProcessRun(context.Background(), r)
			if err == nil || !strings.HasPrefix(err.Error(), tt.field) {
				t.Fatalf("err = %v, want one naming %s", err, tt.field)
			}
			if worker.IsNoRetry(err) != tt.noRetry {
				t.Errorf("IsNoRetry = %v, want %v", !tt.noRetry, tt.noRetry)
			}
		})
	}
}

func TestShellOutputCap(t *testing.T) {
	log := newLineLog("")
	// 300 lines of "line NNN" (9 bytes each), then an error line.
	r := shellRun(t, ShellPayload{Cmd: `i=100; while [ $i -lt 400 ]; do echo "line $i"; i=$((i+1)); done; echo last >&2`}, log)
	h := Shell(ShellOptions{MaxOutput: 100, MaxStreamBytes: 90})
	if err := h.ProcessRun(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	r.FlushOutput()
	res := shellResult(t, r)
	const total = 300 * 9
	// The last 100 bytes: the newline ending "line 388", then 11 lines.
	want := "[pluto: " + strconv.Itoa(total-100) + " bytes truncated]\n" + "\nline 389\nline 390\nline 391\nline 392\nline 393\nline 394\nline 395\nline 396\nline 397\nline 398\nline 399\n"
	if res.Stdout != want {
		t.Errorf("stdout = %q\nwant %q", res.Stdout, want)
	}
	if res.Stderr != "last\n" {
		t.Errorf("stderr = %q", res.Stderr)
	}
	// Streaming stops at MaxStreamBytes (10 lines), with a marker.
	if n := strings.Count(log.String(), "stdout: line"); n != 10 {
		t.Errorf("%d stdout lines streamed, want 10:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), "stdout: [pluto: output beyond 90 bytes is not streamed]") {
		t.Errorf("no stream marker in %q", log.String())
	}
}

// A command that prints 200 KiB without a newline is streamed as lines of
// at most 64 KiB. (The line writer used to panic, in exec's copying
// goroutine, when 64 KiB had piled up: the whole worker died.)
func TestShellLongOutputWithoutNewline(t *testing.T) {
	const n, limit = 200 << 10, 64 << 10
	log := newLineLog("")
	// Exactly 64 KiB first, then a pause, so that the reader holds exactly
	// that much at some point (the case that used to panic), then the rest.
	xs := func(k int) string { return "head -c " + strconv.Itoa(k) + " /dev/zero | tr '\\0' x" }
	r := shellRun(t, ShellPayload{Cmd: xs(limit) + "; sleep 0.2; " + xs(n-limit)}, log)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Shell(ShellOptions{}).ProcessRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.FlushOutput()
	var got []int
	for _, l := range strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n") {
		text, ok := strings.CutPrefix(l, "stdout: ")
		if !ok || strings.Trim(text, "x") != "" {
			t.Fatalf("unexpected log line %.80q", l)
		}
		got = append(got, len(text))
	}
	if want := []int{limit, limit, limit, n - 3*limit}; !slices.Equal(got, want) {
		t.Fatalf("streamed lines of %v bytes, want %v", got, want)
	}
	if res := shellResult(t, r); res.ExitCode != 0 || !strings.HasSuffix(res.Stdout, strings.Repeat("x", DefaultMaxOutput)) {
		t.Errorf("result: exit %d, stdout of %d bytes", res.ExitCode, len(res.Stdout))
	}
}

// Whatever bytes a command prints (invalid UTF-8, NULs) reach the run's
// log as printed.
func TestShellBinaryOutput(t *testing.T) {
	log := newLineLog("")
	r := shellRun(t, ShellPayload{Cmd: `printf 'a\377b\000c\r\nd\n'`}, log)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Shell(ShellOptions{}).ProcessRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.FlushOutput()
	if got, want := log.String(), "stdout: a\xffb\x00c\nstdout: d\n"; got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
}

func TestCaptureKeepsRunes(t *testing.T) {
	c := &capture{max: 4, stream: &bytes.Buffer{}, streamMax: 1 << 20}
	c.Write([]byte("ééééé")) // 10 bytes; the last 4 are two whole runes
	c.Write([]byte("x"))     // 11 bytes; the last 4 start mid-rune
	if got := c.String(); got != "[pluto: 8 bytes truncated]\néx" {
		t.Errorf("String = %q", got)
	}
}

// processGone reports whether pid no longer runs (absent, or a zombie
// nobody reaped yet).
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X')
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !processGone(pid) {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("process %d still runs", pid)
		}
	}
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestShellCancelKillsGrandchildren(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	log := newLineLog("stdout: started")
	r := shellRun(t, ShellPayload{Cmd: "sleep 30 & echo $! > " + pidfile + "; echo started; wait"}, log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- Shell(ShellOptions{WaitDelay: time.Second}).ProcessRun(ctx, r) }()
	select {
	case <-log.found:
	case err := <-errc:
		t.Fatalf("command ended early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("command did not start")
	}
	pid := readPid(t, pidfile)
	if processGone(pid) {
		t.Fatalf("grandchild %d not running before cancel", pid)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler did not return after cancel")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %v", d)
	}
	waitGone(t, pid)
	if res := shellResult(t, r); res.ExitCode != -1 || res.Stdout != "started\n" {
		t.Errorf("result = %+v", res)
	}
}

func TestShellKillsLeftovers(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	r := shellRun(t, ShellPayload{Cmd: "sleep 30 & echo $! > " + pidfile + "; echo done"}, nil)
	start := time.Now()
	if err := Shell(ShellOptions{WaitDelay: 100 * time.Millisecond}).ProcessRun(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	waitGone(t, readPid(t, pidfile))
	if res := shellResult(t, r); res.ExitCode != 0 || res.Stdout != "done\n" {
		t.Errorf("result = %+v", res)
	}
}

func TestShellSignalled(t *testing.T) {
	r := shellRun(t, ShellPayload{Cmd: "kill -KILL $$"}, nil)
	err := Shell(ShellOptions{}).ProcessRun(context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("err = %v", err)
	}
	if res := shellResult(t, r); res.ExitCode != -1 {
		t.Errorf("exit code = %d", res.ExitCode)
	}
}

func TestNoop(t *testing.T) {
	r := worker.NewTestRun(worker.TestRun{Type: TypeNoop})
	if err := Noop().ProcessRun(context.Background(), r); err != nil || r.Result() != nil {
		t.Errorf("err = %v, result = %s", err, r.Result())
	}
}

// TestShellCleanEnv: a secret in the worker's environment is not visible to
// a shell run unless the worker inherits its environment on purpose.
func TestShellCleanEnv(t *testing.T) {
	t.Setenv("PLUTO_TEST_SECRET", "s3cret")
	t.Setenv("HOME", "/home/pluto-test")
	cmd := `echo "secret=$PLUTO_TEST_SECRET home=$HOME run=$PLUTO_RUN_ID mine=$MINE"; command -v sh >/dev/null && echo path-ok`
	for _, tt := range []struct {
		opts ShellOptions
		want string
	}{
		{ShellOptions{}, "secret= home=/home/pluto-test run=run-1 mine=set\npath-ok\n"},
		{ShellOptions{InheritEnv: true}, "secret=s3cret home=/home/pluto-test run=run-1 mine=set\npath-ok\n"},
	} {
		r := shellRun(t, ShellPayload{Cmd: cmd, Env: map[string]string{"MINE": "set"}}, nil)
		if err := Shell(tt.opts).ProcessRun(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if got := shellResult(t, r).Stdout; got != tt.want {
			t.Errorf("InheritEnv %v: stdout %q, want %q", tt.opts.InheritEnv, got, tt.want)
		}
	}
}

func TestMinimalEnv(t *testing.T) {
	got := MinimalEnv([]string{"AWS_SECRET_ACCESS_KEY=x", "HOME=/h", "PATHX=no", "TZ=UTC", "PLUTO_TOKEN=t", "LANG=C.UTF-8", "PATH=/p"})
	if want := []string{"HOME=/h", "TZ=UTC", "LANG=C.UTF-8", "PATH=/p"}; !slices.Equal(got, want) {
		t.Errorf("MinimalEnv = %q, want %q", got, want)
	}
	if got := MinimalEnv([]string{"SECRET=1"}); !slices.Equal(got, []string{"PATH=" + DefaultPath}) {
		t.Errorf("MinimalEnv without PATH = %q", got)
	}
}
