package storetest

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// Retention (store/retention.go): RunDeleteFinished deletes exactly the
// expired terminal runs — finished before their status's cutoff, owing no
// callback delivery — with their log lines, walking from a cursor a
// bounded number of rows per call.

// endRun creates run id (of job, created at t0, in a group of its own) and
// brings it to status st at `at`. Unfinished statuses are reached without
// finishing it.
func endRun(t *testing.T, s store.Store, id, job string, st store.RunStatus, at time.Time) {
	t.Helper()
	p := params(id)
	p.Group, p.Job = "ret-"+id, job
	switch st {
	case store.StatusSkipped:
		p.Status, p.Now, p.RunAt = st, at, at
		insert(t, s, p)
	case store.StatusQueued:
		insert(t, s, p)
	case store.StatusPending, store.StatusBlocked:
		p.Status, p.RunAt = st, t0.Add(1000*time.Hour)
		insert(t, s, p)
	case store.StatusCancelled:
		insert(t, s, p)
		tx(t, s, func(tx store.Tx) error {
			_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: id, Now: at})
			return err
		})
	case store.StatusRunning:
		running(t, s, p)
	default:
		r := running(t, s, p)
		if !finishOne(t, s, store.RunFinishParams{ID: id, Attempt: r.Attempt, Status: st, Failure: st != store.StatusSucceeded, Now: at}) {
			t.Fatalf("finish of %s rejected", id)
		}
	}
}

// failAgain retries failed run id (made by endRun), which records its
// attempt, and fails its second attempt at `at`.
func failAgain(t *testing.T, s store.Store, id string, at time.Time) {
	t.Helper()
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunRetry(ctx, store.RunRetryParams{ID: id, Now: at})
		return err
	})
	got := claim(t, s, store.RunClaimParams{Group: "ret-" + id, Types: []string{"t"}, Limit: 1, ServerID: "srv"})
	if len(got) != 1 || !finishOne(t, s, store.RunFinishParams{ID: id, Attempt: got[0].Attempt, Status: store.StatusFailed, Failure: true, Now: at}) {
		t.Fatalf("second attempt of %s: %v", id, ids(got))
	}
	if as, err := s.RunAttempts(ctx, id); err != nil || len(as) != 1 {
		t.Fatalf("attempts of %s: %+v, %v; want 1", id, as, err)
	}
}

// deleteFinished calls RunDeleteFinished from cursor 0 until the walk is
// complete and returns the IDs deleted, sorted, and the calls made.
func deleteFinished(t *testing.T, s store.Store, p store.RunDeleteParams) (deleted []string, calls int) {
	t.Helper()
	p.After = 0
	for {
		calls++
		if calls > 1000 {
			t.Fatalf("RunDeleteFinished: the walk does not end (cursor %d)", p.After)
		}
		var res store.RunDeleteResult
		tx(t, s, func(tx store.Tx) error {
			var err error
			res, err = tx.RunDeleteFinished(ctx, p)
			return err
		})
		if p.Limit > 0 && len(res.Deleted) > p.Limit {
			t.Fatalf("RunDeleteFinished deleted %d runs, limit %d", len(res.Deleted), p.Limit)
		}
		for _, d := range res.Deleted {
			deleted = append(deleted, d.ID)
		}
		if res.Next == 0 {
			break
		}
		if res.Next <= p.After {
			t.Fatalf("cursor went from %d to %d", p.After, res.Next)
		}
		p.After = res.Next
	}
	sort.Strings(deleted)
	checkCounts(t, s, "after retention") // deleted runs leave the counters
	return deleted, calls
}

func gone(t *testing.T, s store.Store, id string) bool {
	t.Helper()
	_, err := s.RunGet(ctx, id)
	if err != nil && !isNotFound(err) {
		t.Fatalf("RunGet %s: %v", id, err)
	}
	return err != nil
}

