package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// trueCounts counts the stored runs by (group, job, status), walking
// every run: what a COUNT(*) GROUP BY would say.
func trueCounts(t *testing.T, s store.Store) map[store.CountKey]int64 {
	t.Helper()
	out := map[store.CountKey]int64{}
	p := store.RunListParams{Limit: 1000, Order: store.OrderAsc}
	for {
		page, err := s.RunList(ctx, p)
		if err != nil {
			t.Fatalf("RunList: %v", err)
		}
		for _, r := range page.Runs {
			out[store.CountKey{Group: r.Group, Job: r.Job, Status: r.Status}]++
		}
		if page.NextCursor == "" {
			return out
		}
		p.Cursor = page.NextCursor
	}
}

// statsCounts returns RunStats' counters as a map.
func statsCounts(t *testing.T, s store.Store, p store.StatsParams) map[store.CountKey]int64 {
	t.Helper()
	st, err := s.RunStats(ctx, p)
	if err != nil {
		t.Fatalf("RunStats: %v", err)
	}
	out := map[store.CountKey]int64{}
	for _, c := range st.Counts {
		if c.Count == 0 {
			t.Errorf("RunStats returned a zero counter %v", c.CountKey)
		}
		out[c.CountKey] = c.Count
	}
	return out
}

// checkCounts compares the counters with the runs, and RunCountByGroup
// with their sums.
func checkCounts(t *testing.T, s store.Store, what string) {
	t.Helper()
	want := trueCounts(t, s)
	if d := cmp.Diff(want, statsCounts(t, s, store.StatsParams{Now: t0})); d != "" {
		t.Fatalf("%s: counters (-true +RunStats):\n%s", what, d)
	}
	byGroup := map[store.GroupCount]bool{}
	sums := map[[2]string]int{}
	for k, n := range want {
		sums[[2]string{k.Group, string(k.Status)}] += int(n)
	}
	for k, n := range sums {
		byGroup[store.GroupCount{Group: k[0], Status: store.RunStatus(k[1]), Count: n}] = true
	}
	got, err := s.RunCountByGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gotSet := map[store.GroupCount]bool{}
	for _, c := range got {
		gotSet[c] = true
	}
	if d := cmp.Diff(byGroup, gotSet); d != "" {
		t.Fatalf("%s: RunCountByGroup (-true +got):\n%s", what, d)
	}
}

// statsOp is one random state change of the counters test; it ignores
// refusals (ErrConflict, ErrNotFound), which leave the transaction usable.
type statsOp func(tx store.Tx, rng *rand.Rand, now time.Time, known []string) error

func ignoreRefusal(err error) error {
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

var statsGroups, statsJobs, statsTypes = []string{"g0", "g1", "g2"}, []string{"", "", "j0", "j1"}, []string{"t0", "t1"}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// statsOps are the operations of testStatsCounters, each a valid call
// whose preconditions may or may not hold.
func statsOps(prefix string, next *int) []statsOp {
	return []statsOp{
		func(tx store.Tx, rng *rand.Rand, now time.Time, known []string) error { // insert a batch
			var ps []store.RunInsertParams
			for range 1 + rng.IntN(6) {
				*next++
				p := store.RunInsertParams{ID: fmt.Sprintf("%s%05d", prefix, *next), Type: pick(rng, statsTypes),
					Group: pick(rng, statsGroups), Job: pick(rng, statsJobs), MaxAttempts: 3, Now: now,
					Status: pick(rng, []store.RunStatus{store.StatusQueued, store.StatusQueued, store.StatusPending,
						store.StatusBlocked, store.StatusSkipped})}
				if p.Status == store.StatusPending {
					p.RunAt = now.Add(time.Duration(rng.IntN(5)) * time.Second)
				}
				switch rng.IntN(6) {
				case 0: // a key, maybe taken
					p.Key = fmt.Sprintf("%s-key%d", prefix, rng.IntN(8))
				case 1: // a slot, maybe taken
					if p.Job != "" {
						p.LogicalTime = t0.Add(time.Duration(rng.IntN(6)) * time.Minute)
					}
				case 2:
					p.CallbackURL = "http://cb.example/x"
				}
				ps = append(ps, p)
			}
			_, err := tx.RunInsert(ctx, ps)
			return err
		},
		func(tx store.Tx, rng *rand.Rand, now time.Time, known []string) error { // claim
			_, err := tx.RunClaim(ctx, store.RunClaimParams{Group: pick(rng, statsGroups), Types: statsTypes,
				Limit: 1 + rng.IntN(4), ServerID: pick(rng, []string{"s1", "s2"}), Now: now})
			return err
		},
		func(tx store.Tx, rng *rand.Rand, now time.Time, known []string) error { // promote
			_, err := tx.RunPromote(ctx, store.RunPromoteParams{Now: now, Limit: 1 + rng.IntN(4)})
			return err
		},
		func(tx store.Tx, rng *rand.Rand, now time.Time, known []string) error { // cancel
			if len(known) == 0 {
				return nil
			}
			_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: pick(rng, known), Now: now})
			return ignoreRefusal(err)
		},
		func(tx store.Tx, rng *rand.Rand, now time.Time, known []string) error { // retry
			if len(known) == 0 {
				return nil
			}
			_, err := tx.RunRetry(ctx, store.RunRetryParams{ID: pick(rng, known), Now: now})
			return ignoreRefusal(err)
		},
		func(tx store.Tx, rng *rand.Rand, now time.Time, known []string) error { // unblock
			_, err := tx.RunUnblockNext(ctx, pick(rng, []string{"j0", "j1"}), now)
			return err
		},
		func(tx store.Tx, rng *rand.Rand, now time.Time, known []string) error { // requeue lost (s2 is gone)
			_, err := tx.RunRequeueLost(ctx, store.RunRequeueLostParams{StaleBefore: now.Add(-time.Hour), Limit: 1 + rng.IntN(3), Now: now})
			return err
		},
	}
}

