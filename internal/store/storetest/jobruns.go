package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// Runs of jobs: one run per slot, skipped runs, a job's unfinished runs
// and unblocking.

func testInsertJobSlot(t *testing.T, s store.Store) {
	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
	a := slot("a", "j", t0)
	a.Priority = 5
	first := insert(t, s, a)[0]

	b := slot("b", "j", t0) // a's slot, in a later batch
	b.Priority = 99
	noLT1, noLT2 := slot("g", "j", time.Time{}), slot("h", "j", time.Time{}) // no logical time: never conflict
	noJob1, noJob2 := slot("i", "", t0), slot("k", "", t0)                   // no job: never conflict
	keyed := slot("x", "j", t0)                                              // a new key, a taken slot
	keyed.Key = "key-x"
	res := insertResults(t, s,
		b,
		slot("c", "j", t1), // same job, another slot
		slot("d", "other", t0),
		slot("e", "j", t2),
		slot("f", "j", t2), // e's slot, in the same batch
		noLT1, noLT2, noJob1, noJob2,
		keyed,
	)
	type outcome struct {
		ID       string
		Existing bool
	}
	var got []outcome
	for _, r := range res {
		got = append(got, outcome{r.Run.ID, r.Existing})
	}
	want := []outcome{{"a", true}, {"c", false}, {"d", false}, {"e", false}, {"e", true},
		{"g", false}, {"h", false}, {"i", false}, {"k", false}, {"a", true}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("outcomes (-want +got):\n%s", d)
	}
	diffRun(t, "existing run returned for b", first, res[0].Run)
	diffRun(t, "existing run returned for x", first, res[9].Run)
	diffRun(t, "run returned for f", res[3].Run, res[4].Run)
	for _, id := range []string{"b", "f", "x"} {
		if _, err := s.RunGet(ctx, id); !isNotFound(err) {
			t.Errorf("RunGet(%q) = %v, want ErrNotFound (nothing written for a taken slot)", id, err)
		}
	}
	if _, err := s.RunGetByKey(ctx, "key-x"); !isNotFound(err) {
		t.Errorf("RunGetByKey(key-x) = %v, want ErrNotFound (nothing written for a taken slot)", err)
	}
	diffRun(t, "a after the batch", first, get(t, s, "a"))
	var last int64
	for _, r := range res {
		if r.Existing {
			continue
		}
		if r.Run.Seq <= last {
			t.Errorf("run %s: Seq %d not after %d", r.Run.ID, r.Run.Seq, last)
		}
		last = r.Run.Seq
		diffRun(t, "run "+r.Run.ID, r.Run, get(t, s, r.Run.ID))
	}

	// A slot stays taken whatever happens to its run.
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "a", Now: t0})
		return err
	})
	res = insertResults(t, s, slot("y", "j", t0))
	if !res[0].Existing || res[0].Run.ID != "a" || res[0].Run.Status != store.StatusCancelled {
		t.Errorf("insert into the slot of a cancelled run: got %s existing=%v status %s", res[0].Run.ID, res[0].Existing, res[0].Run.Status)
	}
}

// testInsertJobSlotLargeBatch interleaves slot runs with many plain runs in
// one batch, so a backend that inserts plain runs many rows at a time
// still checks each slot in input order.
func testInsertJobSlotLargeBatch(t *testing.T, s store.Store) {
	insert(t, s, slot("pre", "j", t0))
	var ps []store.RunInsertParams
	for i := range 200 {
		p := params(runID(i))
		if i%9 == 4 {
			// Slots t0, t0+1m, … with every third one repeating: i=4 takes
			// pre's slot, and so on.
			p = slot(runID(i), "j", t0.Add(time.Duration(i/27)*time.Minute))
		}
		ps = append(ps, p)
	}
	res := insertResults(t, s, ps...)
	slots := map[time.Time]string{t0: "pre"}
	var last int64
	for i, r := range res {
		p := ps[i]
		if !p.LogicalTime.IsZero() {
			if owner, taken := slots[p.LogicalTime]; taken {
				if !r.Existing || r.Run.ID != owner {
					t.Errorf("run %d (slot %v): got %s existing=%v, want existing %s", i, p.LogicalTime, r.Run.ID, r.Existing, owner)
				}
				continue
			}
			slots[p.LogicalTime] = p.ID
		}
		if r.Existing || r.Run.ID != p.ID {
			t.Errorf("run %d: got %s existing=%v", i, r.Run.ID, r.Existing)
			continue
		}
		if r.Run.Seq <= last {
			t.Errorf("run %d: Seq %d not after %d", i, r.Run.Seq, last)
		}
		last = r.Run.Seq
		diffRun(t, "run "+p.ID, r.Run, get(t, s, p.ID))
	}
}