// cutoffs gives every terminal status the cutoff `at`.
func cutoffs(at time.Time) map[store.RunStatus]time.Time {
	m := make(map[store.RunStatus]time.Time)
	for _, st := range store.AllStatuses {
		if st.Terminal() {
			m[st] = at
		}
	}
	return m
}

func testRetentionDeletesExpired(t *testing.T, s store.Store) {
	day := 24 * time.Hour
	old, young := t0.Add(time.Hour), t0.Add(3*day)
	var wantGone, wantKept []string
	for _, st := range []store.RunStatus{store.StatusSucceeded, store.StatusFailed, store.StatusCancelled, store.StatusTimedOut, store.StatusSkipped} {
		endRun(t, s, "old-"+string(st), "", st, old)
		endRun(t, s, "young-"+string(st), "", st, young)
		wantGone = append(wantGone, "old-"+string(st))
		wantKept = append(wantKept, "young-"+string(st))
	}
	for _, st := range []store.RunStatus{store.StatusQueued, store.StatusPending, store.StatusBlocked, store.StatusRunning} {
		endRun(t, s, "active-"+string(st), "j", st, old)
		wantKept = append(wantKept, "active-"+string(st))
	}
	// A run that owes its callback delivery stays until it is delivered.
	terminalWithCallback(t, s, "owed", old)
	wantKept = append(wantKept, "owed")
	// Created long ago, finished recently: not expired.
	endRun(t, s, "late", "", store.StatusSucceeded, t0.Add(2*day))
	wantKept = append(wantKept, "late")
	// Log lines go with their run; others' stay.
	appendLogs(t, s, store.LogAppendParams{Lines: []store.LogLine{
		{RunID: "old-failed", Attempt: 1, Time: old, Stream: "stdout", Text: "bye"},
		{RunID: "young-failed", Attempt: 1, Time: young, Stream: "stdout", Text: "hello"},
	}})
	if ls, err := s.LogStats(ctx, "old-failed"); err != nil || ls.Lines != 1 {
		t.Fatalf("log counters of old-failed before retention: %+v, %v", ls, err)
	}
	// Audit entries about a run go with it; others stay.
	tx(t, s, func(tx store.Tx) error {
		return tx.AuditAppend(ctx, []store.AuditEntry{
			{At: old, Actor: "ci", Action: "run.submit", Target: "old-failed", Outcome: "ok"},
			{At: old, Actor: "ci", Action: "run.submit", Target: "young-failed", Outcome: "ok"},
			{At: old, Actor: "ci", Action: "token.create", Target: "ci-2", Outcome: "ok"},
		})
	})

	// So does the attempt history: the failed runs were retried once.
	failAgain(t, s, "old-failed", old)
	failAgain(t, s, "young-failed", young)

	p := store.RunDeleteParams{FinishedBefore: cutoffs(t0.Add(day))}
	deleted, _ := deleteFinished(t, s, p)
	slices.Sort(wantGone)
	if d := cmp.Diff(wantGone, deleted); d != "" {
		t.Errorf("deleted (-want +got):\n%s", d)
	}
	for _, id := range wantGone {
		if !gone(t, s, id) {
			t.Errorf("%s was reported deleted but is still there", id)
		}
	}
	for _, id := range wantKept {
		if gone(t, s, id) {
			t.Errorf("%s was deleted", id)
		}
	}
	logs, err := s.LogList(ctx, store.LogListParams{RunID: "old-failed"})
	if err != nil || len(logs) != 0 {
		t.Errorf("log lines of a deleted run: %v, %v; want none", logs, err)
	}
	if logs, err := s.LogList(ctx, store.LogListParams{RunID: "young-failed"}); err != nil || len(logs) != 1 {
		t.Errorf("log lines of a kept run: %v, %v; want 1", logs, err)
	}
	if ls, err := s.LogStats(ctx, "old-failed"); err != nil || ls != (store.LogStats{}) {
		t.Errorf("log counters of a deleted run: %+v, %v; want none", ls, err)
	}
	for id, want := range map[string]int{"old-failed": 0, "young-failed": 1} {
		if as, err := s.RunAttempts(ctx, id); err != nil || len(as) != want {
			t.Errorf("attempts of %s after retention: %+v, %v; want %d", id, as, err, want)
		}
	}
	for target, want := range map[string]int{"old-failed": 0, "young-failed": 1, "ci-2": 1} {
		page, err := s.AuditList(ctx, store.AuditListParams{Target: target})
		if err != nil || len(page.Entries) != want {
			t.Errorf("audit entries about %s after retention: %d (%v), want %d", target, len(page.Entries), err, want)
		}
	}
	// Lists no longer see them (ended rows went with them).
	page, err := s.RunList(ctx, store.RunListParams{Statuses: []store.RunStatus{store.StatusFailed, store.StatusSkipped}})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(page.Runs); !slices.Equal(got, []string{"young-skipped", "young-failed"}) {
		t.Errorf("failed and skipped runs listed after deletion: %v", got)
	}
	// Repeated calls converge: nothing more to delete.
	if again, _ := deleteFinished(t, s, p); len(again) != 0 {
		t.Errorf("a second pass deleted %v", again)
	}
}

