package worker

import (
	"encoding/hex"
	"slices"
	"testing"

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
