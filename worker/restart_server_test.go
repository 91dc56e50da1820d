package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/server"
)

// These tests run a real server (SQLite) in-process: they check that the
// engine's fencing does what the result store relies on when a worker
// restarts with stored results.

// cutProxy forwards TCP connections to a server until cut: then it closes
// them all and refuses new ones, as a network partition would.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(func() { p.cutAll(); ln.Close(); p.wg.Wait() })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(s, c); s.Close() })
		p.wg.Go(func() { io.Copy(c, s); c.Close() })
	}
}

func (p *cutProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func startRealServer(t *testing.T, heartbeat time.Duration) *server.Server {
	t.Helper()
	s, err := server.Start(context.Background(), server.Config{
		Store:             "sqlite:" + filepath.Join(t.TempDir(), "pluto.db"),
		HTTPAddr:          "127.0.0.1:0",
		GRPCAddr:          "127.0.0.1:0",
		HeartbeatInterval: heartbeat,
		Logger:            slog.New(slog.DiscardHandler),
		// The result store across restarts is what this tests; tokens are
		// tested with the server (internal/server) and in ExampleOptions_token.
		Auth: server.AuthConfig{Disabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

type apiRun struct {
	ID       string          `json:"id"`
	Status   string          `json:"status"`
	Attempt  int             `json:"attempt"`
	WorkerID string          `json:"worker_id"`
	Result   json.RawMessage `json:"result"`
}

func apiCall(t *testing.T, method, url string, body any) apiRun {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s %s", method, url, resp.Status, b)
	}
	var r apiRun
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s %s: %v in %s", method, url, err, b)
	}
	return r
}

// restartScenario submits a run, lets worker A (ID w-1) start it behind a
// proxy, cuts the proxy, lets the handler finish (its result goes to the
// store), stops A, runs between(run ID), then starts B: the same ID and
// result directory, directly on the server. It returns the run as the
// server has it once it is terminal, and B.
func restartScenario(t *testing.T, srv *server.Server, between func(id string)) (apiRun, *running) {
	dir := t.TempDir()
	proxy := startProxy(t, srv.GRPCAddr())
	started := make(chan int, 4)
	release := make(chan struct{})
	mux := NewMux()
	mux.HandleFunc("store.block", func(ctx context.Context, r *Run) error {
		started <- r.Attempt()
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return r.SetResult(map[string]int{"attempt": r.Attempt()})
	})
	opts := Options{Servers: []string{proxy.addr()}, ID: "w-1", Capacity: 1, Prefetch: -1, Handler: mux, ResultDir: dir}
	a := startWorkerWith(t, opts, func(w *Worker) { w.drainGrace = 50 * time.Millisecond })
	eventually(t, "worker A connected", func() bool { return a.w.Stats().Connected })

	run := apiCall(t, http.MethodPost, srv.HTTPURL()+"/api/v1/runs", map[string]any{"type": "store.block", "group": "default"})
	select {
	case <-started:
	case <-time.After(waitTime):
		t.Fatal("the handler did not start")
	}
	proxy.cutAll()
	eventually(t, "worker A disconnected", func() bool { return !a.w.Stats().Connected })
	release <- struct{}{}
	eventually(t, "the result stored", func() bool { return a.w.Stats().Stored == 1 })
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	if left, _ := readLog(t, dir); len(left) != 1 || left[0].GetRunId() != run.ID {
		t.Fatalf("A left %v in its store", ids(left))
	}
	between(run.ID)

	opts.Servers = []string{srv.GRPCAddr()}
	go func() {
		// Attempt 2, if the server dispatches one, finishes at once.
		for range started {
			release <- struct{}{}
		}
	}()
	t.Cleanup(func() { close(started) })
	b := startWorkerWith(t, opts, fastPersist)
	var got apiRun
	eventually(t, "the run terminal", func() bool {
		got = apiCall(t, http.MethodGet, srv.HTTPURL()+"/api/v1/runs/"+run.ID, nil)
		return got.Status != "queued" && got.Status != "dispatched" && got.Status != "running"
	})
	eventually(t, "B's store empty", func() bool { return b.w.Stats().Stored == 0 })
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	if left, _ := readLog(t, dir); len(left) != 0 {
		t.Errorf("B left %v in its store", ids(left))
	}
	return got, b
}

// A worker that restarts under its ID before the server declared it dead
// delivers its stored result, and the server accepts it: the attempt is
// still current.
func TestRealServerAcceptsStoredResultAfterRestart(t *testing.T) {
	srv := startRealServer(t, 5*time.Second) // dead after 15 s: far away
	got, _ := restartScenario(t, srv, func(string) {})
	if got.Status != "succeeded" || got.Attempt != 1 || got.WorkerID != "w-1" || string(got.Result) != `{"attempt":1}` {
		t.Errorf("run = %+v; want attempt 1 succeeded by w-1 with the stored result", got)
	}
}

// A worker that comes back after the server requeued its run: the stored
// result is stale (the Welcome says so) and removed; the run is done by a
// new attempt.
func TestRealServerRejectsStoredResultOfRequeuedRun(t *testing.T) {
	srv := startRealServer(t, 100*time.Millisecond) // dead after 300 ms
	got, _ := restartScenario(t, srv, func(id string) {
		eventually(t, "the run requeued", func() bool {
			return apiCall(t, http.MethodGet, srv.HTTPURL()+"/api/v1/runs/"+id, nil).Status == "queued"
		})
	})
	if got.Status != "succeeded" || got.Attempt != 2 || string(got.Result) != `{"attempt":2}` {
		t.Errorf("run = %+v; want attempt 2 succeeded (the stored attempt 1 rejected)", got)
	}
}
