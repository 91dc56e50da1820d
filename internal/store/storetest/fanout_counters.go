package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Fan-out counters (store/fanout.go): every path that moves a child into
// or out of a terminal status counts it, whatever the order, and from
// concurrent transactions.

// endChild ends a queued child of group g, type t: claimed and finished
// in status st (cancelled: cancelled while dispatched).
func endChild(t *testing.T, s store.Store, id string, st store.RunStatus, result json.RawMessage, now time.Time) {
	t.Helper()
	got := claimID(t, s, id)
	if st == store.StatusCancelled {
		tx(t, s, func(tx store.Tx) error {
			_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: id, Reason: "stop", Now: now})
			return err
		})
		return
	}
	if !finishOne(t, s, store.RunFinishParams{ID: id, Attempt: got.Attempt, Status: st, Result: result,
		Failure: st != store.StatusSucceeded, Error: map[bool]string{true: "", false: "boom " + id}[st == store.StatusSucceeded], Now: now}) {
		t.Fatalf("finish of %s refused", id)
	}
}

// claimID claims queued runs until it has id (the others are left
// dispatched) and returns it.
func claimID(t *testing.T, s store.Store, id string) *store.Run {
	t.Helper()
	r := get(t, s, id)
	if r.Status.Active() {
		return r
	}
	for _, c := range claim(t, s, store.RunClaimParams{Group: r.Group, Types: []string{r.Type}, Limit: 1000, ServerID: "srv"}) {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("%s (%s) was not claimed", id, r.Status)
	return nil
}

func testFanoutCounters(t *testing.T, s store.Store) {
	fanoutCreate(t, s, fanoutParams("p", 6, 4))
	now := t0.Add(time.Minute)
	c := func(i int) string { return childID("p", i) }
	endChild(t, s, c(0), store.StatusSucceeded, json.RawMessage(`"zero"`), now)
	wantCounters(t, s, "succeeded", "p", 1, 0)
	endChild(t, s, c(1), store.StatusFailed, nil, now)
	wantCounters(t, s, "failed", "p", 2, 1)
	endChild(t, s, c(2), store.StatusCancelled, nil, now)
	wantCounters(t, s, "cancelled", "p", 3, 2)
	endChild(t, s, c(3), store.StatusTimedOut, nil, now)
	wantCounters(t, s, "timed out", "p", 4, 3)
	// A cancel of a child that ended counts nothing.
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: c(0), Now: now})
		return err
	})
	wantCounters(t, s, "cancel of an ended child", "p", 4, 3)
	// Moves between unfinished states count nothing: a retry after
	// backoff, a hand-back, a promotion, a lost attempt requeued.
	r4 := claimID(t, s, c(4))
	finishOne(t, s, store.RunFinishParams{ID: c(4), Attempt: r4.Attempt, Status: store.StatusPending, RunAt: now, Failure: true, Now: now})
	r5 := claimID(t, s, c(5))
	finishOne(t, s, store.RunFinishParams{ID: c(5), Attempt: r5.Attempt, Status: store.StatusQueued, Now: now})
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunPromote(ctx, store.RunPromoteParams{Now: now, Limit: 10})
		return err
	})
	claimAll(t, s)
	heartbeat(t, s, "alive", now)
	if got := requeueLost(t, s, now.Add(time.Hour), 100); len(got) != 2 {
		t.Errorf("requeued %v, want c4 and c5", ids(got))
	}
	wantCounters(t, s, "unfinished moves", "p", 4, 3)
	// A retry uncounts the child; ending it again counts it again.
	for _, i := range []int{1, 0} {
		tx(t, s, func(tx store.Tx) error {
			_, err := tx.RunRetry(ctx, store.RunRetryParams{ID: c(i), Now: now, Succeeded: true})
			return err
		})
	}
	wantCounters(t, s, "retries of c1 (failed) and c0 (succeeded)", "p", 2, 2)
	endChild(t, s, c(1), store.StatusSucceeded, json.RawMessage(`"one"`), now)
	wantCounters(t, s, "c1 succeeded", "p", 3, 2)
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunRetry(ctx, store.RunRetryParams{ID: c(3), Now: now, Blocked: true})
		return err
	})
	wantCounters(t, s, "timed-out c3 retried blocked", "p", 2, 1)
	checkCounts(t, s, "after the moves")

	// Gates: blocked → skipped counts, skipped → blocked uncounts,
	// blocked → queued counts nothing.
	g := gate(t, s, store.RunGateParams{ID: c(3), From: store.StatusBlocked, To: store.StatusSkipped, Error: "upstream", Now: now})
	if g[0] == nil {
		t.Fatal("gate of c3 to skipped refused")
	}
	wantCounters(t, s, "c3 skipped", "p", 3, 2)
	gate(t, s, store.RunGateParams{ID: c(3), From: store.StatusSkipped, To: store.StatusBlocked, Now: now})
	wantCounters(t, s, "c3 blocked again", "p", 2, 1)
	gate(t, s, store.RunGateParams{ID: c(3), From: store.StatusBlocked, To: store.StatusQueued, Now: now})
	wantCounters(t, s, "c3 queued", "p", 2, 1)
	if e, f := recount(t, s, "p"); e != 2 || f != 1 {
		t.Errorf("recount: %d, %d", e, f)
	}
	wantNotActive(t, s, "after the moves", "p")
	checkCounts(t, s, "after the gates")
}

