package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// listFixture stores 72 runs of mixed groups, types, jobs, workers and
// outcomes, created a minute apart (run i at t0+i min) and finished 30 s
// later, and returns them as stored, oldest first.
func listFixture(t *testing.T, s store.Store) []*store.Run {
	t.Helper()
	const n = 72
	for i := 0; i < n; i += 8 {
		var ps []store.RunInsertParams
		for j := i; j < i+8; j++ {
			p := params(runID(j))
			p.Group = fmt.Sprintf("g%d", j%3)
			p.Type = []string{"ta", "tb"}[j/3%2]
			p.Job = []string{"", "ja", "jb", ""}[j%4]
			p.Now = t0.Add(time.Duration(j) * time.Minute)
			ps = append(ps, p)
		}
		insert(t, s, ps...)
	}
	for i := range n {
		r := get(t, s, runID(i))
		if i%6 == 5 {
			continue // stays queued
		}
		at := r.CreatedAt.Add(30 * time.Second)
		if i%6 == 4 {
			tx(t, s, func(tx store.Tx) error {
				_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: r.ID, Reason: "stop " + r.ID, Now: at})
				return err
			})
			continue
		}
		got := claim(t, s, store.RunClaimParams{Group: r.Group, Types: []string{r.Type}, Limit: 1, ServerID: "srv", Now: at})
		if len(got) != 1 || got[0].ID != r.ID {
			t.Fatalf("claim for %s: %v", r.ID, ids(got))
		}
		start(t, s, store.RunStartParams{ID: r.ID, Attempt: 1, WorkerID: fmt.Sprintf("w%d", i%4), Now: at})
		f := store.RunFinishParams{ID: r.ID, Attempt: 1, Status: store.StatusSucceeded, Now: at}
		switch i % 6 {
		case 1:
			f.Status, f.Failure, f.Error = store.StatusFailed, true, fmt.Sprintf("boom %d: disk full", i)
		case 2:
			f.Status, f.Failure, f.Error = store.StatusTimedOut, true, "timed out after 1m"
		case 3:
			continue // stays running
		}
		finishOne(t, s, f)
	}
	all := make([]*store.Run, n)
	for i := range all {
		all[i] = get(t, s, runID(i))
	}
	return all
}

// testListAllFilters: every filter and combinations of them, in both
// orders, in pages of several sizes and with scan budgets small enough to
// cut pages short, list exactly the runs that match, in seq order.
func testListAllFilters(t *testing.T, s store.Store) {
	all := listFixture(t, s)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	failed := []store.RunStatus{store.StatusFailed}
	cases := []struct {
		name string
		p    store.RunListParams
	}{
		{"all", store.RunListParams{}},
		{"status succeeded", store.RunListParams{Statuses: []store.RunStatus{store.StatusSucceeded}}},
		{"status failed", store.RunListParams{Statuses: failed}},
		{"statuses rare terminal", store.RunListParams{Statuses: []store.RunStatus{store.StatusCancelled, store.StatusTimedOut}}},
		{"statuses live", store.RunListParams{Statuses: []store.RunStatus{store.StatusQueued, store.StatusRunning}}},
		{"group", store.RunListParams{Group: "g1"}},
		{"job", store.RunListParams{Job: "jb"}},
		{"type", store.RunListParams{Type: "tb"}},
		{"worker", store.RunListParams{WorkerID: "w2"}},
		{"created after", store.RunListParams{CreatedAfter: at(50)}},
		{"created before", store.RunListParams{CreatedBefore: at(13)}},
		{"created range", store.RunListParams{CreatedAfter: at(20), CreatedBefore: at(40).Add(time.Microsecond)}},
		{"created between runs", store.RunListParams{CreatedAfter: at(20).Add(time.Second), CreatedBefore: at(21)}},
		{"finished after", store.RunListParams{FinishedAfter: at(60)}},
		{"finished before", store.RunListParams{FinishedBefore: at(10)}},
		{"finished range", store.RunListParams{FinishedAfter: at(12).Add(30 * time.Second), FinishedBefore: at(30)}},
		{"error", store.RunListParams{ErrorContains: "disk"}},
		{"error 1", store.RunListParams{ErrorContains: "boom 1"}},
		{"error timed out", store.RunListParams{ErrorContains: "timed out"}},
		{"error with statuses", store.RunListParams{ErrorContains: "stop", Statuses: []store.RunStatus{store.StatusCancelled}}},
		{"error no match", store.RunListParams{ErrorContains: "nope"}},
		{"group+type", store.RunListParams{Group: "g0", Type: "ta"}},
		{"job+status", store.RunListParams{Job: "ja", Statuses: []store.RunStatus{store.StatusSucceeded, store.StatusFailed}}},
		{"group+worker+status", store.RunListParams{Group: "g2", WorkerID: "w0", Statuses: []store.RunStatus{store.StatusSucceeded}}},
		{"type+created", store.RunListParams{Type: "ta", CreatedAfter: at(10), CreatedBefore: at(60)}},
		{"failed+group+finished", store.RunListParams{Statuses: failed, Group: "g1", FinishedAfter: at(5)}},
		{"job+type+group+error", store.RunListParams{Job: "ja", Type: "ta", Group: "g1", ErrorContains: "boom"}},
		{"everything", store.RunListParams{Statuses: failed, Group: "g1", Type: "tb", WorkerID: "w1",
			CreatedAfter: at(1), CreatedBefore: at(70), FinishedAfter: at(1), FinishedBefore: at(71), ErrorContains: "full"}},
		{"no match", store.RunListParams{Group: "g1", Type: "nope"}},
	}
	for _, c := range cases {
		want := []string{}
		for _, r := range all {
			if matches(c.p, r) {
				want = append(want, r.ID)
			}
		}
		for _, order := range []store.ListOrder{"", store.OrderDesc, store.OrderAsc} {
			w := slices.Clone(want)
			if order != store.OrderAsc {
				slices.Reverse(w)
			}
			for _, size := range []int{1, 4, 100} {
				for _, budget := range []int{0, 3, 10} {
					p := c.p
					p.Order, p.Limit, p.ScanBudget = order, size, budget
					got := walkAny(t, s, p)
					if d := cmp.Diff(w, ids(got)); d != "" {
						t.Errorf("%s, order %q, pages of %d, budget %d (-want +got):\n%s", c.name, order, size, budget, d)
					}
				}
			}
		}
	}
}

