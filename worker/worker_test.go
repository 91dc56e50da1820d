package worker

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

func noop(context.Context, *Run) error { return nil }

func TestNewValidation(t *testing.T) {
	mux := NewMux()
	mux.HandleFunc("noop", noop)
	valid := Options{Servers: []string{"127.0.0.1:1"}, Handler: mux}
	tests := []struct {
		name  string
		edit  func(*Options)
		field string
	}{
		{"no servers", func(o *Options) { o.Servers = nil }, "Servers"},
		{"empty server", func(o *Options) { o.Servers = []string{"a:1", ""} }, "Servers[1]"},
		{"no handler", func(o *Options) { o.Handler = nil }, "Handler"},
		{"negative capacity", func(o *Options) { o.Capacity = -1 }, "Capacity"},
		{"bad prefetch", func(o *Options) { o.Prefetch = -2 }, "Prefetch"},
		{"negative drain timeout", func(o *Options) { o.DrainTimeout = -time.Second }, "DrainTimeout"},
		{"no types", func(o *Options) { o.Handler = HandlerFunc(noop) }, "Types"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid
			tt.edit(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), "Options."+tt.field+":") {
				t.Fatalf("New: err = %v, want one naming %s", err, tt.field)
			}
		})
	}
	w, err := New(valid)
	if err != nil {
		t.Fatal(err)
	}
	if w.opts.Group != "default" || w.opts.Capacity < 1 || w.window != int32(2*w.opts.Capacity) || w.opts.DrainTimeout != 30*time.Second || w.ID() == "" {
		t.Fatalf("defaults not applied: %+v", w.opts)
	}
	// A plain HandlerFunc works with explicit Types.
	if _, err := New(Options{Servers: []string{"a:1"}, Handler: HandlerFunc(noop), Types: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
}

func TestHello(t *testing.T) {
	f := startFake(t)
	mux := NewMux()
	mux.HandleFunc("b.type", noop)
	mux.HandleFunc("a.type", noop)
	w, err := New(Options{
		Servers: []string{f.addr}, ID: "w-1", Group: "g1", Capacity: 3, Prefetch: 2,
		Handler: mux, Version: "v1.2.3", Logger: discardLogger,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleCommand("ping", func(context.Context, json.RawMessage) (any, error) { return "pong", nil })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	c := f.next(t)
	want := &plutov1.Hello{
		WorkerId: "w-1", Group: "g1", Capacity: 3, HandlerTypes: []string{"a.type", "b.type"},
		Version: "v1.2.3", Hostname: w.hostname, Window: 5, Commands: []string{"ping"},
		MaxMessageBytes: maxRecvBytes, Instance: c.hello.GetInstance(), // its value: TestHelloInstanceLimitAndDraining
	}
	if diff := cmp.Diff(want, c.hello, protocmp.Transform()); diff != "" {
		t.Errorf("Hello mismatch (-want +got):\n%s", diff)
	}
	if c.hello.GetHostname() == "" {
		t.Error("Hello.hostname is empty")
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run = %v", err)
	}

	// Prefetch -1: the window is the capacity.
	r := startWorker(t, Options{Servers: []string{f.addr}, Capacity: 4, Prefetch: -1, Handler: mux})
	if got := f.next(t).hello.GetWindow(); got != 4 {
		t.Errorf("window with Prefetch -1 = %d, want 4", got)
	}
	r.stop(t)
}

func TestDispatchAckResult(t *testing.T) {
	f := startFake(t)
	g := newGate()
	mux := NewMux()
	mux.HandleFunc("echo", func(ctx context.Context, r *Run) error {
		var p struct{ N int }
		if err := r.Decode(&p); err != nil {
			return err
		}
		if err := g.ProcessRun(ctx, r); err != nil {
			return err
		}
		return r.SetResult(map[string]any{"n": p.N * 2, "attempt": r.Attempt(), "job": r.Job(), "max": r.MaxAttempts()})
	})
	mux.HandleFunc("fail", func(context.Context, *Run) error { return NoRetry(errors.New("bad input")) })
	mux.HandleFunc("failretry", func(_ context.Context, r *Run) error {
		r.SetResult(json.RawMessage(`{"partial":true}`))
		return errors.New("flaky")
	})
	mux.HandleFunc("panic", func(context.Context, *Run) error { panic("boom") })
	mux.HandleFunc("badjson", func(_ context.Context, r *Run) error { var v struct{ N int }; return r.Decode(&v) })
	startWorker(t, Options{Servers: []string{f.addr}, Capacity: 4, Handler: mux})
	c := f.next(t)

	c.dispatch(&plutov1.Task{RunId: "r1", Attempt: 3, Type: "echo", Payload: []byte(`{"N":21}`), Job: "j", MaxAttempts: 5})
	if id := g.waitStarted(t); id != "r1" {
		t.Fatalf("started %q", id)
	}
	msgs := c.waitFor(t, "ack of r1", func(msgs []*plutov1.WorkerMessage) bool { return len(acks(msgs)) == 1 })
	ack := acks(msgs)[0]
	if ack.GetRunId() != "r1" || ack.GetAttempt() != 3 || ack.GetStartedUnixMs() == 0 {
		t.Fatalf("ack = %v", ack)
	}
	close(g.release)
	res := c.waitResult(t, "r1")
	if res.GetOutcome() != plutov1.Outcome_OUTCOME_SUCCEEDED || res.GetAttempt() != 3 || len(res.GetError()) != 0 {
		t.Fatalf("result = %v", res)
	}
	if got, want := string(res.GetResult()), `{"attempt":3,"job":"j","max":5,"n":42}`; got != want {
		t.Errorf("result JSON = %s, want %s", got, want)
	}
	if res.GetStartedUnixMs() != ack.GetStartedUnixMs() || res.GetFinishedUnixMs() < res.GetStartedUnixMs() {
		t.Errorf("times: started %d finished %d ack %d", res.GetStartedUnixMs(), res.GetFinishedUnixMs(), ack.GetStartedUnixMs())
	}

	c.dispatch(task("f1", "fail"), task("f2", "failretry"), task("p1", "panic"), task("u1", "nope"), &plutov1.Task{RunId: "b1", Attempt: 1, Type: "badjson", Payload: []byte(`{`)})
	rs := c.waitResults(t, 6)
	check := func(id string, outcome plutov1.Outcome, errSub string, noRetry bool) {
		t.Helper()
		r := rs[id]
		if r.GetOutcome() != outcome || !strings.Contains(string(r.GetError()), errSub) || r.GetNoRetry() != noRetry {
			t.Errorf("%s: result = %v; want %v, error containing %q, no_retry %v", id, r, outcome, errSub, noRetry)
		}
	}
	check("f1", plutov1.Outcome_OUTCOME_FAILED, "bad input", true)
	check("f2", plutov1.Outcome_OUTCOME_FAILED, "flaky", false)
	check("p1", plutov1.Outcome_OUTCOME_FAILED, "panic: boom", false)
	check("u1", plutov1.Outcome_OUTCOME_FAILED, `no handler for run type "nope"`, false)
	check("b1", plutov1.Outcome_OUTCOME_FAILED, "payload", true)
	if got := string(rs["f2"].GetResult()); got != `{"partial":true}` {
		t.Errorf("result of a failed attempt = %s", got)
	}
}

func TestLogsBeforeResult(t *testing.T) {
	f := startFake(t)
	mux := NewMux()
	mux.HandleFunc("log", func(_ context.Context, r *Run) error {
		r.Logger().Debug("hidden")
		r.Logger().Info("hello", "k", "v w", "n", 1)
		r.Logger().WithGroup("g").Warn("careful", "x", true)
		out := r.Output(StreamStdout)
		out.Write([]byte("line1\nline"))
		out.Write([]byte("2\npartial"))
		r.Output(StreamStderr).Write([]byte("oops\r\n"))
		return nil
	})
	startWorker(t, Options{Servers: []string{f.addr}, Handler: mux})
	c := f.next(t)
	c.dispatch(&plutov1.Task{RunId: "r1", Attempt: 2, Type: "log"})
	c.waitResult(t, "r1")
	msgs := c.snapshot()
	type line struct{ Stream, Level, Text string }
	var got []line
	lastLog, firstResult := -1, -1
	for i, m := range msgs {
		for _, l := range m.GetLogs().GetLines() {
			if l.GetRunId() != "r1" || l.GetAttempt() != 2 || l.GetUnixMs() == 0 {
				t.Errorf("bad line header: %v", l)
			}
			got = append(got, line{l.GetStream(), l.GetLevel(), string(l.GetText())})
			lastLog = i
		}
		if m.GetResults() != nil && firstResult < 0 {
			firstResult = i
		}
	}
	want := []line{
		{"log", "info", `hello k="v w" n=1`},
		{"log", "warn", "careful g.x=true"},
		{"stdout", "", "line1"},
		{"stdout", "", "line2"},
		{"stderr", "", "oops"},
		{"stdout", "", "partial"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
	if lastLog > firstResult {
		t.Errorf("log lines sent after the result (message %d > %d)", lastLog, firstResult)
	}
}

func TestBatching(t *testing.T) {
	f := startFake(t)
	mux := NewMux()
	mux.HandleFunc("noop", noop)
	const n = 1000
	startWorker(t, Options{Servers: []string{f.addr}, Capacity: 8, Prefetch: n - 8, Handler: mux})
	c := f.next(t)
	tasks := make([]*plutov1.Task, n)
	for i := range tasks {
		tasks[i] = task("r"+strconv.Itoa(i), "noop")
	}
	c.dispatch(tasks...)
	rs := c.waitResults(t, n)
	if len(rs) != n {
		t.Fatalf("%d distinct results, want %d", len(rs), n)
	}
	for id, r := range rs {
		if r.GetOutcome() != plutov1.Outcome_OUTCOME_SUCCEEDED {
			t.Fatalf("%s: %v", id, r)
		}
	}
	msgs := c.snapshot()
	nacks := len(acks(msgs))
	t.Logf("%d runs: %d messages, %d acks", n, len(msgs), nacks)
	// Unbatched this would be 2,000 messages (an ack and a result per run).
	if len(msgs) > n/10 {
		t.Errorf("%d runs took %d messages; want at most %d", n, len(msgs), n/10)
	}
	if nacks+n >= 2*n {
		t.Errorf("no ack was dropped: %d acks for %d results", nacks, n)
	}
}

func TestCapacityAndPrefetch(t *testing.T) {
	f := startFake(t)
	var cur, peak atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{}, 100)
	mux := NewMux()
	mux.HandleFunc("work", func(ctx context.Context, r *Run) error {
		n := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		started <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	r := startWorker(t, Options{Servers: []string{f.addr}, Capacity: 3, Prefetch: 7, Handler: mux})
	c := f.next(t)
	if c.hello.GetWindow() != 10 {
		t.Fatalf("window = %d", c.hello.GetWindow())
	}
	var tasks []*plutov1.Task
	for i := range 10 {
		tasks = append(tasks, task("r"+strconv.Itoa(i), "work"))
	}
	c.dispatch(tasks...)
	for range 3 {
		select {
		case <-started:
		case <-time.After(waitTime):
			t.Fatal("handlers did not start")
		}
	}
	c.waitFor(t, "3 acks", func(msgs []*plutov1.WorkerMessage) bool { return len(acks(msgs)) == 3 })
	if s := r.w.Stats(); s.Running != 3 || s.Queued != 7 {
		t.Fatalf("stats = %+v, want 3 running, 7 queued", s)
	}
	close(release)
	c.waitResults(t, 10)
	if p := peak.Load(); p != 3 {
		t.Errorf("peak concurrency = %d, want 3", p)
	}
}

func TestPrefetchFIFO(t *testing.T) {
	f := startFake(t)
	g := newGate()
	var order []string
	var mu sync.Mutex
	mux := NewMux()
	mux.Handle("block", g)
	mux.HandleFunc("rec", func(_ context.Context, r *Run) error {
		mu.Lock()
		order = append(order, r.ID())
		mu.Unlock()
		return nil
	})
	startWorker(t, Options{Servers: []string{f.addr}, Capacity: 1, Prefetch: 5, Handler: mux})
	c := f.next(t)
	c.dispatch(task("first", "block"), task("a", "rec"), task("b", "rec"), task("c", "rec"))
	c.dispatch(task("d", "rec"), task("e", "rec"))
	g.waitStarted(t)
	close(g.release)
	c.waitResults(t, 6)
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"a", "b", "c", "d", "e"}, order); diff != "" {
		t.Errorf("prefetched runs did not start in FIFO order (-want +got):\n%s", diff)
	}
}

func TestCancelRunning(t *testing.T) {
	f := startFake(t)
	g := newGate()
	mux := NewMux()
	mux.Handle("block", g)
	startWorker(t, Options{Servers: []string{f.addr}, Handler: mux})
	c := f.next(t)
	c.dispatch(task("r1", "block"))
	g.waitStarted(t)
	c.cancel("r1", 2) // another attempt: answered "not held", r1 goes on
	c.cancel("r1", 1)
	if cause := g.waitCause(t); !errors.Is(cause, ErrRunCancelled) {
		t.Errorf("cause = %v", cause)
	}
	res := c.waitAttempt(t, "r1", 1)
	if res.GetOutcome() != plutov1.Outcome_OUTCOME_CANCELLED || !strings.Contains(string(res.GetError()), "cancelled") {
		t.Errorf("result = %v", res)
	}
}

func TestCancelQueued(t *testing.T) {
	f := startFake(t)
	g := newGate()
	var calls sync.Map
	mux := NewMux()
	mux.HandleFunc("block", func(ctx context.Context, r *Run) error {
		calls.Store(r.ID(), true)
		return g.ProcessRun(ctx, r)
	})
	r := startWorker(t, Options{Servers: []string{f.addr}, Capacity: 1, Prefetch: 2, Handler: mux})
	c := f.next(t)
	c.dispatch(task("a", "block"), task("b", "block"), task("c", "block"))
	g.waitStarted(t)
	c.cancel("b", 1)
	res := c.waitResult(t, "b")
	if res.GetOutcome() != plutov1.Outcome_OUTCOME_CANCELLED || res.GetStartedUnixMs() != 0 || res.GetFinishedUnixMs() == 0 {
		t.Errorf("result of queued b = %v", res)
	}
	if s := r.w.Stats(); s.Running != 1 || s.Queued != 1 {
		t.Errorf("stats = %+v", s)
	}
	close(g.release)
	rs := c.waitResults(t, 3)
	if rs["a"].GetOutcome() != plutov1.Outcome_OUTCOME_SUCCEEDED || rs["c"].GetOutcome() != plutov1.Outcome_OUTCOME_SUCCEEDED {
		t.Errorf("results = %v", rs)
	}
	if _, called := calls.Load("b"); called {
		t.Error("the handler ran for a run cancelled while queued")
	}
	for _, a := range acks(c.snapshot()) {
		if a.GetRunId() == "b" {
			t.Error("a run cancelled while queued was acked")
		}
	}
}

func TestTimeout(t *testing.T) {
	f := startFake(t)
	g := newGate()
	var called atomic.Bool
	mux := NewMux()
	mux.Handle("block", g)
	mux.HandleFunc("late", func(context.Context, *Run) error { called.Store(true); return nil })
	mux.HandleFunc("deadline", func(_ context.Context, r *Run) error {
		d, ok := r.Deadline()
		return r.SetResult(map[string]bool{"ok": ok && time.Until(d) > time.Minute})
	})
	startWorker(t, Options{Servers: []string{f.addr}, Handler: mux})
	c := f.next(t)
	c.dispatch(&plutov1.Task{RunId: "t1", Attempt: 1, Type: "block", TimeoutMs: 50})
	if cause := g.waitCause(t); !errors.Is(cause, ErrRunTimedOut) {
		t.Errorf("cause = %v", cause)
	}
	res := c.waitResult(t, "t1")
	if res.GetOutcome() != plutov1.Outcome_OUTCOME_TIMED_OUT || !strings.Contains(string(res.GetError()), "timed out") {
		t.Errorf("result = %v", res)
	}

	c.dispatch(&plutov1.Task{RunId: "t2", Attempt: 1, Type: "late", DeadlineUnixMs: time.Now().Add(-time.Second).UnixMilli()})
	if res := c.waitResult(t, "t2"); res.GetOutcome() != plutov1.Outcome_OUTCOME_TIMED_OUT {
		t.Errorf("past deadline: result = %v", res)
	}
	if called.Load() {
		t.Error("handler called after the run's deadline")
	}

	c.dispatch(&plutov1.Task{RunId: "t3", Attempt: 1, Type: "deadline", TimeoutMs: time.Hour.Milliseconds(), DeadlineUnixMs: time.Now().Add(2 * time.Hour).UnixMilli()})
	if res := c.waitResult(t, "t3"); string(res.GetResult()) != `{"ok":true}` {
		t.Errorf("Deadline(): result = %s", res.GetResult())
	}
}

func TestDrainOnContextCancel(t *testing.T) {
	f := startFake(t)
	g := newGate()
	mux := NewMux()
	mux.Handle("block", g)
	r := startWorker(t, Options{Servers: []string{f.addr}, Capacity: 2, Handler: mux})
	c := f.next(t)
	c.dispatch(task("r1", "block"), task("r2", "block"))
	g.waitStarted(t)
	g.waitStarted(t)
	r.cancel()
	c.waitFor(t, "Credits{0}", func(msgs []*plutov1.WorkerMessage) bool { return slices.Contains(credits(msgs), 0) })
	select {
	case err := <-r.errc:
		t.Fatalf("Run returned %v before its runs finished", err)
	default:
	}
	if s := r.w.Stats(); !s.Draining || s.Window != 0 {
		t.Errorf("stats = %+v", s)
	}
	close(g.release)
	rs := c.waitResults(t, 2)
	if err := r.wait(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	for id, res := range rs {
		if res.GetOutcome() != plutov1.Outcome_OUTCOME_SUCCEEDED {
			t.Errorf("%s: %v", id, res)
		}
	}
}

func TestDrainTimeout(t *testing.T) {
	f := startFake(t)
	g := newGate()
	mux := NewMux()
	mux.Handle("block", g)
	r := startWorker(t, Options{Servers: []string{f.addr}, Capacity: 1, Prefetch: 1, DrainTimeout: 50 * time.Millisecond, Handler: mux})
	c := f.next(t)
	c.dispatch(task("r1", "block"), task("r2", "block"))
	g.waitStarted(t)
	if err := r.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if cause := g.waitCause(t); !errors.Is(cause, ErrDrainTimeout) {
		t.Errorf("cause = %v", cause)
	}
	msgs := c.snapshot()
	rs := results(msgs)
	if len(rs) != 1 || rs[0].GetRunId() != "r1" || rs[0].GetOutcome() != plutov1.Outcome_OUTCOME_FAILED || !strings.Contains(string(rs[0].GetError()), "drain timeout") {
		t.Errorf("results = %v; want r1 FAILED by the drain timeout, r2 abandoned", rs)
	}
}

func TestResultResentUntilAcked(t *testing.T) {
	f := startFake(t)
	f.autoAck.Store(false)
	mux := NewMux()
	mux.HandleFunc("noop", func(_ context.Context, r *Run) error { return r.SetResult("done") })
	r := startWorker(t, Options{Servers: []string{f.addr}, Handler: mux})
	c1 := f.next(t)
	c1.dispatch(task("r1", "noop"))
	c1.waitResult(t, "r1")
	c1.close()

	c2 := f.next(t)
	want := []*plutov1.RunRef{{RunId: "r1", Attempt: 1}}
	if diff := cmp.Diff(want, c2.hello.GetHeld(), protocmp.Transform(), ignoreStart); diff != "" {
		t.Errorf("held after reconnect (-want +got):\n%s", diff)
	}
	if res := c2.waitResult(t, "r1"); string(res.GetResult()) != `"done"` || res.GetOutcome() != plutov1.Outcome_OUTCOME_SUCCEEDED {
		t.Errorf("resent result = %v", res)
	}
	if s := r.w.Stats(); s.Unacked != 1 {
		t.Errorf("stats = %+v", s)
	}
	c2.send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_ResultAcks{ResultAcks: &plutov1.ResultAcks{
		Acks: []*plutov1.ResultAck{{RunId: "r1", Attempt: 1, Accepted: false}},
	}}})
	// Use a later run as a barrier: once its result arrives the ack above
	// has been processed (the stream is ordered).
	c2.dispatch(task("r2", "noop"))
	c2.waitResult(t, "r2")
	c2.close()

	c3 := f.next(t)
	want = []*plutov1.RunRef{{RunId: "r2", Attempt: 1}}
	if diff := cmp.Diff(want, c3.hello.GetHeld(), protocmp.Transform(), ignoreStart); diff != "" {
		t.Errorf("held after the ack (-want +got):\n%s", diff)
	}
	for _, res := range results(c3.waitFor(t, "r2 resent", func(msgs []*plutov1.WorkerMessage) bool { return len(results(msgs)) > 0 })) {
		if res.GetRunId() == "r1" {
			t.Error("acknowledged result sent again")
		}
	}
	f.autoAck.Store(true)
	c3.dispatch(task("r3", "noop"))
	c3.waitResult(t, "r3")
}

func TestRunsSurviveReconnect(t *testing.T) {
	f := startFake(t)
	g := newGate()
	mux := NewMux()
	mux.Handle("block", g)
	r := startWorker(t, Options{Servers: []string{f.addr}, Handler: mux})
	c1 := f.next(t)
	c1.dispatch(task("r1", "block"))
	g.waitStarted(t)
	c1.close()
	c2 := f.next(t)
	if held := c2.hello.GetHeld(); len(held) != 1 || held[0].GetRunId() != "r1" {
		t.Errorf("held = %v", held)
	}
	// The running run is acked again on the new stream.
	c2.waitFor(t, "re-ack", func(msgs []*plutov1.WorkerMessage) bool { return len(acks(msgs)) == 1 })
	close(g.release)
	if res := c2.waitResult(t, "r1"); res.GetOutcome() != plutov1.Outcome_OUTCOME_SUCCEEDED {
		t.Errorf("result = %v", res)
	}
	if s := r.w.Stats(); !s.Connected || s.Server != f.addr {
		t.Errorf("stats = %+v", s)
	}
}

func TestWelcomeStale(t *testing.T) {
	f := startFake(t)
	f.stale = func(n int, h *plutov1.Hello) []*plutov1.RunRef {
		if n == 2 {
			return h.GetHeld()
		}
		return nil
	}
	g := newGate()
	mux := NewMux()
	mux.Handle("block", g)
	mux.HandleFunc("noop", noop)
	f.autoAck.Store(false)
	r := startWorker(t, Options{Servers: []string{f.addr}, Capacity: 1, Prefetch: 2, Handler: mux})
	c1 := f.next(t)
	c1.dispatch(task("run", "block"), task("queued", "block"))
	g.waitStarted(t)
	c1.close()

	c2 := f.next(t)
	if len(c2.hello.GetHeld()) != 2 {
		t.Fatalf("held = %v", c2.hello.GetHeld())
	}
	if cause := g.waitCause(t); !errors.Is(cause, ErrStaleRun) {
		t.Errorf("cause = %v", cause)
	}
	f.autoAck.Store(true)
	c2.dispatch(task("after", "noop"))
	c2.waitResult(t, "after")
	for _, res := range results(c2.snapshot()) {
		if res.GetRunId() != "after" {
			t.Errorf("result of a stale run sent: %v", res)
		}
	}
	select {
	case id := <-g.started:
		t.Errorf("stale queued run %s was started", id)
	default:
	}
	if s := r.w.Stats(); s.Running != 0 || s.Queued != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestHeartbeat(t *testing.T) {
	f := startFake(t)
	f.heartbeatMs = 10
	mux := NewMux()
	mux.HandleFunc("noop", noop)
	startWorker(t, Options{Servers: []string{f.addr}, Capacity: 5, Handler: mux})
	c := f.next(t)
	msgs := c.waitFor(t, "two heartbeats", func(msgs []*plutov1.WorkerMessage) bool {
		n := 0
		for _, m := range msgs {
			if m.GetHeartbeat() != nil {
				n++
			}
		}
		return n >= 2
	})
	for _, m := range msgs {
		if hb := m.GetHeartbeat(); hb != nil {
			if hb.GetCapacity() != 5 || hb.GetRunning() != 0 || hb.GetMemBytes() == 0 || hb.GetCpu() < 0 {
				t.Errorf("heartbeat = %v", hb)
			}
		}
	}
}

func TestServerDrainAndResume(t *testing.T) {
	f := startFake(t)
	mux := NewMux()
	mux.HandleFunc("noop", noop)
	r := startWorker(t, Options{Servers: []string{f.addr}, Capacity: 2, Prefetch: 1, Handler: mux})
	c := f.next(t)
	c.send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Drain{Drain: &plutov1.Drain{}}})
	c.waitFor(t, "Credits{0}", func(msgs []*plutov1.WorkerMessage) bool { return slices.Equal(credits(msgs), []int32{0}) })
	if s := r.w.Stats(); s.Window != 0 || !s.Draining {
		t.Errorf("stats = %+v", s)
	}
	// Runs already dispatched still run.
	c.dispatch(task("r1", "noop"))
	c.waitResult(t, "r1")
	c.send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Drain{Drain: &plutov1.Drain{Resume: true}}})
	c.waitFor(t, "Credits{3}", func(msgs []*plutov1.WorkerMessage) bool { return slices.Equal(credits(msgs), []int32{0, 3}) })
}

