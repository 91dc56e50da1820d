package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/worker"
)

// ctlWorker is an in-process worker SDK connected over gRPC, with remote
// commands: echo (answers its args), fail (an error), slow (answers when
// its context ends: never before the server's timeout).
type ctlWorker struct {
	w    *worker.Worker
	ran  chan string // ids of the runs it ran
	done chan error  // Run's result
	stop context.CancelFunc
}

func startCtlWorker(t *testing.T, id string, servers ...string) *ctlWorker {
	t.Helper()
	cw := &ctlWorker{ran: make(chan string, 100), done: make(chan error, 1)}
	mux := worker.NewMux()
	mux.HandleFunc("noop", func(ctx context.Context, r *worker.Run) error {
		cw.ran <- r.ID()
		return nil
	})
	w, err := worker.New(worker.Options{
		Servers: servers, ID: id, Capacity: 1, Prefetch: -1, Handler: mux,
		Logger: slog.New(slog.DiscardHandler), DrainTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleCommand("echo", func(_ context.Context, args json.RawMessage) (any, error) {
		return map[string]any{"worker": id, "args": args}, nil
	})
	w.HandleCommand("fail", func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("nope") })
	w.HandleCommand("slow", func(ctx context.Context, _ json.RawMessage) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	cw.w = w
	ctx, cancel := context.WithCancel(context.Background())
	cw.stop = cancel
	go func() { cw.done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-cw.done:
		case <-time.After(20 * time.Second):
			t.Errorf("worker %s did not stop", id)
		}
	})
	return cw
}

// awaitWorkers waits until exactly ids are alive on the server at base.
func awaitWorkers(t *testing.T, base string, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var list apijson.List[apijson.Worker]
		res := ctlHTTP(t, http.MethodGet, base+"/api/v1/workers?local=1", "", true)
		_ = json.Unmarshal(res.body, &list)
		var got []string
		for _, w := range list.Items {
			if w.State == "alive" {
				got = append(got, w.ID)
			}
		}
		slices.Sort(got)
		if slices.Equal(got, ids) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers %v connected, want %v", got, ids)
		}
		time.Sleep(20 * time.Millisecond) // another goroutine's connection
	}
}