// testFanoutRandom applies random changes to the children of several
// fan-outs, through every path that moves a run, and compares the
// counters with a recount of the children's statuses.
func testFanoutRandom(t *testing.T, s store.Store) {
	rng := rand.New(rand.NewPCG(3, 4))
	parents := []string{"pa", "pb", "pc"}
	var kids []string
	for i, id := range parents {
		p := fanoutParams(id, 8+i, 1)
		for j := range p.Children {
			c := &p.Children[j]
			c.MaxAttempts = 3
			switch j % 4 {
			case 1:
				c.Status = store.StatusBlocked
			case 2:
				c.Status, c.RunAt = store.StatusPending, t0.Add(time.Duration(j)*time.Second)
			case 3:
				if i == 1 {
					c.Status = store.StatusSkipped
				}
			}
			kids = append(kids, c.ID)
		}
		fanoutCreate(t, s, p)
	}
	heartbeat(t, s, "s1", t0.Add(24*time.Hour)) // s2 never registers: its runs are lost
	statuses := []store.RunStatus{store.StatusSucceeded, store.StatusFailed, store.StatusTimedOut, store.StatusCancelled,
		store.StatusPending, store.StatusQueued, store.StatusSucceeded}
	ops := []func(tx store.Tx, now time.Time) error{
		func(tx store.Tx, now time.Time) error {
			_, err := tx.RunClaim(ctx, store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: 1 + rng.IntN(3),
				ServerID: pick(rng, []string{"s1", "s2"}), Now: now})
			return err
		},
		func(tx store.Tx, now time.Time) error {
			_, err := tx.RunPromote(ctx, store.RunPromoteParams{Now: now, Limit: 3})
			return err
		},
		func(tx store.Tx, now time.Time) error {
			_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: pick(rng, kids), Now: now})
			return ignoreRefusal(err)
		},
		func(tx store.Tx, now time.Time) error {
			_, err := tx.RunRetry(ctx, store.RunRetryParams{ID: pick(rng, kids), Now: now, Succeeded: rng.IntN(2) == 0,
				Blocked: rng.IntN(3) == 0})
			return ignoreRefusal(err)
		},
		func(tx store.Tx, now time.Time) error {
			from, to := store.StatusBlocked, pick(rng, []store.RunStatus{store.StatusQueued, store.StatusSkipped})
			if rng.IntN(3) == 0 {
				from, to = store.StatusSkipped, store.StatusBlocked
			}
			_, err := tx.RunGate(ctx, []store.RunGateParams{{ID: pick(rng, kids), From: from, To: to, Error: "gate", Now: now}})
			return err
		},
		func(tx store.Tx, now time.Time) error {
			_, err := tx.RunRequeueLost(ctx, store.RunRequeueLostParams{StaleBefore: now.Add(-time.Hour), Limit: 2, Now: now})
			return err
		},
		func(tx store.Tx, now time.Time) error { // the join's read, which may fold
			_, err := tx.FanoutGet(ctx, pick(rng, parents))
			return err
		},
	}
	errRollback := errors.New("roll back")
	for step := range 150 {
		now := t0.Add(time.Duration(step) * time.Second)
		rollback := step%13 == 7
		err := s.Tx(ctx, func(tx store.Tx) error {
			for range 1 + rng.IntN(3) {
				if err := pick(rng, ops)(tx, now); err != nil {
					return err
				}
			}
			if rollback {
				return errRollback
			}
			return nil
		})
		if rollback && !errors.Is(err, errRollback) || !rollback && err != nil {
			t.Fatalf("step %d: Tx: %v", step, err)
		}
		// Start and finish some active children, stale attempts among them.
		active, err := s.RunListActive(ctx, store.RunListActiveParams{})
		if err != nil {
			t.Fatal(err)
		}
		var starts []store.RunStartParams
		var finishes []store.RunFinishParams
		for _, r := range active {
			if store.IsFanoutParent(r) {
				t.Fatalf("step %d: RunListActive lists parent %s", step, r.ID)
			}
			att := r.Attempt
			if rng.IntN(8) == 0 {
				att++
			}
			switch rng.IntN(3) {
			case 0:
				starts = append(starts, store.RunStartParams{ID: r.ID, Attempt: att, WorkerID: "w", Now: now})
			case 1:
				st := pick(rng, statuses)
				if st == store.StatusCancelled {
					st = store.StatusFailed
				}
				finishes = append(finishes, store.RunFinishParams{ID: r.ID, Attempt: att, Status: st, RunAt: now,
					Failure: st != store.StatusSucceeded, Result: json.RawMessage(`1`), Now: now})
			}
		}
		tx(t, s, func(tx store.Tx) error {
			if _, err := tx.RunStart(ctx, starts); err != nil {
				return err
			}
			_, err := tx.RunFinish(ctx, finishes)
			return err
		})
		if step%10 == 9 {
			for _, id := range parents {
				e, f := recount(t, s, id)
				wantCounters(t, s, fmt.Sprintf("step %d", step), id, e, f)
			}
		}
	}
	for _, id := range parents {
		e, f := recount(t, s, id)
		wantCounters(t, s, "end", id, e, f)
		if r := get(t, s, id); r.Status != store.StatusRunning {
			t.Errorf("parent %s is %s", id, r.Status)
		}
	}
	checkCounts(t, s, "end")
}

