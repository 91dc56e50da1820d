package engine

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// quiesce runs Quiesce in the background and returns its outcome channel.
func (en *env) quiesce(ctx context.Context, opts QuiesceOptions) <-chan QuiesceResult {
	en.t.Helper()
	done := make(chan QuiesceResult, 1)
	go func() {
		res, err := en.e.Quiesce(ctx, opts)
		if err != nil {
			en.t.Errorf("quiesce: %v", err)
		}
		done <- res
	}()
	synctest.Wait()
	return done
}

func TestStopQuiesceWaitsForRunsOnWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 2)
		runs := en.submit(SubmitSpec{}, SubmitSpec{}, SubmitSpec{})
		ts := c.Tasks()
		if len(ts) != 2 {
			t.Fatalf("dispatched %d, want 2", len(ts))
		}
		ack(s, ts[0]) // one running, one prefetched: both are waited for

		done := en.quiesce(en.ctx, QuiesceOptions{})
		select {
		case res := <-done:
			t.Fatalf("quiesce returned %+v with two runs on the worker", res)
		default:
		}
		if err := en.e.Ready(en.ctx); !errors.Is(err, ErrStopped) {
			t.Fatalf("ready while quiescing: %v, want ErrStopped", err)
		}
		if _, _, err := en.e.Connect(en.ctx, Hello{WorkerID: "w2", Group: "g", Capacity: 1, Window: 1, Types: []string{"noop"}}, &fakeConn{}); !errors.Is(err, ErrStopped) {
			t.Fatalf("connect while quiescing: %v, want ErrStopped", err)
		}

		finish(s, OutcomeSucceeded, ts[0])
		if got := c.Tasks(); len(got) != 2 {
			t.Fatalf("a freed slot got new work while stopping: %v", ids(got))
		}
		select {
		case res := <-done:
			t.Fatalf("quiesce returned %+v with a run still on the worker", res)
		default:
		}
		ack(s, ts[1])
		finish(s, OutcomeSucceeded, ts[1])
		res := <-done
		if res.InFlight != 2 || res.Left != 0 {
			t.Fatalf("quiesce %+v, want 2 in flight and none left", res)
		}
		if err := en.e.Stop(en.ctx); err != nil {
			t.Fatal(err)
		}
		en.wantStatus(runs[0].ID, store.StatusSucceeded)
		en.wantStatus(runs[1].ID, store.StatusSucceeded)
		en.wantStatus(runs[2].ID, store.StatusQueued) // never taken: the next start runs it
		if acks := c.Acks(); len(acks) != 2 || !acks[0].Accepted || !acks[1].Accepted {
			t.Fatalf("result acks %+v, want both accepted", acks)
		}
	})
}

func TestStopQuiesceDeadlineLeavesRunsForTheNextStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s, c := en.connect("w1", 1)
		run := en.submit(SubmitSpec{})[0]
		task := c.Tasks()[0]
		ack(s, task)
		ctx, cancel := context.WithTimeout(en.ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		res := <-en.quiesce(ctx, QuiesceOptions{})
		if res.Left != 1 || time.Since(start) != 5*time.Second {
			t.Fatalf("quiesce %+v after %v, want one run left at the deadline", res, time.Since(start))
		}
		if err := en.e.Stop(en.ctx); err != nil {
			t.Fatal(err)
		}
		en.wantStatus(run.ID, store.StatusRunning)

		// The next start recovers it; the worker reconnects holding it and
		// its result is accepted: the run ran once, at attempt 1.
		en.e = en.start(en.st, nil)
		s2, _ := en.connectHeld("w1", 1, []RunRef{{RunID: task.RunID, Attempt: task.Attempt}})
		finish(s2, OutcomeSucceeded, task)
		if r := en.wantStatus(run.ID, store.StatusSucceeded); r.Attempt != 1 {
			t.Fatalf("attempt %d, want 1", r.Attempt)
		}
	})
}

func TestStopQuiesceStopWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		s1, c1 := en.connect("w1", 2)
		_, c2 := en.connect("w2", 1)
		runs := en.submit(SubmitSpec{}, SubmitSpec{}, SubmitSpec{})
		t1 := c1.Tasks()
		if len(t1) != 2 || len(c2.Tasks()) != 1 {
			t.Fatalf("dispatched %d and %d, want 2 and 1", len(t1), len(c2.Tasks()))
		}
		ack(s1, t1[0])
		done := en.quiesce(en.ctx, QuiesceOptions{StopWorkers: true})
		for i, c := range []*fakeConn{c1, c2} {
			c.mu.Lock()
			sd := c.shutdown
			c.mu.Unlock()
			if len(sd) != 1 || sd[0] {
				t.Fatalf("worker %d got shutdowns %v, want one (no restart)", i+1, sd)
			}
		}
		// w1 finishes one run and leaves with the prefetched one unstarted
		// (its drain deadline passed): that run goes back to the queue.
		finish(s1, OutcomeSucceeded, t1[0])
		s1.Close(ErrWorkerLeft)
		synctest.Wait()
		en.wantStatus(t1[1].RunID, store.StatusQueued)
		// w2's stream breaks: it is no longer waited for.
		en.e.disp.mu.Lock()
		w2 := en.e.disp.sessions["w2"]
		en.e.disp.mu.Unlock()
		w2.Close(errors.New("connection reset"))
		res := <-done
		if res.InFlight != 3 || res.Left != 0 || res.StoppedWorkers != 2 {
			t.Fatalf("quiesce %+v", res)
		}
		if err := en.e.Stop(en.ctx); err != nil {
			t.Fatal(err)
		}
		en.wantStatus(runs[0].ID, store.StatusSucceeded)
	})
}

func TestStopQuiesceTwiceAndAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		if _, err := en.e.Quiesce(en.ctx, QuiesceOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := en.e.Quiesce(en.ctx, QuiesceOptions{}); !errors.Is(err, ErrStopped) {
			t.Fatalf("second quiesce: %v, want ErrStopped", err)
		}
		if err := en.e.Stop(en.ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// A leader that quiesces gives the lease up at once, and its renewals no
// longer take it back, while its registration stays fresh.
func TestStopQuiesceResignsLeadership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		synctest.Wait()
		if !en.e.Leading() {
			t.Fatal("not leading after start")
		}
		en.quiesce(en.ctx, QuiesceOptions{})
		if en.e.Leading() {
			t.Fatal("still leading while quiescing")
		}
		time.Sleep(10 * time.Second) // several renewals
		synctest.Wait()
		l, err := en.st.LeaderGet(en.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if l.ServerID == "s1" && time.Now().Before(l.ExpiresAt) {
			t.Fatalf("lease %+v taken back while quiescing", l)
		}
		servers, err := en.st.ServerList(en.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(servers) != 1 || time.Since(servers[0].LastSeen) > 2*time.Second {
			t.Fatalf("registration %+v not renewed while quiescing", servers)
		}
	})
}