// startAndFinish starts and finishes some of the active runs, with
// stale attempts among them (refused: no change).
func startAndFinish(t *testing.T, s store.Store, rng *rand.Rand, now time.Time) {
	t.Helper()
	active, err := s.RunListActive(ctx, store.RunListActiveParams{})
	if err != nil {
		t.Fatal(err)
	}
	var starts []store.RunStartParams
	var finishes []store.RunFinishParams
	for _, r := range active {
		att := r.Attempt
		if rng.IntN(8) == 0 {
			att++ // stale or future: refused
		}
		switch rng.IntN(3) {
		case 0:
			if r.Status == store.StatusDispatched {
				starts = append(starts, store.RunStartParams{ID: r.ID, Attempt: att, WorkerID: "w", Now: now})
			}
		case 1:
			st := pick(rng, []store.RunStatus{store.StatusSucceeded, store.StatusFailed, store.StatusTimedOut,
				store.StatusPending, store.StatusQueued, store.StatusSucceeded})
			finishes = append(finishes, store.RunFinishParams{ID: r.ID, Attempt: att, Status: st,
				RunAt: now.Add(time.Second), Failure: st != store.StatusSucceeded, Now: now})
		}
	}
	tx(t, s, func(tx store.Tx) error {
		if _, err := tx.RunStart(ctx, starts); err != nil {
			return err
		}
		_, err := tx.RunFinish(ctx, finishes)
		return err
	})
}

