package worker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// eventually polls cond until it holds.
// ignoreStart leaves RunRef.started_unix_ms out of comparisons of
// Hello.held: a held attempt that has started (finished ones included)
// carries its start time (proto: "0 if it has not"), which tests cannot
// predict.
var ignoreStart = protocmp.IgnoreFields(&plutov1.RunRef{}, "started_unix_ms")

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fastPersist makes the persister tick every 10 ms.
func fastPersist(w *Worker) { w.persistTick = 10 * time.Millisecond }

func resultMux() *Mux {
	mux := NewMux()
	mux.HandleFunc("done", func(_ context.Context, r *Run) error { return r.SetResult("done " + r.ID()) })
	return mux
}

func resultAcks(acks ...*plutov1.ResultAck) *plutov1.ServerMessage {
	return &plutov1.ServerMessage{Msg: &plutov1.ServerMessage_ResultAcks{ResultAcks: &plutov1.ResultAcks{Acks: acks}}}
}

// A result that finishes while no server is reachable is on disk before
// the worker reconnects, is listed as held and delivered on the next
// stream, and is removed once acknowledged.
func TestResultStoreWhileDisconnected(t *testing.T) {
	f := startFake(t)
	g := newGate()
	mux := NewMux()
	mux.Handle("block", g)
	dir := t.TempDir()
	// The default tick: a disconnected worker writes without waiting for it.
	r := startWorkerWith(t, Options{Servers: []string{f.addr}, Handler: mux, ResultDir: dir}, func(w *Worker) { w.persistTick = time.Hour })
	c1 := f.next(t)
	c1.dispatch(task("r1", "block"))
	g.waitStarted(t)
	f.refuse.Store(true)
	c1.close()
	eventually(t, "disconnected", func() bool { return !r.w.Stats().Connected })

	close(g.release)
	eventually(t, "the result on disk", func() bool { return r.w.Stats().Stored == 1 })
	onDisk, _ := readLog(t, dir)
	if len(onDisk) != 1 || onDisk[0].GetRunId() != "r1" || onDisk[0].GetOutcome() != plutov1.Outcome_OUTCOME_SUCCEEDED {
		t.Fatalf("log holds %v", onDisk)
	}

	f.refuse.Store(false)
	c2 := f.next(t)
	want := []*plutov1.RunRef{{RunId: "r1", Attempt: 1}}
	if diff := cmp.Diff(want, c2.hello.GetHeld(), protocmp.Transform(), ignoreStart); diff != "" {
		t.Errorf("held (-want +got):\n%s", diff)
	}
	if res := c2.waitResult(t, "r1"); res.GetOutcome() != plutov1.Outcome_OUTCOME_SUCCEEDED {
		t.Errorf("result = %v", res)
	}
	eventually(t, "the acknowledged result removed", func() bool {
		s := r.w.Stats()
		got, _ := readLog(t, dir)
		return s.Stored == 0 && s.Unacked == 0 && len(got) == 0
	})
}

// Results waiting for their acknowledgement when the stream ends are
// written to the result store at once: with no stream, no acknowledgement
// will come, and the persister's next tick may be far off (here an hour).
func TestResultStoreWrittenWhenStreamEnds(t *testing.T) {
	f := startFake(t)
	f.autoAck.Store(false)
	dir := t.TempDir()
	r := startWorkerWith(t, Options{Servers: []string{f.addr}, Handler: resultMux(), ResultDir: dir}, func(w *Worker) {
		w.persistTick = time.Hour
		w.drainGrace = 50 * time.Millisecond // nothing acknowledges: do not wait for it when stopping
	})
	c1 := f.next(t)
	c1.dispatch(task("r1", "done"))
	c1.waitResult(t, "r1")
	if got, _ := readLog(t, dir); len(got) != 0 || r.w.Stats().Unacked != 1 {
		t.Fatalf("stream up, no tick yet: log holds %v, stats %+v; want nothing stored, one result unacknowledged", ids(got), r.w.Stats())
	}
	f.refuse.Store(true)
	c1.close()
	const bound = 2 * time.Second
	for deadline := time.Now().Add(bound); ; time.Sleep(5 * time.Millisecond) {
		got, _ := readLog(t, dir)
		if len(got) == 1 && got[0].GetRunId() == "r1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the stream ended the log holds %v; want r1#1, written when the stream ended", bound, ids(got))
		}
	}
	f.refuse.Store(false)
	if res := f.next(t).waitResult(t, "r1"); string(res.GetResult()) != `"done r1"` {
		t.Errorf("resent result = %v", res)
	}
}

