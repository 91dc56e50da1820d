package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

func testClaimOrder(t *testing.T, s store.Store) {
	mk := func(id string, prio int, runAt time.Duration) store.RunInsertParams {
		p := params(id)
		p.Priority = prio
		p.RunAt = t0.Add(runAt)
		return p
	}
	// One batch: within equal priority and run_at, insertion order decides.
	insert(t, s,
		mk("a", 0, 0),
		mk("b", 10, 2*time.Second),
		mk("c", 10, time.Second),
		mk("d", 0, 0),
		mk("e", -1, -time.Hour),
		mk("f", 10, time.Second),
	)
	insert(t, s, mk("g", 10, time.Second)) // a later batch: after f
	// Limit 3 takes the three earliest of the four priority-10 runs.
	p := store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: 3, ServerID: "srv-1", Now: t0}
	got := claim(t, s, p)
	diffIDs(t, "first claim", []string{"c", "f", "g"}, got)
	for _, r := range got {
		if r.Status != store.StatusDispatched || r.Attempt != 1 || r.ServerID != "srv-1" || r.WorkerID != "" {
			t.Errorf("claimed run %s: status %s attempt %d server %q worker %q; want dispatched, 1, srv-1, \"\"",
				r.ID, r.Status, r.Attempt, r.ServerID, r.WorkerID)
		}
		diffRun(t, "claimed run vs RunGet", r, get(t, s, r.ID))
	}
	p.Limit = 2
	diffIDs(t, "second claim", []string{"b", "a"}, claim(t, s, p))
	p.Limit = 10
	diffIDs(t, "third claim", []string{"d", "e"}, claim(t, s, p))
	diffIDs(t, "claim of an empty queue", nil, claim(t, s, p))
}

func testClaimFilters(t *testing.T, s store.Store) {
	mk := func(id, group, typ string, st store.RunStatus) store.RunInsertParams {
		p := params(id)
		p.Group, p.Type, p.Status = group, typ, st
		p.RunAt = t0.Add(-time.Hour) // due long ago: only queued runs may be claimed anyway
		return p
	}
	insert(t, s,
		mk("g1-a1", "g1", "A", store.StatusQueued),
		mk("g1-b", "g1", "B", store.StatusQueued),
		mk("g1-a2", "g1", "A", store.StatusQueued),
		mk("g2-a", "g2", "A", store.StatusQueued),
		mk("g1-a-pending", "g1", "A", store.StatusPending),
		mk("g1-a-blocked", "g1", "A", store.StatusBlocked),
		mk("g1-a-skipped", "g1", "A", store.StatusSkipped),
	)
	c := func(group string, types ...string) []*store.Run {
		return claim(t, s, store.RunClaimParams{Group: group, Types: types, Limit: 100, ServerID: "srv"})
	}
	diffIDs(t, "g1 type C", nil, c("g1", "C"))
	diffIDs(t, "g3 type A", nil, c("g3", "A"))
	diffIDs(t, "g1 type A", []string{"g1-a1", "g1-a2"}, c("g1", "A"))
	diffIDs(t, "g1 types X,B", []string{"g1-b"}, c("g1", "X", "B"))
	diffIDs(t, "g1 types A,B again", nil, c("g1", "A", "B"))
	diffIDs(t, "g2 types B,A", []string{"g2-a"}, c("g2", "B", "A"))
	for _, id := range []string{"g1-a-pending", "g1-a-blocked", "g1-a-skipped"} {
		if r := get(t, s, id); r.Attempt != 0 || r.Status.Active() {
			t.Errorf("%s was claimed: %s attempt %d", id, r.Status, r.Attempt)
		}
	}
}

func testClaimLimitAndEmpty(t *testing.T, s store.Store) {
	var ps []store.RunInsertParams
	for i := range 10 {
		ps = append(ps, params(runID(i)))
	}
	insert(t, s, ps...)
	base := store.RunClaimParams{Group: "g", Types: []string{"t"}, ServerID: "srv"}
	for _, lim := range []int{0, -1} {
		p := base
		p.Limit = lim
		diffIDs(t, fmt.Sprintf("limit %d", lim), nil, claim(t, s, p))
	}
	p := base
	p.Limit = 5
	p.Types = nil
	diffIDs(t, "no types", nil, claim(t, s, p))
	p.Types = []string{}
	diffIDs(t, "empty types", nil, claim(t, s, p))
	p.Types = base.Types
	p.Limit = 3
	diffIDs(t, "limit 3", []string{runID(0), runID(1), runID(2)}, claim(t, s, p))
	p.Limit = 1
	diffIDs(t, "limit 1", []string{runID(3)}, claim(t, s, p))
	p.Limit = 100
	diffIDs(t, "the rest", []string{runID(4), runID(5), runID(6), runID(7), runID(8), runID(9)}, claim(t, s, p))
}

