package worker

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// A command's handler gets a context that ends when the server stops
// waiting for the answer (Command.timeout_ms).
func TestCommandContextEndsAtTheServersTimeout(t *testing.T) {
	f := startFake(t)
	mux := NewMux()
	mux.HandleFunc("noop", noop)
	deadline := make(chan time.Duration, 2)
	startWorkerWith(t, Options{Servers: []string{f.addr}, Handler: mux}, func(w *Worker) {
		w.HandleCommand("wait", func(ctx context.Context, _ json.RawMessage) (any, error) {
			d, ok := ctx.Deadline()
			if !ok {
				deadline <- -1
				return "no deadline", nil
			}
			deadline <- time.Until(d)
			<-ctx.Done()
			return nil, ctx.Err()
		})
	})
	c := f.next(t)
	if !slices.Equal(c.hello.GetCommands(), []string{"wait"}) {
		t.Fatalf("hello commands = %v", c.hello.GetCommands())
	}
	began := time.Now()
	c.send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Command{Command: &plutov1.Command{CommandId: "c1", Name: "wait", TimeoutMs: 200}}})
	msgs := c.waitFor(t, "the reply", func(msgs []*plutov1.WorkerMessage) bool {
		for _, m := range msgs {
			if m.GetCommandReply() != nil {
				return true
			}
		}
		return false
	})
	if d := <-deadline; d <= 0 || d > 200*time.Millisecond {
		t.Fatalf("handler's deadline in %v, want within 200ms", d)
	}
	if took := time.Since(began); took < 200*time.Millisecond {
		t.Fatalf("answered after %v, before the timeout", took)
	}
	for _, m := range msgs {
		if rep := m.GetCommandReply(); rep != nil && (rep.GetCommandId() != "c1" || rep.GetError() != context.DeadlineExceeded.Error()) {
			t.Fatalf("reply = %v", rep)
		}
	}
}

// A drained worker stays drained when its stream breaks: the Hello of the
// new stream announces a window of zero, until the server resumes it.
func TestDrainSurvivesReconnect(t *testing.T) {
	f := startFake(t)
	mux := NewMux()
	mux.HandleFunc("noop", noop)
	r := startWorker(t, Options{Servers: []string{f.addr}, Capacity: 2, Prefetch: -1, Handler: mux})
	c := f.next(t)
	if w := c.hello.GetWindow(); w != 2 {
		t.Fatalf("first hello window = %d, want 2", w)
	}
	c.send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Drain{Drain: &plutov1.Drain{}}})
	c.waitFor(t, "Credits{0}", func(msgs []*plutov1.WorkerMessage) bool { return slices.Equal(credits(msgs), []int32{0}) })
	c.close()
	c2 := f.next(t)
	if w := c2.hello.GetWindow(); w != 0 {
		t.Fatalf("hello window after a reconnect while drained = %d, want 0", w)
	}
	if s := r.w.Stats(); !s.Draining {
		t.Fatalf("stats = %+v", s)
	}
	c2.send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Drain{Drain: &plutov1.Drain{Resume: true}}})
	c2.waitFor(t, "Credits{2}", func(msgs []*plutov1.WorkerMessage) bool { return slices.Contains(credits(msgs), 2) })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}