// matches is RunList's contract for one run.
func matches(p store.RunListParams, r *store.Run) bool {
	sts := p.Statuses
	if p.ErrorContains != "" && len(sts) == 0 {
		sts = []store.RunStatus{store.StatusFailed, store.StatusTimedOut}
	}
	inRange := func(t, after, before time.Time) bool {
		return (after.IsZero() || !t.Before(after)) && (before.IsZero() || t.Before(before))
	}
	finished := p.FinishedAfter.IsZero() && p.FinishedBefore.IsZero() ||
		!r.FinishedAt.IsZero() && inRange(r.FinishedAt, p.FinishedAfter, p.FinishedBefore)
	return (len(sts) == 0 || slices.Contains(sts, r.Status)) &&
		(p.Group == "" || r.Group == p.Group) && (p.Job == "" || r.Job == p.Job) &&
		(p.Type == "" || r.Type == p.Type) && (p.WorkerID == "" || r.WorkerID == p.WorkerID) &&
		inRange(r.CreatedAt, p.CreatedAfter, p.CreatedBefore) && finished &&
		strings.Contains(r.Error, p.ErrorContains)
}

// testListBudget: a filter that matches few runs is answered in pages
// that each examine at most the budget, short but with a cursor, and a
// retried run leaves the rare-terminal lists for its new status.
func testListBudget(t *testing.T, s store.Store) {
	all := listFixture(t, s)
	p := store.RunListParams{WorkerID: "w3", Statuses: []store.RunStatus{store.StatusSucceeded}, ScanBudget: 5, Limit: 100}
	res, err := s.RunList(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if res.NextCursor == "" || len(res.Runs) > 5 {
		t.Errorf("budget 5: %d runs, cursor %q; want at most 5 and a cursor", len(res.Runs), res.NextCursor)
	}
	failedID := ""
	for _, r := range all {
		if r.Status == store.StatusFailed {
			failedID = r.ID
		}
	}
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunRetry(ctx, store.RunRetryParams{ID: failedID, Now: t0})
		return err
	})
	for _, r := range walkAny(t, s, store.RunListParams{Statuses: []store.RunStatus{store.StatusFailed}}) {
		if r.ID == failedID {
			t.Errorf("retried run %s still listed as failed", r.ID)
		}
	}
	if got := walkAny(t, s, store.RunListParams{Statuses: []store.RunStatus{store.StatusQueued}, Order: store.OrderAsc}); !slices.Contains(ids(got), failedID) {
		t.Errorf("retried run %s not listed among queued runs: %v", failedID, ids(got))
	}
}

// testLoadHistory: a backend's bulk loader stores finished runs that read
// back and list like any others, in load order.
func testLoadHistory(t *testing.T, s store.Store) {
	hl, ok := s.(store.HistoryLoader)
	if !ok {
		t.Skip("no HistoryLoader")
	}
	const n = 1234
	gen := func(i int) *store.Run {
		r := &store.Run{ID: runID(i), Type: "t", Group: fmt.Sprintf("g%d", i%2), Status: store.StatusSucceeded,
			Attempt: 1, MaxAttempts: 1, RunAt: t0, CreatedAt: t0.Add(time.Duration(i) * time.Second), WorkerID: "w",
			Payload: []byte(`{"i":1}`), Result: []byte(`{}`)}
		r.StartedAt, r.FinishedAt = r.CreatedAt.Add(time.Millisecond), r.CreatedAt.Add(2*time.Millisecond)
		if i%10 == 3 {
			r.Status, r.Failures, r.Error, r.Result = store.StatusFailed, 1, "boom", nil
		}
		return r
	}
	if err := hl.LoadHistory(ctx, n, gen); err != nil {
		t.Fatal(err)
	}
	want := gen(1000)
	want.Seq = get(t, s, want.ID).Seq
	diffRun(t, "loaded run", want, get(t, s, want.ID))
	got := walkAny(t, s, store.RunListParams{Group: "g1", ErrorContains: "boom", Order: store.OrderAsc, Limit: 1000})
	if len(got) != (n+6)/10 || got[0].ID != runID(3) { // i%10 == 3, all odd: g1
		t.Errorf("failed runs of g1: %d, first %v", len(got), ids(got[:min(1, len(got))]))
	}
	checkCounts(t, s, "after LoadHistory")
}