// testClaimManyTypes claims across a dozen types (listed with duplicates):
// the claim order holds across types, and runs of types nobody asked for
// are left alone however many of them are queued ahead.
func testClaimManyTypes(t *testing.T, s store.Store) {
	var ps []store.RunInsertParams
	for i := range 200 { // an unserved type at the head of the queue
		p := params(fmt.Sprintf("x%03d", i))
		p.Type, p.Priority = "unserved", 100
		ps = append(ps, p)
	}
	var want []string
	for i := range 36 {
		p := params(fmt.Sprintf("r%02d", i))
		p.Type = fmt.Sprintf("type-%02d", i%12)
		p.Priority = (i * 7) % 5
		p.RunAt = t0.Add(time.Duration(i%3) * time.Second)
		ps = append(ps, p)
	}
	insert(t, s, ps...)
	// Expected claim order of the 36 served runs.
	for prio := 4; prio >= 0; prio-- {
		for sec := range 3 {
			for i := range 36 {
				if (i*7)%5 == prio && i%3 == sec {
					want = append(want, fmt.Sprintf("r%02d", i))
				}
			}
		}
	}
	var types []string
	for i := range 12 {
		types = append(types, fmt.Sprintf("type-%02d", 11-i), fmt.Sprintf("type-%02d", i))
	}
	p := store.RunClaimParams{Group: "g", Types: types, Limit: 5, ServerID: "srv"}
	diffIDs(t, "first five", want[:5], claim(t, s, p))
	p.Limit = 100
	diffIDs(t, "the rest", want[5:], claim(t, s, p))
	for _, r := range []string{"x000", "x199"} {
		if got := get(t, s, r); got.Status != store.StatusQueued {
			t.Errorf("%s of an unrequested type is %s", r, got.Status)
		}
	}
}

// testClaimConcurrent has 8 claimers race over 2,000 runs: every run must be
// handed out exactly once, with attempt 1.
func testClaimConcurrent(t *testing.T, s store.Store) {
	const n, claimers = 2000, 8
	ps := make([]store.RunInsertParams, n)
	for i := range ps {
		ps[i] = params(runID(i))
		ps[i].Priority = i % 3
	}
	insert(t, s, ps...)

	var (
		mu   sync.Mutex
		seen = make(map[string]int)
		wg   sync.WaitGroup
		dctx = deadlineCtx(t)
	)
	for c := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			server := fmt.Sprintf("srv-%d", c)
			for i := 0; ; i++ {
				if i > n {
					// Every claim of a non-empty queue takes a run: this one
					// never drains (claimed runs stay claimable?).
					t.Errorf("claimer %d: still getting runs after %d claims of %d runs", c, i, n)
					return
				}
				var got []*store.Run
				err := s.Tx(dctx, func(tx store.Tx) error {
					var err error
					got, err = tx.RunClaim(dctx, store.RunClaimParams{
						Group: "g", Types: []string{"t"}, Limit: 1 + (c+i)%29, ServerID: server, Now: t0,
					})
					return err
				})
				if err != nil {
					t.Errorf("claimer %d: %v", c, err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, r := range got {
					seen[r.ID]++
					if r.Attempt != 1 || r.ServerID != server || r.Status != store.StatusDispatched {
						t.Errorf("claimer %d got %s with attempt %d server %q status %s", c, r.ID, r.Attempt, r.ServerID, r.Status)
					}
				}
				mu.Unlock()
			}
		}()
	}
	waitAll(t, "claimers", &wg)
	if len(seen) != n {
		t.Errorf("%d distinct runs claimed, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("run %s claimed %d times", id, k)
		}
	}
	active, err := s.RunListActive(ctx, store.RunListActiveParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != n {
		t.Errorf("%d active runs after the claims, want %d", len(active), n)
	}
	for _, r := range active {
		if r.Attempt != 1 {
			t.Errorf("run %s has attempt %d after one claim", r.ID, r.Attempt)
		}
	}
}

func testStartFencing(t *testing.T, s store.Store) {
	insert(t, s, params("r1"), params("r2"))
	claimAll(t, s)
	t1 := t0.Add(time.Second)
	// A batch: a stale attempt, the current one, a future one, an unknown run.
	ok := start(t, s,
		store.RunStartParams{ID: "r1", Attempt: 0, WorkerID: "w0", Now: t1},
		store.RunStartParams{ID: "r1", Attempt: 1, WorkerID: "w1", Now: t1},
		store.RunStartParams{ID: "r2", Attempt: 2, WorkerID: "w2", Now: t1},
		store.RunStartParams{ID: "zz", Attempt: 1, WorkerID: "w2", Now: t1},
	)
	if want := []bool{false, true, false, false}; fmt.Sprint(ok) != fmt.Sprint(want) {
		t.Errorf("RunStart = %v, want %v", ok, want)
	}
	r := get(t, s, "r1")
	if r.Status != store.StatusRunning || !r.StartedAt.Equal(t1) || r.WorkerID != "w1" || r.Attempt != 1 {
		t.Errorf("after start: status %s started %v worker %q attempt %d", r.Status, r.StartedAt, r.WorkerID, r.Attempt)
	}
	if r := get(t, s, "r2"); r.Status != store.StatusDispatched || !r.StartedAt.IsZero() {
		t.Errorf("r2 changed by a start for a wrong attempt: %s %v", r.Status, r.StartedAt)
	}
	// Starting a running run again is rejected and changes nothing.
	if ok := start(t, s, store.RunStartParams{ID: "r1", Attempt: 1, WorkerID: "w9", Now: t1.Add(time.Hour)}); ok[0] {
		t.Error("second RunStart of a running attempt applied")
	}
	if r := get(t, s, "r1"); !r.StartedAt.Equal(t1) || r.WorkerID != "w1" {
		t.Errorf("second start changed the run: started %v worker %q", r.StartedAt, r.WorkerID)
	}

	// The attempt is lost and handed back; the next claim is attempt 2 and
	// the old attempt's reports are rejected.
	if !finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 1, Status: store.StatusQueued, Error: "worker lost", Now: t1}) {
		t.Fatal("hand-back rejected")
	}
	got := claim(t, s, store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: 10, ServerID: "srv"})
	if len(got) != 1 || got[0].ID != "r1" || got[0].Attempt != 2 {
		t.Fatalf("re-claim = %+v, want r1 with attempt 2", got)
	}
	if ok := start(t, s, store.RunStartParams{ID: "r1", Attempt: 1, WorkerID: "w1", Now: t1}); ok[0] {
		t.Error("RunStart for stale attempt 1 applied after re-claim")
	}
	if r := get(t, s, "r1"); r.Status != store.StatusDispatched {
		t.Errorf("stale start changed status to %s", r.Status)
	}
	if ok := start(t, s, store.RunStartParams{ID: "r1", Attempt: 2, WorkerID: "w2", Now: t1}); !ok[0] {
		t.Error("RunStart for current attempt 2 rejected")
	}
}