// A result the server does not acknowledge within two persister ticks is
// written while the stream is up; the ack then writes a tombstone.
func TestResultStoreUnacknowledged(t *testing.T) {
	f := startFake(t)
	f.autoAck.Store(false)
	dir := t.TempDir()
	r := startWorkerWith(t, Options{Servers: []string{f.addr}, Handler: resultMux(), ResultDir: dir}, fastPersist)
	c := f.next(t)
	c.dispatch(task("r1", "done"), task("r2", "done"))
	c.waitResults(t, 2)
	eventually(t, "two results on disk", func() bool { return r.w.Stats().Stored == 2 })
	if s := r.w.Stats(); !s.Connected || s.Unacked != 2 {
		t.Fatalf("stats = %+v", s)
	}
	c.send(resultAcks(&plutov1.ResultAck{RunId: "r1", Attempt: 1, Accepted: true}))
	eventually(t, "r1 removed", func() bool {
		got, _ := readLog(t, dir)
		return r.w.Stats().Stored == 1 && len(got) == 1 && got[0].GetRunId() == "r2"
	})
	// Rejected is final too.
	c.send(resultAcks(&plutov1.ResultAck{RunId: "r2", Attempt: 1, Accepted: false}))
	eventually(t, "r2 removed", func() bool {
		got, _ := readLog(t, dir)
		return r.w.Stats().Stored == 0 && len(got) == 0
	})
}

// The healthy path never writes: results acknowledged promptly stay in
// memory only.
func TestResultStoreHealthyPathWritesNothing(t *testing.T) {
	f := startFake(t)
	cs := &countingStore{}
	const n = 2000
	r := startWorkerWith(t, Options{Servers: []string{f.addr}, Capacity: 8, Prefetch: 56, Handler: resultMux(), ResultDir: t.TempDir()}, func(w *Worker) {
		// A generous tick: a prompt ack takes far less than a second, even
		// under the race detector on a busy machine.
		w.persistTick = time.Second
		cs.wrap(w)
	})
	c := f.next(t)
	for i := 0; i < n; i += 50 {
		var tasks []*plutov1.Task
		for j := i; j < i+50; j++ {
			tasks = append(tasks, task("r"+strconv.Itoa(j), "done"))
		}
		c.dispatch(tasks...)
		c.waitResults(t, i+50)
	}
	eventually(t, "every result acknowledged", func() bool { return r.w.Stats().Unacked == 0 })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if a, rm := cs.counts(); a != 0 || rm != 0 {
		t.Errorf("healthy path: %d results appended, %d removed; want none", a, rm)
	}
}

