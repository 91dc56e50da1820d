package storetest

import (
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// listSlots runs RunListSlots in a transaction of its own.
func listSlots(t *testing.T, s store.Store, p store.RunSlotsParams) ([]*store.Run, error) {
	t.Helper()
	var runs []*store.Run
	err := s.Tx(ctx, func(tx store.Tx) error {
		var err error
		runs, err = tx.RunListSlots(ctx, p)
		return err
	})
	return runs, err
}

// gate runs RunGate in a transaction of its own.
func gate(t *testing.T, s store.Store, ps ...store.RunGateParams) []*store.Run {
	t.Helper()
	var runs []*store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		runs, err = tx.RunGate(ctx, ps)
		return err
	})
	return runs
}

// blockedSlot is a blocked run of job at logical time lt.
func blockedSlot(id, job string, lt time.Time) store.RunInsertParams {
	p := slot(id, job, lt)
	p.Status = store.StatusBlocked
	return p
}

// A job's runs by logical time: a closed range, latest first, cut at the
// limit; other jobs' runs and runs of no slot are not listed.
func testRunListSlots(t *testing.T, s store.Store) {
	var ps []store.RunInsertParams
	for i := range 5 {
		ps = append(ps, slot(runID(i), "u", t0.Add(time.Duration(i)*time.Hour)))
	}
	other := slot("other", "v", t0.Add(time.Hour))
	loose := params("loose")
	loose.Job = "u" // a manual run of u: no logical time
	insert(t, s, append(ps, other, loose)...)

	for _, c := range []struct {
		what     string
		from, to time.Time
		limit    int
		want     []string
	}{
		{"a range", t0.Add(time.Hour), t0.Add(3 * time.Hour), 10, []string{runID(3), runID(2), runID(1)}},
		{"the latest of a range", t0, t0.Add(150 * time.Minute), 1, []string{runID(2)}},
		{"one slot", t0.Add(4 * time.Hour), t0.Add(4 * time.Hour), 10, []string{runID(4)}},
		{"nothing in range", t0.Add(90 * time.Minute), t0.Add(110 * time.Minute), 10, nil},
		{"before every slot", t0.Add(-time.Hour), t0.Add(-time.Second), 10, nil},
	} {
		got, err := listSlots(t, s, store.RunSlotsParams{Job: "u", From: c.from, To: c.to, Limit: c.limit})
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		diffIDs(t, c.what, c.want, got)
	}
	for _, limit := range []int{0, store.MaxSlotRuns + 1} {
		if _, err := listSlots(t, s, store.RunSlotsParams{Job: "u", From: t0, To: t0, Limit: limit}); err == nil {
			t.Errorf("limit %d: no error", limit)
		}
	}
}

