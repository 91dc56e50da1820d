package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// logsCapped is the server's LogsCapped for refs.
func logsCapped(refs ...*plutov1.RunRef) *plutov1.ServerMessage {
	return &plutov1.ServerMessage{Msg: &plutov1.ServerMessage_LogsCapped{LogsCapped: &plutov1.LogsCapped{Runs: refs}}}
}

// dropCounts sums the dropped-line counts of run id among msgs, and says
// where the last one was.
func dropCounts(msgs []*plutov1.WorkerMessage, id string) (n int64, at int) {
	at = -1
	for i, m := range msgs {
		for _, d := range m.GetLogs().GetDropped() {
			if d.GetRunId() == id {
				n += d.GetLines()
				at = i
			}
		}
	}
	return n, at
}

// resultAt is the index of the message carrying run id's result.
func resultAt(msgs []*plutov1.WorkerMessage, id string) int {
	for i, m := range msgs {
		for _, r := range m.GetResults().GetResults() {
			if r.GetRunId() == id {
				return i
			}
		}
	}
	return -1
}

// capFlag reports whether the worker holds the attempt as capped.
func capFlag(w *Worker, id string, attempt int32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.held[runKey{id, attempt}]
	return r != nil && r.logCap.Load() != 0
}

// After LogsCapped the attempt's lines are not sent — output, Logger lines
// and the partial last line alike — and their number reaches the server
// before the result. A run beside it, and LogsCapped naming attempts the
// worker does not hold, change nothing else.
func TestLogsCappedStopsSending(t *testing.T) {
	f := startFake(t)
	started, proceed := make(chan struct{}), make(chan struct{})
	mux := NewMux()
	mux.HandleFunc("print", func(ctx context.Context, r *Run) error {
		out := r.Output(StreamStdout)
		for i := range 10 {
			fmt.Fprintf(out, "before %d\n", i)
		}
		close(started)
		select {
		case <-proceed:
		case <-ctx.Done():
			return ctx.Err()
		}
		for i := range 500 {
			fmt.Fprintf(out, "after %d\n", i)
		}
		for i := range 100 {
			r.Logger().Info("after", "i", i)
		}
		r.Logger().Debug("below the level: not a line")
		fmt.Fprint(out, "partial") // sent as a line when the handler returns
		return nil
	})
	mux.HandleFunc("other", func(_ context.Context, r *Run) error {
		<-started
		fmt.Fprintln(r.Output(StreamStderr), "beside")
		return nil
	})
	w := startWorker(t, Options{Servers: []string{f.addr}, Capacity: 2, Handler: mux})
	c := f.next(t)
	c.dispatch(task("p", "print"), task("o", "other"))
	<-started
	c.waitFor(t, "the first lines", func(msgs []*plutov1.WorkerMessage) bool { return len(logLines(msgs, "p")) == 10 })
	c.send(logsCapped(&plutov1.RunRef{RunId: "p", Attempt: 1}, &plutov1.RunRef{RunId: "p", Attempt: 2}, &plutov1.RunRef{RunId: "nope", Attempt: 1}))
	eventually(t, "the cap applied", func() bool { return capFlag(w.w, "p", 1) })
	close(proceed)
	c.waitResults(t, 2)
	msgs := c.waitFor(t, "the drop count", func(msgs []*plutov1.WorkerMessage) bool { n, _ := dropCounts(msgs, "p"); return n > 0 })
	if n := len(logLines(msgs, "p")); n != 10 {
		t.Errorf("%d lines of the capped run sent, want the 10 before the cap", n)
	}
	n, at := dropCounts(msgs, "p")
	if n != 601 {
		t.Errorf("%d lines counted as dropped, want 601", n)
	}
	if res := resultAt(msgs, "p"); at < 0 || at > res {
		t.Errorf("count in message %d, result in message %d: want the count first", at, res)
	}
	if got := logLines(msgs, "o"); len(got) != 1 || string(got[0].GetText()) != "beside" {
		t.Errorf("the run beside sent %v", got)
	}
	if n, _ := dropCounts(msgs, "o"); n != 0 {
		t.Errorf("the run beside counted %d dropped lines", n)
	}
	w.w.mu.Lock()
	left := len(w.w.capped)
	w.w.mu.Unlock()
	if left != 0 {
		t.Errorf("%d capped attempts remembered after their results", left)
	}
	noReconnect(t, f)
}

