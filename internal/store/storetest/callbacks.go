package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// Feedback deliveries (store/callbacks.go): the delivery of a run with a
// callback URL becomes pending in the statement that makes the run
// terminal; claims count attempts and lease; records are fenced by the
// claim.

const hook = "https://example.com/hook?x=1"

// cbParams is a queued run with a callback URL.
func cbParams(id string) store.RunInsertParams {
	p := params(id)
	p.CallbackURL = hook
	return p
}

func callbacksDue(t *testing.T, s store.Store, now, lease time.Time, limit int) []*store.Run {
	t.Helper()
	var runs []*store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		runs, err = tx.CallbackListDue(ctx, store.CallbackListDueParams{Now: now, LeaseUntil: lease, Limit: limit})
		return err
	})
	return runs
}

func callbackRecord(t *testing.T, s store.Store, ps ...store.CallbackRecordParams) []bool {
	t.Helper()
	var ok []bool
	tx(t, s, func(tx store.Tx) error {
		var err error
		ok, err = tx.CallbackRecord(ctx, ps)
		return err
	})
	if len(ok) != len(ps) {
		t.Fatalf("CallbackRecord returned %d results for %d", len(ok), len(ps))
	}
	return ok
}

func callbackNextAt(t *testing.T, s store.Store) time.Time {
	t.Helper()
	at, err := s.CallbackNextAt(ctx)
	if err != nil {
		t.Fatalf("CallbackNextAt: %v", err)
	}
	return at
}

func wantCallback(t *testing.T, what string, want store.Callback, got *store.Run) {
	t.Helper()
	if d := cmp.Diff(want, got.Callback); d != "" {
		t.Errorf("%s: callback of %s (-want +got):\n%s", what, got.ID, d)
	}
}

// terminalWithCallback takes a callback run to succeeded at `at`.
func terminalWithCallback(t *testing.T, s store.Store, id string, at time.Time) {
	t.Helper()
	p := cbParams(id)
	p.Group = "cb-" + id // claimed alone
	r := running(t, s, p)
	res := finish(t, s, store.RunFinishParams{ID: id, Attempt: r.Attempt, Status: store.StatusSucceeded, Now: at})
	if !res[0].Accepted || !res[0].Callback {
		t.Fatalf("finish of %s: %+v, want accepted with a callback", id, res[0])
	}
}

