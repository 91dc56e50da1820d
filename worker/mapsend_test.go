package worker

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// mapCall is what a handler's Run.Map returned.
type mapCall struct {
	res MapResult
	err error
}

// mapWorker starts a worker whose "map" handler maps parts with opt,
// reports what Map returned on the channel, and returns Map's error.
func mapWorker(t *testing.T, f *fakeServer, parts []Part, opt MapOptions, tweak func(*Worker)) (*running, chan mapCall) {
	t.Helper()
	calls := make(chan mapCall, 1)
	mux := NewMux()
	mux.HandleFunc("map", func(ctx context.Context, r *Run) error {
		res, err := r.Map(ctx, parts, opt)
		calls <- mapCall{res, err}
		return err
	})
	return startWorkerWith(t, Options{Servers: []string{f.addr}, Handler: mux}, tweak), calls
}

func mapsOf(msgs []*plutov1.WorkerMessage) []*plutov1.Map {
	var out []*plutov1.Map
	for _, m := range msgs {
		if mp := m.GetMap(); mp != nil {
			out = append(out, mp)
		}
	}
	return out
}

// waitMaps waits for n Map messages on c.
func waitMaps(t *testing.T, c *fakeConn, n int) []*plutov1.Map {
	t.Helper()
	return mapsOf(c.waitFor(t, "Map", func(msgs []*plutov1.WorkerMessage) bool { return len(mapsOf(msgs)) >= n }))
}

func mapAck(a *plutov1.MapAck) *plutov1.ServerMessage {
	return &plutov1.ServerMessage{Msg: &plutov1.ServerMessage_MapAck{MapAck: a}}
}

func waitCall(t *testing.T, calls chan mapCall) mapCall {
	t.Helper()
	select {
	case c := <-calls:
		return c
	case <-time.After(waitTime):
		t.Fatal("timed out waiting for Map to return")
		return mapCall{}
	}
}

// Map sends the encoded parts and options for the attempt, ignores answers
// for other attempts and returns the matching MapAck's.
func TestMapSendsAndReturnsAck(t *testing.T) {
	f := startFake(t)
	parts := []Part{map[string]string{"file": "a"}, json.RawMessage(`{ "file" : "b" }`), 3}
	r, calls := mapWorker(t, f, parts, MapOptions{MinSuccess: 0.5, Merge: "sum"}, nil)
	c := f.next(t)
	c.dispatch(&plutov1.Task{RunId: "p", Attempt: 2, Type: "map"})

	got := waitMaps(t, c, 1)[0]
	want := &plutov1.Map{RunId: "p", Attempt: 2, MinSuccess: 0.5, Merge: "sum",
		Parts: [][]byte{[]byte(`{"file":"a"}`), []byte(`{ "file" : "b" }`), []byte(`3`)}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("Map mismatch (-want +got):\n%s", diff)
	}
	c.send(mapAck(&plutov1.MapAck{RunId: "p", Attempt: 1, Error: "stale"}))
	c.send(mapAck(&plutov1.MapAck{RunId: "other", Attempt: 2, Children: 9}))
	c.send(mapAck(&plutov1.MapAck{RunId: "p", Attempt: 2, Children: 3, Existing: true}))
	if call := waitCall(t, calls); call.err != nil || call.res != (MapResult{Children: 3, Existing: true}) {
		t.Fatalf("Map = %+v, %v; want {3 true}, nil", call.res, call.err)
	}
	if res := c.waitAttempt(t, "p", 2); res.GetOutcome() != plutov1.Outcome_OUTCOME_SUCCEEDED || !res.GetMapped() {
		t.Errorf("result = %v; want SUCCEEDED, mapped", res)
	}
	if n := len(mapsOf(c.snapshot())); n != 1 {
		t.Errorf("%d Maps sent, want 1", n)
	}
	assertNoPendingMaps(t, r.w)
}

// A MapAck with an error refuses the Map: the handler gets the server's
// reason.
func TestMapRefused(t *testing.T) {
	f := startFake(t)
	r, calls := mapWorker(t, f, []Part{1}, MapOptions{}, nil)
	c := f.next(t)
	c.dispatch(task("p", "map"))
	waitMaps(t, c, 1)
	c.send(mapAck(&plutov1.MapAck{RunId: "p", Attempt: 1, Error: "attempt 1 is not current"}))
	call := waitCall(t, calls)
	if call.err == nil || !strings.Contains(call.err.Error(), "attempt 1 is not current") {
		t.Fatalf("Map error = %v; want the server's reason", call.err)
	}
	if res := c.waitResult(t, "p"); res.GetOutcome() != plutov1.Outcome_OUTCOME_FAILED || !strings.Contains(string(res.GetError()), "not current") || res.GetMapped() {
		t.Errorf("result = %v", res)
	}
	assertNoPendingMaps(t, r.w)
}

// A Map unanswered when its stream ends is sent again on the next one.
func TestMapResentOnReconnect(t *testing.T) {
	f := startFake(t)
	r, calls := mapWorker(t, f, []Part{"x", "y"}, MapOptions{}, func(w *Worker) { w.mapResend = time.Hour })
	c1 := f.next(t)
	c1.dispatch(task("p", "map"))
	first := waitMaps(t, c1, 1)[0]
	c1.close()

	c2 := f.next(t)
	again := waitMaps(t, c2, 1)[0]
	if !cmp.Equal(first, again, protocmp.Transform()) {
		t.Errorf("resent Map = %v, want %v", again, first)
	}
	c2.send(mapAck(&plutov1.MapAck{RunId: "p", Attempt: 1, Children: 2}))
	if call := waitCall(t, calls); call.err != nil || call.res != (MapResult{Children: 2}) {
		t.Fatalf("Map = %+v, %v", call.res, call.err)
	}
	c2.waitResult(t, "p")
	assertNoPendingMaps(t, r.w)
}