func testStatsCounters(t *testing.T, s store.Store) {
	rng := rand.New(rand.NewPCG(1, 2))
	heartbeat(t, s, "s1", t0.Add(24*time.Hour)) // s2 never registers: its runs are lost
	var known []string
	next := 0
	ops := statsOps("r", &next)
	errRollback := errors.New("roll back")
	for step := range 120 {
		now := t0.Add(time.Duration(step) * time.Second)
		rollback := step%11 == 5
		err := s.Tx(ctx, func(tx store.Tx) error {
			for range 1 + rng.IntN(3) {
				if err := pick(rng, ops)(tx, rng, now, known); err != nil {
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
		for i := len(known); i < next; i++ {
			known = append(known, fmt.Sprintf("r%05d", i+1))
		}
		startAndFinish(t, s, rng, now)
		if step%20 == 19 {
			checkCounts(t, s, fmt.Sprintf("step %d", step))
		}
	}
	checkCounts(t, s, "end")
	// The filters.
	all := trueCounts(t, s)
	want := map[store.CountKey]int64{}
	for k, n := range all {
		if k.Group == "g1" && k.Job == "j0" {
			want[k] = n
		}
	}
	if d := cmp.Diff(want, statsCounts(t, s, store.StatsParams{Now: t0, Group: "g1", Job: "j0"})); d != "" {
		t.Errorf("group g1, job j0 (-want +got):\n%s", d)
	}
}

// testStatsConcurrent runs the operations from several goroutines at once
// (concurrent transactions on a shared store), then compares.
func testStatsConcurrent(t *testing.T, s store.Store) {
	heartbeat(t, s, "s1", t0.Add(24*time.Hour))
	cctx := deadlineCtx(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var known []string
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			next := 0
			ops := statsOps(fmt.Sprintf("c%d-", g), &next)
			for step := range 40 {
				if cctx.Err() != nil {
					return
				}
				now := t0.Add(time.Duration(step) * time.Second)
				mu.Lock()
				k := append([]string(nil), known...)
				mu.Unlock()
				before := next
				err := s.Tx(cctx, func(tx store.Tx) error {
					for range 1 + rng.IntN(3) {
						if err := pick(rng, ops)(tx, rng, now, k); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil { // a deadlock victim rolls back: no change either
					t.Logf("goroutine %d step %d: %v", g, step, err)
					continue
				}
				mu.Lock()
				for i := before; i < next; i++ {
					known = append(known, fmt.Sprintf("c%d-%05d", g, i+1))
				}
				mu.Unlock()
			}
		}()
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for step := range 30 {
		startAndFinishTolerant(s, rng, t0.Add(time.Duration(step)*time.Second))
	}
	waitAll(t, "goroutines", &wg)
	checkCounts(t, s, "after concurrent transactions")
}

// startAndFinishTolerant is startAndFinish racing other transactions: a
// failed transaction (a deadlock victim) is fine, it changes nothing.
func startAndFinishTolerant(s store.Store, rng *rand.Rand, now time.Time) {
	active, err := s.RunListActive(ctx, store.RunListActiveParams{})
	if err != nil {
		return
	}
	var finishes []store.RunFinishParams
	var starts []store.RunStartParams
	for _, r := range active {
		if rng.IntN(2) == 0 {
			starts = append(starts, store.RunStartParams{ID: r.ID, Attempt: r.Attempt, WorkerID: "w", Now: now})
		} else {
			finishes = append(finishes, store.RunFinishParams{ID: r.ID, Attempt: r.Attempt,
				Status: pick(rng, []store.RunStatus{store.StatusSucceeded, store.StatusPending, store.StatusQueued}), Now: now})
		}
	}
	_ = s.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.RunStart(ctx, starts); err != nil {
			return err
		}
		_, err := tx.RunFinish(ctx, finishes)
		return err
	})
}

// testStatsQueueHeads checks the queue heads and the owed callbacks.
func testStatsQueueHeads(t *testing.T, s store.Store) {
	p := func(id, grp, typ string, prio int, runAt time.Time) store.RunInsertParams {
		q := params(id)
		q.Group, q.Type, q.Priority, q.RunAt, q.Now = grp, typ, prio, runAt, t0
		return q
	}
	insert(t, s,
		p("a1", "ga", "x", 0, t0.Add(3*time.Second)),
		p("a2", "ga", "x", 0, t0.Add(1*time.Second)),
		p("a3", "ga", "y", 0, t0.Add(2*time.Second)),
		p("b1", "gb", "x", 0, t0.Add(5*time.Second)))
	cb := params("c1")
	cb.Group, cb.Status, cb.CallbackURL = "gc", store.StatusSkipped, "http://cb.example/"
	insert(t, s, cb)
	st, err := s.RunStats(ctx, store.StatsParams{Now: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	heads := st.Heads
	sort.Slice(heads, func(i, j int) bool { return heads[i].Group+heads[i].Type < heads[j].Group+heads[j].Type })
	want := []store.QueueHead{
		{Group: "ga", Type: "x", RunAt: t0.Add(time.Second)},
		{Group: "ga", Type: "y", RunAt: t0.Add(2 * time.Second)},
		{Group: "gb", Type: "x", RunAt: t0.Add(5 * time.Second)},
	}
	if d := cmp.Diff(want, heads, cmpRun); d != "" {
		t.Errorf("heads (-want +got):\n%s", d)
	}
	if st.CallbacksOwed != 1 {
		t.Errorf("callbacks owed = %d, want 1", st.CallbacksOwed)
	}
	st, err = s.RunStats(ctx, store.StatsParams{Now: t0, Group: "gb"})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Heads) != 1 || st.Heads[0].Group != "gb" {
		t.Errorf("heads of gb: %v", st.Heads)
	}
}