// A worker process that stops (cleanly, or by crashing: the test copies
// its directory while it runs) leaves its unacknowledged results on disk; a
// new Worker on that directory announces them as held, sends them after
// the Welcome and removes them whatever the answer: accepted, rejected, or
// stale in the Welcome.
func TestResultStoreRestart(t *testing.T) {
	f1 := startFake(t)
	f1.autoAck.Store(false)
	dir := t.TempDir()
	opts := Options{Servers: []string{f1.addr}, ID: "w-restart", Handler: resultMux(), ResultDir: dir}
	shortDrain := func(w *Worker) { fastPersist(w); w.drainGrace = 50 * time.Millisecond }
	a := startWorkerWith(t, opts, shortDrain)
	c := f1.next(t)
	c.dispatch(task("r1", "done"), task("r2", "done"), &plutov1.Task{RunId: "r3", Attempt: 4, Type: "done"})
	sent := c.waitResults(t, 3)
	eventually(t, "three results on disk", func() bool { return a.w.Stats().Stored == 3 })

	// A crash now leaves the log as it is: copy it.
	crashed := t.TempDir()
	data, err := os.ReadFile(filepath.Join(dir, resultLogName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(crashed, resultLogName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.stop(t); err != nil { // a clean stop keeps them too
		t.Fatal(err)
	}
	wantHeld := []*plutov1.RunRef{{RunId: "r1", Attempt: 1}, {RunId: "r2", Attempt: 1}, {RunId: "r3", Attempt: 4}}

	t.Run("after a crash", func(t *testing.T) {
		f2 := startFake(t)
		f2.reject = func(r *plutov1.Result) bool { return r.GetRunId() == "r2" }
		b := startWorkerWith(t, Options{Servers: []string{f2.addr}, ID: "w-restart", Handler: resultMux(), ResultDir: crashed}, fastPersist)
		c := f2.next(t)
		if diff := cmp.Diff(wantHeld, c.hello.GetHeld(), protocmp.Transform()); diff != "" {
			t.Errorf("held (-want +got):\n%s", diff)
		}
		got := c.waitResults(t, 3)
		if diff := cmp.Diff(sent, got, protocmp.Transform()); diff != "" {
			t.Errorf("resent results differ from the originals (-sent +resent):\n%s", diff)
		}
		eventually(t, "accepted and rejected results removed", func() bool {
			s := b.w.Stats()
			return s.Stored == 0 && s.Unacked == 0
		})
		if err := b.stop(t); err != nil {
			t.Fatal(err)
		}
		if left, _ := readLog(t, crashed); len(left) != 0 {
			t.Errorf("log still holds %v", ids(left))
		}
	})

	t.Run("after a clean stop", func(t *testing.T) {
		f3 := startFake(t)
		f3.stale = func(n int, h *plutov1.Hello) []*plutov1.RunRef {
			return []*plutov1.RunRef{{RunId: "r3", Attempt: 4}} // requeued while the worker was away
		}
		f3.reject = func(r *plutov1.Result) bool { return r.GetRunId() == "r1" }
		b := startWorkerWith(t, Options{Servers: []string{f3.addr}, ID: "w-restart", Handler: resultMux(), ResultDir: dir}, fastPersist)
		c := f3.next(t)
		if diff := cmp.Diff(wantHeld, c.hello.GetHeld(), protocmp.Transform()); diff != "" {
			t.Errorf("held (-want +got):\n%s", diff)
		}
		c.waitResults(t, 2)
		eventually(t, "every result answered", func() bool {
			s := b.w.Stats()
			return s.Stored == 0 && s.Unacked == 0
		})
		if err := b.stop(t); err != nil {
			t.Fatal(err)
		}
		for _, res := range results(c.snapshot()) {
			if res.GetRunId() == "r3" {
				t.Error("a result the Welcome called stale was sent")
			}
		}
		if left, _ := readLog(t, dir); len(left) != 0 {
			t.Errorf("log still holds %v", ids(left))
		}
	})
}

// Write errors leave results in memory (still delivered) and are retried.
func TestResultStoreWriteErrors(t *testing.T) {
	f := startFake(t)
	cs := &countingStore{}
	cs.fail.Store(true)
	g := newGate()
	mux := NewMux()
	mux.Handle("block", g)
	r := startWorkerWith(t, Options{Servers: []string{f.addr}, Handler: mux, ResultDir: t.TempDir()}, func(w *Worker) {
		fastPersist(w)
		cs.wrap(w)
	})
	c1 := f.next(t)
	c1.dispatch(task("r1", "block"))
	g.waitStarted(t)
	f.refuse.Store(true)
	c1.close()
	eventually(t, "disconnected", func() bool { return !r.w.Stats().Connected })
	close(g.release)
	eventually(t, "failed writes retried", func() bool { return cs.failures.Load() >= 3 })
	if s := r.w.Stats(); s.Stored != 0 || s.Unacked != 1 {
		t.Fatalf("stats = %+v", s)
	}
	cs.fail.Store(false)
	eventually(t, "the result written", func() bool { return r.w.Stats().Stored == 1 })
	f.refuse.Store(false)
	c2 := f.next(t)
	c2.waitResult(t, "r1")
	eventually(t, "the result removed", func() bool {
		_, rm := cs.counts()
		return r.w.Stats().Stored == 0 && rm == 1
	})
}

func TestResultStoreInUse(t *testing.T) {
	if !haveDirLock {
		t.Skip("no directory lock on this platform")
	}
	f := startFake(t)
	dir := t.TempDir()
	startWorker(t, Options{Servers: []string{f.addr}, Handler: resultMux(), ResultDir: dir})
	f.next(t) // the first worker holds the store
	w, err := New(Options{Servers: []string{f.addr}, Handler: resultMux(), ResultDir: dir, Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(context.Background()); !errors.Is(err, errStoreLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Run on a store in use = %v", err)
	}
}

// An error message that is not UTF-8 is sent, and stored, as the handler
// made it: Result.error is bytes (the server makes text of it).
func TestInvalidUTF8Error(t *testing.T) {
	f := startFake(t)
	f.autoAck.Store(false)
	mux := NewMux()
	mux.HandleFunc("bad", func(context.Context, *Run) error { return errors.New("bad \xff\x00 byte") })
	dir := t.TempDir()
	r := startWorkerWith(t, Options{Servers: []string{f.addr}, Handler: mux, ResultDir: dir}, func(w *Worker) {
		fastPersist(w)
		w.drainGrace = 50 * time.Millisecond // nothing acknowledges: do not wait for it when stopping
	})
	c := f.next(t)
	c.dispatch(task("r1", "bad"))
	if res := c.waitResult(t, "r1"); string(res.GetError()) != "bad \xff\x00 byte" {
		t.Errorf("error = %q", res.GetError())
	}
	eventually(t, "the result on disk", func() bool { return r.w.Stats().Stored == 1 })
	if got, _ := readLog(t, dir); len(got) != 1 || string(got[0].GetError()) != "bad \xff\x00 byte" {
		t.Errorf("stored = %v", got)
	}
}

// countingStore wraps the Worker's store, counting (and optionally
// failing) appends.
type countingStore struct {
	inner    resultStore
	fail     atomic.Bool
	failures atomic.Int32

	mu       sync.Mutex
	appended int
	removed  int
}

func (s *countingStore) wrap(w *Worker) {
	open := w.openStore
	w.openStore = func(dir string) (resultStore, []*plutov1.Result, error) {
		st, rs, err := open(dir)
		s.inner = st
		return s, rs, err
	}
}

func (s *countingStore) Append(rs []*plutov1.Result) error {
	if s.fail.Load() {
		s.failures.Add(1)
		return errors.New("disk on fire")
	}
	if err := s.inner.Append(rs); err != nil {
		return err
	}
	s.mu.Lock()
	s.appended += len(rs)
	s.mu.Unlock()
	return nil
}

func (s *countingStore) Remove(keys []runKey) error {
	s.mu.Lock()
	s.removed += len(keys)
	s.mu.Unlock()
	return s.inner.Remove(keys)
}

func (s *countingStore) Close() error { return s.inner.Close() }

func (s *countingStore) counts() (appended, removed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appended, s.removed
}
