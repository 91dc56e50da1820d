package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMuxDispatch(t *testing.T) {
	mux := NewMux()
	var got []string
	mux.HandleFunc("a", func(_ context.Context, r *Run) error { got = append(got, "a:"+r.ID()); return nil })
	mux.Handle("b", HandlerFunc(func(_ context.Context, r *Run) error { got = append(got, "b:"+r.ID()); return nil }))
	ctx := context.Background()
	if err := mux.ProcessRun(ctx, NewTestRun(TestRun{ID: "1", Type: "b"})); err != nil {
		t.Fatal(err)
	}
	if err := mux.ProcessRun(ctx, NewTestRun(TestRun{ID: "2", Type: "a"})); err != nil {
		t.Fatal(err)
	}
	err := mux.ProcessRun(ctx, NewTestRun(TestRun{ID: "3", Type: "c"}))
	if !errors.Is(err, ErrUnknownType) || !strings.Contains(err.Error(), `"c"`) {
		t.Errorf("unknown type: err = %v", err)
	}
	if diff := cmp.Diff([]string{"b:1", "a:2"}, got); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]string{"a", "b"}, mux.Types()); diff != "" {
		t.Error(diff)
	}
	var zero Mux
	if err := zero.ProcessRun(ctx, NewTestRun(TestRun{Type: "a"})); !errors.Is(err, ErrUnknownType) {
		t.Errorf("zero Mux: err = %v", err)
	}
	zero.HandleFunc("a", noop)
	if err := zero.ProcessRun(ctx, NewTestRun(TestRun{Type: "a"})); err != nil {
		t.Errorf("zero Mux after Handle: err = %v", err)
	}
}

func TestMuxHandlePanics(t *testing.T) {
	for name, f := range map[string]func(m *Mux){
		"empty type":  func(m *Mux) { m.HandleFunc("", noop) },
		"nil handler": func(m *Mux) { m.Handle("x", nil) },
		"duplicate":   func(m *Mux) { m.HandleFunc("a", noop); m.HandleFunc("a", noop) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f(NewMux())
		})
	}
}

func TestMiddlewareOrder(t *testing.T) {
	var trace []string
	mw := func(name string) Middleware {
		return func(next Handler) Handler {
			return HandlerFunc(func(ctx context.Context, r *Run) error {
				trace = append(trace, name+">")
				err := next.ProcessRun(ctx, r)
				trace = append(trace, "<"+name)
				return err
			})
		}
	}
	mux := NewMux()
	mux.Use(mw("outer"), mw("mid"))
	mux.HandleFunc("a", func(context.Context, *Run) error { trace = append(trace, "handler"); return nil })
	mux.Use(mw("inner")) // applies to handlers registered before too
	if err := mux.ProcessRun(context.Background(), NewTestRun(TestRun{Type: "a"})); err != nil {
		t.Fatal(err)
	}
	want := []string{"outer>", "mid>", "inner>", "handler", "<inner", "<mid", "<outer"}
	if diff := cmp.Diff(want, trace); diff != "" {
		t.Error(diff)
	}
	// Middleware also wraps the unknown-type answer.
	trace = nil
	mux.ProcessRun(context.Background(), NewTestRun(TestRun{Type: "zzz"}))
	if len(trace) != 6 {
		t.Errorf("unknown type trace = %v", trace)
	}
}

func TestRecover(t *testing.T) {
	var log bytes.Buffer
	mux := NewMux()
	mux.HandleFunc("p", func(context.Context, *Run) error { panic(fmt.Sprintf("boom %d", 42)) })
	err := mux.ProcessRun(context.Background(), NewTestRun(TestRun{Type: "p", Log: &log}))
	if err == nil || err.Error() != "panic: boom 42" {
		t.Errorf("err = %v", err)
	}
	if !strings.Contains(log.String(), "log error: handler panicked panic=\"boom 42\" stack=") {
		t.Errorf("log = %q", log.String())
	}
	// Even without the Mux, the worker's own call recovers.
	err = callHandler(context.Background(), HandlerFunc(func(context.Context, *Run) error { panic("x") }), NewTestRun(TestRun{}))
	if err == nil || err.Error() != "panic: x" {
		t.Errorf("callHandler: err = %v", err)
	}
}

func TestNoRetry(t *testing.T) {
	if NoRetry(nil) != nil {
		t.Error("NoRetry(nil) != nil")
	}
	base := errors.New("bad")
	err := NoRetry(base)
	if !IsNoRetry(err) || !errors.Is(err, base) || err.Error() != "bad" {
		t.Errorf("NoRetry: %v", err)
	}
	wrapped := fmt.Errorf("ctx: %w", err)
	if !IsNoRetry(wrapped) {
		t.Error("wrapped NoRetry not detected")
	}
	if NoRetry(wrapped) != wrapped {
		t.Error("NoRetry re-wrapped an error already marked")
	}
	if IsNoRetry(base) || IsNoRetry(nil) {
		t.Error("IsNoRetry true for an unmarked error")
	}
	_, _, noRetry := classify(context.Background(), wrapped)
	if !noRetry {
		t.Error("classify lost no_retry")
	}
}

