// Package proc is what the end-to-end test packages (e2e, e2e/faults)
// share: the pluto binary built once per package, real pluto processes
// whose log lines can be awaited, a minimal HTTP API client, and a fresh
// PostgreSQL schema per test. It is imported by tests only.
package proc

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Binary is the pluto binary Main built for the package's tests.
var Binary string

// Main is a test package's TestMain body: it builds the pluto binary,
// runs the tests, removes the binary and, when they passed, fails on
// leaked goroutines. It returns the exit code.
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pluto-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	Binary = filepath.Join(dir, "pluto")
	build := exec.Command("go", "build", "-o", Binary, "github.com/pluto-sched/pluto/cmd/pluto")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building pluto:", err)
		return 1
	}
	code := m.Run()
	// The processes are separate, but the goroutines that read their
	// output and wait for them are not: every test must reap its processes.
	if code == 0 {
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// Line is one line a process wrote, with the time the test read it.
type Line struct {
	At   time.Time
	Text string
}

// Proc is a running pluto process whose log lines can be awaited. It is
// killed (SIGKILL) and reaped when its test ends.
type Proc struct {
	t    *testing.T
	Name string
	Cmd  *exec.Cmd

	mu    sync.Mutex
	lines []Line
	grew  chan struct{}
	exit  chan struct{}
}

// Start runs the pluto binary with args. A worker process (pluto worker
// with flags) without --result-dir gets one in the test's temporary
// directory, so undelivered results stay inside the test, not in $HOME.
func Start(t *testing.T, name string, args ...string) *Proc {
	t.Helper()
	if len(args) > 1 && args[0] == "worker" && strings.HasPrefix(args[1], "-") && !slices.Contains(args, "--result-dir") {
		args = append(args, "--result-dir", t.TempDir())
	}
	return StartBinary(t, name, Binary, args...)
}

// StartBinary runs another program as Start runs pluto (a test's own
// worker built with the SDK).
func StartBinary(t *testing.T, name, binary string, args ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, Name: name, Cmd: exec.Command(binary, args...), grew: make(chan struct{}, 1), exit: make(chan struct{})}
	p.Cmd.Env = Env(t)
	out, err := p.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.Cmd.Stdout = p.Cmd.Stderr
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, Line{At: time.Now(), Text: sc.Text()})
			p.mu.Unlock()
			select {
			case p.grew <- struct{}{}:
			default:
			}
		}
		p.Cmd.Wait()
		close(p.exit)
	}()
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		<-p.exit
		if t.Failed() {
			t.Logf("--- %s log:\n%s", name, p.Log())
		}
	})
	return p
}

// Log is everything the process wrote so far.
func (p *Proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for i, l := range p.lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l.Text)
	}
	return b.String()
}

// Lines returns the lines written so far that contain every one of parts.
func (p *Proc) Lines(parts ...string) []Line {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Line
	for _, l := range p.lines {
		if containsAll(l.Text, parts) {
			out = append(out, l)
		}
	}
	return out
}

func containsAll(s string, parts []string) bool {
	for _, part := range parts {
		if !strings.Contains(s, part) {
			return false
		}
	}
	return true
}

// Await blocks until a log line contains every one of parts and returns
// it; the test fails if none does within d or the process exits first.
func (p *Proc) Await(d time.Duration, parts ...string) string {
	p.t.Helper()
	return p.AwaitNth(d, 1, parts...).Text
}

// AwaitNth blocks until n log lines contain every one of parts and returns
// the n-th, with the time the test read it.
func (p *Proc) AwaitNth(d time.Duration, n int, parts ...string) Line {
	p.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	seen, found := 0, 0
	for {
		p.mu.Lock()
		lines := p.lines[seen:]
		seen = len(p.lines)
		p.mu.Unlock()
		for _, l := range lines {
			if containsAll(l.Text, parts) {
				if found++; found == n {
					return l
				}
			}
		}
		select {
		case <-p.grew:
		case <-p.exit:
			p.t.Fatalf("%s exited before logging %q (%d times):\n%s", p.Name, parts, n, p.Log())
		case <-deadline.C:
			p.t.Fatalf("%s did not log %q (%d times) within %v:\n%s", p.Name, parts, n, d, p.Log())
		}
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) {
	if p.Cmd.Process != nil {
		p.Cmd.Process.Signal(sig)
	}
}

// Exited is closed once the process has exited and its output is read.
func (p *Proc) Exited() <-chan struct{} { return p.exit }

// Kill SIGKILLs the process and waits until it is gone.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.exit
}

// AwaitExit waits for the process to exit and returns its exit code.
func (p *Proc) AwaitExit(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exit:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(d):
		p.t.Fatalf("%s did not exit within %v:\n%s", p.Name, d, p.Log())
		return -1
	}
}

// StartServer runs `pluto server` on random loopback ports and returns the
// process with the addresses it logged (no port is chosen by the test, so
// two servers can never race for one).
//
// The admin token a server creates on an empty store is kept for the test
// (Token): every process Start runs after it gets it as PLUTO_TOKEN, and
// API calls send it. A server joining a store that has tokens creates
// none; the test's token stays.
func StartServer(t *testing.T, name string, args ...string) (p *Proc, httpAddr, grpcAddr string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "admin.token")
	p = Start(t, name, append([]string{"server", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--admin-token-file", file}, args...)...)
	line := p.Await(30*time.Second, "pluto server started")
	if b, err := os.ReadFile(file); err == nil {
		SetToken(t, strings.TrimSpace(string(b)))
	}
	return p, LogField(t, line, "http"), LogField(t, line, "grpc")
}

var tokens sync.Map // *testing.T → the admin token of its servers

// SetToken records the token the test's processes and API calls use.
func SetToken(t *testing.T, token string) { tokens.Store(t, token) }

// Token is the test's admin token ("" before its first server started).
func Token(t *testing.T) string {
	v, _ := tokens.Load(t)
	s, _ := v.(string)
	return s
}

// Env is the environment of the test's pluto processes: this process's,
// with PLUTO_TOKEN set to the test's token.
func Env(t *testing.T) []string {
	env := os.Environ()
	if tok := Token(t); tok != "" {
		env = append(env, "PLUTO_TOKEN="+tok)
	}
	return env
}

// LogField returns the value of key=value in a slog text line.
func LogField(t *testing.T, line, key string) string {
	t.Helper()
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s= in %q", key, line)
	return ""
}

// LogTime is the time= field of a slog text line: when the process
// logged it.
func LogTime(t *testing.T, line string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, LogField(t, line, "time"))
	if err != nil {
		t.Fatalf("time= in %q: %v", line, err)
	}
	return at
}

// CountLines counts a file's lines by their field number f (-1: the whole
// line).
func CountLines(t *testing.T, path string, f int) map[string]int {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		key := sc.Text()
		if f >= 0 {
			key = strings.Fields(key)[f]
		}
		out[key]++
	}
	return out
}

// Deref is *s, or "" for nil.
func Deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