func testRetentionPerStatus(t *testing.T, s store.Store) {
	old := t0.Add(time.Hour)
	for _, st := range []store.RunStatus{store.StatusSucceeded, store.StatusFailed, store.StatusSkipped} {
		endRun(t, s, string(st), "", st, old)
	}
	// Only failed runs expire: the walk goes through ended.
	deleted, _ := deleteFinished(t, s, store.RunDeleteParams{FinishedBefore: map[store.RunStatus]time.Time{store.StatusFailed: t0.Add(2 * time.Hour)}})
	if !slices.Equal(deleted, []string{"failed"}) {
		t.Errorf("deleted %v, want [failed]", deleted)
	}
	// A cutoff before the finish keeps the run; no cutoff keeps it too.
	deleted, _ = deleteFinished(t, s, store.RunDeleteParams{FinishedBefore: map[store.RunStatus]time.Time{
		store.StatusSucceeded: old, store.StatusSkipped: t0.Add(2 * time.Hour),
	}})
	if !slices.Equal(deleted, []string{"skipped"}) {
		t.Errorf("deleted %v, want [skipped]", deleted)
	}
	if deleted, _ := deleteFinished(t, s, store.RunDeleteParams{}); len(deleted) != 0 {
		t.Errorf("no cutoffs deleted %v", deleted)
	}
}

func testRetentionKeyFree(t *testing.T, s store.Store) {
	p := params("keyed")
	p.Key = "k1"
	r := running(t, s, p)
	finishOne(t, s, store.RunFinishParams{ID: "keyed", Attempt: r.Attempt, Status: store.StatusSucceeded, Now: t0.Add(time.Hour)})
	if deleted, _ := deleteFinished(t, s, store.RunDeleteParams{FinishedBefore: cutoffs(t0.Add(2 * time.Hour))}); !slices.Equal(deleted, []string{"keyed"}) {
		t.Fatalf("deleted %v, want [keyed]", deleted)
	}
	if _, err := s.RunGetByKey(ctx, "k1"); !isNotFound(err) {
		t.Errorf("RunGetByKey after deletion: %v, want not found", err)
	}
	p2 := params("keyed-again")
	p2.Key = "k1"
	var res []store.RunInsertResult
	tx(t, s, func(tx store.Tx) error {
		var err error
		res, err = tx.RunInsert(ctx, []store.RunInsertParams{p2})
		return err
	})
	if res[0].Existing || res[0].Run.ID != "keyed-again" {
		t.Errorf("insert with a deleted run's key: %+v, want a new run", res[0])
	}
}