func testInsertSkipped(t *testing.T, s store.Store) {
	sk := slot("s1", "j", t0)
	sk.Status = store.StatusSkipped
	sk.Error = "overlap: forbid (run r0 still running)"
	sk.RunAt = t0.Add(-time.Minute)
	sk.Now = t0.Add(time.Second)
	got := insert(t, s, sk)[0]
	want := &store.Run{
		ID: "s1", Seq: got.Seq, Job: "j", Type: "t", Group: "g", Status: store.StatusSkipped,
		MaxAttempts: 1, LogicalTime: t0, RunAt: t0.Add(-time.Minute),
		CreatedAt: t0.Add(time.Second), FinishedAt: t0.Add(time.Second),
		Error: "overlap: forbid (run r0 still running)",
	}
	diffRun(t, "skipped run returned by RunInsert", want, got)
	diffRun(t, "skipped run", want, get(t, s, "s1"))

	// A skipped run without a job or a reason, in a batch with others.
	plain := params("s2")
	plain.Status = store.StatusSkipped
	res := insert(t, s, params("q1"), plain, params("q2"))
	if r := get(t, s, "s2"); !r.FinishedAt.Equal(t0) || r.Error != "" || r.Status != store.StatusSkipped {
		t.Errorf("skipped run s2: finished %v error %q status %s; want %v, \"\", skipped", r.FinishedAt, r.Error, r.Status, t0)
	}
	diffRun(t, "s2 returned by RunInsert", get(t, s, "s2"), res[1])
	for _, id := range []string{"q1", "q2"} {
		if r := get(t, s, id); !r.FinishedAt.IsZero() || r.Error != "" {
			t.Errorf("queued run %s: finished %v error %q", id, r.FinishedAt, r.Error)
		}
	}

	// A skipped slot is taken: the slot fires once.
	ins := insertResults(t, s, slot("late", "j", t0))
	if !ins[0].Existing || ins[0].Run.ID != "s1" {
		t.Errorf("insert into a skipped slot: got %s existing=%v, want existing s1", ins[0].Run.ID, ins[0].Existing)
	}
	diffRun(t, "skipped run returned as existing", want, ins[0].Run)
}

// jobRunIn inserts a run of job in group id (so claims take it alone) and
// takes it to status st.
func jobRunIn(t *testing.T, s store.Store, id, job string, st store.RunStatus) {
	t.Helper()
	p := params(id)
	p.Job, p.Group = job, id
	switch st {
	case store.StatusPending:
		p.Status, p.RunAt = st, t0.Add(time.Hour)
	case store.StatusBlocked, store.StatusQueued, store.StatusSkipped:
		p.Status = st
	case store.StatusDispatched:
		insert(t, s, p)
		claim(t, s, store.RunClaimParams{Group: id, Types: []string{"t"}, Limit: 1, ServerID: "srv"})
	case store.StatusRunning:
		running(t, s, p)
	case store.StatusSucceeded, store.StatusFailed, store.StatusTimedOut:
		running(t, s, p)
		finishOne(t, s, store.RunFinishParams{ID: id, Attempt: 1, Status: st, Failure: st != store.StatusSucceeded, Now: t0})
	case store.StatusCancelled:
		insert(t, s, p)
		tx(t, s, func(tx store.Tx) error {
			_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: id, Now: t0})
			return err
		})
	default:
		t.Fatalf("jobRunIn: status %s", st)
	}
	if p.Status == st {
		insert(t, s, p)
	}
	if got := get(t, s, id).Status; got != st {
		t.Fatalf("run %s is %s, want %s", id, got, st)
	}
}

func listActiveForJob(t *testing.T, s store.Store, job string, limit int) []*store.Run {
	t.Helper()
	var runs []*store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		runs, err = tx.RunListActiveForJob(ctx, job, limit)
		return err
	})
	return runs
}

