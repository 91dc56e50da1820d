package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// The attempt history (store/attempts.go): a claim sets dispatched_at;
// an attempt that ends without ending its run — a retry, a hand-back, a
// requeue of a lost server's runs, an operator retry — leaves one row,
// with the worker, times and error the attempt had; a finish that ends
// the run, or one that is fenced off, leaves none.

func attemptsOf(t *testing.T, s store.Store, id string) []store.Attempt {
	t.Helper()
	as, err := s.RunAttempts(ctx, id)
	if err != nil {
		t.Fatalf("RunAttempts(%s): %v", id, err)
	}
	return as
}

func diffAttempts(t *testing.T, what string, want, got []store.Attempt) {
	t.Helper()
	if len(want) == 0 && len(got) == 0 {
		return
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s: attempts (-want +got):\n%s", what, d)
	}
}

// claimAt claims run id (alone in its group) at now for server srv.
func claimAt(t *testing.T, s store.Store, id, srv string, now time.Time) *store.Run {
	t.Helper()
	got := claim(t, s, store.RunClaimParams{Group: "a-" + id, Types: []string{"t"}, Limit: 10, ServerID: srv, Now: now})
	if len(got) != 1 || got[0].ID != id {
		t.Fatalf("claim of %s: %v", id, ids(got))
	}
	return got[0]
}

// attemptRun inserts run id in a group of its own with maxAttempts.
func attemptRun(t *testing.T, s store.Store, id string, maxAttempts int) {
	t.Helper()
	p := params(id)
	p.Group, p.MaxAttempts = "a-"+id, maxAttempts
	insert(t, s, p)
}

func testAttemptsRetryThenSucceed(t *testing.T, s store.Store) {
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	attemptRun(t, s, "r", 3)
	// Attempt 1 fails and is retried (fenced by its server).
	c := claimAt(t, s, "r", "srv", at(1))
	if !c.DispatchedAt.Equal(at(1)) || !c.StartedAt.IsZero() {
		t.Errorf("claimed run: dispatched %v started %v, want %v and none", c.DispatchedAt, c.StartedAt, at(1))
	}
	diffRun(t, "claimed run", c, get(t, s, "r"))
	start(t, s, store.RunStartParams{ID: "r", Attempt: 1, WorkerID: "w1", Now: at(2)})
	if !finishOne(t, s, store.RunFinishParams{ID: "r", Attempt: 1, Status: store.StatusPending, RunAt: at(10), Failure: true,
		Error: "exit status 3", WorkerID: "w1", ServerID: "srv", Now: at(3)}) {
		t.Fatal("retry of attempt 1 rejected")
	}
	first := store.Attempt{RunID: "r", Attempt: 1, WorkerID: "w1", DispatchedAt: at(1), StartedAt: at(2), EndedAt: at(3),
		Outcome: "failed", Error: "exit status 3"}
	diffAttempts(t, "after a retry", []store.Attempt{first}, attemptsOf(t, s, "r"))

	// Attempt 2 times out, never marked running: its start is the
	// worker's; the new claim forgot attempt 1's.
	promote(t, s, at(10), 10)
	if c := claimAt(t, s, "r", "srv", at(11)); c.Attempt != 2 || !c.DispatchedAt.Equal(at(11)) || !c.StartedAt.IsZero() {
		t.Errorf("second claim: attempt %d dispatched %v started %v", c.Attempt, c.DispatchedAt, c.StartedAt)
	}
	if !finishOne(t, s, store.RunFinishParams{ID: "r", Attempt: 2, Status: store.StatusPending, RunAt: at(20), Failure: true,
		TimedOut: true, Error: "timed out after 5s", StartedAt: at(12), WorkerID: "w2", Now: at(17)}) {
		t.Fatal("retry of attempt 2 rejected")
	}
	second := store.Attempt{RunID: "r", Attempt: 2, WorkerID: "w2", DispatchedAt: at(11), StartedAt: at(12), EndedAt: at(17),
		Outcome: "timed_out", Error: "timed out after 5s"}
	diffAttempts(t, "after a timeout", []store.Attempt{first, second}, attemptsOf(t, s, "r"))

	// Attempt 3 succeeds: the finish that ends the run records nothing.
	promote(t, s, at(20), 10)
	claimAt(t, s, "r", "srv", at(21))
	start(t, s, store.RunStartParams{ID: "r", Attempt: 3, WorkerID: "w3", Now: at(22)})
	if !finishOne(t, s, store.RunFinishParams{ID: "r", Attempt: 3, Status: store.StatusSucceeded, WorkerID: "w3", Now: at(23)}) {
		t.Fatal("finish of attempt 3 rejected")
	}
	diffAttempts(t, "after success", []store.Attempt{first, second}, attemptsOf(t, s, "r"))
	r := get(t, s, "r")
	if !r.DispatchedAt.Equal(at(21)) || !r.StartedAt.Equal(at(22)) || !r.FinishedAt.Equal(at(23)) {
		t.Errorf("run: dispatched %v started %v finished %v", r.DispatchedAt, r.StartedAt, r.FinishedAt)
	}
	third := store.Attempt{RunID: "r", Attempt: 3, WorkerID: "w3", DispatchedAt: at(21), StartedAt: at(22), EndedAt: at(23),
		Outcome: "succeeded"}
	diffAttempts(t, "history", []store.Attempt{first, second, third}, store.AttemptHistory(r, attemptsOf(t, s, "r")))
	diffAttempts(t, "unknown run", nil, attemptsOf(t, s, "none"))
}