func testRetentionLimit(t *testing.T, s store.Store) {
	for i := range 7 {
		endRun(t, s, runID(i), "", store.StatusSucceeded, t0.Add(time.Minute))
	}
	endRun(t, s, "young", "", store.StatusSucceeded, t0.Add(3*time.Hour))
	p := store.RunDeleteParams{FinishedBefore: cutoffs(t0.Add(time.Hour)), Limit: 3}
	var res store.RunDeleteResult
	tx(t, s, func(tx store.Tx) error {
		var err error
		res, err = tx.RunDeleteFinished(ctx, p)
		return err
	})
	if len(res.Deleted) != 3 || res.Next == 0 {
		t.Fatalf("first call: %d deleted, next %d; want 3 and a cursor", len(res.Deleted), res.Next)
	}
	deleted, calls := deleteFinished(t, s, p)
	if len(deleted) != 4 || calls < 2 {
		t.Errorf("the rest: %v in %d calls, want 4 runs in 2 or more", deleted, calls)
	}
	// A scan budget smaller than the kept rows still gets through.
	for i := 10; i < 14; i++ {
		endRun(t, s, runID(i), "", store.StatusSucceeded, t0.Add(time.Minute))
	}
	p.ScanBudget, p.Limit = 2, 1
	if deleted, _ := deleteFinished(t, s, p); len(deleted) != 4 {
		t.Errorf("with a scan budget of 2: deleted %v, want 4 runs", deleted)
	}
	if gone(t, s, "young") {
		t.Error("the young run was deleted")
	}
}

func testRetentionJobs(t *testing.T, s store.Store) {
	old := t0.Add(time.Minute)
	kj := job("kept")
	kj.Keep, kj.KeepLast = 30*24*time.Hour, 2
	got, _ := putJob(t, s, kj, t0)
	if got.Keep != kj.Keep || got.KeepLast != 2 {
		t.Fatalf("job stored keep %v, keep_last %d; want %v, 2", got.Keep, got.KeepLast, kj.Keep)
	}
	if j, err := s.JobGet(ctx, "kept"); err != nil || j.Keep != kj.Keep || j.KeepLast != 2 {
		t.Fatalf("JobGet: %+v, %v", j, err)
	}
	for i := range 5 {
		endRun(t, s, fmt.Sprintf("kept-%d", i), "kept", store.StatusSucceeded, old)
		endRun(t, s, fmt.Sprintf("other-%d", i), "other", store.StatusFailed, old)
	}
	endRun(t, s, "kept-active", "kept", store.StatusQueued, old)
	// The global pass leaves the excluded job's runs alone.
	global := store.RunDeleteParams{FinishedBefore: cutoffs(t0.Add(time.Hour)), ExcludeJobs: []string{"kept"}}
	deleted, _ := deleteFinished(t, s, global)
	want := []string{"other-0", "other-1", "other-2", "other-3", "other-4"}
	if !slices.Equal(deleted, want) {
		t.Errorf("global pass deleted %v, want %v", deleted, want)
	}
	// The job's pass keeps its newest two finished runs.
	jp := store.RunDeleteParams{FinishedBefore: cutoffs(t0.Add(time.Hour)), Job: "kept", KeepLast: 2, Limit: 2}
	deleted, _ = deleteFinished(t, s, jp)
	if want := []string{"kept-0", "kept-1", "kept-2"}; !slices.Equal(deleted, want) {
		t.Errorf("job pass deleted %v, want %v", deleted, want)
	}
	for _, id := range []string{"kept-3", "kept-4", "kept-active"} {
		if gone(t, s, id) {
			t.Errorf("%s was deleted", id)
		}
	}
	// Fewer finished runs than KeepLast: nothing goes.
	jp.KeepLast = 5
	if deleted, _ := deleteFinished(t, s, jp); len(deleted) != 0 {
		t.Errorf("keep_last 5 of 2 finished runs deleted %v", deleted)
	}
	// Without KeepLast its age rules alone.
	jp.KeepLast = 0
	if deleted, _ := deleteFinished(t, s, jp); !slices.Equal(deleted, []string{"kept-3", "kept-4"}) {
		t.Errorf("job pass without keep_last deleted %v", deleted)
	}
}
