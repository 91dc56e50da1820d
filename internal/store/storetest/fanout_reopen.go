package storetest

import (
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

func fanoutReopen(s store.Store, id string, now time.Time) (*store.Run, error) {
	var r *store.Run
	err := s.Tx(ctx, func(tx store.Tx) error {
		var err error
		r, err = tx.FanoutReopen(ctx, store.FanoutReopenParams{ParentID: id, Now: now})
		return err
	})
	return r, err
}

// testFanoutReopen: an ended parent that did not succeed runs again, as a
// retried run does, with its fan-out open and no merge run.
func testFanoutReopen(t *testing.T, s store.Store) {
	p := fanoutParams("p", 2, 0)
	p.Parent.Job, p.Parent.CallbackURL = "j", hook
	fanoutCreate(t, s, p)
	fanoutCreate(t, s, fanoutParams("q", 2, 0))
	fanoutCreate(t, s, fanoutParams("r", 1, 0))
	insert(t, s, params("plain"))
	now := t0.Add(time.Hour)

	for _, c := range []struct {
		id   string
		want error
	}{{"q", store.ErrConflict}, {"plain", store.ErrNotFound}, {childID("p", 0), store.ErrNotFound}, {"nope", store.ErrNotFound}} {
		_, err := fanoutReopen(s, c.id, now)
		wantErr(t, "FanoutReopen of "+c.id, err, c.want)
	}

	for _, id := range []string{"plain", "nope"} {
		_, err := s.FanoutRead(ctx, id)
		wantErr(t, "FanoutRead of "+id, err, store.ErrNotFound)
	}
	tx(t, s, func(tx store.Tx) error { return tx.FanoutSetMerge(ctx, "p", "m1") })
	fanoutFinish(t, s, store.FanoutFinishParams{ParentID: "p", Status: store.StatusFailed, Error: "merge failed", Now: now})
	wantCounters(t, s, "before", "p", 0, 0)
	r, err := fanoutReopen(s, "p", now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != store.StatusRunning || r.Attempt != 1 || !r.FinishedAt.IsZero() || r.Error != "" || r.Result != nil ||
		r.Callback.State != "" || r.WorkerID != "" {
		t.Errorf("reopened parent: %+v", r)
	}
	diffRun(t, "stored parent", r, get(t, s, "p"))
	if fo := fanoutGet(t, s, "p"); fo.MergeID != "" || fo.Total != 2 {
		t.Errorf("reopened fan-out: %+v", fo)
	}
	tx(t, s, func(tx store.Tx) error { return tx.FanoutSetMerge(ctx, "p", "m2") })
	diffIDs(t, "failed runs", nil, listRuns(t, s, store.RunListParams{Statuses: []store.RunStatus{store.StatusFailed}}).Runs)
	diffIDs(t, "callbacks due", nil, callbacksDue(t, s, now, now.Add(time.Hour), 10))
	var live []*store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		live, err = tx.RunListActiveForJob(ctx, "j", 10)
		return err
	})
	diffIDs(t, "the job's unfinished runs", []string{"p"}, live)
	_, err = fanoutReopen(s, "p", now)
	wantErr(t, "a second FanoutReopen", err, store.ErrConflict)
	wantNotActive(t, s, "reopened parent", "p")

	// A cancelled parent reopens; a succeeded one does not.
	cancelRun(t, s, "q", now)
	if r, err := fanoutReopen(s, "q", now); err != nil || r.Attempt != 1 {
		t.Errorf("reopen of a cancelled parent: %v, %v", r, err)
	}
	fanoutFinish(t, s, store.FanoutFinishParams{ParentID: "r", Status: store.StatusSucceeded, Now: now})
	_, err = fanoutReopen(s, "r", now)
	wantErr(t, "FanoutReopen of a succeeded parent", err, store.ErrConflict)
	checkCounts(t, s, "end")
}