func testRunListActiveForJob(t *testing.T, s store.Store) {
	diffIDs(t, "no runs", nil, listActiveForJob(t, s, "j", 10))
	// Every status, in an order where Seq differs from the lifecycle order.
	for _, st := range []store.RunStatus{
		store.StatusRunning, store.StatusSucceeded, store.StatusQueued, store.StatusFailed,
		store.StatusBlocked, store.StatusCancelled, store.StatusDispatched, store.StatusTimedOut,
		store.StatusPending, store.StatusSkipped,
	} {
		jobRunIn(t, s, "j-"+string(st), "j", st)
		jobRunIn(t, s, "k-"+string(st), "k", st) // another job
	}
	insert(t, s, params("no-job"))
	all := []string{"j-running", "j-queued", "j-blocked", "j-dispatched", "j-pending"}
	got := listActiveForJob(t, s, "j", 100)
	diffIDs(t, "active runs of j", all, got)
	for _, r := range got {
		diffRun(t, "RunListActiveForJob vs RunGet "+r.ID, get(t, s, r.ID), r)
	}
	diffIDs(t, "limit 2", all[:2], listActiveForJob(t, s, "j", 2))
	diffIDs(t, "limit 4", all[:4], listActiveForJob(t, s, "j", 4))
	diffIDs(t, "a job without runs", nil, listActiveForJob(t, s, "none", 100))

	// A run that ends leaves the list.
	finishOne(t, s, store.RunFinishParams{ID: "j-running", Attempt: 1, Status: store.StatusSucceeded, Now: t0})
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "j-blocked", Now: t0})
		return err
	})
	diffIDs(t, "after two runs ended", []string{"j-queued", "j-dispatched", "j-pending"}, listActiveForJob(t, s, "j", 100))
}

func unblockNext(t *testing.T, s store.Store, job string) *store.Run {
	t.Helper()
	var r *store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		r, err = tx.RunUnblockNext(ctx, job, t0.Add(time.Minute))
		return err
	})
	return r
}

func wantUnblocked(t *testing.T, s store.Store, what, job, want string) {
	t.Helper()
	got := unblockNext(t, s, job)
	switch {
	case want == "" && got != nil:
		t.Errorf("%s: unblocked %s, want nothing", what, got.ID)
	case want != "" && got == nil:
		t.Errorf("%s: unblocked nothing, want %s", what, want)
	case want != "":
		if got.ID != want || got.Status != store.StatusQueued {
			t.Errorf("%s: unblocked %s with status %s, want %s queued", what, got.ID, got.Status, want)
		}
		diffRun(t, what+": unblocked run vs RunGet", get(t, s, want), got)
	}
}

func testRunUnblockNext(t *testing.T, s store.Store) {
	putJobs(t, s, job("j")) // j exists as a job; k below does not: both work
	wantUnblocked(t, s, "no runs", "j", "")
	blocked := func(id, job string) store.RunInsertParams {
		p := params(id)
		p.Job, p.Status = job, store.StatusBlocked
		return p
	}
	q := params("q")
	q.Job = "j"
	insert(t, s, q, blocked("b1", "j"), blocked("b2", "j"), blocked("b3", "j"), blocked("k1", "k"))
	wantUnblocked(t, s, "a queued run of j", "j", "")

	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "q", Now: t0})
		return err
	})
	wantUnblocked(t, s, "after q ended", "j", "b1")
	wantUnblocked(t, s, "while b1 is queued", "j", "")

	// The unblocked run is claimable like any queued run.
	got := claimAll(t, s)
	diffIDs(t, "claim after unblock", []string{"b1"}, got)
	if len(got) == 1 && (got[0].Attempt != 1 || got[0].Status != store.StatusDispatched) {
		t.Errorf("claimed b1: attempt %d status %s", got[0].Attempt, got[0].Status)
	}
	wantUnblocked(t, s, "while b1 is dispatched", "j", "")
	start(t, s, store.RunStartParams{ID: "b1", Attempt: 1, WorkerID: "w1", Now: t0})
	wantUnblocked(t, s, "while b1 is running", "j", "")
	finishOne(t, s, store.RunFinishParams{ID: "b1", Attempt: 1, Status: store.StatusSucceeded, Now: t0})

	// A pending run of j holds the queue too; runs of other jobs do not.
	p := pending("p", t0.Add(time.Hour))
	p.Job = "j"
	insert(t, s, p)
	jobRunIn(t, s, "k-running", "k", store.StatusRunning)
	wantUnblocked(t, s, "a pending run of j", "j", "")
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "p", Now: t0})
		return err
	})
	wantUnblocked(t, s, "after p ended (k running)", "j", "b2")
	finishOne(t, s, store.RunFinishParams{ID: "k-running", Attempt: 1, Status: store.StatusSucceeded, Now: t0})

	// k: its blocked run was untouched, and it has no job record.
	if r := get(t, s, "k1"); r.Status != store.StatusBlocked {
		t.Errorf("k1 is %s, want blocked", r.Status)
	}
	wantUnblocked(t, s, "k (no job record)", "k", "k1")
	wantUnblocked(t, s, "k with nothing blocked", "k", "")

	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "b2", Now: t0})
		return err
	})
	wantUnblocked(t, s, "after b2 ended", "j", "b3")
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "b3", Now: t0})
		return err
	})
	wantUnblocked(t, s, "nothing blocked", "j", "")
	wantUnblocked(t, s, "a job without runs", "none", "")
}
