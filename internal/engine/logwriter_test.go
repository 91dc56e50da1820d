package engine

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// logObserver counts the dropped lines the engine reports.
type logObserver struct {
	nopObserver
	mu      sync.Mutex
	dropped int
}

func (o *logObserver) LogLinesDropped(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dropped += n
}

func (o *logObserver) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped
}

// logLines are n lines of an attempt, texts prefix0, prefix1, ….
func logLines(ref RunRef, n int, prefix string) []store.LogLine {
	out := make([]store.LogLine, n)
	for i := range out {
		out[i] = store.LogLine{RunID: ref.RunID, Attempt: ref.Attempt, Time: time.Now(), Stream: "stdout", Text: fmt.Sprint(prefix, i)}
	}
	return out
}

func (en *env) logs(id string) []store.LogEntry {
	en.t.Helper()
	got, err := en.e.Logs(en.ctx, store.LogListParams{RunID: id, Limit: 1000})
	if err != nil {
		en.t.Fatal(err)
	}
	return got
}

// A run past its cap keeps its first lines and one marker; once the store
// said it is capped, its further lines are dropped before they are queued,
// and still counted.
func TestLogCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := &logObserver{}
		en := newEnv(t, func(c *Config) { c.Observer = obs; c.LogMaxLines = 5 })
		s, c := en.connect("w1", 1)
		en.submit(SubmitSpec{})
		task := c.Tasks()[0]
		ref := RunRef{RunID: task.RunID, Attempt: task.Attempt}
		s.Logs(logLines(ref, 8, "a"))
		synctest.Wait()
		en.e.logw.mu.Lock()
		_, capped := en.e.logw.capped[ref.RunID]
		en.e.logw.mu.Unlock()
		if !capped {
			t.Fatal("the writer does not remember the capped run")
		}
		s.Logs(logLines(ref, 10, "b"))
		// Dropped early, they are counted before any write (the writer
		// may have taken their count already: it is not read here).
		en.e.logw.mu.Lock()
		queued := len(en.e.logw.queue)
		en.e.logw.mu.Unlock()
		if early := obs.count() - 3; queued != 0 || early != 10 {
			t.Errorf("lines of a capped run: %d queued, %d dropped early; want 0 and 10", queued, early)
		}
		synctest.Wait()
		got := en.logs(ref.RunID)
		if len(got) != 6 || got[4].Text != "a4" || got[5].Text != store.LogCapMarker(5, DefaultLogMaxBytes) {
			t.Fatalf("stored %d lines: %+v", len(got), got)
		}
		st, err := en.e.LogStats(en.ctx, ref.RunID)
		if err != nil || st.Dropped != 13 || st.Lines != 5 {
			t.Errorf("stats %+v, %v; want 5 lines, 13 dropped", st, err)
		}
		if n := obs.count(); n != 13 {
			t.Errorf("observer saw %d dropped lines, want 13", n)
		}
	})
}

// Reconfigure changes the caps for the next write.
func TestLogCapReconfigure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		l := en.e.Live()
		l.LogMaxLines = 2
		if err := en.e.Reconfigure(l); err != nil {
			t.Fatal(err)
		}
		l.LogMaxBytes = 0
		if err := en.e.Reconfigure(l); err == nil {
			t.Error("a zero byte cap was accepted")
		}
		s, c := en.connect("w1", 1)
		en.submit(SubmitSpec{})
		task := c.Tasks()[0]
		s.Logs(logLines(RunRef{RunID: task.RunID, Attempt: task.Attempt}, 4, ""))
		synctest.Wait()
		if got := en.logs(task.RunID); len(got) != 3 {
			t.Errorf("%d lines stored, want 2 and the marker", len(got))
		}
	})
}

// Lines the worker sent before its result are stored before the run is
// seen terminal, even when the log writes fail for a while; and failing
// log writes are retried, not dropped, without holding up other runs.
func TestLogsBeforeResultAreStoredFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, fl := newFlakyEnv(t, nil)
		s, c := en.connect("w1", 2)
		en.submit(SubmitSpec{})
		task := c.Tasks()[0]
		fl.set("LogAppend", 3)
		s.Logs(logLines(RunRef{RunID: task.RunID, Attempt: task.Attempt}, 3, "x"))
		s.Results([]Result{{RunID: task.RunID, Attempt: task.Attempt, Outcome: OutcomeSucceeded}})
		other := en.submit(SubmitSpec{})[0] // dispatched while the log writes fail
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		if r := en.get(other.ID); r.Status != store.StatusDispatched {
			t.Errorf("other run %s while log writes fail", r.Status)
		}
		if r := en.get(task.RunID); r.Status.Terminal() {
			t.Fatalf("run %s before its lines were written", r.Status)
		}
		r, err := en.e.Wait(en.ctx, task.RunID)
		if err != nil || r.Status != store.StatusSucceeded {
			t.Fatalf("run %+v, %v", r, err)
		}
		if got := en.logs(task.RunID); len(got) != 3 {
			t.Errorf("%d lines when the run ended, want 3", len(got))
		}
	})
}

