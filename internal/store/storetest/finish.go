package storetest

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// running inserts run id (group g, type t), claims it for "srv" and starts
// it on worker w1 at t0+1s. It returns the run.
func running(t *testing.T, s store.Store, p store.RunInsertParams) *store.Run {
	t.Helper()
	insert(t, s, p)
	got := claim(t, s, store.RunClaimParams{Group: p.Group, Types: []string{p.Type}, Limit: 1000, ServerID: "srv"})
	if len(got) != 1 || got[0].ID != p.ID {
		t.Fatalf("claim for %s got %v", p.ID, ids(got))
	}
	if ok := start(t, s, store.RunStartParams{ID: p.ID, Attempt: got[0].Attempt, WorkerID: "w1", Now: t0.Add(time.Second)}); !ok[0] {
		t.Fatalf("start of %s rejected", p.ID)
	}
	return get(t, s, p.ID)
}

func testFinishBatch(t *testing.T, s store.Store) {
	var ps []store.RunInsertParams
	for i := range 6 {
		ps = append(ps, params(runID(i)))
	}
	insert(t, s, ps...)
	claimAll(t, s)
	t1 := t0.Add(time.Minute)
	res := finish(t, s,
		store.RunFinishParams{ID: runID(0), Attempt: 1, Status: store.StatusSucceeded, Now: t1},
		store.RunFinishParams{ID: runID(1), Attempt: 7, Status: store.StatusSucceeded, Now: t1},
		store.RunFinishParams{ID: "unknown", Attempt: 1, Status: store.StatusSucceeded, Now: t1},
		store.RunFinishParams{ID: runID(2), Attempt: 1, Status: store.StatusFailed, Failure: true, Error: "x", Now: t1},
		store.RunFinishParams{ID: runID(0), Attempt: 1, Status: store.StatusFailed, Failure: true, Now: t1}, // duplicate: already finished
		store.RunFinishParams{ID: runID(3), Attempt: 1, Status: store.StatusPending, RunAt: t1.Add(time.Hour), Failure: true, Now: t1},
	)
	want := []bool{true, false, false, true, false, true}
	for i := range want {
		if res[i].Accepted != want[i] {
			t.Errorf("element %d (%s): accepted %v, want %v", i, res[i].ID, res[i].Accepted, want[i])
		}
	}
	wantStatus := map[string]store.RunStatus{
		runID(0): store.StatusSucceeded, runID(1): store.StatusDispatched, runID(2): store.StatusFailed,
		runID(3): store.StatusPending, runID(4): store.StatusDispatched, runID(5): store.StatusDispatched,
	}
	for id, st := range wantStatus {
		if got := get(t, s, id).Status; got != st {
			t.Errorf("%s: status %s, want %s", id, got, st)
		}
	}
	if r := get(t, s, runID(0)); r.Failures != 0 {
		t.Errorf("the rejected duplicate finish counted a failure: %d", r.Failures)
	}

	// An element rejected early in a batch does not stop a later one for the
	// same run.
	res = finish(t, s,
		store.RunFinishParams{ID: runID(4), Attempt: 2, Status: store.StatusSucceeded, Now: t1},
		store.RunFinishParams{ID: runID(4), Attempt: 1, Status: store.StatusSucceeded, Now: t1},
	)
	if res[0].Accepted || !res[1].Accepted {
		t.Errorf("got %+v, want rejected then accepted", res)
	}
	if len(finish(t, s)) != 0 {
		t.Error("empty finish returned results")
	}
}

func testFinishSucceeded(t *testing.T, s store.Store) {
	p := params("r1")
	p.MaxAttempts = 3
	before := running(t, s, p)
	t2 := t0.Add(5 * time.Second)
	result := json.RawMessage(`{"exit_code": 0, "stdout": "hi\n"}`)
	if !finishOne(t, s, store.RunFinishParams{
		ID: "r1", Attempt: 1, Status: store.StatusSucceeded, Result: result,
		StartedAt: t0.Add(4 * time.Second), // ignored: the run was started at t0+1s
		WorkerID:  "w1", Now: t2,
	}) {
		t.Fatal("finish rejected")
	}
	want := *before
	want.Status = store.StatusSucceeded
	want.Result = result
	want.FinishedAt = t2
	want.ServerID = get(t, s, "r1").ServerID // whether the holder is kept after the run ends is the backend's choice
	diffRun(t, "succeeded run", &want, get(t, s, "r1"))
	if !want.StartedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("StartedAt = %v, want the start time", want.StartedAt)
	}
}

