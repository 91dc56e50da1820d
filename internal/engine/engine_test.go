package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

func TestSubmitDispatchComplete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 2)
		runs := en.submit(SubmitSpec{}, SubmitSpec{}, SubmitSpec{})
		tasks := c.Tasks()
		if len(tasks) != 2 {
			t.Fatalf("dispatched %d runs to a window-2 worker, want 2", len(tasks))
		}
		if tasks[0].RunID != runs[0].ID || tasks[0].Attempt != 1 {
			t.Fatalf("first task %+v, want run %s attempt 1", tasks[0], runs[0].ID)
		}
		en.wantStatus(runs[0].ID, store.StatusDispatched)
		ack(s, tasks[0])
		en.wantStatus(runs[0].ID, store.StatusRunning)

		finish(s, OutcomeSucceeded, tasks[0])
		if got := c.Tasks(); len(got) != 3 || got[2].RunID != runs[2].ID {
			t.Fatalf("after one result: dispatched %v, want the third run next", ids(got))
		}
		if acks := c.Acks(); len(acks) != 1 || !acks[0].Accepted {
			t.Fatalf("result acks %+v, want one accepted", acks)
		}
		r, err := en.e.Wait(en.ctx, runs[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != store.StatusSucceeded || r.WorkerID != "w1" || r.StartedAt.IsZero() || r.FinishedAt.IsZero() || string(r.Result) != `{"ok":true}` {
			t.Fatalf("finished run %+v", r)
		}
	})
}

func TestPriorityThenFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		runs := en.submit(SubmitSpec{Priority: 0}, SubmitSpec{Priority: 5}, SubmitSpec{Priority: 5}, SubmitSpec{Priority: -1})
		s, c := en.connect("w1", 1)
		var order []string
		for range 4 {
			ts := c.Tasks()
			last := ts[len(ts)-1]
			order = append(order, last.RunID)
			finish(s, OutcomeSucceeded, last)
		}
		want := []string{runs[1].ID, runs[2].ID, runs[0].ID, runs[3].ID}
		if !slices.Equal(order, want) {
			t.Fatalf("dispatch order %v, want %v", order, want)
		}
	})
}

func TestUnservedTypeStaysQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, c := en.connect("w1", 4, "noop")
		runs := en.submit(SubmitSpec{Type: "email.send"}, SubmitSpec{Type: "noop"})
		if got := ids(c.Tasks()); !slices.Equal(got, []string{runs[1].ID}) {
			t.Fatalf("dispatched %v, want only the noop run", got)
		}
		en.wantStatus(runs[0].ID, store.StatusQueued)
		// A worker that serves it takes it.
		_, c2 := en.connect("w2", 1, "email.send")
		if got := ids(c2.Tasks()); !slices.Equal(got, []string{runs[0].ID}) {
			t.Fatalf("email worker got %v", got)
		}
	})
}

func TestWindowAndLeastRecentSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, c1 := en.connect("w1", 3)
		_, c2 := en.connect("w2", 3)
		en.submit(make([]SubmitSpec, 10)...)
		n1, n2 := len(c1.Tasks()), len(c2.Tasks())
		if n1 != 3 || n2 != 3 {
			t.Fatalf("w1 got %d, w2 got %d; want 3 each (window 3)", n1, n2)
		}
	})
}

func TestRetryWithBackoffThenFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{Retries: 1})[0]
		finish(s, OutcomeFailed, c.Tasks()[0])
		r := en.wantStatus(run.ID, store.StatusPending)
		if d := r.RunAt.Sub(time.Now()); d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("retry in %v, want within [0.5s, 1s]", d)
		}
		if r.Failures != 1 || r.Error != "boom" {
			t.Fatalf("after one failure: failures %d error %q", r.Failures, r.Error)
		}
		time.Sleep(time.Second) // fake time: the backoff passes
		synctest.Wait()
		ts := c.Tasks()
		if len(ts) != 2 || ts[1].Attempt != 2 {
			t.Fatalf("tasks %+v, want attempt 2 dispatched after backoff", ts)
		}
		finish(s, OutcomeFailed, ts[1])
		en.wantStatus(run.ID, store.StatusFailed)
	})
}

func TestNoRetryFailsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{Retries: 5})[0]
		task := c.Tasks()[0]
		s.Results([]Result{{RunID: task.RunID, Attempt: task.Attempt, Outcome: OutcomeFailed, Error: "bad input", NoRetry: true}})
		synctest.Wait()
		en.wantStatus(run.ID, store.StatusFailed)
	})
}

func TestTimeoutCancelsOnWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{Timeout: 2 * time.Second})[0]
		task := c.Tasks()[0]
		if task.Timeout != 2*time.Second {
			t.Fatalf("task timeout %v", task.Timeout)
		}
		ack(s, task)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := c.Cancels(); len(got) != 1 || got[0] != (RunRef{RunID: run.ID, Attempt: 1}) {
			t.Fatalf("cancels sent %v, want the timed-out attempt", got)
		}
		en.wantStatus(run.ID, store.StatusTimedOut)
		// The worker's own late report is rejected; its slot frees.
		next := en.submit(SubmitSpec{})[0]
		finish(s, OutcomeTimedOut, task)
		en.wantStatus(run.ID, store.StatusTimedOut)
		if ts := c.Tasks(); len(ts) != 2 || ts[1].RunID != next.ID {
			t.Fatalf("the slot did not free: tasks %v", ids(ts))
		}
	})
}

// A worker whose Ack was lost with its stream says in its next Hello when
// the run started; the server times the run out from that start, even if
// the worker enforces no deadline of its own.
func TestTimeoutFromStartInHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{Timeout: 10 * time.Second})[0]
		task := c.Tasks()[0]
		started := time.Now() // the worker starts it; its Ack is lost
		s.Close(errors.New("stream broke"))
		time.Sleep(time.Second)
		_, c2 := en.connectHeld("w1", 1, []RunRef{{RunID: run.ID, Attempt: task.Attempt, StartedAt: started}})
		en.wantStatus(run.ID, store.StatusRunning)
		time.Sleep(9*time.Second - time.Millisecond)
		synctest.Wait()
		en.wantStatus(run.ID, store.StatusRunning)
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := c2.Cancels(); len(got) != 1 || got[0] != (RunRef{RunID: run.ID, Attempt: 1}) {
			t.Fatalf("cancels sent %v, want the timed-out attempt", got)
		}
		en.wantStatus(run.ID, store.StatusTimedOut)
	})
}

func TestCancelEverywhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		queued := en.submit(SubmitSpec{})[0]
		pending := en.submit(SubmitSpec{Delay: time.Hour})[0]
		for _, r := range []*store.Run{queued, pending} {
			got, err := en.e.Cancel(en.ctx, r.ID, "not needed")
			if err != nil || got.Status != store.StatusCancelled || got.Error != "not needed" {
				t.Fatalf("cancel %s: %+v %v", r.ID, got, err)
			}
		}
		s, c := en.connect("w1", 2)
		if n := len(c.Tasks()); n != 0 {
			t.Fatalf("cancelled runs were dispatched: %d", n)
		}
		running := en.submit(SubmitSpec{})[0]
		task := c.Tasks()[0]
		ack(s, task)
		if _, err := en.e.Cancel(en.ctx, running.ID, ""); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := c.Cancels(); len(got) != 1 || got[0].RunID != running.ID {
			t.Fatalf("worker not told to cancel: %v", got)
		}
		finish(s, OutcomeCancelled, task)
		en.wantStatus(running.ID, store.StatusCancelled)
		if acks := c.Acks(); len(acks) != 1 || acks[0].Accepted {
			t.Fatalf("late result of a cancelled run: acks %+v, want rejected", acks)
		}
		// Cancelling a finished run changes nothing.
		got, err := en.e.Cancel(en.ctx, running.ID, "again")
		if err != nil || got.Error != "cancelled" {
			t.Fatalf("second cancel: %+v %v", got, err)
		}
		if _, err := en.e.Cancel(en.ctx, "r_missing", ""); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("cancel missing: %v", err)
		}
	})
}

func TestDeadWorkerRunsMoveWithNewAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s1, c1 := en.connect("w1", 1)
		run := en.submit(SubmitSpec{})[0]
		task := c1.Tasks()[0]
		ack(s1, task)
		_, c2 := en.connect("w2", 1)
		start := time.Now()
		s1.Close(errors.New("EOF"))
		synctest.Wait()
		if len(c2.Tasks()) != 0 {
			t.Fatal("requeued before the worker was dead")
		}
		time.Sleep(3 * time.Second) // DeadAfter = 3 heartbeats
		synctest.Wait()
		ts := c2.Tasks()
		if len(ts) != 1 || ts[0].RunID != run.ID || ts[0].Attempt != 2 {
			t.Fatalf("w2 got %+v, want the run at attempt 2", ts)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("moved after %v, want within three heartbeat intervals", d)
		}
		if c1.Closed() == "" {
			t.Fatal("dead worker's stream not closed")
		}
		// w1 comes back holding attempt 1: it is stale and its result rejected.
		c := &fakeConn{}
		s1b, stale, err := en.e.Connect(en.ctx, Hello{WorkerID: "w1", Group: "g", Capacity: 1, Types: []string{"noop"}, Held: []RunRef{{RunID: run.ID, Attempt: 1}}}, c)
		if err != nil || len(stale) != 1 {
			t.Fatalf("reconnect: stale %v err %v, want the old attempt stale", stale, err)
		}
		finish(s1b, OutcomeSucceeded, task)
		en.wantStatus(run.ID, store.StatusDispatched)
		if acks := c.Acks(); len(acks) != 1 || acks[0].Accepted {
			t.Fatalf("stale result acks %+v", acks)
		}
	})
}

func TestSilentWorkerSuspectThenDead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connectSilent("w1", 1)
		run := en.submit(SubmitSpec{})[0]
		ack(s, c.Tasks()[0])
		time.Sleep(1700 * time.Millisecond)
		synctest.Wait()
		if ws := en.e.Workers(); len(ws) != 1 || ws[0].State != WorkerSuspect {
			t.Fatalf("workers %+v, want w1 suspect", ws)
		}
		s.Heartbeat(Load{Running: 1})
		if ws := en.e.Workers(); ws[0].State != WorkerAlive {
			t.Fatalf("heartbeat did not revive: %s", ws[0].State)
		}
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		if ws := en.e.Workers(); len(ws) != 0 {
			t.Fatalf("workers %+v, want w1 gone", ws)
		}
		r := en.wantStatus(run.ID, store.StatusQueued)
		if r.Attempt != 1 {
			t.Fatalf("attempt %d", r.Attempt)
		}
	})
}

func TestReconnectKeepsCurrentAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 2)
		runs := en.submit(SubmitSpec{}, SubmitSpec{})
		ts := c.Tasks()
		ack(s, ts...)
		s.Close(errors.New("network blip"))
		synctest.Wait()
		// Back before it is dead, holding only the first run.
		s2, c2 := en.connectHeld("w1", 2, []RunRef{{RunID: ts[0].RunID, Attempt: 1}})
		finish(s2, OutcomeSucceeded, ts[0])
		en.wantStatus(runs[0].ID, store.StatusSucceeded)
		// The one it lost goes back to the queue and comes to it again.
		got := c2.Tasks()
		if len(got) != 1 || got[0].RunID != ts[1].RunID || got[0].Attempt != 2 {
			t.Fatalf("re-dispatched %+v, want the lost run at attempt 2", got)
		}
	})
}

func TestRestartRecoversHeldRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 2)
		runs := en.submit(SubmitSpec{}, SubmitSpec{})
		ts := c.Tasks()
		ack(s, ts[0])
		if err := en.e.Stop(en.ctx); err != nil {
			t.Fatal(err)
		}
		// A new process, a new server id: the exclusive store's runs are
		// still recovered.
		en.e = en.start(en.st, func(c *Config) { c.ServerID = "s2" })
		s2, c2 := en.connectHeld("w1", 2, []RunRef{{RunID: ts[0].RunID, Attempt: 1}})
		finish(s2, OutcomeSucceeded, ts[0])
		en.wantStatus(runs[0].ID, store.StatusSucceeded)
		en.wantStatus(runs[1].ID, store.StatusDispatched)
		time.Sleep(3 * time.Second) // the grace period for unclaimed runs
		synctest.Wait()
		got := c2.Tasks()
		if len(got) != 1 || got[0].RunID != runs[1].ID || got[0].Attempt != 2 {
			t.Fatalf("after grace: %+v, want the unclaimed run again at attempt 2", got)
		}
	})
}

func TestDelayedRunWaitsForItsTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, c := en.connect("w1", 1)
		late := en.submit(SubmitSpec{Delay: 10 * time.Second})[0]
		early := en.submit(SubmitSpec{RunAt: time.Now().Add(5 * time.Second)})[0]
		en.wantStatus(late.ID, store.StatusPending)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := ids(c.Tasks()); !slices.Equal(got, []string{early.ID}) {
			t.Fatalf("at +5s dispatched %v", got)
		}
		en.wantStatus(late.ID, store.StatusPending)
	})
}

func TestIdempotencyKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		a := en.submit(SubmitSpec{Key: "order-42"})[0]
		res, err := en.e.Submit(en.ctx, []SubmitSpec{{Type: "noop", Group: "g", Key: "order-42"}})
		if err != nil || !res[0].Existing || res[0].Run.ID != a.ID {
			t.Fatalf("resubmit: %+v %v", res, err)
		}
	})
}

// An http run's URL may not carry credentials: runs are shown to whoever
// may read them. Other types' payloads are theirs.
func TestHTTPPayloadURLWithCredentialsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, err := en.e.Submit(en.ctx, []SubmitSpec{{Type: "http", Group: "g", Payload: []byte(`{"url":"https://bob:hunter2@api.example/x"}`)}})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "payload.url" || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("http run with credentials: %v, want a field error on payload.url that does not repeat them", err)
		}
		for _, p := range []string{`{"url":"https://api.example/x"}`, `{"url":"https://bob:hunter2@api.example/x"}`} {
			typ := "http"
			if strings.Contains(p, "bob") {
				typ = "shell" // not an http run: its payload is not a URL to us
			}
			if _, err := en.e.Submit(en.ctx, []SubmitSpec{{Type: typ, Group: "g", Payload: []byte(p)}}); err != nil {
				t.Errorf("%s run %s: %v", typ, p, err)
			}
		}
	})
}

func TestSubmitValidation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, func(c *Config) { c.MaxPayload = 16 })
		cases := []struct {
			spec  SubmitSpec
			field string
		}{
			{SubmitSpec{Group: "g"}, "type"},
			{SubmitSpec{Type: "t"}, "group"},
			{SubmitSpec{Type: "t", Group: "g", Payload: []byte(`{"a":`)}, "payload"},
			{SubmitSpec{Type: "t", Group: "g", Retries: -1}, "retries"},
			{SubmitSpec{Type: "t", Group: "g", Timeout: -time.Second}, "timeout"},
			{SubmitSpec{Type: "t", Group: "g", Routing: "psychic"}, "routing"},
			{SubmitSpec{Type: "t", Group: "g", Delay: time.Second, RunAt: time.Now()}, "delay"},
		}
		for _, tc := range cases {
			_, err := en.e.Submit(en.ctx, []SubmitSpec{tc.spec})
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("submit %+v: err %v, want field %q", tc.spec, err, tc.field)
			}
		}
		_, err := en.e.Submit(en.ctx, []SubmitSpec{{Type: "t", Group: "g", Payload: []byte(`"0123456789abcdefghij"`)}})
		if !errors.Is(err, ErrPayloadTooLarge) {
			t.Errorf("large payload: %v", err)
		}
		_, err = en.e.Submit(en.ctx, []SubmitSpec{{Type: "t", Group: "g"}, {Group: "g"}})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "runs[1].type" {
			t.Errorf("batch error %v, want runs[1].type", err)
		}
		page, err := en.e.List(en.ctx, store.RunListParams{})
		if err != nil || len(page.Runs) != 0 {
			t.Fatalf("invalid submits wrote runs: %d %v", len(page.Runs), err)
		}
	})
}

func TestRetryPutsFailedRunBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{})[0]
		finish(s, OutcomeFailed, c.Tasks()[0])
		en.wantStatus(run.ID, store.StatusFailed)
		if _, err := en.e.Retry(en.ctx, run.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		ts := c.Tasks()
		if len(ts) != 2 || ts[1].Attempt != 2 {
			t.Fatalf("retried run not re-dispatched: %+v", ts)
		}
		finish(s, OutcomeSucceeded, ts[1])
		if _, err := en.e.Retry(en.ctx, run.ID); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("retrying a succeeded run: %v, want conflict", err)
		}
	})
}

// countingStore counts transactions and can hold the first one open.
type countingStore struct {
	store.Store
	mu   sync.Mutex
	txs  int
	gate chan struct{}
}

func (s *countingStore) Tx(ctx context.Context, fn func(store.Tx) error) error {
	s.mu.Lock()
	s.txs++
	first := s.txs == 1
	s.mu.Unlock()
	if first && s.gate != nil {
		<-s.gate
	}
	return s.Store.Tx(ctx, fn)
}

func TestSubmitsAreGroupCommitted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		st := &countingStore{Store: openStore(t, dir), gate: make(chan struct{})}
		defer st.Store.Close()
		en := &env{t: t, ctx: context.Background(), st: st}
		en.e = en.start(st, nil)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); en.e.Submit(en.ctx, []SubmitSpec{{Type: "noop", Group: "g"}}) }()
		synctest.Wait() // the first submit's transaction is held open
		for range 100 {
			wg.Add(1)
			go func() { defer wg.Done(); en.e.Submit(en.ctx, []SubmitSpec{{Type: "noop", Group: "g"}}) }()
		}
		synctest.Wait()
		close(st.gate)
		wg.Wait()
		if st.txs != 2 {
			t.Fatalf("101 submits took %d transactions, want 2 (group commit)", st.txs)
		}
		page, _ := en.e.List(en.ctx, store.RunListParams{Limit: 1000})
		if len(page.Runs) != 101 {
			t.Fatalf("stored %d runs", len(page.Runs))
		}
	})
}

func TestWorkerThatLeavesGivesBackAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s1, c1 := en.connect("w1", 2)
		runs := en.submit(SubmitSpec{}, SubmitSpec{})
		finish(s1, OutcomeSucceeded, c1.Tasks()[0])
		_, c2 := en.connect("w2", 2)
		s1.Close(ErrWorkerLeft) // drained, abandoned the prefetched run, left
		synctest.Wait()
		if got := c2.Tasks(); len(got) != 1 || got[0].RunID != runs[1].ID || got[0].Attempt != 2 {
			t.Fatalf("w2 got %+v, want the abandoned run at once", got)
		}
		if ws := en.e.Workers(); len(ws) != 1 || ws[0].ID != "w2" {
			t.Fatalf("workers %+v", ws)
		}
	})
}

