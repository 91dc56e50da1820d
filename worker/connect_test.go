package worker

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// The Hello tells the server the largest message the worker accepts, which
// process it is (an instance token: the same across the reconnects of one
// Worker, another for another Worker with the same ID), and whether a
// window of 0 means a drain.
func TestHelloInstanceLimitAndDraining(t *testing.T) {
	f := startFake(t)
	g := newGate()
	mux := NewMux()
	mux.Handle("block", g)
	opts := Options{Servers: []string{f.addr}, ID: "w-same", Capacity: 2, Prefetch: -1, Handler: mux}
	r := startWorker(t, opts)
	c1 := f.next(t)
	h := c1.hello
	if h.GetMaxMessageBytes() != maxRecvBytes {
		t.Errorf("max_message_bytes = %d, want the receive limit %d", h.GetMaxMessageBytes(), maxRecvBytes)
	}
	if b, err := hex.DecodeString(h.GetInstance()); err != nil || len(b) < 16 {
		t.Errorf("instance = %q, want at least 128 random bits in hex", h.GetInstance())
	}
	if h.GetDraining() || h.GetWindow() != 2 {
		t.Errorf("first hello: draining %v, window %d; want false, 2", h.GetDraining(), h.GetWindow())
	}

	// Drained by the server, then reconnected: same instance, draining.
	c1.send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Drain{Drain: &plutov1.Drain{}}})
	c1.waitFor(t, "Credits{0}", func(msgs []*plutov1.WorkerMessage) bool { return slices.Contains(credits(msgs), 0) })
	c1.close()
	c2 := f.next(t)
	if c2.hello.GetInstance() != h.GetInstance() {
		t.Errorf("instance changed on reconnect: %q, then %q", h.GetInstance(), c2.hello.GetInstance())
	}
	if !c2.hello.GetDraining() || c2.hello.GetWindow() != 0 {
		t.Errorf("hello while drained by the server: draining %v, window %d; want true, 0", c2.hello.GetDraining(), c2.hello.GetWindow())
	}

	// Resumed, then draining because Run's context ended (a run keeps it
	// from returning): the Hello of the next stream says so too.
	c2.send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Drain{Drain: &plutov1.Drain{Resume: true}}})
	c2.waitFor(t, "Credits{2}", func(msgs []*plutov1.WorkerMessage) bool { return slices.Contains(credits(msgs), 2) })
	c2.dispatch(task("r1", "block"))
	g.waitStarted(t)
	r.cancel()
	c2.waitFor(t, "Credits{0}", func(msgs []*plutov1.WorkerMessage) bool { return slices.Contains(credits(msgs), 0) })
	c2.close()
	c3 := f.next(t)
	if !c3.hello.GetDraining() || c3.hello.GetWindow() != 0 || c3.hello.GetInstance() != h.GetInstance() {
		t.Errorf("hello while stopping: draining %v, window %d, instance %q", c3.hello.GetDraining(), c3.hello.GetWindow(), c3.hello.GetInstance())
	}
	close(g.release)
	c3.waitResult(t, "r1")
	if err := r.wait(t); err != nil {
		t.Fatalf("Run = %v", err)
	}

	// Another Worker under the same ID is another instance.
	startWorker(t, opts)
	if other := f.next(t).hello.GetInstance(); other == "" || other == h.GetInstance() {
		t.Errorf("second Worker's instance = %q, first's %q: want a different one", other, h.GetInstance())
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// count returns how many lines contain every one of subs.
func (s *syncBuffer) count(subs ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for l := range strings.Lines(s.b.String()) {
		ok := true
		for _, sub := range subs {
			ok = ok && strings.Contains(l, sub)
		}
		if ok {
			n++
		}
	}
	return n
}

// A worker refused because another process holds its ID (ALREADY_EXISTS)
// says so once per attempt, as an error naming the ID, retries with the
// growing back-off (not in a tight loop), and gets in once the other
// process is gone.
func TestAlreadyExistsBacksOffAndSaysWhy(t *testing.T) {
	f := startFake(t)
	held := status.Error(codes.AlreadyExists, "worker w-dup is connected from another process")
	f.refuseWith.Store(&held)
	var log syncBuffer
	mux := NewMux()
	mux.HandleFunc("noop", noop)
	startWorker(t, Options{Servers: []string{f.addr}, ID: "w-dup", Handler: mux,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})

	// Back-off from 100 ms, doubling, with jitter down to half: at most
	// five attempts (at 0, 50, 150, 350 and 750 ms) fit in 1.5 s.
	const window = 1500 * time.Millisecond
	time.Sleep(window)
	attempts := int(f.attempts.Load())
	if attempts < 2 || attempts > 6 {
		t.Fatalf("%d connection attempts in %v; want a few (back-off from 100 ms, doubling)", attempts, window)
	}
	errorLine := []string{"level=ERROR", `worker ID \"w-dup\" is in use by another process`}
	// Each attempt's error is logged as soon as it fails.
	for deadline := time.Now().Add(2 * time.Second); log.count(errorLine...) < attempts; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d errors naming the ID for %d attempts; want one per attempt. Log:\n%s", log.count(errorLine...), attempts, log.String())
		}
	}
	if n, now := log.count(errorLine...), int(f.attempts.Load()); n > now {
		t.Errorf("%d errors logged for %d attempts; want one per attempt", n, now)
	}
	if n := log.count("cannot connect"); n != 0 {
		t.Errorf("%d 'cannot connect' warnings besides the errors; want only the clear one", n)
	}

	// The other process went away: this one gets in.
	f.refuseWith.Store(nil)
	f.next(t)
}

// Names that cannot travel as protobuf strings are refused by New, not
// retried as "cannot connect" forever.
func TestNewRefusesNamesThatAreNotText(t *testing.T) {
	mux := NewMux()
	mux.HandleFunc("ok", func(context.Context, *Run) error { return nil })
	for field, opts := range map[string]Options{
		"ID":    {ID: "w\xff", Servers: []string{"x:1"}, Handler: mux},
		"Group": {Group: "g\x00", Servers: []string{"x:1"}, Handler: mux},
	} {
		if _, err := New(opts); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("New with a bad %s: %v, want an error naming it", field, err)
		}
	}
}