func testCallbackInsert(t *testing.T, s store.Store) {
	long := "https://example.com/" + strings.Repeat("a", store.MaxCallbackURL-len("https://example.com/"))
	p1, p2 := cbParams("c1"), params("plain")
	p3 := cbParams("c3")
	p3.CallbackURL = long
	p3.Key = "k3"
	got := insert(t, s, p1, p2, p3)
	if got[0].CallbackURL != hook || got[2].CallbackURL != long || got[1].CallbackURL != "" {
		t.Errorf("RunInsert returned callback URLs %q, %q, %q", got[0].CallbackURL, got[1].CallbackURL, got[2].CallbackURL)
	}
	for _, r := range got {
		wantCallback(t, "new run", store.Callback{}, r)
		diffRun(t, "run "+r.ID, r, get(t, s, r.ID))
	}
	// An existing run comes back with its URL.
	again := cbParams("c3-again")
	again.Key = "k3"
	res := insertResults(t, s, again)
	if !res[0].Existing || res[0].Run.CallbackURL != long {
		t.Errorf("insert with a taken key: existing %v, URL %q", res[0].Existing, res[0].Run.CallbackURL)
	}
	page, err := s.RunList(ctx, store.RunListParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range page.Runs {
		diffRun(t, "listed run "+r.ID, get(t, s, r.ID), r)
	}
	if at := callbackNextAt(t, s); !at.IsZero() {
		t.Errorf("CallbackNextAt with nothing finished = %v, want zero", at)
	}
}

func testCallbackFinish(t *testing.T, s store.Store) {
	p := cbParams("c1")
	p.MaxAttempts = 3
	r := running(t, s, p)
	t1 := t0.Add(time.Minute)
	// A retry after backoff and a hand-back owe nothing yet.
	res := finish(t, s, store.RunFinishParams{ID: "c1", Attempt: r.Attempt, Status: store.StatusPending, RunAt: t1,
		Failure: true, Error: "x", Now: t1})
	if !res[0].Accepted || res[0].Callback {
		t.Fatalf("retrying finish: %+v, want accepted without a callback", res[0])
	}
	wantCallback(t, "run waiting for its retry", store.Callback{}, get(t, s, "c1"))
	promote(t, s, t1, 10)
	r2 := claimAll(t, s)
	if len(r2) != 1 {
		t.Fatalf("claimed %d runs", len(r2))
	}
	res = finish(t, s, store.RunFinishParams{ID: "c1", Attempt: r2[0].Attempt, Status: store.StatusQueued, Now: t1})
	if !res[0].Accepted || res[0].Callback {
		t.Fatalf("hand-back: %+v, want accepted without a callback", res[0])
	}
	r3 := claimAll(t, s)
	t2 := t0.Add(2 * time.Minute)
	// A report for an old attempt is rejected and owes nothing.
	res = finish(t, s,
		store.RunFinishParams{ID: "c1", Attempt: r2[0].Attempt, Status: store.StatusSucceeded, Now: t2},
		store.RunFinishParams{ID: "c1", Attempt: r3[0].Attempt, Status: store.StatusFailed, Failure: true, Error: "boom", Now: t2, ServerID: "srv"},
		store.RunFinishParams{ID: "c1", Attempt: r3[0].Attempt, Status: store.StatusSucceeded, Now: t2},
	)
	if res[0].Accepted || res[0].Callback || !res[1].Accepted || !res[1].Callback || res[2].Accepted || res[2].Callback {
		t.Fatalf("finishes: %+v; want rejected, accepted with a callback (fenced by server), rejected", res)
	}
	got := get(t, s, "c1")
	if got.Status != store.StatusFailed || got.Error != "boom" || got.Failures != 2 || !got.FinishedAt.Equal(t2) {
		t.Errorf("run: status %s error %q failures %d finished %v", got.Status, got.Error, got.Failures, got.FinishedAt)
	}
	wantCallback(t, "failed run", store.Callback{State: store.CallbackPending, NextAt: t2}, got)
	if at := callbackNextAt(t, s); !at.Equal(t2) {
		t.Errorf("CallbackNextAt = %v, want %v", at, t2)
	}

	// Runs without a URL finish as before, in the same batch as one with.
	insert(t, s, params("plain"), cbParams("c2"))
	claimAll(t, s)
	t3 := t0.Add(3 * time.Minute)
	res = finish(t, s,
		store.RunFinishParams{ID: "plain", Attempt: 1, Status: store.StatusSucceeded, Now: t3},
		store.RunFinishParams{ID: "c2", Attempt: 1, Status: store.StatusTimedOut, Failure: true, Error: "slow", Now: t3},
	)
	if !res[0].Accepted || res[0].Callback || !res[1].Accepted || !res[1].Callback {
		t.Errorf("batch: %+v", res)
	}
	wantCallback(t, "plain run", store.Callback{}, get(t, s, "plain"))
	wantCallback(t, "timed-out run", store.Callback{State: store.CallbackPending, NextAt: t3}, get(t, s, "c2"))
	if at := callbackNextAt(t, s); !at.Equal(t2) {
		t.Errorf("CallbackNextAt = %v, want the earliest, %v", at, t2)
	}
}

func testCallbackCancelAndSkip(t *testing.T, s store.Store) {
	insert(t, s, cbParams("queued"), params("plain"))
	t1 := t0.Add(time.Minute)
	for _, id := range []string{"queued", "plain"} {
		var res store.RunCancelResult
		tx(t, s, func(tx store.Tx) error {
			var err error
			res, err = tx.RunCancel(ctx, store.RunCancelParams{ID: id, Reason: "stop", Now: t1})
			return err
		})
		if !res.Changed {
			t.Fatalf("cancel of %s did not change it", id)
		}
		diffRun(t, "cancelled "+id, get(t, s, id), res.Run)
	}
	wantCallback(t, "cancelled run", store.Callback{State: store.CallbackPending, NextAt: t1}, get(t, s, "queued"))
	wantCallback(t, "cancelled plain run", store.Callback{}, get(t, s, "plain"))
	// Cancelling it again changes nothing.
	tx(t, s, func(tx store.Tx) error {
		res, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "queued", Now: t1.Add(time.Hour)})
		if err == nil && res.Changed {
			err = fmt.Errorf("second cancel changed the run")
		}
		return err
	})
	wantCallback(t, "cancelled twice", store.Callback{State: store.CallbackPending, NextAt: t1}, get(t, s, "queued"))

	// A skipped slot owes its delivery from its insert; a blocked one not.
	sk := slot("skipped", "j", t0)
	sk.Status, sk.Error, sk.CallbackURL, sk.Now = store.StatusSkipped, "overlap", hook, t0.Add(-time.Hour)
	bl := slot("blocked", "j", t0.Add(time.Hour))
	bl.Status, bl.CallbackURL = store.StatusBlocked, hook
	got := insert(t, s, sk, bl, params("plain2"))
	wantCallback(t, "skipped run returned by RunInsert", store.Callback{State: store.CallbackPending, NextAt: sk.Now}, got[0])
	diffRun(t, "skipped run", got[0], get(t, s, "skipped"))
	wantCallback(t, "blocked run", store.Callback{}, get(t, s, "blocked"))
	if at := callbackNextAt(t, s); !at.Equal(sk.Now) {
		t.Errorf("CallbackNextAt = %v, want %v", at, sk.Now)
	}
	due := callbacksDue(t, s, t1, t1.Add(time.Minute), 10)
	diffIDs(t, "due deliveries", []string{"queued", "skipped"}, due)
}