// RunGate moves a run from the status it names, once: blocked to queued
// (claimable, run_at raised to Now), blocked to skipped (finished, its
// error kept, listed with the ended runs, its callback owed), skipped back
// to blocked (its end undone). A move whose run is elsewhere, or gone,
// does nothing; a move it does not make is an error. The counters follow.
func testRunGate(t *testing.T, s store.Store) {
	later := t0.Add(time.Hour)
	b3 := blockedSlot("b3", "d", t0.Add(2*time.Minute))
	b3.CallbackURL = hook
	insert(t, s, blockedSlot("b1", "d", t0), blockedSlot("b2", "d", t0.Add(time.Minute)), b3)

	got := gate(t, s,
		store.RunGateParams{ID: "b1", From: store.StatusBlocked, To: store.StatusQueued, Now: later},
		store.RunGateParams{ID: "b2", From: store.StatusBlocked, To: store.StatusSkipped, Error: "upstream run r1 of u failed", Now: later},
		store.RunGateParams{ID: "b3", From: store.StatusBlocked, To: store.StatusSkipped, Error: "upstream failed", Now: later},
		store.RunGateParams{ID: "nope", From: store.StatusBlocked, To: store.StatusQueued, Now: later})
	if len(got) != 4 || got[0] == nil || got[1] == nil || got[2] == nil || got[3] != nil {
		t.Fatalf("RunGate returned %v, want three runs and a nil", got)
	}
	if r := get(t, s, "b1"); r.Status != store.StatusQueued || !r.RunAt.Equal(later) {
		t.Errorf("b1: %s, run_at %v; want queued at %v", r.Status, r.RunAt, later)
	}
	if r := get(t, s, "b2"); r.Status != store.StatusSkipped || !r.FinishedAt.Equal(later) || r.Error != "upstream run r1 of u failed" {
		t.Errorf("b2: %s, finished %v, error %q", r.Status, r.FinishedAt, r.Error)
	}
	if r := get(t, s, "b3"); r.Callback.State != store.CallbackPending {
		t.Errorf("b3 skipped with a callback URL: callback state %q, want pending", r.Callback.State)
	}
	diffIDs(t, "claim after gate", []string{"b1"}, claimAll(t, s))
	page, err := s.RunList(ctx, store.RunListParams{Statuses: []store.RunStatus{store.StatusSkipped}})
	if err != nil {
		t.Fatal(err)
	}
	diffIDs(t, "skipped runs listed", []string{"b3", "b2"}, page.Runs)
	checkCounts(t, s, "after the gates")

	// Moved already: nothing more happens.
	again := gate(t, s, store.RunGateParams{ID: "b2", From: store.StatusBlocked, To: store.StatusQueued, Now: later})
	if again[0] != nil || get(t, s, "b2").Status != store.StatusSkipped {
		t.Errorf("a second gate of b2 moved it: %v", again[0])
	}

	// Back to blocked: the end is undone, the owed callback dropped.
	got = gate(t, s, store.RunGateParams{ID: "b3", From: store.StatusSkipped, To: store.StatusBlocked, Now: later})
	r := get(t, s, "b3")
	if got[0] == nil || r.Status != store.StatusBlocked || !r.FinishedAt.IsZero() || r.Error != "" || r.Callback.State != "" {
		t.Errorf("b3 reblocked: %s, finished %v, error %q, callback %q", r.Status, r.FinishedAt, r.Error, r.Callback.State)
	}
	page, err = s.RunList(ctx, store.RunListParams{Statuses: []store.RunStatus{store.StatusSkipped}})
	if err != nil {
		t.Fatal(err)
	}
	diffIDs(t, "skipped runs after the reblock", []string{"b2"}, page.Runs)
	checkCounts(t, s, "after the reblock")

	for _, bad := range []store.RunGateParams{
		{ID: "b1", From: store.StatusQueued, To: store.StatusBlocked},
		{ID: "b2", From: store.StatusSkipped, To: store.StatusQueued},
		{ID: "b3", From: store.StatusBlocked, To: store.StatusFailed},
	} {
		err := s.Tx(ctx, func(tx store.Tx) error { _, err := tx.RunGate(ctx, []store.RunGateParams{bad}); return err })
		if err == nil {
			t.Errorf("RunGate %s -> %s: no error", bad.From, bad.To)
		}
	}
}

// The runs of a job with dependencies wait for RunGate: RunUnblockNext,
// which releases a serial job's runs one at a time, leaves them blocked.
// The trigger rule is stored.
func testRunUnblockNextLeavesDependents(t *testing.T, s store.Store) {
	d := job("d")
	d.DependsOn, d.TriggerRule = []string{"u", "w@24h0m0s"}, store.RuleOneSuccess
	putJobs(t, s, job("u"), job("w"), d)
	if got := getJob(t, s, "d"); got.TriggerRule != store.RuleOneSuccess || len(got.DependsOn) != 2 || got.DependsOn[1] != "w@24h0m0s" {
		t.Errorf("job d read back with trigger rule %q, depends on %v", got.TriggerRule, got.DependsOn)
	}
	insert(t, s, blockedSlot("d1", "d", t0))
	wantUnblocked(t, s, "a job with dependencies", "d", "")
	if r := get(t, s, "d1"); r.Status != store.StatusBlocked {
		t.Errorf("d1 is %s, want blocked", r.Status)
	}
	d.DependsOn = nil
	putJobs(t, s, d)
	wantUnblocked(t, s, "the job without its dependencies", "d", "d1")
}