func TestShutdown(t *testing.T) {
	for _, restart := range []bool{false, true} {
		f := startFake(t)
		g := newGate()
		mux := NewMux()
		mux.Handle("block", g)
		r := startWorker(t, Options{Servers: []string{f.addr}, Handler: mux})
		c := f.next(t)
		c.dispatch(task("r1", "block"))
		g.waitStarted(t)
		c.send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Shutdown{Shutdown: &plutov1.Shutdown{Restart: restart}}})
		c.waitFor(t, "Credits{0}", func(msgs []*plutov1.WorkerMessage) bool { return slices.Contains(credits(msgs), 0) })
		close(g.release)
		c.waitResult(t, "r1")
		err := r.wait(t)
		if restart && !errors.Is(err, ErrRestart) || !restart && err != nil {
			t.Errorf("restart=%v: Run = %v", restart, err)
		}
	}
}

func TestCommands(t *testing.T) {
	f := startFake(t)
	mux := NewMux()
	mux.HandleFunc("noop", noop)
	w, err := New(Options{Servers: []string{f.addr}, Handler: mux, Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleCommand("echo", func(_ context.Context, args json.RawMessage) (any, error) { return args, nil })
	w.HandleCommand("fail", func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("nope") })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	c := f.next(t)
	for _, cmd := range []*plutov1.Command{
		{CommandId: "1", Name: "what"},
		{CommandId: "2", Name: "echo", Args: []byte(`{"a":1}`)},
		{CommandId: "3", Name: "fail"},
	} {
		c.send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Command{Command: cmd}})
	}
	msgs := c.waitFor(t, "3 replies", func(msgs []*plutov1.WorkerMessage) bool {
		n := 0
		for _, m := range msgs {
			if m.GetCommandReply() != nil {
				n++
			}
		}
		return n == 3
	})
	got := map[string]*plutov1.CommandReply{}
	for _, m := range msgs {
		if rep := m.GetCommandReply(); rep != nil {
			got[rep.GetCommandId()] = rep
		}
	}
	if got["1"].GetError() != "unknown command" || string(got["2"].GetReply()) != `{"a":1}` || got["2"].GetError() != "" || got["3"].GetError() != "nope" {
		t.Errorf("replies = %v", got)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestFailover(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	f := startFake(t)
	mux := NewMux()
	mux.HandleFunc("noop", noop)
	r := startWorker(t, Options{Servers: []string{dead, f.addr}, Handler: mux})
	c := f.next(t)
	c.dispatch(task("r1", "noop"))
	c.waitResult(t, "r1")
	if s := r.w.Stats(); s.Server != f.addr {
		t.Errorf("server = %q, want %q", s.Server, f.addr)
	}
}

func TestDrainWithoutServer(t *testing.T) {
	mux := NewMux()
	mux.HandleFunc("noop", noop)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	r := startWorker(t, Options{Servers: []string{dead}, Handler: mux})
	if err := r.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

func TestRunTwice(t *testing.T) {
	f := startFake(t)
	mux := NewMux()
	mux.HandleFunc("noop", noop)
	r := startWorker(t, Options{Servers: []string{f.addr}, Handler: mux})
	f.next(t)
	if err := r.w.Run(context.Background()); err == nil {
		t.Error("second Run did not fail")
	}
}

func TestRunWithSignals(t *testing.T) {
	f := startFake(t)
	g := newGate()
	mux := NewMux()
	mux.Handle("block", g)
	w, err := New(Options{Servers: []string{f.addr}, Handler: mux, DrainTimeout: time.Hour, Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- w.RunWithSignals(context.Background()) }()
	c := f.next(t) // signal handlers are installed before Run connects
	c.dispatch(task("r1", "block"))
	g.waitStarted(t)
	// First SIGTERM: drain (the run keeps going).
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "Credits{0}", func(msgs []*plutov1.WorkerMessage) bool { return slices.Contains(credits(msgs), 0) })
	// Second: cut the drain short.
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if cause := g.waitCause(t); !errors.Is(cause, ErrDrainTimeout) {
		t.Errorf("cause = %v", cause)
	}
	if res := c.waitResult(t, "r1"); res.GetOutcome() != plutov1.Outcome_OUTCOME_FAILED {
		t.Errorf("result = %v", res)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("RunWithSignals = %v", err)
		}
	case <-time.After(waitTime):
		t.Fatal("RunWithSignals did not return")
	}
}

// A handler returning Poke reports OUTCOME_POKE with its delay; the run's
// logical time and creation time come from the task.
func TestPokeAndLogicalTime(t *testing.T) {
	f := startFake(t)
	slot := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var got, created atomic.Value
	mux := NewMux()
	mux.HandleFunc("sensor", func(_ context.Context, r *Run) error {
		got.Store(r.LogicalTime())
		created.Store(r.CreatedAt())
		return Poke(90 * time.Second)
	})
	startWorker(t, Options{Servers: []string{f.addr}, Handler: mux})
	c := f.next(t)
	c.dispatch(&plutov1.Task{RunId: "s1", Attempt: 1, Type: "sensor", LogicalTimeUnixMs: slot.UnixMilli(), CreatedUnixMs: slot.Add(time.Hour).UnixMilli()})
	res := c.waitResult(t, "s1")
	if res.GetOutcome() != plutov1.Outcome_OUTCOME_POKE || res.GetPokeAfterMs() != 90000 || len(res.GetError()) != 0 {
		t.Errorf("result = %v", res)
	}
	if lt, _ := got.Load().(time.Time); !lt.Equal(slot) {
		t.Errorf("LogicalTime %v, want %v", lt, slot)
	}
	if ct, _ := created.Load().(time.Time); !ct.Equal(slot.Add(time.Hour)) {
		t.Errorf("CreatedAt %v", ct)
	}
}