// ctlHTTP sends a request; follow: follow redirects.
func ctlHTTP(t *testing.T, method, u, body string, follow bool) stopHTTPResult {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	setJSON(req)
	req.Close = true // no idle connections left behind for goleak
	c := &http.Client{}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	res, err := c.Do(req)
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

func replies(t *testing.T, res stopHTTPResult) apijson.CommandReplies {
	t.Helper()
	if res.status != http.StatusOK {
		t.Fatalf("command: HTTP %d %s", res.status, res.body)
	}
	var out apijson.CommandReplies
	if err := json.Unmarshal(res.body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func submitNoop(t *testing.T, base string, n int) []string {
	t.Helper()
	specs := make([]string, n)
	for i := range specs {
		specs[i] = `{"type":"noop","group":"default"}`
	}
	res := ctlHTTP(t, http.MethodPost, base+"/api/v1/runs", `{"runs":[`+strings.Join(specs, ",")+`]}`, true)
	if res.status != http.StatusCreated {
		t.Fatalf("submit: %d %s", res.status, res.body)
	}
	var out struct{ Items []struct{ ID string } }
	if err := json.Unmarshal(res.body, &out); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(out.Items))
	for i, r := range out.Items {
		ids[i] = r.ID
	}
	return ids
}

// ranOn collects n run ids from a worker.
func (cw *ctlWorker) ranOn(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	for len(ids) < n {
		select {
		case id := <-cw.ran:
			ids = append(ids, id)
		case <-time.After(20 * time.Second):
			t.Fatalf("%d of %d runs ran", len(ids), n)
		}
	}
	return ids
}

func startCtlServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Store == "" {
		cfg.Store = "sqlite:" + filepath.Join(t.TempDir(), "pluto.db")
	}
	cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Auth.Disabled = true // auth has its own tests (auth_test.go)
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return srv
}

// TestWorkerRemoteControl drives real SDK workers over gRPC through the
// HTTP API: drain routes new runs to the other worker, resume brings it
// back, commands answer per worker (result, error, timeout, unknown), bad
// requests name the field, shutdown ends Run with nil and restart with
// worker.ErrRestart.
func TestWorkerRemoteControl(t *testing.T) {
	srv := startCtlServer(t, Config{})
	base := srv.HTTPURL()
	w1 := startCtlWorker(t, "w1", srv.GRPCAddr())
	w2 := startCtlWorker(t, "w2", srv.GRPCAddr())
	awaitWorkers(t, base, "w1", "w2")

	res := ctlHTTP(t, http.MethodGet, base+"/api/v1/workers/w1", "", true)
	var wk apijson.Worker
	if res.status != http.StatusOK || json.Unmarshal(res.body, &wk) != nil || wk.ID != "w1" || wk.Server != srv.cfg.ServerID {
		t.Fatalf("GET worker: %d %s", res.status, res.body)
	}
	if res := ctlHTTP(t, http.MethodGet, base+"/api/v1/workers/nope", "", true); res.status != http.StatusNotFound {
		t.Fatalf("GET unknown worker: %d %s", res.status, res.body)
	}

	// Drain w1: every new run goes to w2.
	res = ctlHTTP(t, http.MethodPost, base+"/api/v1/workers/w1/drain", "", true)
	if res.status != http.StatusOK || json.Unmarshal(res.body, &wk) != nil || wk.ID != "w1" || !wk.Draining || wk.Leaving ||
		strings.Join(wk.Commands, ",") != "echo,fail,slow" {
		t.Fatalf("drain: %d %s", res.status, res.body)
	}
	awaitStats(t, w1.w, func(s worker.Stats) bool { return s.Draining && s.Window == 0 })
	ids := submitNoop(t, base, 6)
	if got := w2.ranOn(t, 6); !sameSet(got, ids) {
		t.Fatalf("w2 ran %v, want %v", got, ids)
	}
	select {
	case id := <-w1.ran:
		t.Fatalf("drained w1 ran %s", id)
	default:
	}

	// Resume: w1 (idle longest) takes the next run.
	if res := ctlHTTP(t, http.MethodPost, base+"/api/v1/workers/w1/resume", "{}", true); res.status != http.StatusOK {
		t.Fatalf("resume: %d %s", res.status, res.body)
	}
	awaitStats(t, w1.w, func(s worker.Stats) bool { return !s.Draining && s.Window == 1 })
	deadline := time.Now().Add(10 * time.Second)
	for { // until the worker's credits reach the server
		res := ctlHTTP(t, http.MethodGet, base+"/api/v1/workers/w1", "", true)
		if json.Unmarshal(res.body, &wk) == nil && !wk.Draining {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("w1 still draining: %s", res.body)
		}
		time.Sleep(10 * time.Millisecond) // the worker's stream
	}
	ids = submitNoop(t, base, 1)
	if got := w1.ranOn(t, 1); got[0] != ids[0] {
		t.Fatalf("resumed w1 ran %v, want %v", got, ids)
	}

	// Commands.
	reps := replies(t, ctlHTTP(t, http.MethodPost, base+"/api/v1/workers/w1/command", `{"name":"echo","args":{"a":[1,2]}}`, true))
	if len(reps.Items) != 1 || !reps.Items[0].OK || reps.Items[0].Worker != "w1" || string(reps.Items[0].Result) != `{"args":{"a":[1,2]},"worker":"w1"}` {
		t.Fatalf("echo: %+v", reps)
	}
	reps = replies(t, ctlHTTP(t, http.MethodPost, base+"/api/v1/workers/w1/command", `{"name":"fail"}`, true))
	if it := reps.Items[0]; it.OK || it.Error != "nope" || it.Result != nil {
		t.Fatalf("fail: %+v", reps)
	}
	reps = replies(t, ctlHTTP(t, http.MethodPost, base+"/api/v1/workers/w1/command", `{"name":"reboot"}`, true))
	if it := reps.Items[0]; it.OK || !strings.Contains(it.Error, `unknown command "reboot"`) || !strings.Contains(it.Error, "echo, fail, slow") {
		t.Fatalf("unknown: %+v", reps)
	}
	began := time.Now()
	reps = replies(t, ctlHTTP(t, http.MethodPost, base+"/api/v1/workers/w1/command", `{"name":"slow","timeout":"300ms"}`, true))
	if it := reps.Items[0]; it.OK || it.Error != "timeout" {
		t.Fatalf("slow: %+v", reps)
	}
	if took := time.Since(began); took < 300*time.Millisecond || took > 5*time.Second {
		t.Fatalf("a 300ms command timed out after %v", took)
	}

	// A group command: every worker, in id order.
	reps = replies(t, ctlHTTP(t, http.MethodPost, base+"/api/v1/groups/default/command", `{"name":"echo","args":"hi","timeout":"5s"}`, true))
	if len(reps.Items) != 2 || reps.Items[0].Worker != "w1" || reps.Items[1].Worker != "w2" || !reps.Items[0].OK || !reps.Items[1].OK ||
		string(reps.Items[1].Result) != `{"args":"hi","worker":"w2"}` || reps.Unreachable != nil {
		t.Fatalf("group echo: %s", mustJSON(reps))
	}

	// Bad requests.
	for _, tc := range []struct {
		path, body string
		status     int
		field      string
	}{
		{"/api/v1/workers/w1/command", `{}`, 400, "name"},
		{"/api/v1/workers/w1/command", ``, 400, ""},
		{"/api/v1/workers/w1/command", `{"name":"echo","timeout":"soon"}`, 400, "timeout"},
		{"/api/v1/workers/w1/command", `{"name":"echo","timeout":"-1s"}`, 400, "timeout"},
		{"/api/v1/workers/w1/command", `{"name":"echo","timeout":"6m"}`, 400, "timeout"},
		{"/api/v1/workers/w1/command", `{"name":"echo","timeout":5}`, 400, "timeout"},
		{"/api/v1/workers/w1/command", `{"name":"echo","argz":1}`, 400, "argz"},
		{"/api/v1/workers/w1/command", `[1]`, 400, ""},
		{"/api/v1/workers/w1/drain", `{"force":true}`, 400, "force"},
		{"/api/v1/workers/nope/command", `{"name":"echo"}`, 404, ""},
		{"/api/v1/workers/nope/drain", ``, 404, ""},
		{"/api/v1/groups/nobody/command", `{"name":"echo"}`, 404, ""},
	} {
		res := ctlHTTP(t, http.MethodPost, base+tc.path, tc.body, true)
		var e apijson.Error
		_ = json.Unmarshal(res.body, &e)
		if res.status != tc.status || e.Error.Field != tc.field || e.Error.Message == "" {
			t.Errorf("POST %s %s: %d %s, want %d with field %q", tc.path, tc.body, res.status, res.body, tc.status, tc.field)
		}
	}

	// Shutdown and restart.
	if res := ctlHTTP(t, http.MethodPost, base+"/api/v1/workers/w2/shutdown", "", true); res.status != http.StatusAccepted {
		t.Fatalf("shutdown: %d %s", res.status, res.body)
	}
	if err := awaitDone(t, w2); err != nil {
		t.Fatalf("w2 Run after shutdown: %v, want nil", err)
	}
	res = ctlHTTP(t, http.MethodPost, base+"/api/v1/workers/w1/restart", "", true)
	if res.status != http.StatusAccepted || json.Unmarshal(res.body, &wk) != nil || !wk.Leaving {
		t.Fatalf("restart: %d %s", res.status, res.body)
	}
	// A leaving worker is 409 while it drains; one holding nothing may
	// already have closed its stream and be gone (404).
	if res := ctlHTTP(t, http.MethodPost, base+"/api/v1/workers/w1/drain", "", true); res.status != http.StatusConflict && res.status != http.StatusNotFound {
		t.Fatalf("drain a leaving worker: %d %s", res.status, res.body)
	}
	if err := awaitDone(t, w1); !errors.Is(err, worker.ErrRestart) {
		t.Fatalf("w1 Run after restart: %v, want ErrRestart", err)
	}
}

func awaitDone(t *testing.T, cw *ctlWorker) error {
	t.Helper()
	select {
	case err := <-cw.done:
		cw.done <- err // for the cleanup
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the worker did not exit")
		return nil
	}
}

func awaitStats(t *testing.T, w *worker.Worker, ok func(worker.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(w.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("worker stats %+v", w.Stats())
		}
		time.Sleep(10 * time.Millisecond) // the worker's own goroutines
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// ctlPostgres returns the URL of a fresh PostgreSQL schema, or skips.
func ctlPostgres(t *testing.T) string {
	t.Helper()
	base := os.Getenv("PLUTO_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL unreachable at %s: %v", base, err)
		}
		t.Skipf("PostgreSQL unreachable at %s: %v", base, err)
	}
	conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "ctl_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, base); err == nil {
			_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			conn.Close(ctx)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestWorkerRemoteControlAcrossCluster: two servers share PostgreSQL; each
// has one worker. Asking s1 about s2's worker answers 307 to s2 (with
// ?local=1), which a client follows; a group command asked of either server
// reaches both workers; a worker on no server is a 404.
func TestWorkerRemoteControlAcrossCluster(t *testing.T) {
	pg := ctlPostgres(t)
	s1 := startCtlServer(t, Config{Store: pg, ServerID: "s1"})
	s2 := startCtlServer(t, Config{Store: pg, ServerID: "s2"})
	startCtlWorker(t, "w1", s1.GRPCAddr())
	w2 := startCtlWorker(t, "w2", s2.GRPCAddr())
	awaitWorkers(t, s1.HTTPURL(), "w1")
	awaitWorkers(t, s2.HTTPURL(), "w2")
	deadline := time.Now().Add(20 * time.Second)
	for { // both servers registered and alive
		var c apijson.Cluster
		_ = json.Unmarshal(ctlHTTP(t, http.MethodGet, s1.HTTPURL()+"/api/v1/cluster", "", true).body, &c)
		alive := 0
		for _, s := range c.Servers {
			if s.Alive {
				alive++
			}
		}
		if alive == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster %+v", c)
		}
		time.Sleep(50 * time.Millisecond) // the servers' registration loops
	}

	// The listing is the cluster's; ?local=1 is this server's.
	for _, tc := range []struct {
		query string
		want  []string
	}{{"", []string{"w1@s1", "w2@s2"}}, {"?local=1", []string{"w1@s1"}}} {
		var list struct {
			Items []apijson.Worker `json:"items"`
		}
		res := ctlHTTP(t, http.MethodGet, s1.HTTPURL()+"/api/v1/workers"+tc.query, "", true)
		if err := json.Unmarshal(res.body, &list); err != nil || res.status != http.StatusOK {
			t.Fatalf("GET workers%s: %d %s", tc.query, res.status, res.body)
		}
		var got []string
		for _, w := range list.Items {
			got = append(got, w.ID+"@"+w.Server)
		}
		if !slices.Equal(got, tc.want) {
			t.Fatalf("GET workers%s via s1: %v, want %v", tc.query, got, tc.want)
		}
	}

	res := ctlHTTP(t, http.MethodPost, s1.HTTPURL()+"/api/v1/workers/w2/drain", "", false)
	want := s2.HTTPURL() + "/api/v1/workers/w2/drain?local=1"
	if res.status != http.StatusTemporaryRedirect || res.header.Get("Location") != want || !strings.Contains(string(res.body), "connected to server s2") {
		t.Fatalf("drain w2 on s1: %d %v %s, want 307 to %s", res.status, res.header, res.body, want)
	}
	res = ctlHTTP(t, http.MethodPost, s1.HTTPURL()+"/api/v1/workers/w2/drain", "", true)
	var wk apijson.Worker
	if res.status != http.StatusOK || json.Unmarshal(res.body, &wk) != nil || wk.Server != "s2" {
		t.Fatalf("drain w2 via s1, following: %d %s", res.status, res.body)
	}
	awaitStats(t, w2.w, func(s worker.Stats) bool { return s.Draining })

	reps := replies(t, ctlHTTP(t, http.MethodPost, s1.HTTPURL()+"/api/v1/workers/w2/command", `{"name":"echo","args":1}`, true))
	if len(reps.Items) != 1 || !reps.Items[0].OK || reps.Items[0].Server != "s2" {
		t.Fatalf("command w2 via s1: %s", mustJSON(reps))
	}
	for _, s := range []*Server{s1, s2} {
		reps = replies(t, ctlHTTP(t, http.MethodPost, s.HTTPURL()+"/api/v1/groups/default/command", `{"name":"echo","timeout":"5s"}`, true))
		var got []string
		for _, it := range reps.Items {
			got = append(got, fmt.Sprintf("%s@%s ok=%v", it.Worker, it.Server, it.OK))
		}
		if want := []string{"w1@s1 ok=true", "w2@s2 ok=true"}; !slices.Equal(got, want) {
			t.Fatalf("group command via %s: %v, want %v", s.cfg.ServerID, got, want)
		}
	}
	// ?local=1: this server only.
	reps = replies(t, ctlHTTP(t, http.MethodPost, s1.HTTPURL()+"/api/v1/groups/default/command?local=1", `{"name":"echo"}`, true))
	if len(reps.Items) != 1 || reps.Items[0].Worker != "w1" {
		t.Fatalf("local group command: %s", mustJSON(reps))
	}
	if res := ctlHTTP(t, http.MethodPost, s1.HTTPURL()+"/api/v1/workers/w2/drain?local=1", "", true); res.status != http.StatusNotFound {
		t.Fatalf("local drain of another server's worker: %d %s", res.status, res.body)
	}
	res = ctlHTTP(t, http.MethodPost, s1.HTTPURL()+"/api/v1/workers/w9/shutdown", "", true)
	if res.status != http.StatusNotFound || !strings.Contains(string(res.body), "any server") {
		t.Fatalf("unknown worker: %d %s", res.status, res.body)
	}
}
