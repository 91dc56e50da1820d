package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/tlsconf/certgen"
)

// proc is a pluto process started by a test.
type proc struct {
	cmd       *exec.Cmd
	out, errb *syncBuffer
	done      chan int
	name      string
}

func startProc(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &syncBuffer{}, errb: &syncBuffer{}, done: make(chan int, 1), name: name}
	p.cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errb
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			p.done <- 0
		case errors.As(err, &ee):
			p.done <- ee.ExitCode()
		default:
			p.done <- -1
		}
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM and waits for the exit (once; later calls return).
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if p.cmd.ProcessState != nil || p.done == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case code := <-p.done:
		if code != 0 {
			t.Errorf("%s exited %d:\n%s", p.name, code, p.errb)
		}
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("%s did not stop:\n%s", p.name, p.errb)
	}
	p.done = nil
}

// runBin runs the binary to its end.
func runBin(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// TestTLSEndToEnd runs real processes: pluto server with a certificate and
// a client CA (mutual TLS on gRPC), pluto worker with a client certificate,
// and the CLI over https. A worker without a client certificate is not let
// in; a CLI that does not trust the CA fails.
func TestTLSEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts processes")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "pluto")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := certgen.WriteBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := startProc(t, bin, "server", "server", "--store", "sqlite:"+filepath.Join(dir, "pluto.db"),
		"--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--heartbeat", "1s", "--log-level", "warn",
		"--tls-cert", b.ServerCert, "--tls-key", b.ServerKey, "--tls-client-ca", b.CAFile,
		"--admin-token-file", filepath.Join(dir, "admin.token"))
	m := waitFor(t, srv.out, srv.errb, srv.done, regexp.MustCompile(`API (https://\S+)/api/v1, gRPC (\S+),`))
	httpURL, grpcAddr := m[1], m[2]
	tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	tokEnv := []string{envToken + "=" + token}

	w := startProc(t, bin, "worker", "worker", "--server", grpcAddr, "--id", "w-tls", "--capacity", "2", "--log-level", "warn", "--token", token,
		"--tls-ca", b.CAFile, "--tls-cert", b.ClientCert, "--tls-key", b.ClientKey)
	bare := startProc(t, bin, "worker without a certificate", "worker", "--server", grpcAddr, "--id", "w-bare", "--log-level", "warn", "--token", token,
		"--tls-ca", b.CAFile)

	r := runBin(t, bin, tokEnv, "submit", "--server", httpURL, "--tls-ca", b.CAFile, "--type", "noop", "--wait", "--wait-timeout", "30s", "-o", "json")
	var run map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &run) != nil || run["status"] != "succeeded" || run["worker_id"] != "w-tls" {
		t.Fatalf("submit over https: %d\n%s\n%s\nworker:\n%s", r.code, r.stdout, r.stderr, w.errb)
	}
	// The environment names the CA as well.
	env := []string{envServer + "=" + httpURL, envTLSCA + "=" + b.CAFile, envToken + "=" + token}
	r = runBin(t, bin, env, "worker", "ls")
	if r.code != 0 || !strings.Contains(r.stdout, "w-tls") || strings.Contains(r.stdout, "w-bare") {
		t.Fatalf("worker ls: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// It says so in its log (its first attempt may still be under way).
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(bare.errb.String(), "certificate"); {
		if time.Now().After(deadline) {
			t.Errorf("the worker without a certificate does not say why it cannot connect:\n%s", bare.errb)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A client that does not trust the CA.
	r = runBin(t, bin, tokEnv, "run", "ls", "--server", httpURL)
	if r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("https without the CA: %d %q", r.code, r.stderr)
	}
	bare.stop(t)
	w.stop(t)
	srv.stop(t)
}

// TestTLSFlagErrors: a certificate without its key is a usage error; TLS
// files that do not load stop the start and say which.
func TestTLSFlagErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	store := "sqlite:" + filepath.Join(dir, "pluto.db")
	r := runCLI(t, nil, "server", "--store", store, "--tls-cert", missing)
	if r.code != 2 || !strings.Contains(r.stderr, "tls-key: required with tls-cert") {
		t.Errorf("--tls-cert alone: %d %q", r.code, r.stderr)
	}
	r = runCLI(t, nil, "server", "--store", store, "--tls-client-ca", missing)
	if r.code != 2 || !strings.Contains(r.stderr, "needs TLS on the gRPC port") {
		t.Errorf("--tls-client-ca without TLS: %d %q", r.code, r.stderr)
	}
	r = runCLI(t, nil, "server", "--store", store, "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--tls-cert", missing, "--tls-key", missing)
	if r.code != 1 || !strings.Contains(r.stderr, "missing.pem") {
		t.Errorf("missing certificate files: %d %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "pluto.db")); err == nil {
		t.Errorf("the store was opened although TLS did not load")
	}
	r = runCLI(t, nil, "worker", "--tls-ca", missing)
	if r.code != 2 || !strings.Contains(r.stderr, "missing.pem") {
		t.Errorf("worker --tls-ca missing: %d %q", r.code, r.stderr)
	}
	r = runCLI(t, nil, "run", "ls", "--server", "https://127.0.0.1:1", "--tls-ca", missing)
	if r.code != 2 || !strings.Contains(r.stderr, "missing.pem") {
		t.Errorf("run ls --tls-ca missing: %d %q", r.code, r.stderr)
	}
}