func testAttemptsLost(t *testing.T, s store.Store) {
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	// Handed back by its worker (lost): the row keeps the worker the
	// hand-back clears from the run.
	attemptRun(t, s, "back", 3)
	claimAt(t, s, "back", "srv", at(1))
	start(t, s, store.RunStartParams{ID: "back", Attempt: 1, WorkerID: "w1", Now: at(2)})
	if !finishOne(t, s, store.RunFinishParams{ID: "back", Attempt: 1, Status: store.StatusQueued, Lost: true, Now: at(3)}) {
		t.Fatal("hand-back rejected")
	}
	diffAttempts(t, "hand-back", []store.Attempt{{RunID: "back", Attempt: 1, WorkerID: "w1", DispatchedAt: at(1),
		StartedAt: at(2), EndedAt: at(3), Outcome: store.OutcomeLost}}, attemptsOf(t, s, "back"))

	// Held by a server that is gone: requeued, its attempt recorded; a
	// run of a live server is not.
	heartbeat(t, s, "alive", t0)
	attemptRun(t, s, "gone", 3)
	attemptRun(t, s, "kept", 3)
	claimAt(t, s, "gone", "dead", at(1))
	claimAt(t, s, "kept", "alive", at(1))
	start(t, s, store.RunStartParams{ID: "gone", Attempt: 1, WorkerID: "w9", Now: at(2)})
	got := requeueLost(t, s, t0.Add(-time.Minute), 10)
	diffIDs(t, "requeued", []string{"gone"}, got)
	diffAttempts(t, "lost with its server", []store.Attempt{{RunID: "gone", Attempt: 1, WorkerID: "w9", DispatchedAt: at(1),
		StartedAt: at(2), EndedAt: t0, Outcome: store.OutcomeLost}}, attemptsOf(t, s, "gone"))
	diffAttempts(t, "run of a live server", nil, attemptsOf(t, s, "kept"))
	// The requeued run's current attempt is recorded: the history adds no
	// other until the next claim.
	if h := store.AttemptHistory(get(t, s, "gone"), attemptsOf(t, s, "gone")); len(h) != 1 {
		t.Errorf("history of a requeued run: %+v, want its one lost attempt", h)
	}
	diffIDs(t, "requeue again", nil, requeueLost(t, s, t0.Add(-time.Minute), 10))
	if n := len(attemptsOf(t, s, "gone")); n != 1 {
		t.Errorf("a second requeue pass: %d attempts recorded, want 1", n)
	}
}

