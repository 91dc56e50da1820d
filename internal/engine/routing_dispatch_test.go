package engine

import (
	"errors"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// tally runs the queued work to the end on the given workers, finishing a
// random worker's oldest outstanding task each step (so their slots come
// free in no fixed order), and counts the runs each worker got.
func tally(t *testing.T, workers map[string]*Session, conns map[string]*fakeConn, total int) map[string]int {
	t.Helper()
	rnd := rand.New(rand.NewPCG(7, 8))
	done := map[string]int{}
	ids := make([]string, 0, len(workers))
	for id := range workers {
		ids = append(ids, id)
	}
	finished := 0
	for finished < total {
		id := ids[rnd.IntN(len(ids))]
		ts := conns[id].Tasks()
		if done[id] == len(ts) {
			continue
		}
		finish(workers[id], OutcomeSucceeded, ts[done[id]])
		done[id]++
		finished++
	}
	return done
}

// Round-robin gives each worker the same share however their slots come
// free: a run waits for the worker whose turn it is.
func TestRoundRobinSpreadsExactly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		workers, conns := map[string]*Session{}, map[string]*fakeConn{}
		for _, id := range []string{"w-1", "w-2", "w-3"} {
			workers[id], conns[id] = en.connect(id, 2)
		}
		const n = 600
		specs := make([]SubmitSpec, n)
		for i := range specs {
			specs[i].Routing = RoutingRoundRobin
		}
		en.submit(specs...)
		got := tally(t, workers, conns, n)
		for id := range workers {
			if got[id] != n/3 {
				t.Fatalf("round-robin spread %v, want %d each", got, n/3)
			}
		}
	})
}

// Failover sends everything to the first worker in id order, waiting for
// it while it is busy, and moves to the next when it goes away.
func TestFailoverWaitsForThePrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		a, ca := en.connect("w-a", 1)
		_, cb := en.connect("w-b", 4)
		runs := en.submit(SubmitSpec{Routing: RoutingFailover}, SubmitSpec{Routing: RoutingFailover}, SubmitSpec{Routing: RoutingFailover})
		if len(ca.Tasks()) != 1 || len(cb.Tasks()) != 0 {
			t.Fatalf("primary got %d, standby %d; want 1 and 0 (the rest wait for the primary)", len(ca.Tasks()), len(cb.Tasks()))
		}
		finish(a, OutcomeSucceeded, ca.Tasks()[0])
		if len(ca.Tasks()) != 2 || len(cb.Tasks()) != 0 {
			t.Fatalf("after a result: primary got %d, standby %d; want 2 and 0", len(ca.Tasks()), len(cb.Tasks()))
		}
		a.Close(errors.New("connection reset"))
		time.Sleep(time.Minute) // declared dead
		synctest.Wait()
		if len(cb.Tasks()) != 2 {
			t.Fatalf("after the primary died the standby got %d runs, want 2 (its held one and the waiting one)", len(cb.Tasks()))
		}
		en.wantStatus(runs[0].ID, store.StatusSucceeded)
	})
}

// Runs waiting for a busy worker's turn do not make the group claim
// without end: the server holds at most as many as its workers' windows.
func TestTurnWaitersBoundTheClaims(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, nil)
		_, ca := en.connect("w-a", 1)
		en.connect("w-b", 3)
		specs := make([]SubmitSpec, 50)
		for i := range specs {
			specs[i].Routing = RoutingFailover
		}
		runs := en.submit(specs...)
		if len(ca.Tasks()) != 1 {
			t.Fatalf("primary got %d runs, want 1", len(ca.Tasks()))
		}
		queued := 0
		for _, r := range runs {
			if en.get(r.ID).Status == store.StatusQueued {
				queued++
			}
		}
		// Windows 1 + 3: one run on w-a and at most four claimed.
		if queued < 50-4 {
			t.Fatalf("%d of 50 runs still queued, want at least 46 (claims bounded by the windows)", queued)
		}
	})
}