func testCallbackListDue(t *testing.T, s store.Store) {
	ts := []time.Time{t0.Add(3 * time.Second), t0.Add(time.Second), t0.Add(2 * time.Second), t0.Add(time.Hour)}
	for i, at := range ts {
		terminalWithCallback(t, s, runID(i), at)
	}
	terminalPlain := params("plain")
	running(t, s, terminalPlain)
	finishOne(t, s, store.RunFinishParams{ID: "plain", Attempt: 1, Status: store.StatusSucceeded, Now: t0})

	if got := callbacksDue(t, s, t0, t0.Add(time.Minute), 10); len(got) != 0 {
		t.Errorf("due before any: %v", ids(got))
	}
	now, lease := t0.Add(10*time.Second), t0.Add(40*time.Second)
	got := callbacksDue(t, s, now, lease, 2)
	// The earliest two (r1 at +1s, r2 at +2s), returned in seq order.
	diffIDs(t, "first claim", []string{runID(1), runID(2)}, got)
	for _, r := range got {
		wantCallback(t, "claimed", store.Callback{State: store.CallbackPending, Attempts: 1, NextAt: lease}, r)
		diffRun(t, "claimed run "+r.ID, get(t, s, r.ID), r)
		if r.Status != store.StatusSucceeded || r.CallbackURL != hook {
			t.Errorf("claimed run %s: status %s URL %q", r.ID, r.Status, r.CallbackURL)
		}
	}
	diffIDs(t, "second claim", []string{runID(0)}, callbacksDue(t, s, now, lease, 10))
	diffIDs(t, "third claim", nil, callbacksDue(t, s, now, lease, 10))
	if at := callbackNextAt(t, s); !at.Equal(lease) {
		t.Errorf("CallbackNextAt while claims are out = %v, want the lease %v", at, lease)
	}
	// A lapsed claim is claimed again: another attempt.
	lease2 := lease.Add(time.Minute)
	again := callbacksDue(t, s, lease, lease2, 10)
	diffIDs(t, "claims after the lease", []string{runID(0), runID(1), runID(2)}, again)
	for _, r := range again {
		wantCallback(t, "claimed again", store.Callback{State: store.CallbackPending, Attempts: 2, NextAt: lease2}, r)
	}
	if got := callbacksDue(t, s, lease, lease2, 0); len(got) != 0 {
		t.Errorf("limit 0 claimed %v", ids(got))
	}
	diffIDs(t, "every one, when the last is due", []string{runID(0), runID(1), runID(2), runID(3)},
		callbacksDue(t, s, t0.Add(time.Hour), t0.Add(2*time.Hour), 10))
}