// Lines of a newly capped attempt that wait to be sent, and the count of
// its lines the backlog dropped, become its count of dropped lines; other
// attempts' lines stay queued.
func TestLogsCappedTakesQueuedLines(t *testing.T) {
	w, err := New(Options{Servers: []string{"127.0.0.1:1"}, Handler: NewMux(), Types: []string{"t"}, Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	a := &Run{id: "a", attempt: 1, state: stateRunning, sink: w}
	b := &Run{id: "b", attempt: 1, state: stateRunning, sink: w}
	w.held[runKey{"a", 1}], w.held[runKey{"b", 1}] = a, b
	for i := range 6 {
		r := a
		if i%3 == 0 {
			r = b
		}
		w.emitLine(r, StreamStdout, "", []byte("line"), time.Now())
	}
	w.mu.Lock()
	w.dropLineLocked(runKey{"a", 1})
	w.dropLineLocked(runKey{"a", 1})
	w.dropLineLocked(runKey{"b", 1})
	w.logsCappedLocked([]*plutov1.RunRef{{RunId: "a", Attempt: 1}})
	w.logsCappedLocked([]*plutov1.RunRef{{RunId: "a", Attempt: 1}}) // twice: once
	queued, bytes, backlog := len(w.outLogs), w.outLogBytes, w.droppedLogs
	w.mu.Unlock()
	if queued != 2 || bytes != 8 || backlog != 1 {
		t.Fatalf("after the cap: %d lines (%d bytes) queued and %d dropped by the backlog; want b's 2 (8 bytes) and 1", queued, bytes, backlog)
	}
	a.Output(StreamStdout).Write([]byte("x\ny\n"))
	w.emitLine(a, StreamLog, "info", []byte("late"), time.Now())
	msgs := w.take(nil)
	if n, _ := dropCounts(msgs, "a"); n != 4+2+3 {
		t.Errorf("a's count %d, want 9 (4 queued, 2 of the backlog, 3 after)", n)
	}
	if got := logLines(msgs, "a"); len(got) != 0 {
		t.Errorf("a's lines sent: %v", got)
	}
	if got := logLines(msgs, "b"); len(got) != 3 { // two lines and the backlog's marker
		t.Errorf("b's lines: %v", got)
	}
	if n, _ := dropCounts(w.take(nil), "a"); n != 0 {
		t.Errorf("a's count sent twice (%d)", n)
	}
}

// A worker ignores a server message it does not know (a newer server's):
// the stream stays up and the next dispatch runs.
func TestUnknownServerMessageIgnored(t *testing.T) {
	f := startFake(t)
	mux := NewMux()
	mux.HandleFunc("t", func(context.Context, *Run) error { return nil })
	startWorker(t, Options{Servers: []string{f.addr}, Handler: mux})
	c := f.next(t)
	m := &plutov1.ServerMessage{}
	m.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 99, protowire.BytesType), []byte("future")))
	c.send(m)
	c.dispatch(task("r1", "t"))
	if res := c.waitResult(t, "r1"); res.GetOutcome() != plutov1.Outcome_OUTCOME_SUCCEEDED {
		t.Fatalf("result %v", res)
	}
	noReconnect(t, f)
}

// A task that carries the run's caps caps itself: past either cap the
// attempt sends one line more (the server stores the cap's marker for
// it) and counts the rest, with no LogsCapped, the count ahead of the
// result.
func TestTaskCapsStopSending(t *testing.T) {
	for _, c := range []struct {
		name         string
		lines, bytes int64
		wantSent     int
	}{
		{"lines", 100, 0, 101},
		{"bytes", 0, 1000, 126}, // "line NNN" is 8 bytes: the 126th passes 1000
	} {
		t.Run(c.name, func(t *testing.T) {
			f := startFake(t)
			mux := NewMux()
			mux.HandleFunc("print", func(_ context.Context, r *Run) error {
				out := r.Output(StreamStdout)
				for i := range 1000 {
					fmt.Fprintf(out, "line %03d\n", i)
				}
				return nil
			})
			startWorker(t, Options{Servers: []string{f.addr}, Capacity: 1, Handler: mux})
			conn := f.next(t)
			tk := task("p", "print")
			tk.LogMaxLines, tk.LogMaxBytes = c.lines, c.bytes
			conn.dispatch(tk)
			conn.waitResults(t, 1)
			msgs := conn.waitFor(t, "the drop count", func(msgs []*plutov1.WorkerMessage) bool { n, _ := dropCounts(msgs, "p"); return n > 0 })
			sent := len(logLines(msgs, "p"))
			n, at := dropCounts(msgs, "p")
			if sent < c.wantSent-1 || sent > c.wantSent+1 || int64(sent)+n != 1000 {
				t.Errorf("%d lines sent and %d counted, want about %d sent and 1000 in all", sent, n, c.wantSent)
			}
			if ra := resultAt(msgs, "p"); at > ra {
				t.Errorf("the count (message %d) came after the result (message %d)", at, ra)
			}
		})
	}
}