func testAttemptsOperatorRetry(t *testing.T, s store.Store) {
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	retry := func(id string, now time.Time) *store.Run {
		t.Helper()
		var r *store.Run
		tx(t, s, func(tx store.Tx) error {
			var err error
			r, err = tx.RunRetry(ctx, store.RunRetryParams{ID: id, Now: now})
			return err
		})
		return r
	}
	// A failed run: its last attempt is recorded, and the run forgets its
	// times.
	attemptRun(t, s, "failed", 1)
	claimAt(t, s, "failed", "srv", at(1))
	start(t, s, store.RunStartParams{ID: "failed", Attempt: 1, WorkerID: "w1", Now: at(2)})
	finishOne(t, s, store.RunFinishParams{ID: "failed", Attempt: 1, Status: store.StatusFailed, Failure: true, Error: "boom", Now: at(3)})
	r := retry("failed", at(9))
	if !r.DispatchedAt.IsZero() || !r.StartedAt.IsZero() || r.Attempt != 1 {
		t.Errorf("retried run: dispatched %v started %v attempt %d", r.DispatchedAt, r.StartedAt, r.Attempt)
	}
	diffRun(t, "retried run", r, get(t, s, "failed"))
	diffAttempts(t, "operator retry", []store.Attempt{{RunID: "failed", Attempt: 1, WorkerID: "w1", DispatchedAt: at(1),
		StartedAt: at(2), EndedAt: at(3), Outcome: "failed", Error: "boom"}}, attemptsOf(t, s, "failed"))
	if h := store.AttemptHistory(r, attemptsOf(t, s, "failed")); len(h) != 1 {
		t.Errorf("history of a retried run before its next claim: %+v", h)
	}

	// Never dispatched (skipped, cancelled while queued): nothing to record.
	sk := params("skipped")
	sk.Status = store.StatusSkipped
	insert(t, s, sk)
	retry("skipped", at(9))
	attemptRun(t, s, "cancelled", 1)
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "cancelled", Now: at(1)})
		return err
	})
	retry("cancelled", at(9))
	diffAttempts(t, "skipped", nil, attemptsOf(t, s, "skipped"))
	diffAttempts(t, "cancelled before its first claim", nil, attemptsOf(t, s, "cancelled"))

	// Cancelled while it waited for a retry: the attempt that failed keeps
	// its row (the cancel ended the run, not the attempt).
	attemptRun(t, s, "waiting", 3)
	claimAt(t, s, "waiting", "srv", at(1))
	finishOne(t, s, store.RunFinishParams{ID: "waiting", Attempt: 1, Status: store.StatusPending, RunAt: at(60), Failure: true,
		Error: "flaky", WorkerID: "w1", Now: at(3)})
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "waiting", Now: at(4)})
		return err
	})
	retry("waiting", at(9))
	diffAttempts(t, "cancelled while waiting", []store.Attempt{{RunID: "waiting", Attempt: 1, WorkerID: "w1", DispatchedAt: at(1),
		EndedAt: at(3), Outcome: "failed", Error: "flaky"}}, attemptsOf(t, s, "waiting"))
}

// testAttemptsFenced: finishes and requeues that do not apply record
// nothing.
func testAttemptsFenced(t *testing.T, s store.Store) {
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	for _, kind := range []struct {
		name string
		mk   func(id string) store.RunInsertParams
	}{{"plain", params}, {"callback", cbParams}} {
		id := kind.name
		p := kind.mk(id)
		p.Group, p.MaxAttempts = "a-"+id, 3
		insert(t, s, p)
		claimAt(t, s, id, "srv", at(1))
		start(t, s, store.RunStartParams{ID: id, Attempt: 1, WorkerID: "w1", Now: at(2)})
		for _, c := range []struct {
			what     string
			id       string
			attempt  int
			serverID string
		}{{"an old attempt", id, 0, ""}, {"a future attempt", id, 2, ""}, {"another server", id, 1, "srv-2"}, {"an unknown run", "none", 1, ""}} {
			for _, st := range []store.RunStatus{store.StatusPending, store.StatusQueued} {
				if finishOne(t, s, store.RunFinishParams{ID: c.id, Attempt: c.attempt, Status: st, RunAt: at(60), Failure: st == store.StatusPending,
					Lost: st == store.StatusQueued, Error: "stale", WorkerID: "w9", ServerID: c.serverID, Now: at(3)}) {
					t.Errorf("%s: %s finish by %s applied", id, st, c.what)
				}
			}
		}
		diffAttempts(t, id+": stale finishes", nil, attemptsOf(t, s, id))
		// The holder's finish applies and records; a second finish of the
		// same attempt is stale and records nothing more.
		for range 2 {
			finishOne(t, s, store.RunFinishParams{ID: id, Attempt: 1, Status: store.StatusPending, RunAt: at(60), Failure: true,
				Error: "boom", ServerID: "srv", Now: at(4)})
		}
		diffAttempts(t, id+": the holder's finish", []store.Attempt{{RunID: id, Attempt: 1, WorkerID: "w1", DispatchedAt: at(1),
			StartedAt: at(2), EndedAt: at(4), Outcome: "failed", Error: "boom"}}, attemptsOf(t, s, id))
	}
	// A requeue pass finds nothing of servers that are alive.
	heartbeat(t, s, "srv", t0)
	attemptRun(t, s, "held", 3)
	claimAt(t, s, "held", "srv", at(1))
	diffIDs(t, "requeue", nil, requeueLost(t, s, t0.Add(-time.Minute), 10))
	diffAttempts(t, "run of a live server", nil, attemptsOf(t, s, "held"))
}

