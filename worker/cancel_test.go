package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// resultsOf returns the results received for one attempt.
func resultsOf(msgs []*plutov1.WorkerMessage, id string, attempt int32) []*plutov1.Result {
	var out []*plutov1.Result
	for _, r := range results(msgs) {
		if r.GetRunId() == id && r.GetAttempt() == attempt {
			out = append(out, r)
		}
	}
	return out
}

// Every CancelRun gets a Result, so that the server can free the run's
// slot: a held attempt's result when its handler returns (or at once if it
// had not started); an attempt the worker does not hold — never had,
// already finished and acknowledged, another attempt of a run it runs —
// at once, CANCELLED, "not held by this worker".
func TestCancelRunAlwaysAnswered(t *testing.T) {
	f := startFake(t)
	g := newGate()
	stopped := make(chan time.Time, 1)
	mux := NewMux()
	mux.HandleFunc("done", func(_ context.Context, r *Run) error { return r.SetResult("done") })
	mux.HandleFunc("slow", func(ctx context.Context, r *Run) error {
		g.started <- r.ID()
		<-ctx.Done()
		time.Sleep(100 * time.Millisecond) // takes a while to stop
		stopped <- time.Now()
		return ctx.Err()
	})
	mux.Handle("block", g)
	startWorker(t, Options{Servers: []string{f.addr}, Capacity: 1, Prefetch: 1, Handler: mux})
	c := f.next(t)

	// Held and running: the handler's context ends; the result comes when
	// it returns.
	c.dispatch(task("run", "slow"))
	g.waitStarted(t)
	c.cancel("run", 2) // not this attempt
	c.cancel("run", 1)
	res := c.waitAttempt(t, "run", 1)
	returned := <-stopped
	if res.GetOutcome() != plutov1.Outcome_OUTCOME_CANCELLED || time.UnixMilli(res.GetFinishedUnixMs()).Before(returned.Truncate(time.Millisecond)) {
		t.Errorf("running: result %v, handler returned at %d ms", res, returned.UnixMilli())
	}
	notHeldAnswer(t, c.waitAttempt(t, "run", 2), "another attempt of a running run")

	// Held and queued behind a blocked run: answered at once, not run.
	c.dispatch(task("blocker", "block"), task("queued", "done"))
	g.waitStarted(t)
	c.cancel("queued", 1)
	if res := c.waitAttempt(t, "queued", 1); res.GetOutcome() != plutov1.Outcome_OUTCOME_CANCELLED || res.GetStartedUnixMs() != 0 || strings.Contains(string(res.GetError()), notHeld) {
		t.Errorf("queued: result %v", res)
	}
	g.release <- struct{}{}
	c.waitAttempt(t, "blocker", 1)

	// Never held: answered at once.
	c.cancel("unknown", 3)
	notHeldAnswer(t, c.waitAttempt(t, "unknown", 3), "an unknown run")

	// Finished, result not acknowledged yet: the result already answers.
	f.autoAck.Store(false)
	c.dispatch(task("fin", "done"))
	c.waitAttempt(t, "fin", 1)
	c.cancel("fin", 1)
	c.dispatch(task("barrier", "done")) // the stream is ordered: the cancel was handled before this run
	c.waitAttempt(t, "barrier", 1)
	if fin := resultsOf(c.snapshot(), "fin", 1); len(fin) != 1 {
		t.Fatalf("fin, finished but not acknowledged: results %v; want only its own", fin)
	}
	// Finished and acknowledged: not held any more.
	c.send(resultAcks(&plutov1.ResultAck{RunId: "fin", Attempt: 1, Accepted: true}))
	c.cancel("fin", 1)
	msgs := c.waitFor(t, "the answer for fin after its ack", func(msgs []*plutov1.WorkerMessage) bool {
		return len(resultsOf(msgs, "fin", 1)) >= 2
	})
	fin := resultsOf(msgs, "fin", 1)
	if len(fin) != 2 || fin[0].GetOutcome() != plutov1.Outcome_OUTCOME_SUCCEEDED {
		t.Fatalf("fin: results %v; want its own result, then one answer to the cancel after the ack", fin)
	}
	notHeldAnswer(t, fin[1], "a finished and acknowledged run")
	c.send(resultAcks(&plutov1.ResultAck{RunId: "barrier", Attempt: 1, Accepted: true}))
}

func notHeldAnswer(t *testing.T, res *plutov1.Result, what string) {
	t.Helper()
	if res.GetOutcome() != plutov1.Outcome_OUTCOME_CANCELLED || string(res.GetError()) != notHeld || res.GetFinishedUnixMs() == 0 {
		t.Errorf("%s: answer %v; want CANCELLED %q", what, res, notHeld)
	}
}