// A backfill is stored as given, listed newest first, and updated by
// compare-and-set on its version; a second create of its ID is a
// conflict.
func testBackfills(t *testing.T, s store.Store) {
	b := &store.Backfill{ID: "bf1", Job: "j", From: t0, To: t0.Add(29 * 24 * time.Hour), Parallel: 4, Cascade: true,
		Rerun: store.RerunFailed, State: store.BackfillRunning, Next: t0, CreatedAt: t0, UpdatedAt: t0}
	tx(t, s, func(tx store.Tx) error { return tx.BackfillCreate(ctx, b) })
	later := *b
	later.ID, later.CreatedAt, later.Desc, later.Next = "bf2", t0.Add(time.Minute), true, time.Time{}
	tx(t, s, func(tx store.Tx) error { return tx.BackfillCreate(ctx, &later) })
	err := s.Tx(ctx, func(tx store.Tx) error { return tx.BackfillCreate(ctx, b) })
	wantErr(t, "a second create", err, store.ErrConflict)

	got, err := s.BackfillGet(ctx, "bf1")
	if err != nil {
		t.Fatal(err)
	}
	want := *b
	want.Version = 1
	want.From, want.To, want.Next, want.CreatedAt, want.UpdatedAt = b.From.UTC(), b.To.UTC(), b.Next.UTC(), b.CreatedAt.UTC(), b.UpdatedAt.UTC()
	if *got != want {
		t.Errorf("BackfillGet:\n got %+v\nwant %+v", *got, want)
	}
	list, err := s.BackfillList(ctx, 10)
	if err != nil || len(list) != 2 || list[0].ID != "bf2" || !list[0].Desc || !list[0].Next.IsZero() {
		t.Fatalf("BackfillList: %v (%v)", list, err)
	}
	if _, err := s.BackfillGet(ctx, "nope"); err == nil {
		t.Error("BackfillGet of an unknown ID: no error")
	}

	upd := *got
	upd.State, upd.Next, upd.Started, upd.Kept, upd.UpdatedAt = store.BackfillPaused, t0.Add(48*time.Hour), 2, 1, t0.Add(time.Hour)
	var (
		out *store.Backfill
		ok  bool
	)
	tx(t, s, func(tx store.Tx) error { out, ok, err = tx.BackfillUpdate(ctx, &upd); return err })
	if !ok || out.Version != 2 || out.State != store.BackfillPaused || !out.Next.Equal(upd.Next) || out.Started != 2 || out.Kept != 1 {
		t.Fatalf("BackfillUpdate: %+v, %v", out, ok)
	}
	// The same version again: the compare-and-set fails.
	tx(t, s, func(tx store.Tx) error { out, ok, err = tx.BackfillUpdate(ctx, &upd); return err })
	if ok || out != nil {
		t.Errorf("a stale update applied: %+v", out)
	}
	done := *got
	done.Version, done.State, done.Next, done.FinishedAt = 2, store.BackfillDone, time.Time{}, t0.Add(2*time.Hour)
	tx(t, s, func(tx store.Tx) error { out, ok, err = tx.BackfillUpdate(ctx, &done); return err })
	if !ok || !out.Next.IsZero() || !out.FinishedAt.Equal(done.FinishedAt) {
		t.Errorf("finishing: %+v, %v", out, ok)
	}
}

// A succeeded run is retried only when the retry says so (a backfill's
// rerun all); it is queued like any retried run.
func testRetrySucceeded(t *testing.T, s store.Store) {
	insert(t, s, params("ok"))
	claimAll(t, s)
	start(t, s, store.RunStartParams{ID: "ok", Attempt: 1, WorkerID: "w1", Now: t0})
	finishOne(t, s, store.RunFinishParams{ID: "ok", Attempt: 1, Status: store.StatusSucceeded, Now: t0})
	err := s.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.RunRetry(ctx, store.RunRetryParams{ID: "ok", Now: t0})
		return err
	})
	wantErr(t, "a plain retry of a succeeded run", err, store.ErrConflict)
	var r *store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		r, err = tx.RunRetry(ctx, store.RunRetryParams{ID: "ok", Now: t0, Succeeded: true})
		return err
	})
	if r.Status != store.StatusQueued || len(r.Result) != 0 {
		t.Errorf("retried: %s, result %s", r.Status, r.Result)
	}
	checkCounts(t, s, "after the retry of a succeeded run")

	// Retried blocked (a run of a job with dependencies): no claim takes
	// it until a gate queues it.
	p := params("dep")
	p.Job, p.LogicalTime = "j", t0
	insert(t, s, p)
	diffIDs(t, "claim of the run and the retried one", []string{"ok", "dep"}, claimAll(t, s))
	for _, id := range []string{"dep", "ok"} {
		start(t, s, store.RunStartParams{ID: id, Attempt: 1, WorkerID: "w1", Now: t0})
	}
	finishOne(t, s, store.RunFinishParams{ID: "dep", Attempt: 1, Status: store.StatusFailed, Error: "boom", Now: t0})
	tx(t, s, func(tx store.Tx) error {
		var err error
		r, err = tx.RunRetry(ctx, store.RunRetryParams{ID: "dep", Now: t0, Blocked: true})
		return err
	})
	if r.Status != store.StatusBlocked || r.Error != "" || !r.FinishedAt.IsZero() {
		t.Errorf("retried blocked: %s, error %q, finished %v", r.Status, r.Error, r.FinishedAt)
	}
	checkCounts(t, s, "after a retry to blocked")
	diffIDs(t, "claim of a blocked retry", nil, claimAll(t, s))
	gate(t, s, store.RunGateParams{ID: "dep", From: store.StatusBlocked, To: store.StatusQueued, Now: t0})
	diffIDs(t, "claim after its gate", []string{"dep"}, claimAll(t, s))
	checkCounts(t, s, "after the gate")
}