func testFinishFailedAndTimedOut(t *testing.T, s store.Store) {
	for _, st := range []store.RunStatus{store.StatusFailed, store.StatusTimedOut, store.StatusCancelled} {
		id := "r-" + string(st)
		p := params(id)
		running(t, s, p)
		t2 := t0.Add(time.Minute)
		if !finishOne(t, s, store.RunFinishParams{ID: id, Attempt: 1, Status: st, Error: "boom " + string(st),
			Failure: st != store.StatusCancelled, Result: json.RawMessage(`[1,2]`), Now: t2}) {
			t.Fatalf("%s: finish rejected", st)
		}
		r := get(t, s, id)
		wantFailures := 1
		if st == store.StatusCancelled {
			wantFailures = 0
		}
		if r.Status != st || r.Failures != wantFailures || r.Error != "boom "+string(st) ||
			!r.FinishedAt.Equal(t2) || !jsonEqual(r.Result, json.RawMessage(`[1,2]`)) || r.Attempt != 1 || r.WorkerID != "w1" {
			t.Errorf("%s: got status %s failures %d error %q finished %v result %s attempt %d worker %q",
				st, r.Status, r.Failures, r.Error, r.FinishedAt, r.Result, r.Attempt, r.WorkerID)
		}
	}
}

func testFinishPendingRetry(t *testing.T, s store.Store) {
	p := params("r1")
	p.MaxAttempts = 3
	running(t, s, p)
	t2 := t0.Add(10 * time.Second)
	retryAt := t0.Add(40 * time.Second)
	if !finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 1, Status: store.StatusPending, RunAt: retryAt,
		Error: "boom", Failure: true, Now: t2}) {
		t.Fatal("finish rejected")
	}
	r := get(t, s, "r1")
	if r.Status != store.StatusPending || !r.RunAt.Equal(retryAt) || !r.FinishedAt.IsZero() || r.Failures != 1 ||
		r.Error != "boom" || r.Attempt != 1 {
		t.Errorf("after a failed attempt with backoff: status %s run_at %v finished %v failures %d error %q attempt %d",
			r.Status, r.RunAt, r.FinishedAt, r.Failures, r.Error, r.Attempt)
	}
	at, err := s.RunNextPendingAt(ctx)
	if err != nil || !at.Equal(retryAt) {
		t.Errorf("RunNextPendingAt = %v, %v; want %v", at, err, retryAt)
	}

	// The second attempt succeeds: the error of the first is cleared,
	// failures stay counted, the new start time replaces nothing already set.
	var promoted []*store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		promoted, err = tx.RunPromote(ctx, store.RunPromoteParams{Now: retryAt, Limit: 10})
		return err
	})
	diffIDs(t, "promoted", []string{"r1"}, promoted)
	got := claimAll(t, s)
	if len(got) != 1 || got[0].Attempt != 2 {
		t.Fatalf("re-claim: %+v", got)
	}
	if !finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 2, Status: store.StatusSucceeded,
		Result: json.RawMessage(`"ok"`), Now: retryAt.Add(time.Second)}) {
		t.Fatal("second attempt's finish rejected")
	}
	r = get(t, s, "r1")
	if r.Status != store.StatusSucceeded || r.Error != "" || r.Failures != 1 || !jsonEqual(r.Result, json.RawMessage(`"ok"`)) ||
		!r.FinishedAt.Equal(retryAt.Add(time.Second)) {
		t.Errorf("after success: status %s error %q failures %d result %s finished %v", r.Status, r.Error, r.Failures, r.Result, r.FinishedAt)
	}
}