func testCallbackRecord(t *testing.T, s store.Store) {
	for i := range 4 {
		terminalWithCallback(t, s, runID(i), t0)
	}
	now, lease := t0.Add(time.Second), t0.Add(time.Minute)
	claimed := callbacksDue(t, s, now, lease, 10)
	if len(claimed) != 4 {
		t.Fatalf("claimed %d", len(claimed))
	}
	t1 := t0.Add(5 * time.Second)
	retryAt := t0.Add(2 * time.Minute)
	ok := callbackRecord(t, s,
		store.CallbackRecordParams{ID: runID(0), Attempt: 1, Lease: lease, State: store.CallbackDelivered, Now: t1},
		store.CallbackRecordParams{ID: runID(1), Attempt: 1, Lease: lease, State: store.CallbackPending, NextAt: retryAt, Error: "HTTP 500", Now: t1},
		store.CallbackRecordParams{ID: runID(2), Attempt: 1, Lease: lease, State: store.CallbackFailed, Error: "expired", Now: t1},
		store.CallbackRecordParams{ID: runID(3), Attempt: 2, Lease: lease, State: store.CallbackDelivered, Now: t1},                  // wrong attempt
		store.CallbackRecordParams{ID: runID(3), Attempt: 1, Lease: lease.Add(time.Second), State: store.CallbackDelivered, Now: t1}, // wrong lease
		store.CallbackRecordParams{ID: runID(0), Attempt: 1, Lease: lease, State: store.CallbackFailed, Now: t1},                     // already recorded
		store.CallbackRecordParams{ID: "unknown", Attempt: 1, Lease: lease, State: store.CallbackDelivered, Now: t1},
	)
	if d := cmp.Diff([]bool{true, true, true, false, false, false, false}, ok); d != "" {
		t.Errorf("applied (-want +got):\n%s", d)
	}
	wantCallback(t, "delivered", store.Callback{State: store.CallbackDelivered, Attempts: 1, DeliveredAt: t1}, get(t, s, runID(0)))
	wantCallback(t, "retrying", store.Callback{State: store.CallbackPending, Attempts: 1, NextAt: retryAt, LastError: "HTTP 500"}, get(t, s, runID(1)))
	wantCallback(t, "failed", store.Callback{State: store.CallbackFailed, Attempts: 1, LastError: "expired"}, get(t, s, runID(2)))
	wantCallback(t, "still claimed", store.Callback{State: store.CallbackPending, Attempts: 1, NextAt: lease}, get(t, s, runID(3)))
	if at := callbackNextAt(t, s); !at.Equal(lease) {
		t.Errorf("CallbackNextAt = %v, want %v (run 3's lease)", at, lease)
	}
	// Delivered and failed deliveries are never due again; the retry is due
	// at its time, and its last error stays until the next outcome.
	diffIDs(t, "due after the lease", []string{runID(3)}, callbacksDue(t, s, lease, lease.Add(time.Hour), 10))
	got := callbacksDue(t, s, retryAt, retryAt.Add(time.Minute), 10)
	diffIDs(t, "due at the retry", []string{runID(1)}, got)
	wantCallback(t, "claimed retry", store.Callback{State: store.CallbackPending, Attempts: 2, NextAt: retryAt.Add(time.Minute), LastError: "HTTP 500"}, got[0])
	ok = callbackRecord(t, s, store.CallbackRecordParams{ID: runID(1), Attempt: 2, Lease: retryAt.Add(time.Minute), State: store.CallbackDelivered, Now: retryAt})
	if !ok[0] {
		t.Error("record of the retry rejected")
	}
	wantCallback(t, "delivered on retry", store.Callback{State: store.CallbackDelivered, Attempts: 2, DeliveredAt: retryAt}, get(t, s, runID(1)))
	if got := callbacksDue(t, s, t0.Add(24*time.Hour), t0.Add(25*time.Hour), 10); len(got) != 1 || got[0].ID != runID(3) {
		t.Errorf("due a day later: %v, want only %s (never recorded)", ids(got), runID(3))
	}

	// A state that is not an outcome is an error.
	err := s.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.CallbackRecord(ctx, []store.CallbackRecordParams{{ID: runID(3), State: store.CallbackNone}})
		return err
	})
	if err == nil {
		t.Error("CallbackRecord with state none: no error")
	}
	if len(callbackRecord(t, s)) != 0 {
		t.Error("empty record returned results")
	}
}

