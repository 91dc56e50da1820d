package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// logLines returns the log lines of run id among msgs, in order.
func logLines(msgs []*plutov1.WorkerMessage, id string) []*plutov1.LogLine {
	var out []*plutov1.LogLine
	for _, m := range msgs {
		for _, l := range m.GetLogs().GetLines() {
			if l.GetRunId() == id {
				out = append(out, l)
			}
		}
	}
	return out
}

// noReconnect fails the test if the worker opened a second stream.
func noReconnect(t *testing.T, f *fakeServer) {
	t.Helper()
	if n := f.nconns.Load(); n != 1 {
		t.Fatalf("the worker connected %d times; the stream broke", n)
	}
}

// binaryOutput is n bytes of random garbage (NULs, invalid UTF-8, CRs,
// newlines) in which, from 1 MiB on, 100 KiB hold no newline, and the byte
// before 1 MiB is one: written in 32 KiB chunks, exactly 64 KiB of one line
// pile up in the writer (the length that used to panic).
func binaryOutput(n int) []byte {
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	b[1<<20-1] = '\n'
	for i := 1 << 20; i < 1<<20+100<<10; i++ {
		if b[i] == '\n' {
			b[i] = 'x'
		}
	}
	copy(b[100:], "a\xffb\x00c\r\n")
	return b
}

// Nothing a handler prints or returns breaks the stream: 4 MiB of random
// bytes go out as log lines carrying exactly those bytes (less the newlines
// and one CR before each), an error with invalid UTF-8 and a NUL goes out
// as it is, the worker stays on its stream, and a run beside it completes.
func TestHandlerOutputAnyBytes(t *testing.T) {
	f := startFake(t)
	out := binaryOutput(4 << 20)
	const why = "broke: \xff\xfe\x00 done"
	started := make(chan struct{})
	mux := NewMux()
	mux.HandleFunc("spam", func(_ context.Context, r *Run) error {
		close(started)
		w := r.Output(StreamStdout)
		for _, c := range chunks(out, 32<<10) {
			w.Write(c)
		}
		return errors.New(why)
	})
	mux.HandleFunc("other", func(ctx context.Context, r *Run) error {
		select {
		case <-started:
		case <-ctx.Done():
			return ctx.Err()
		}
		r.Logger().Info("beside the spam")
		return r.SetResult("ok")
	})
	startWorker(t, Options{Servers: []string{f.addr}, Capacity: 2, Handler: mux})
	c := f.next(t)
	c.dispatch(task("spam", "spam"), task("other", "other"))
	rs := c.waitResults(t, 2)
	if res := rs["other"]; res.GetOutcome() != plutov1.Outcome_OUTCOME_SUCCEEDED || string(res.GetResult()) != `"ok"` {
		t.Errorf("the run beside: %v", res)
	}
	res := rs["spam"]
	if res.GetOutcome() != plutov1.Outcome_OUTCOME_FAILED || string(res.GetError()) != why {
		t.Fatalf("result: %v, error %q; want FAILED with error %q as returned", res.GetOutcome(), res.GetError(), why)
	}
	var got []byte
	for i, l := range logLines(c.snapshot(), "spam") {
		if l.GetStream() != StreamStdout {
			t.Fatalf("line %d on stream %q: %q", i, l.GetStream(), l.GetText())
		}
		if len(l.GetText()) > maxLineBytes {
			t.Fatalf("line %d is %d bytes", i, len(l.GetText()))
		}
		got = append(got, l.GetText()...)
	}
	want := bytes.ReplaceAll(bytes.ReplaceAll(out, []byte("\r\n"), []byte("\n")), []byte("\n"), nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("the log lines carry %d bytes that differ from the %d written (less newlines)", len(got), len(want))
	}
	noReconnect(t, f)
}

var droppedRE = regexp.MustCompile(`^\[pluto: (\d+) lines dropped: `)