func testFinishQueuedHandsBack(t *testing.T, s store.Store) {
	running(t, s, params("r1"))
	if !finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 1, Status: store.StatusQueued, WorkerID: "w1", Now: t0.Add(time.Minute)}) {
		t.Fatal("hand-back rejected")
	}
	r := get(t, s, "r1")
	if r.Status != store.StatusQueued || r.WorkerID != "" || r.Attempt != 1 || !r.FinishedAt.IsZero() || r.Failures != 0 {
		t.Errorf("handed-back run: status %s worker %q attempt %d finished %v failures %d",
			r.Status, r.WorkerID, r.Attempt, r.FinishedAt, r.Failures)
	}
	active, err := s.RunListActive(ctx, store.RunListActiveParams{})
	if err != nil {
		t.Fatal(err)
	}
	diffIDs(t, "active after hand-back", nil, active)
	counts, err := s.RunCountByGroup(ctx)
	if want := []store.GroupCount{{Group: "g", Status: store.StatusQueued, Count: 1}}; err != nil || !reflect.DeepEqual(counts, want) {
		t.Errorf("RunCountByGroup = %v, %v; want %v", counts, err, want)
	}
}

// A hand-back may count the attempt as lost with its worker; the count
// survives further attempts and a manual retry starts it again.
func testFinishCountsLostAttempts(t *testing.T, s store.Store) {
	running(t, s, params("r1"))
	if !finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 1, Status: store.StatusQueued, Lost: true, Now: t0}) {
		t.Fatal("hand-back rejected")
	}
	claimAll(t, s)
	if !finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 2, Status: store.StatusQueued, Now: t0}) {
		t.Fatal("second hand-back rejected")
	}
	claimAll(t, s)
	if !finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 3, Status: store.StatusFailed, Lost: true, Error: "lost", Now: t0}) {
		t.Fatal("final finish rejected")
	}
	if r := get(t, s, "r1"); r.Lost != 2 || r.Failures != 0 || r.Status != store.StatusFailed {
		t.Fatalf("after two lost attempts: lost %d failures %d status %s", r.Lost, r.Failures, r.Status)
	}
	var retried *store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		retried, err = tx.RunRetry(ctx, store.RunRetryParams{ID: "r1", Now: t0})
		return err
	})
	if retried.Lost != 0 || get(t, s, "r1").Lost != 0 {
		t.Fatalf("a retried run keeps lost %d", get(t, s, "r1").Lost)
	}
}

func testFinishWithoutStart(t *testing.T, s store.Store) {
	insert(t, s, params("r1"))
	claimAll(t, s)
	startedAt := t0.Add(2 * time.Second)
	if !finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 1, Status: store.StatusSucceeded,
		StartedAt: startedAt, WorkerID: "w7", Now: t0.Add(3 * time.Second)}) {
		t.Fatal("finish of a dispatched run rejected")
	}
	r := get(t, s, "r1")
	if r.Status != store.StatusSucceeded || !r.StartedAt.Equal(startedAt) || r.WorkerID != "w7" {
		t.Errorf("got status %s started %v worker %q", r.Status, r.StartedAt, r.WorkerID)
	}

	// Without a start time it stays unset.
	insert(t, s, params("r2"))
	claimAll(t, s)
	finishOne(t, s, store.RunFinishParams{ID: "r2", Attempt: 1, Status: store.StatusFailed, Now: t0.Add(3 * time.Second)})
	if r := get(t, s, "r2"); !r.StartedAt.IsZero() || r.Status != store.StatusFailed {
		t.Errorf("r2: status %s started %v", r.Status, r.StartedAt)
	}
}

func testFinishRejectsBadStatus(t *testing.T, s store.Store) {
	insert(t, s, params("r1"))
	claimAll(t, s)
	for _, st := range []store.RunStatus{store.StatusRunning, store.StatusDispatched, store.StatusBlocked, "", "bogus"} {
		err := s.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.RunFinish(ctx, []store.RunFinishParams{{ID: "r1", Attempt: 1, Status: st, Now: t0}})
			return err
		})
		if err == nil {
			t.Errorf("RunFinish to status %q: no error", st)
		}
	}
	if r := get(t, s, "r1"); r.Status != store.StatusDispatched {
		t.Errorf("status %s after rejected finishes", r.Status)
	}
}