// FollowLogs wakes when the run's lines commit and when it ends, and
// stop forgets the follower.
func TestFollowLogs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		en.submit(SubmitSpec{})
		task := c.Tasks()[0]
		wake, stop, err := en.e.FollowLogs(en.ctx, task.RunID)
		if err != nil {
			t.Fatal(err)
		}
		woken := func() bool {
			synctest.Wait()
			select {
			case <-wake:
				return true
			default:
				return false
			}
		}
		if woken() {
			t.Fatal("woken before anything happened")
		}
		s.Logs(logLines(RunRef{RunID: task.RunID, Attempt: task.Attempt}, 1, ""))
		if !woken() {
			t.Fatal("not woken by a committed line")
		}
		s.Results([]Result{{RunID: task.RunID, Attempt: task.Attempt, Outcome: OutcomeSucceeded}})
		if !woken() {
			t.Fatal("not woken by the run's end")
		}
		stop()
		en.e.logFollow.mu.Lock()
		n := len(en.e.logFollow.m)
		en.e.logFollow.mu.Unlock()
		en.e.waiters.mu.Lock()
		n += len(en.e.waiters.m)
		en.e.waiters.mu.Unlock()
		if n != 0 {
			t.Errorf("%d registrations left after stop", n)
		}
	})
}

// Stop writes the queued lines.
func TestLogsFlushedOnStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en, fl := newFlakyEnv(t, nil)
		s, c := en.connect("w1", 1)
		en.submit(SubmitSpec{})
		task := c.Tasks()[0]
		fl.set("slow", 1)
		s.Logs(logLines(RunRef{RunID: task.RunID, Attempt: task.Attempt}, 1, "first"))
		s.Logs(logLines(RunRef{RunID: task.RunID, Attempt: task.Attempt}, 2, "queued"))
		if err := en.e.Stop(en.ctx); err != nil {
			t.Fatal(err)
		}
		got, err := en.st.LogList(en.ctx, store.LogListParams{RunID: task.RunID})
		if err != nil || len(got) != 3 {
			t.Errorf("%d lines after stop, want 3: %v", len(got), err)
		}
	})
}

// A run's count of lines its worker dropped is written with the batch
// that writes its last queued line, never before: the store keeps no line
// of a run that has dropped one.
func TestLogWriterDropsAfterTheirLines(t *testing.T) {
	w := &logWriter{pending: map[string]uint64{}, queued: map[string]uint64{}, wake: make(chan struct{}, 1)}
	lines := func(id string, n int) []store.LogLine {
		out := make([]store.LogLine, n)
		for i := range out {
			out[i] = store.LogLine{RunID: id, Attempt: 1, Text: "x"}
		}
		return out
	}
	w.add(lines("r", maxLogBatch), func() {})
	w.add(lines("r", 10), func() {})
	w.add(lines("s", 10), func() {})
	w.dropped = map[string]int64{"r": 99, "s": 5, "gone": 7}
	b, ok := w.take()
	if !ok || len(b.lines) != maxLogBatch || b.dropped["r"] != 0 || b.dropped["gone"] != 7 {
		t.Fatalf("first batch: %d lines, drops %v; want %d lines, r's count held back", len(b.lines), b.dropped, maxLogBatch)
	}
	b, _ = w.take()
	if len(b.lines) != 20 || b.dropped["r"] != 99 || b.dropped["s"] != 5 || len(w.dropped) != 0 {
		t.Fatalf("second batch: %d lines, drops %v, left %v", len(b.lines), b.dropped, w.dropped)
	}
}

// A worker's message may hold 4,096 lines: the writer splits it so that no
// transaction holds more than maxLogBatch, calls its done once, after its
// last part, and writes its run's drop count only with that part.
func TestLogWriterSplitsLargeAdds(t *testing.T) {
	w := &logWriter{e: &Engine{}, pending: map[string]uint64{}, queued: map[string]uint64{}, wake: make(chan struct{}, 1)}
	big := make([]store.LogLine, 4096)
	for i := range big {
		big[i] = store.LogLine{RunID: "r", Attempt: 1, Text: fmt.Sprint(i)}
	}
	var dones int
	w.add([]store.LogLine{{RunID: "s", Attempt: 1, Text: "s0"}}, func() { dones++ })
	w.add(big, func() { dones++ })
	w.dropped = map[string]int64{"r": 90000}
	var got []string
	for parts := 0; ; parts++ {
		b, _ := w.take()
		if len(b.lines) == 0 {
			if want := (4097 + maxLogBatch - 1) / maxLogBatch; parts != want {
				t.Fatalf("%d batches, want %d (1 + 4,096 lines in full batches of %d)", parts, want, maxLogBatch)
			}
			break
		}
		if len(b.lines) > maxLogBatch {
			t.Fatalf("batch %d holds %d lines, over %d", parts, len(b.lines), maxLogBatch)
		}
		last := len(got)+len(b.lines) == 4097
		if (b.dropped["r"] != 0) != last {
			t.Fatalf("batch %d (last %v) carries r's drop count %v", parts, last, b.dropped)
		}
		for _, l := range b.lines {
			got = append(got, l.Text)
		}
		w.written(b, store.LogAppendResult{})
		if want := 1; !last && parts > 0 && dones != want {
			t.Fatalf("after batch %d: %d dones, want %d (the big add's waits for its last part)", parts, dones, want)
		}
	}
	if dones != 2 || w.flushed != w.ticket || len(w.pending) != 0 || len(w.queued) != 0 {
		t.Fatalf("dones %d, flushed %d of %d, pending %v, queued %v", dones, w.flushed, w.ticket, w.pending, w.queued)
	}
	for i, s := range got[1:] {
		if s != fmt.Sprint(i) {
			t.Fatalf("line %d is %q: order lost", i, s)
		}
	}
}