func testFinishFencing(t *testing.T, s store.Store) {
	insert(t, s, params("r1"))
	claimAll(t, s)
	t1 := t0.Add(time.Second)
	start(t, s, store.RunStartParams{ID: "r1", Attempt: 1, WorkerID: "w1", Now: t1})
	if !finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 1, Status: store.StatusQueued, Now: t1}) {
		t.Fatal("hand-back rejected")
	}
	// Finishing a queued run is rejected: it is not active.
	if finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 1, Status: store.StatusSucceeded, Now: t1}) {
		t.Error("finish of a queued run accepted")
	}
	claimAll(t, s) // attempt 2
	before := get(t, s, "r1")
	for _, att := range []int{1, 3} {
		if finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: att, Status: store.StatusSucceeded,
			Result: []byte(`{"stale":true}`), Now: t1}) {
			t.Errorf("finish for attempt %d accepted while attempt 2 is current", att)
		}
	}
	diffRun(t, "run after rejected finishes", before, get(t, s, "r1"))
	if !finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 2, Status: store.StatusSucceeded, Now: t1}) {
		t.Error("finish for the current attempt rejected")
	}
	// A second report for the same attempt is rejected: the run is terminal.
	if finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 2, Status: store.StatusFailed, Failure: true, Now: t1}) {
		t.Error("second finish accepted")
	}
	if r := get(t, s, "r1"); r.Status != store.StatusSucceeded || r.Failures != 0 {
		t.Errorf("after a rejected second finish: %s, failures %d", r.Status, r.Failures)
	}

	// A cancelled run rejects its worker's report.
	insert(t, s, params("r2"))
	claimAll(t, s)
	start(t, s, store.RunStartParams{ID: "r2", Attempt: 1, WorkerID: "w1", Now: t1})
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "r2", Reason: "by user", Now: t1})
		return err
	})
	if finishOne(t, s, store.RunFinishParams{ID: "r2", Attempt: 1, Status: store.StatusSucceeded, Now: t1}) {
		t.Error("finish of a cancelled run accepted")
	}
	if r := get(t, s, "r2"); r.Status != store.StatusCancelled || r.Error != "by user" {
		t.Errorf("cancelled run changed by a late finish: %s %q", r.Status, r.Error)
	}
}