// testFanoutConcurrent ends the children of two parents from several
// transactions at once (several servers), reading the join state
// meanwhile, and compares the counters with a recount.
func testFanoutConcurrent(t *testing.T, s store.Store) {
	const n = 60
	fanoutCreate(t, s, fanoutParams("pa", n, 0))
	fanoutCreate(t, s, fanoutParams("pb", n, 0))
	cctx := deadlineCtx(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			for step := 0; cctx.Err() == nil && step < 200; step++ {
				now := t0.Add(time.Duration(step) * time.Second)
				var claimed []*store.Run
				err := s.Tx(cctx, func(tx store.Tx) error {
					var err error
					claimed, err = tx.RunClaim(cctx, store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: 1 + rng.IntN(6),
						ServerID: "srv", Now: now})
					return err
				})
				if err != nil {
					t.Errorf("worker %d: claim: %v", w, err)
					return
				}
				if len(claimed) == 0 {
					return
				}
				rng.Shuffle(len(claimed), func(i, j int) { claimed[i], claimed[j] = claimed[j], claimed[i] })
				var ps []store.RunFinishParams
				for _, r := range claimed {
					st := pick(rng, []store.RunStatus{store.StatusSucceeded, store.StatusSucceeded, store.StatusFailed})
					ps = append(ps, store.RunFinishParams{ID: r.ID, Attempt: r.Attempt, Status: st, Now: now})
				}
				err = s.Tx(cctx, func(tx store.Tx) error {
					if _, err := tx.RunFinish(cctx, ps); err != nil {
						return err
					}
					for _, id := range []string{"pa", "pb"} {
						if _, err := tx.FanoutGet(cctx, id); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Errorf("worker %d: finish: %v", w, err)
					return
				}
			}
		}()
	}
	waitAll(t, "workers", &wg)
	for _, id := range []string{"pa", "pb"} {
		e, f := recount(t, s, id)
		if e != n {
			t.Errorf("%s: %d children ended, want %d", id, e, n)
		}
		wantCounters(t, s, "after the workers", id, e, f)
	}
	if got := joinable(t, s, 10); !slices.Equal(got, []string{"pa", "pb"}) {
		t.Errorf("joinable: %v", got)
	}
	checkCounts(t, s, "after the workers")
}