// A Map unanswered on a stream that stays up is sent again every
// mapResend; the first answer ends it, and a late duplicate answer is
// dropped.
func TestMapResentWhileUnanswered(t *testing.T) {
	f := startFake(t)
	r, calls := mapWorker(t, f, []Part{"x"}, MapOptions{}, func(w *Worker) { w.mapResend = 20 * time.Millisecond })
	c := f.next(t)
	c.dispatch(task("p", "map"))
	waitMaps(t, c, 3)
	c.send(mapAck(&plutov1.MapAck{RunId: "p", Attempt: 1, Children: 1}))
	c.send(mapAck(&plutov1.MapAck{RunId: "p", Attempt: 1, Children: 1, Existing: true}))
	if call := waitCall(t, calls); call.err != nil || call.res != (MapResult{Children: 1}) {
		t.Fatalf("Map = %+v, %v", call.res, call.err)
	}
	c.waitResult(t, "p")
	assertNoPendingMaps(t, r.w)
}

// A Map whose context ends returns the context's error and is forgotten:
// a late answer is ignored.
func TestMapContextCancelled(t *testing.T) {
	f := startFake(t)
	r, calls := mapWorker(t, f, []Part{"x"}, MapOptions{}, nil)
	c := f.next(t)
	c.dispatch(task("p", "map"))
	waitMaps(t, c, 1)
	c.cancel("p", 1)
	call := waitCall(t, calls)
	if !errors.Is(call.err, context.Canceled) {
		t.Fatalf("Map error = %v; want context.Canceled", call.err)
	}
	if res := c.waitResult(t, "p"); res.GetOutcome() != plutov1.Outcome_OUTCOME_CANCELLED || res.GetMapped() {
		t.Errorf("result = %v", res)
	}
	assertNoPendingMaps(t, r.w)
	c.send(mapAck(&plutov1.MapAck{RunId: "p", Attempt: 1, Children: 1}))

	// The worker is still well: another run maps and is answered.
	c.dispatch(task("q", "map"))
	waitMaps(t, c, 2)
	c.send(mapAck(&plutov1.MapAck{RunId: "q", Attempt: 1, Children: 1}))
	if call := waitCall(t, calls); call.err != nil {
		t.Fatal(call.err)
	}
}

// A Map called after the handler returned (the Run kept, another context)
// fails at once, and one still waiting when the handler returns ends.
func TestMapAfterHandlerReturned(t *testing.T) {
	f := startFake(t)
	kept := make(chan *Run, 1)
	waiting := make(chan mapCall, 1)
	mux := NewMux()
	mux.HandleFunc("keep", func(_ context.Context, r *Run) error {
		go func() {
			res, err := r.Map(context.Background(), []Part{1}, MapOptions{})
			waiting <- mapCall{res, err}
		}()
		kept <- r
		return nil
	})
	rw := startWorker(t, Options{Servers: []string{f.addr}, Handler: mux})
	c := f.next(t)
	c.dispatch(task("p", "keep"))
	r := <-kept
	c.waitResult(t, "p")
	if _, err := r.Map(context.Background(), []Part{1}, MapOptions{}); !errors.Is(err, errMapRunEnded) {
		t.Errorf("Map after return: %v; want errMapRunEnded", err)
	}
	if call := waitCall(t, waiting); !errors.Is(call.err, errMapRunEnded) {
		t.Errorf("Map waiting when the handler returned: %v; want errMapRunEnded", call.err)
	}
	assertNoPendingMaps(t, rw.w)
}

func assertNoPendingMaps(t *testing.T, w *Worker) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.maps) != 0 || len(w.outMaps) != 0 {
		t.Errorf("pending Maps left: %d attempts, %d queued", len(w.maps), len(w.outMaps))
	}
}

// An answer that comes after its Map gave up, while the handler still
// runs, still marks the attempt mapped: the server made the children.
func TestMapLateAnswerMarksMapped(t *testing.T) {
	f := startFake(t)
	release := make(chan struct{})
	calls := make(chan mapCall, 1)
	mux := NewMux()
	mux.HandleFunc("map", func(ctx context.Context, r *Run) error {
		mctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		res, err := r.Map(mctx, []Part{1}, MapOptions{})
		cancel()
		calls <- mapCall{res, err}
		<-release
		return nil
	})
	rw := startWorker(t, Options{Servers: []string{f.addr}, Handler: mux})
	c := f.next(t)
	c.dispatch(task("p", "map"))
	waitMaps(t, c, 1)
	if call := waitCall(t, calls); !errors.Is(call.err, context.DeadlineExceeded) {
		t.Fatalf("Map error = %v; want its deadline", call.err)
	}
	c.send(mapAck(&plutov1.MapAck{RunId: "p", Attempt: 1, Children: 1}))
	for deadline := time.Now().Add(waitTime); ; time.Sleep(time.Millisecond) {
		rw.w.mu.Lock()
		mapped := rw.w.held[runKey{"p", 1}].mapped
		rw.w.mu.Unlock()
		if mapped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the late MapAck did not mark the attempt mapped")
		}
	}
	close(release)
	if res := c.waitResult(t, "p"); !res.GetMapped() {
		t.Errorf("result = %v; want mapped", res)
	}
}