func testCancel(t *testing.T, s store.Store) {
	// One group per run, so each claim takes exactly one run.
	mk := func(id string, st store.RunStatus) store.RunInsertParams {
		p := params(id)
		p.Status, p.Group = st, id
		return p
	}
	insert(t, s, mk("pending", store.StatusPending), mk("blocked", store.StatusBlocked),
		mk("queued", store.StatusQueued), mk("dispatched", store.StatusQueued))
	got := claim(t, s, store.RunClaimParams{Group: "dispatched", Types: []string{"t"}, Limit: 10, ServerID: "srv"})
	diffIDs(t, "claim", []string{"dispatched"}, got)
	running(t, s, mk("running", store.StatusQueued))

	t5 := t0.Add(5 * time.Second)
	for _, c := range []struct {
		id, reason, wantErr, prevWorker string
		prev                            store.RunStatus
	}{
		{"pending", "", "cancelled", "", store.StatusPending},
		{"blocked", "upstream failed", "upstream failed", "", store.StatusBlocked},
		{"queued", "by user", "by user", "", store.StatusQueued},
		{"dispatched", "by user", "by user", "", store.StatusDispatched},
		{"running", "by user", "by user", "w1", store.StatusRunning},
	} {
		before := get(t, s, c.id)
		var res store.RunCancelResult
		tx(t, s, func(tx store.Tx) error {
			var err error
			res, err = tx.RunCancel(ctx, store.RunCancelParams{ID: c.id, Reason: c.reason, Now: t5})
			return err
		})
		if !res.Changed || res.Prev != c.prev || res.PrevWorker != c.prevWorker {
			t.Errorf("cancel %s: Changed %v Prev %s PrevWorker %q; want true, %s, %q",
				c.id, res.Changed, res.Prev, res.PrevWorker, c.prev, c.prevWorker)
		}
		want := *before
		want.Status = store.StatusCancelled
		want.FinishedAt = t5
		want.Error = c.wantErr
		if res.Run == nil {
			t.Fatalf("cancel %s: nil run", c.id)
		}
		want.ServerID = res.Run.ServerID // the backend may clear the holder
		diffRun(t, "cancel "+c.id+" result", &want, res.Run)
		diffRun(t, "cancel "+c.id+" RunGet", res.Run, get(t, s, c.id))
	}
	active, err := s.RunListActive(ctx, store.RunListActiveParams{})
	if err != nil {
		t.Fatal(err)
	}
	diffIDs(t, "active after cancels", nil, active)
	diffIDs(t, "claim after cancels", nil, claimAll(t, s))
	if at, err := s.RunNextPendingAt(ctx); err != nil || !at.IsZero() {
		t.Errorf("RunNextPendingAt after cancelling the pending run = %v, %v", at, err)
	}
}

func testCancelTerminal(t *testing.T, s store.Store) {
	running(t, s, params("r1"))
	finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 1, Status: store.StatusSucceeded, Now: t0.Add(time.Second)})
	skipped := params("r2")
	skipped.Status = store.StatusSkipped
	insert(t, s, skipped)
	insert(t, s, params("r3"))
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "r3", Reason: "first", Now: t0})
		return err
	})
	for _, id := range []string{"r1", "r2", "r3"} {
		before := get(t, s, id)
		var res store.RunCancelResult
		tx(t, s, func(tx store.Tx) error {
			var err error
			res, err = tx.RunCancel(ctx, store.RunCancelParams{ID: id, Reason: "again", Now: t0.Add(time.Hour)})
			return err
		})
		if res.Changed || res.Prev != before.Status {
			t.Errorf("cancel of terminal %s: Changed %v Prev %s", id, res.Changed, res.Prev)
		}
		diffRun(t, "cancel of terminal "+id+" result", before, res.Run)
		diffRun(t, "terminal "+id+" after cancel", before, get(t, s, id))
	}
}

