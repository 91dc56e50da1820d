package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/worker"
)

// /metrics: the engine's counters and the scrape-time gauges, behind a
// read token, in a format promtool accepts.
func TestMetrics(t *testing.T) {
	en := newAuthEnv(t)
	mux := worker.NewMux()
	mux.HandleFunc("t", func(context.Context, *worker.Run) error { return nil })
	w, err := worker.New(worker.Options{
		Servers: []string{en.srv.GRPCAddr()}, ID: "w1", Group: "g", Capacity: 2, Handler: mux,
		Logger: slog.New(slog.DiscardHandler), Token: en.tokens["wrk"], ResultDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	st, b := en.do(en.tokens["cli"], "POST", "/api/v1/runs", `{"type":"t","group":"g"}`)
	if st != http.StatusCreated {
		t.Fatalf("submit: %d %s", st, b)
	}
	var id struct{ ID string }
	_ = json.Unmarshal(b, &id)
	if st, b := en.do(en.tokens["cli"], "GET", "/api/v1/runs/"+id.ID+"/wait?timeout=30s", ""); st != http.StatusOK || !bytes.Contains(b, []byte(`"succeeded"`)) {
		t.Fatalf("wait: %d %s", st, b)
	}
	var body []byte
	want := []string{
		`pluto_runs_submitted_total{group="g"} 1`,
		`pluto_runs_finished_total{group="g",status="succeeded",type="t"} 1`,
		`pluto_workers{group="g",state="alive"} 1`,
		`pluto_worker_slots{group="g",state="free"}`,
		`pluto_leader 1`,
		`pluto_leader_term 1`,
		`pluto_dispatch_latency_seconds_count 1`,
		`pluto_commit_batch_size_count`,
		`go_goroutines`,
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		st, body = en.do(en.tokens["view"], "GET", "/metrics", "")
		missing := ""
		for _, s := range want {
			if !bytes.Contains(body, []byte(s)) {
				missing = s
				break
			}
		}
		if st == http.StatusOK && missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics: %d, missing %q:\n%s", st, missing, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if m := regexp.MustCompile(`r_[0-9A-Z]{20,}|"w1"`).Find(body); m != nil {
		t.Errorf("/metrics has an id label: %s", m)
	}
	if st, _ := en.do("", "GET", "/metrics", ""); st != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d", st)
	}
	if st, _ := en.do(en.tokens["wrk"], "GET", "/metrics", ""); st != http.StatusForbidden {
		t.Errorf("/metrics with a worker token: %d", st)
	}
	promtoolCheck(t, body)
}

// promtoolCheck runs `promtool check metrics` on a scrape. CI installs
// promtool (Debian's prometheus package); elsewhere its absence is said.
func promtoolCheck(t *testing.T, scrape []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed (CI installs the prometheus package)")
		}
		t.Log("SKIPPED promtool check: promtool is not installed (apt-get install prometheus); CI runs it")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Logf("promtool: %s", s)
	}
}
