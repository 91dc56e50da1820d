package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// binary is the pluto binary built once for the package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pluto-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pluto")
	build := exec.Command("go", "build", "-o", binary, "../cmd/pluto")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building pluto:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	// The processes are separate, but the goroutines that read their
	// output and wait for them are not: every test must reap its processes.
	if code == 0 {
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// proc is a running pluto process whose log lines can be awaited.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd

	mu    sync.Mutex
	lines []string
	grew  chan struct{}
	exit  chan struct{}
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	if len(args) > 1 && args[0] == "worker" && strings.HasPrefix(args[1], "-") && !slices.Contains(args, "--result-dir") {
		// Keep undelivered results inside the test, not in $HOME.
		args = append(args, "--result-dir", t.TempDir())
	}
	p := &proc{t: t, name: name, cmd: exec.Command(binary, args...), grew: make(chan struct{}, 1), exit: make(chan struct{})}
	out, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = p.cmd.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.grew <- struct{}{}:
			default:
			}
		}
		p.cmd.Wait()
		close(p.exit)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.exit
		if t.Failed() {
			t.Logf("--- %s log:\n%s", name, p.log())
		}
	})
	return p
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// await blocks until a log line contains every one of parts.
func (p *proc) await(d time.Duration, parts ...string) string {
	p.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	seen := 0
	for {
		p.mu.Lock()
		lines := p.lines[seen:]
		seen = len(p.lines)
		p.mu.Unlock()
		for _, l := range lines {
			ok := true
			for _, part := range parts {
				ok = ok && strings.Contains(l, part)
			}
			if ok {
				return l
			}
		}
		select {
		case <-p.grew:
		case <-p.exit:
			p.t.Fatalf("%s exited before logging %q:\n%s", p.name, parts, p.log())
		case <-deadline.C:
			p.t.Fatalf("%s did not log %q within %v:\n%s", p.name, parts, d, p.log())
		}
	}
}

func (p *proc) signal(sig syscall.Signal) {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(sig)
	}
}

// startServer runs `pluto server` on random loopback ports and returns the
// process with the addresses it logged (no port is chosen by the test, so
// two servers can never race for one).
func startServer(t *testing.T, name string, args ...string) (p *proc, httpAddr, grpcAddr string) {
	t.Helper()
	p = start(t, name, append([]string{"server", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"}, args...)...)
	line := p.await(30*time.Second, "pluto server started")
	return p, logField(t, line, "http"), logField(t, line, "grpc")
}

// logField returns the value of key=value in a slog text line.
func logField(t *testing.T, line, key string) string {
	t.Helper()
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s= in %q", key, line)
	return ""
}

// api is a minimal HTTP JSON client for the tests.
type api struct {
	t    *testing.T
	base string
}

func (a api) do(method, path string, body any, out any) int {
	a.t.Helper()
	code, err := a.try(method, path, body, out)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	return code
}

// try is do that returns transport errors (a server that is gone).
func (a api) try(method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
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

type run struct {
	ID       string          `json:"id"`
	Status   string          `json:"status"`
	Attempt  int             `json:"attempt"`
	WorkerID *string         `json:"worker_id"`
	Result   json.RawMessage `json:"result"`
	Error    *string         `json:"error"`
}

// wait long-polls until the run is terminal.
func (a api) wait(id string, within time.Duration) run {
	a.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var r run
		if code := a.do("GET", "/api/v1/runs/"+id+"/wait?timeout=10s", nil, &r); code != 200 {
			a.t.Fatalf("wait %s: HTTP %d", id, code)
		}
		switch r.Status {
		case "succeeded", "failed", "cancelled", "timed_out", "skipped":
			return r
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("run %s still %s after %v", id, r.Status, within)
		}
	}
}