func testRetry(t *testing.T, s store.Store) {
	t9 := t0.Add(9 * time.Second)
	// failed after two attempts
	p := params("failed")
	p.MaxAttempts = 2
	running(t, s, p)
	finishOne(t, s, store.RunFinishParams{ID: "failed", Attempt: 1, Status: store.StatusQueued, Now: t0})
	claimAll(t, s)
	finishOne(t, s, store.RunFinishParams{ID: "failed", Attempt: 2, Status: store.StatusFailed, Failure: true,
		Error: "boom", Result: json.RawMessage(`{"partial":1}`), Now: t0.Add(2 * time.Second)})
	// timed out
	running(t, s, params("timed_out"))
	finishOne(t, s, store.RunFinishParams{ID: "timed_out", Attempt: 1, Status: store.StatusTimedOut, Failure: true, Error: "timeout", Now: t0})
	// cancelled while queued
	insert(t, s, params("cancelled"))
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "cancelled", Now: t0})
		return err
	})
	// skipped
	sk := params("skipped")
	sk.Status = store.StatusSkipped
	insert(t, s, sk)

	for _, c := range []struct {
		id      string
		attempt int
	}{{"failed", 2}, {"timed_out", 1}, {"cancelled", 0}, {"skipped", 0}} {
		before := get(t, s, c.id)
		var r *store.Run
		tx(t, s, func(tx store.Tx) error {
			var err error
			r, err = tx.RunRetry(ctx, store.RunRetryParams{ID: c.id, Now: t9})
			return err
		})
		if r == nil {
			t.Fatalf("retry %s: nil run", c.id)
		}
		if r.Status != store.StatusQueued || r.Failures != 0 || !r.RunAt.Equal(t9) || !r.FinishedAt.IsZero() ||
			r.Error != "" || !isNullJSON(r.Result) || r.Attempt != c.attempt {
			t.Errorf("retry %s: status %s failures %d run_at %v finished %v error %q result %s attempt %d (want attempt %d)",
				c.id, r.Status, r.Failures, r.RunAt, r.FinishedAt, r.Error, r.Result, r.Attempt, c.attempt)
		}
		if r.Seq != before.Seq || !r.CreatedAt.Equal(before.CreatedAt) || r.Key != before.Key {
			t.Errorf("retry %s changed identity fields", c.id)
		}
		diffRun(t, "retry "+c.id+" RunGet", r, get(t, s, c.id))
	}
	// The next claim increments the attempt: fencing stays monotonic.
	got := claimAll(t, s)
	want := map[string]int{"failed": 3, "timed_out": 2, "cancelled": 1, "skipped": 1}
	if len(got) != len(want) {
		t.Fatalf("claimed %v, want the four retried runs", ids(got))
	}
	for _, r := range got {
		if r.Attempt != want[r.ID] {
			t.Errorf("%s claimed with attempt %d, want %d", r.ID, r.Attempt, want[r.ID])
		}
	}
}

func testRetryConflict(t *testing.T, s store.Store) {
	mk := func(id string, st store.RunStatus) store.RunInsertParams {
		p := params(id)
		p.Status = st
		p.Group = "other"
		return p
	}
	insert(t, s, mk("pending", store.StatusPending), mk("blocked", store.StatusBlocked), mk("queued", store.StatusQueued))
	insert(t, s, params("dispatched"))
	claimAll(t, s)
	running(t, s, params("running"))
	running(t, s, params("succeeded"))
	finishOne(t, s, store.RunFinishParams{ID: "succeeded", Attempt: 1, Status: store.StatusSucceeded, Now: t0})
	for _, id := range []string{"pending", "blocked", "queued", "dispatched", "running", "succeeded"} {
		before := get(t, s, id)
		err := s.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.RunRetry(ctx, store.RunRetryParams{ID: id, Now: t0.Add(time.Hour)})
			return err
		})
		wantErr(t, "retry "+id, err, store.ErrConflict)
		diffRun(t, "run after refused retry "+id, before, get(t, s, id))
	}
}