// While output cannot be sent (here: no server), at most maxPendingLogs
// lines wait; the rest are dropped, and the run's log says how many, after
// the lines that were kept and before the result.
func TestLogBacklogBounded(t *testing.T) {
	const total = maxPendingLogs + 1234
	f := startFake(t)
	release, done := make(chan struct{}), make(chan struct{})
	mux := NewMux()
	mux.HandleFunc("flood", func(ctx context.Context, r *Run) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer close(done)
		w := r.Output(StreamStdout)
		for i := range total {
			fmt.Fprintf(w, "line %d\n", i)
		}
		return nil
	})
	r := startWorker(t, Options{Servers: []string{f.addr}, Handler: mux})
	c1 := f.next(t)
	c1.dispatch(task("r1", "flood"))
	c1.waitFor(t, "the ack", func(msgs []*plutov1.WorkerMessage) bool { return len(acks(msgs)) == 1 })
	f.refuse.Store(true)
	c1.close()
	eventually(t, "disconnected", func() bool { return !r.w.Stats().Connected })
	close(release)
	waitClosed(t, done, "the handler to write its lines")
	f.refuse.Store(false)

	c2 := f.next(t)
	c2.waitResult(t, "r1")
	var kept, dropped, markerAt, resultAt int
	markerAt, resultAt = -1, -1
	for i, m := range c2.snapshot() {
		if m.GetResults() != nil && resultAt < 0 {
			resultAt = i
		}
		for _, l := range m.GetLogs().GetLines() {
			if l.GetStream() == StreamStdout {
				if markerAt >= 0 {
					t.Fatalf("a kept line after the marker: %q", l.GetText())
				}
				if want := "line " + strconv.Itoa(kept); string(l.GetText()) != want {
					t.Fatalf("kept line %d is %q, want %q", kept, l.GetText(), want)
				}
				kept++
				continue
			}
			sub := droppedRE.FindSubmatch(l.GetText())
			if sub == nil || l.GetStream() != StreamLog || l.GetLevel() != "warn" {
				t.Fatalf("unexpected line %v", l)
			}
			n, _ := strconv.Atoi(string(sub[1]))
			dropped += n
			markerAt = i
		}
	}
	if kept != maxPendingLogs || kept+dropped != total {
		t.Fatalf("%d lines kept and %d counted as dropped; want %d kept and the %d others counted", kept, dropped, maxPendingLogs, total-maxPendingLogs)
	}
	if markerAt < 0 || resultAt < markerAt {
		t.Fatalf("drop marker in message %d, result in message %d: want the marker first", markerAt, resultAt)
	}
}

// An error too long for the server to keep is cut, not sent whole.
func TestLongErrorCapped(t *testing.T) {
	f := startFake(t)
	long := strings.Repeat("é", maxErrorBytes) // twice the cap
	mux := NewMux()
	mux.HandleFunc("fail", func(context.Context, *Run) error { return errors.New(long) })
	startWorker(t, Options{Servers: []string{f.addr}, Handler: mux})
	c := f.next(t)
	c.dispatch(task("r1", "fail"))
	res := c.waitResult(t, "r1")
	if got := string(res.GetError()); len(got) != maxErrorBytes || !strings.HasPrefix(long, got) {
		t.Fatalf("error of %d bytes (a prefix: %v), want the first %d bytes", len(got), strings.HasPrefix(long, got), maxErrorBytes)
	}
}

// Strings the protocol carries as proto strings (a stream name, a
// command's error) are made UTF-8: otherwise their message cannot be
// encoded and the stream breaks.
func TestInvalidUTF8Strings(t *testing.T) {
	f := startFake(t)
	mux := NewMux()
	mux.HandleFunc("odd", func(_ context.Context, r *Run) error {
		fmt.Fprintln(r.Output("out\xff"), "hello")
		return nil
	})
	startWorkerWith(t, Options{Servers: []string{f.addr}, Handler: mux}, func(w *Worker) {
		w.HandleCommand("bad", func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("no \xff") })
	})
	c := f.next(t)
	c.dispatch(task("r1", "odd"))
	c.send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Command{Command: &plutov1.Command{CommandId: "c1", Name: "bad"}}})
	c.waitResult(t, "r1")
	msgs := c.waitFor(t, "the command reply", func(msgs []*plutov1.WorkerMessage) bool {
		for _, m := range msgs {
			if m.GetCommandReply() != nil {
				return true
			}
		}
		return false
	})
	for _, m := range msgs {
		if rep := m.GetCommandReply(); rep != nil && rep.GetError() != "no \uFFFD" {
			t.Errorf("command error = %q", rep.GetError())
		}
	}
	if ls := logLines(msgs, "r1"); len(ls) != 1 || ls[0].GetStream() != "out\uFFFD" || string(ls[0].GetText()) != "hello" {
		t.Errorf("log lines = %v", ls)
	}
	noReconnect(t, f)
}

// waitClosed waits for ch to be closed.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTime):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// A result too large for any server message fails the run at once
// instead of being refused, and resent, forever.
func TestResultOverTheLimitFailsTheRun(t *testing.T) {
	f := startFake(t)
	mux := NewMux()
	mux.HandleFunc("big", func(_ context.Context, r *Run) error {
		return r.SetResult(strings.Repeat("x", MaxResultBytes))
	})
	startWorker(t, Options{Servers: []string{f.addr}, Handler: mux})
	c := f.next(t)
	c.dispatch(task("r1", "big"))
	res := c.waitResult(t, "r1")
	if res.GetOutcome() != plutov1.Outcome_OUTCOME_FAILED || len(res.GetResult()) != 0 || !strings.Contains(string(res.GetError()), "limit") {
		t.Fatalf("outcome %v, %d result bytes, error %q", res.GetOutcome(), len(res.GetResult()), res.GetError())
	}
}