func testAttemptsRetention(t *testing.T, s store.Store) {
	old := t0.Add(time.Hour)
	for _, id := range []string{"old", "young"} {
		attemptRun(t, s, id, 2)
		claimAt(t, s, id, "srv", t0)
		finishOne(t, s, store.RunFinishParams{ID: id, Attempt: 1, Status: store.StatusQueued, Lost: true, Now: t0})
		claimAt(t, s, id, "srv", t0)
		end := old
		if id == "young" {
			end = t0.Add(72 * time.Hour)
		}
		finishOne(t, s, store.RunFinishParams{ID: id, Attempt: 2, Status: store.StatusFailed, Failure: true, Error: "x", Now: end})
		if n := len(attemptsOf(t, s, id)); n != 1 {
			t.Fatalf("%s: %d attempts recorded, want 1", id, n)
		}
	}
	deleted, _ := deleteFinished(t, s, store.RunDeleteParams{FinishedBefore: cutoffs(t0.Add(24 * time.Hour))})
	diffNames(t, "deleted", []string{"old"}, deleted)
	diffAttempts(t, "a deleted run", nil, attemptsOf(t, s, "old"))
	if n := len(attemptsOf(t, s, "young")); n != 1 {
		t.Errorf("a kept run: %d attempts, want 1", n)
	}
}

// testAttemptsCap: RunAttempts returns the latest MaxAttemptRows
// attempts, in order.
func testAttemptsCap(t *testing.T, s store.Store) {
	n := store.MaxAttemptRows + 5
	attemptRun(t, s, "many", n+1)
	// Claimed and handed back n times, in one transaction.
	tx(t, s, func(tx store.Tx) error {
		for i := 1; i <= n; i++ {
			got, err := tx.RunClaim(ctx, store.RunClaimParams{Group: "a-many", Types: []string{"t"}, Limit: 1, ServerID: "srv", Now: t0})
			if err != nil || len(got) != 1 {
				return fmt.Errorf("claim %d: %v, %v", i, ids(got), err)
			}
			res, err := tx.RunFinish(ctx, []store.RunFinishParams{{ID: "many", Attempt: i, Status: store.StatusQueued, Now: t0}})
			if err != nil || !res[0].Accepted {
				return fmt.Errorf("hand-back of attempt %d: %+v, %v", i, res, err)
			}
		}
		return nil
	})
	as := attemptsOf(t, s, "many")
	if len(as) != store.MaxAttemptRows || as[0].Attempt != n-store.MaxAttemptRows+1 || as[len(as)-1].Attempt != n {
		t.Fatalf("%d attempts, %d to %d; want the latest %d, %d to %d", len(as), as[0].Attempt, as[len(as)-1].Attempt,
			store.MaxAttemptRows, n-store.MaxAttemptRows+1, n)
	}
	for i := 1; i < len(as); i++ {
		if as[i].Attempt != as[i-1].Attempt+1 {
			t.Fatalf("attempt %d follows %d", as[i].Attempt, as[i-1].Attempt)
		}
	}
}