func TestRunAccessors(t *testing.T) {
	dl := time.Now().Add(time.Hour)
	r := NewTestRun(TestRun{ID: "r1", Attempt: 2, MaxAttempts: 3, Type: "t", Group: "g", Job: "j", Payload: json.RawMessage(`{"a":1}`), Deadline: dl})
	if r.ID() != "r1" || r.Attempt() != 2 || r.MaxAttempts() != 3 || r.Type() != "t" || r.Group() != "g" || r.Job() != "j" || string(r.Payload()) != `{"a":1}` {
		t.Errorf("accessors: %+v", r)
	}
	if d, ok := r.Deadline(); !ok || !d.Equal(dl) {
		t.Errorf("Deadline = %v %v", d, ok)
	}
	var p struct{ A int }
	if err := r.Decode(&p); err != nil || p.A != 1 {
		t.Errorf("Decode: %v %+v", err, p)
	}
	if err := NewTestRun(TestRun{}).Decode(&p); err != nil {
		t.Errorf("Decode of no payload: %v", err)
	}
	if err := r.SetResult(map[string]int{"x": 1}); err != nil || string(r.Result()) != `{"x":1}` {
		t.Errorf("SetResult: %v %s", err, r.Result())
	}
	if err := r.SetResult(json.RawMessage(`not json`)); err == nil {
		t.Error("SetResult accepted invalid JSON")
	}
	if err := r.SetResult(func() {}); err == nil {
		t.Error("SetResult accepted a func")
	}
	if string(r.Result()) != `{"x":1}` {
		t.Errorf("failed SetResult changed the result: %s", r.Result())
	}
	d := NewTestRun(TestRun{})
	if d.ID() == "" || d.Attempt() != 1 || d.Group() != "default" {
		t.Errorf("defaults: %+v", d)
	}
	if _, ok := d.Deadline(); ok {
		t.Error("deadline without one")
	}
}

func TestOutputLines(t *testing.T) {
	var log bytes.Buffer
	r := NewTestRun(TestRun{Log: &log})
	out := r.Output(StreamStdout)
	if r.Output(StreamStdout) != out {
		t.Error("Output returned a new writer for the same stream")
	}
	fmt.Fprint(out, "a\nb")
	fmt.Fprint(out, "c\r\n\nd")
	long := strings.Repeat("é", maxLineBytes) // 2 bytes each
	fmt.Fprint(r.Output(StreamStderr), long+"\n")
	r.FlushOutput()
	lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
	if diff := cmp.Diff([]string{"stdout: a", "stdout: bc", "stdout: ", "stderr: " + long[:maxLineBytes], "stderr: " + long[maxLineBytes:], "stdout: d"}, lines); diff != "" {
		t.Error(diff)
	}
}

func TestLoggerFormat(t *testing.T) {
	var log bytes.Buffer
	r := NewTestRun(TestRun{Log: &log, LogLevel: slog.LevelDebug})
	l := r.Logger().With("req", 7).WithGroup("g")
	l.Debug("d", "empty", "", "q", `a"b`)
	l.Info("i", slog.Group("sub", "k", 1), slog.Group("", "inl", 2))
	r.Logger().Log(context.Background(), slog.LevelInfo+2, "custom")
	want := "log debug: d req=7 g.empty=\"\" g.q=\"a\\\"b\"\nlog info: i req=7 g.sub.k=1 g.inl=2\nlog info+2: custom\n"
	if diff := cmp.Diff(want, log.String()); diff != "" {
		t.Error(diff)
	}
	if r.Logger() != r.Logger() {
		t.Error("Logger not cached")
	}
	// Default level is Info.
	log.Reset()
	r2 := NewTestRun(TestRun{Log: &log})
	r2.Logger().Debug("hidden")
	if log.Len() != 0 {
		t.Errorf("debug logged at default level: %q", log.String())
	}
	// A run without a sink discards quietly.
	NewTestRun(TestRun{}).Logger().Info("nothing")
}

func TestParseProc(t *testing.T) {
	stat := []byte("1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 8 0 100 1000000 500 18446744073709551615\n")
	cpu, ok := parseStatCPU(stat)
	if !ok || cpu != 4.0 {
		t.Errorf("parseStatCPU = %v %v, want 4.0 (400 ticks)", cpu, ok)
	}
	if _, ok := parseStatCPU([]byte("garbage")); ok {
		t.Error("parsed garbage")
	}
	if got := parseStatm([]byte("1000 250 100 1 0 300 0\n"), 4096); got != 250*4096 {
		t.Errorf("parseStatm = %d", got)
	}
	var s loadSampler
	s.sample()
	if cpu, rss := s.sample(); cpu < 0 || rss == 0 {
		t.Errorf("sample = %v, %d", cpu, rss)
	}
}
