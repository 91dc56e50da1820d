package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/worker"
)

// gate is a worker handler that blocks each run until released and
// reports when runs start.
type gate struct {
	started chan string
	release chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{started: make(chan string, 64), release: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) handler(ctx context.Context, r *worker.Run) error {
	g.started <- r.ID()
	select {
	case <-g.release:
		return r.SetResult(map[string]int{"attempt": r.Attempt()})
	case <-ctx.Done():
		return ctx.Err()
	}
}

// awaitStarted waits for n runs to start on the worker.
func (g *gate) awaitStarted(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	timeout := time.After(20 * time.Second)
	for len(ids) < n {
		select {
		case id := <-g.started:
			ids = append(ids, id)
		case <-timeout:
			t.Fatalf("%d of %d runs started", len(ids), n)
		}
	}
	return ids
}

// stopEnv is a server on a SQLite file with one in-process worker.
type stopEnv struct {
	t      *testing.T
	db     string
	srv    *Server
	gate   *gate
	werr   chan error
	cancel context.CancelFunc
}

func startStopEnv(t *testing.T, cfg Config) *stopEnv {
	t.Helper()
	se := &stopEnv{t: t, db: filepath.Join(t.TempDir(), "pluto.db"), gate: newGate(), werr: make(chan error, 1)}
	cfg.Store = "sqlite:" + se.db
	cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Auth.Disabled = true // auth has its own tests (auth_test.go)
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	se.srv = srv
	t.Cleanup(func() {
		se.gate.open()
		_ = se.srv.Stop(context.Background())
	})
	mux := worker.NewMux()
	mux.HandleFunc("gate", se.gate.handler)
	w, err := worker.New(worker.Options{
		Servers: []string{srv.GRPCAddr()}, ID: "w1", Capacity: 2, Prefetch: -1, Handler: mux,
		Logger: slog.New(slog.DiscardHandler), DrainTimeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	se.cancel = cancel
	go func() { se.werr <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		se.gate.open()
		<-se.werr
	})
	return se
}

func (se *stopEnv) submit(n int) []string {
	se.t.Helper()
	specs := make([]string, n)
	for i := range specs {
		specs[i] = `{"type":"gate","group":"default"}`
	}
	res := stopHTTP(se.t, http.MethodPost, se.srv.HTTPURL()+"/api/v1/runs", `{"runs":[`+strings.Join(specs, ",")+`]}`)
	if res.status != http.StatusCreated {
		se.t.Fatalf("submit: %d %s", res.status, res.body)
	}
	var out struct{ Items []struct{ ID string } }
	if err := json.Unmarshal(res.body, &out); err != nil {
		se.t.Fatal(err)
	}
	ids := make([]string, len(out.Items))
	for i, r := range out.Items {
		ids[i] = r.ID
	}
	return ids
}

// stopAsync stops the server in the background.
func (se *stopEnv) stopAsync() <-chan error {
	done := make(chan error, 1)
	go func() { done <- se.srv.Stop(context.Background()) }()
	// Stop closes s.stopping first thing; wait for it so the checks below
	// see a stopping server.
	<-se.srv.stopping
	return done
}

// runs reads runs from the store file after the server closed it.
func runsIn(t *testing.T, db string, ids ...string) []*store.Run {
	t.Helper()
	st, err := OpenStore(context.Background(), "sqlite:"+db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := make([]*store.Run, len(ids))
	for i, id := range ids {
		if out[i], err = st.RunGet(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

type stopHTTPResult struct {
	status int
	header http.Header
	body   []byte
}

func stopHTTP(t *testing.T, method, url, body string) stopHTTPResult {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	setJSON(req)
	req.Close = true // no idle connections left behind for goleak
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return stopHTTPResult{status: res.StatusCode, header: res.Header, body: b}
}

// A stopping server refuses new work over HTTP and gRPC, answers reads,
// waits for the runs on its workers, commits their results and stops.
func TestStopRefusesIntakeAndWaitsForRunsInFlight(t *testing.T) {
	se := startStopEnv(t, Config{StopTimeout: 30 * time.Second})
	ids := se.submit(2)
	se.gate.awaitStarted(t, 2)
	queued := se.submit(1) // no free slot: stays queued

	conn, err := grpc.NewClient(se.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gc := plutov1.NewClientServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := gc.Get(ctx, &plutov1.GetRequest{Id: ids[0]}); err != nil { // warm the connection up
		t.Fatal(err)
	}

	done := se.stopAsync()
	base := se.srv.HTTPURL()
	res := stopHTTP(t, http.MethodPost, base+"/api/v1/runs", `{"type":"gate","group":"default"}`)
	if res.status != http.StatusServiceUnavailable || !strings.Contains(string(res.body), `"unavailable"`) ||
		!strings.Contains(string(res.body), "stopping") || res.header.Get("Retry-After") == "" {
		t.Fatalf("submit while stopping: %d %s (Retry-After %q), want 503 unavailable naming the stop", res.status, res.body, res.header.Get("Retry-After"))
	}
	if res := stopHTTP(t, http.MethodPost, base+"/api/v1/runs/"+ids[0]+"/retry", ""); res.status != http.StatusServiceUnavailable {
		t.Fatalf("retry while stopping: %d %s", res.status, res.body)
	}
	if res := stopHTTP(t, http.MethodGet, base+"/readyz", ""); res.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz while stopping: %d %s", res.status, res.body)
	}
	// Reads still work. The handler started, but the worker's ack may not
	// be committed yet: running or dispatched.
	if res := stopHTTP(t, http.MethodGet, base+"/api/v1/runs/"+ids[0], ""); res.status != http.StatusOK ||
		!strings.Contains(string(res.body), `"running"`) && !strings.Contains(string(res.body), `"dispatched"`) {
		t.Fatalf("read while stopping: %d %s", res.status, res.body)
	}
	_, err = gc.Submit(ctx, &plutov1.SubmitRequest{Runs: []*plutov1.RunSpec{{Type: "gate", Group: "default"}}})
	if st, _ := status.FromError(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "stopping") {
		t.Fatalf("gRPC submit while stopping: %v, want Unavailable", err)
	}

	select {
	case err := <-done:
		t.Fatalf("stop returned (%v) while runs were in flight", err)
	case <-time.After(200 * time.Millisecond): // a stop that does not wait returns at once
	}
	se.gate.open()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("stop did not return after the runs finished")
	}
	for _, r := range runsIn(t, se.db, append(ids, queued...)...) {
		want := store.StatusSucceeded
		if r.ID == queued[0] {
			want = store.StatusQueued // never dispatched: the next start runs it
		}
		if r.Status != want || r.Attempt > 1 {
			t.Errorf("run %s: %s attempt %d, want %s attempt ≤ 1", r.ID, r.Status, r.Attempt, want)
		}
	}
	// The worker was not told to stop: it is still running, reconnecting.
	select {
	case err := <-se.werr:
		t.Fatalf("worker exited (%v) without --stop-workers-on-exit", err)
	default:
	}
}

// When the deadline passes, what is left stays in the store, the stop
// still succeeds, and the next start on the same store recovers the run:
// the worker delivers its result there, at the same attempt.
func TestStopDeadlineThenRestartRecovers(t *testing.T) {
	se := startStopEnv(t, Config{StopTimeout: 2 * time.Second})
	ids := se.submit(1)
	se.gate.awaitStarted(t, 1)
	grpcAddr := se.srv.GRPCAddr()

	began := time.Now()
	if err := <-se.stopAsync(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Fatalf("stop took %v with a 2s stop timeout", took)
	}
	if r := runsIn(t, se.db, ids...)[0]; r.Status != store.StatusRunning {
		t.Fatalf("after the deadline: %s, want still running", r.Status)
	}

	srv2, err := Start(context.Background(), Config{
		Store: "sqlite:" + se.db, HTTPAddr: "127.0.0.1:0", GRPCAddr: grpcAddr,
		Logger: slog.New(slog.DiscardHandler), Auth: AuthConfig{Disabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	se.srv = srv2 // cleanup stops it
	se.gate.open()
	res := stopHTTP(t, http.MethodGet, srv2.HTTPURL()+"/api/v1/runs/"+ids[0]+"/wait?timeout=30s", "")
	var r struct {
		Status  string
		Attempt int
	}
	if err := json.Unmarshal(res.body, &r); err != nil {
		t.Fatal(err)
	}
	if r.Status != "succeeded" || r.Attempt != 1 {
		t.Fatalf("after restart: %d %s, want succeeded at attempt 1", res.status, res.body)
	}
}

// With StopWorkersOnExit the worker is told to shut down: it finishes
// its run, reports it, and its Run returns nil (a stop, not a restart).
func TestStopWorkersOnExit(t *testing.T) {
	se := startStopEnv(t, Config{StopTimeout: 30 * time.Second, StopWorkersOnExit: true})
	ids := se.submit(1)
	se.gate.awaitStarted(t, 1)
	done := se.stopAsync()
	se.gate.open()
	select {
	case err := <-se.werr:
		if err != nil {
			t.Fatalf("worker Run: %v, want nil", err)
		}
		se.werr <- nil // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("the worker did not exit")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := runsIn(t, se.db, ids...)[0]; r.Status != store.StatusSucceeded || r.Attempt != 1 {
		t.Fatalf("run %s attempt %d, want succeeded at attempt 1", r.Status, r.Attempt)
	}
}

func TestServerReconfigureLiveConfig(t *testing.T) {
	se := startStopEnv(t, Config{MaxPayload: 1 << 20})
	l := se.srv.Live()
	l.MaxPayload = 16
	if err := se.srv.Reconfigure(l); err != nil {
		t.Fatal(err)
	}
	res := stopHTTP(t, http.MethodPost, se.srv.HTTPURL()+"/api/v1/runs", `{"type":"gate","group":"default","payload":{"k":"0123456789abcdef"}}`)
	if res.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("payload over the new limit: %d %s", res.status, res.body)
	}
	bad := l
	bad.StopTimeout = 0
	if err := se.srv.Reconfigure(bad); err == nil || !strings.Contains(err.Error(), "stop_timeout") {
		t.Fatalf("zero stop timeout: %v", err)
	}
	bad = l
	bad.RetryBase, bad.RetryMax = time.Hour, time.Second
	if err := se.srv.Reconfigure(bad); err == nil || !strings.Contains(err.Error(), "retry_base") {
		t.Fatalf("retry base above max: %v", err)
	}
	if got := se.srv.Live(); got != l {
		t.Fatalf("live %+v after refused changes, want %+v", got, l)
	}
}