func testCallbackRetry(t *testing.T, s store.Store) {
	p := cbParams("c1")
	r := running(t, s, p)
	finishOne(t, s, store.RunFinishParams{ID: "c1", Attempt: r.Attempt, Status: store.StatusFailed, Failure: true, Error: "x", Now: t0})
	lease := t0.Add(time.Minute)
	if got := callbacksDue(t, s, t0, lease, 10); len(got) != 1 {
		t.Fatalf("claimed %v", ids(got))
	}
	// A retry resets the delivery; the outcome of the claim in progress is
	// then rejected, and nothing is due.
	var retried *store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		retried, err = tx.RunRetry(ctx, store.RunRetryParams{ID: "c1", Now: t0.Add(time.Second)})
		return err
	})
	wantCallback(t, "retried run", store.Callback{}, retried)
	if retried.CallbackURL != hook {
		t.Errorf("retried run lost its URL: %q", retried.CallbackURL)
	}
	diffRun(t, "retried run", get(t, s, "c1"), retried)
	if ok := callbackRecord(t, s, store.CallbackRecordParams{ID: "c1", Attempt: 1, Lease: lease, State: store.CallbackDelivered, Now: t0}); ok[0] {
		t.Error("record of a claim made before a retry was applied")
	}
	if got := callbacksDue(t, s, t0.Add(time.Hour), t0.Add(2*time.Hour), 10); len(got) != 0 {
		t.Errorf("due after a retry: %v", ids(got))
	}
	// Its next end owes a new delivery, from attempt 1.
	r2 := claimAll(t, s)
	t2 := t0.Add(time.Hour)
	res := finish(t, s, store.RunFinishParams{ID: "c1", Attempt: r2[0].Attempt, Status: store.StatusSucceeded, Now: t2})
	if !res[0].Callback {
		t.Errorf("finish after retry: %+v", res[0])
	}
	got := callbacksDue(t, s, t2, t2.Add(time.Minute), 10)
	diffIDs(t, "due after the second end", []string{"c1"}, got)
	wantCallback(t, "second delivery", store.Callback{State: store.CallbackPending, Attempts: 1, NextAt: t2.Add(time.Minute)}, got[0])
	if got[0].Status != store.StatusSucceeded {
		t.Errorf("delivered status %s", got[0].Status)
	}
}

// testCallbackListDueConcurrent: claims from concurrent transactions never
// return one delivery twice.
func testCallbackListDueConcurrent(t *testing.T, s store.Store) {
	const n = 40
	for i := range n {
		terminalWithCallback(t, s, runID(i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	now, lease := t0.Add(time.Second), t0.Add(time.Minute)
	type result struct {
		ids []string
		err error
	}
	out := make(chan result, 4)
	dctx := deadlineCtx(t)
	for range 4 {
		go func() {
			var r result
			for i := 0; ; i++ {
				if i > n {
					// Each claim of a due delivery leases it past now: more
					// claims than deliveries means claimed ones stay due.
					r.err = fmt.Errorf("still claiming after %d claims of %d deliveries", i, n)
					break
				}
				var got []*store.Run
				err := s.Tx(dctx, func(tx store.Tx) error {
					var err error
					got, err = tx.CallbackListDue(dctx, store.CallbackListDueParams{Now: now, LeaseUntil: lease, Limit: 3})
					return err
				})
				if err != nil {
					r.err = err
					break
				}
				if len(got) == 0 {
					break
				}
				r.ids = append(r.ids, ids(got)...)
			}
			out <- r
		}()
	}
	seen := map[string]int{}
	for range 4 {
		r := receive(t, "a claimer's deliveries", out)
		if r.err != nil {
			t.Fatalf("CallbackListDue: %v", r.err)
		}
		for _, id := range r.ids {
			seen[id]++
		}
	}
	for i := range n {
		if seen[runID(i)] != 1 {
			t.Errorf("%s claimed %d times, want once", runID(i), seen[runID(i)])
		}
	}
}

func testCallbackJob(t *testing.T, s store.Store) {
	j := job("hooked")
	j.CallbackURL = hook
	got, _ := putJob(t, s, j, t0)
	if got.CallbackURL != hook {
		t.Errorf("JobPut returned URL %q", got.CallbackURL)
	}
	if g := getJob(t, s, "hooked"); g.CallbackURL != hook {
		t.Errorf("JobGet returned URL %q", g.CallbackURL)
	}
	j.CallbackURL = ""
	putJob(t, s, j, t0)
	if g := getJob(t, s, "hooked"); g.CallbackURL != "" {
		t.Errorf("URL after it was removed: %q", g.CallbackURL)
	}
	// A slot run of the job carries the URL like any run.
	p := slot("s1", "hooked", t0)
	p.CallbackURL = hook
	r := insert(t, s, p)[0]
	if r.CallbackURL != hook || get(t, s, "s1").CallbackURL != hook {
		t.Errorf("slot run URL %q", r.CallbackURL)
	}
}

func testCallbacksClosed(t *testing.T, s store.Store) {
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := s.CallbackNextAt(ctx)
	wantErr(t, "CallbackNextAt after Close", err, store.ErrClosed)
}