func TestReconnectWithAStaleAttemptIsToldToCancelIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s1, c1 := en.connect("w1", 1)
		run := en.submit(SubmitSpec{})[0]
		t1 := c1.Tasks()[0]
		ack(s1, t1)
		s1.Close(errors.New("network cut"))
		_, c2 := en.connect("w2", 1)
		time.Sleep(4 * time.Second) // past the dead timeout (three 1 s intervals)
		synctest.Wait()
		if got := c2.Tasks(); len(got) != 1 || got[0].RunID != run.ID || got[0].Attempt != 2 {
			t.Fatalf("w2 got %+v, want the run at attempt 2", got)
		}
		// w1 comes back still holding attempt 1: it is told that attempt is
		// stale (the worker cancels it), and its late result is rejected.
		c1b := &fakeConn{}
		s1b, stale, err := en.e.Connect(en.ctx, Hello{WorkerID: "w1", Group: "g", Capacity: 1, Window: 1, Types: []string{"noop"},
			Held: []RunRef{{RunID: run.ID, Attempt: 1}}}, c1b)
		if err != nil {
			t.Fatal(err)
		}
		if len(stale) != 1 || stale[0] != (RunRef{RunID: run.ID, Attempt: 1}) {
			t.Fatalf("stale %v, want attempt 1 of the run", stale)
		}
		finish(s1b, OutcomeSucceeded, t1)
		if acks := c1b.Acks(); len(acks) != 1 || acks[0].Accepted {
			t.Fatalf("late result acks %+v, want rejected", acks)
		}
		r := en.wantStatus(run.ID, store.StatusDispatched)
		if r.Attempt != 2 {
			t.Fatalf("run at attempt %d, want 2 (w2's)", r.Attempt)
		}
		s1b.Close(ErrWorkerLeft)
		synctest.Wait()
	})
}

// A broken stream is stronger evidence than silence: the worker is dead
// two intervals after its stream broke, not three after it was last heard.
func TestBrokenStreamIsDeadAfterTwoIntervals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil) // heartbeat 1 s: dead after 3 s of silence
		s1, c1 := en.connectSilent("w1", 1)
		run := en.submit(SubmitSpec{})[0]
		ack(s1, c1.Tasks()...)
		time.Sleep(500 * time.Millisecond)
		s1.Close(errors.New("connection reset")) // heard from 0.5 s ago
		_, c2 := en.connect("w2", 1)
		time.Sleep(1900 * time.Millisecond)
		synctest.Wait()
		if n := len(c2.Tasks()); n != 0 {
			t.Fatalf("requeued %v after the break, want 2 s", 1900*time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // 2.1 s after the break, 2.6 s after last heard
		synctest.Wait()
		if got := c2.Tasks(); len(got) != 1 || got[0].RunID != run.ID || got[0].Attempt != 2 {
			t.Fatalf("w2 got %+v, want the run at attempt 2, 2 s after w1's stream broke", got)
		}
	})
}

// recObserver records what the engine reports to its Observer.
type recObserver struct {
	nopObserver
	mu        sync.Mutex
	submitted map[string]int
	calls     int
	finished  map[store.RunStatus]int
}

func (o *recObserver) Submitted(g string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.submitted[g] += n
	o.calls++
}

func (o *recObserver) Finished(_, _ string, st store.RunStatus, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.finished[st]++
}

// The engine reports new runs by group, once per group per batch, and
// every terminal status.
func TestObserverSeesSubmitsAndFinishes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := &recObserver{submitted: map[string]int{}, finished: map[store.RunStatus]int{}}
		en := newEnv(t, func(c *Config) { c.Observer = obs })
		runs := en.submit(SubmitSpec{Group: "g"}, SubmitSpec{Group: "g"}, SubmitSpec{Group: "g"}, SubmitSpec{Group: "h"})
		en.submit(SubmitSpec{Group: "g", Key: "k"}, SubmitSpec{Group: "g", Key: "k"}) // one new run, one existing
		if _, err := en.e.Cancel(en.ctx, runs[0].ID, ""); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		obs.mu.Lock()
		defer obs.mu.Unlock()
		if obs.submitted["g"] != 4 || obs.submitted["h"] != 1 || obs.calls > 4 {
			t.Fatalf("submitted %v in %d calls, want g:4 h:1 in at most one call per group per batch", obs.submitted, obs.calls)
		}
		if obs.finished[store.StatusCancelled] != 1 {
			t.Fatalf("finished %v, want one cancelled", obs.finished)
		}
	})
}
