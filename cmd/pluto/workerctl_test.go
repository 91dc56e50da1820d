package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/server"
)

// TestWorkerControlCommands runs an in-process server and two `pluto
// worker` commands and drives them with pluto worker get, drain, resume,
// command (the built-in ping and stats), shutdown and restart.
func TestWorkerControlCommands(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	s, err := server.Start(context.Background(), server.Config{
		Store:    "sqlite:" + filepath.Join(t.TempDir(), "pluto.db"),
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
		Auth:   server.AuthConfig{AdminTokenFile: tokenFile, BootstrapOut: io.Discard},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	env := map[string]string{envServer: s.HTTPURL(), envToken: token}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := func(id string) (*syncBuffer, <-chan int) {
		_, errb, done := startCLI(t, ctx, "worker", "--server", s.GRPCAddr(), "--id", id, "--capacity", "1", "--token", token,
			"--result-dir", "", "--log-level", "info")
		waitFor(t, errb, errb, done, regexp.MustCompile(`connected`))
		return errb, done
	}
	_, done1 := start("w1")
	_, done2 := start("w2")

	r := runCLI(t, env, "worker", "get", "w1", "-o", "json")
	var wk apiWorker
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &wk) != nil || wk.ID != "w1" || strings.Join(wk.Commands, ",") != "ping,stats" || wk.Version == "" {
		t.Fatalf("get w1: %d %s %s", r.code, r.stdout, r.stderr)
	}

	r = runCLI(t, env, "worker", "command", "w1", "ping")
	if r.code != 0 || !regexp.MustCompile(`(?m)^w1\s+\S+\s+yes\s+\{.*"pong":true`).MatchString(r.stdout) {
		t.Fatalf("ping: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "worker", "command", "--group", "default", "stats", "-o", "json")
	var reps struct {
		Items []struct {
			Worker string
			OK     bool
			Result struct {
				Connected bool `json:"connected"`
				Window    int  `json:"window"`
			}
		}
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &reps) != nil || len(reps.Items) != 2 || reps.Items[0].Worker != "w1" ||
		!reps.Items[1].OK || !reps.Items[1].Result.Connected || reps.Items[1].Result.Window != 2 {
		t.Fatalf("group stats: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "worker", "command", "w1", "reboot")
	if r.code != 1 || !strings.Contains(r.stdout, `unknown command "reboot"`) || !strings.Contains(r.stderr, "1 of 1 worker(s)") {
		t.Fatalf("unknown command: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{
		{"worker", "command", "w1", "ping", "--args", "{bad"},
		{"worker", "command", "w1"},
		{"worker", "command", "--group", "default", "w1", "ping"},
		{"worker", "command", "w1", "ping", "--timeout", "6m"},
		{"worker", "drain"},
	} {
		if r := runCLI(t, env, args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)\n%s", args, r.code, r.stderr)
		}
	}
	if r := runCLI(t, env, "worker", "drain", "nope"); r.code != 1 || !strings.Contains(r.stderr, `no worker "nope"`) {
		t.Errorf("drain unknown: %d %s", r.code, r.stderr)
	}

	r = runCLI(t, env, "worker", "drain", "w1")
	if r.code != 0 || !strings.Contains(r.stdout, "worker w1 draining") {
		t.Fatalf("drain: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "worker", "ls")
	if !regexp.MustCompile(`(?m)^w1\s+default\s+draining\s`).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^w2\s+default\s+alive\s`).MatchString(r.stdout) {
		t.Fatalf("ls after drain:\n%s", r.stdout)
	}
	r = runCLI(t, env, "worker", "resume", "w1")
	if r.code != 0 || !strings.Contains(r.stdout, "worker w1 resumed") {
		t.Fatalf("resume: %d %s %s", r.code, r.stdout, r.stderr)
	}

	r = runCLI(t, env, "worker", "shutdown", "w2")
	if r.code != 0 || !strings.Contains(r.stdout, "worker w2 shutting down") {
		t.Fatalf("shutdown: %d %s %s", r.code, r.stdout, r.stderr)
	}
	waitExit(t, "worker w2 after shutdown", done2, &syncBuffer{})
	// The test's reexec fails: the worker says so and exits 1.
	r = runCLI(t, env, "worker", "restart", "w1")
	if r.code != 0 || !strings.Contains(r.stdout, "worker w1 restarting") {
		t.Fatalf("restart: %d %s %s", r.code, r.stdout, r.stderr)
	}
	select {
	case code := <-done1:
		if code != 1 {
			t.Fatalf("worker w1 exited %d after restart with a failing reexec, want 1", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker w1 did not stop for its restart")
	}
}

// TestWorkerControlFollowsRedirect: a server answers 307 to the server of
// the cluster the worker is connected to; the CLI follows it with the same
// method, body and token, also to another host name.
func TestWorkerControlFollowsRedirect(t *testing.T) {
	var mu sync.Mutex
	var got []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" "+body["name"].(string))
		mu.Unlock()
		writeJSONResp(w, 200, map[string]any{"items": []any{map[string]any{"worker": "w9", "server": "s2", "ok": true, "result": "pong"}}})
	}))
	defer other.Close()
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", otherURL+r.URL.Path+"?local=1")
		writeJSONResp(w, http.StatusTemporaryRedirect, map[string]any{"message": "worker w9 is connected to server s2"})
	}))
	defer first.Close()

	r := runCLI(t, map[string]string{envServer: first.URL, envToken: "sekrit"}, "worker", "command", "w9", "ping")
	if r.code != 0 || !strings.Contains(r.stdout, `"pong"`) {
		t.Fatalf("command: %d %s %s", r.code, r.stdout, r.stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "POST /api/v1/workers/w9/command?local=1 Bearer sekrit ping" {
		t.Fatalf("the other server got %q", got)
	}
}
