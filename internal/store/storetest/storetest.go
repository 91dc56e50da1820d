// Package storetest is the conformance suite every store.Store backend
// runs. A backend's test calls Run with a function that opens a fresh,
// empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), sqlite.Options{})
//			...
//			return s
//		})
//	}
//
// A backend whose Listen delivers what Tx.Notify publishes (one shared by
// several processes) says so, and the suite checks the delivery:
//
//	storetest.Run(t, open, storetest.Options{Notifies: true})
//
// A backend whose transactions run at once (not one after the other) says
// so with ConcurrentTx, and the suite checks the row locks of the jobs
// contract between two open transactions.
//
// Each subtest opens its own store, runs in parallel with the others and
// closes the store when it ends (so Close must be safe to call twice, if
// open also registers a cleanup). Times are compared at microsecond
// precision and JSON documents by value, so a backend may store JSON in a
// normalised form (PostgreSQL jsonb) and times in microseconds.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// Options describes what a backend can do beyond the common contract.
type Options struct {
	// Notifies says that Listen delivers what Tx.Notify publishes (a
	// backend shared by several processes, PostgreSQL). Without it the
	// suite only checks that Notify is accepted and that Listen returns
	// when its context ends.
	Notifies bool
	// ConcurrentTx says that Tx calls from different goroutines run at
	// once, each in its own transaction (PostgreSQL), rather than one after
	// the other (SQLite's single writer). With it the suite also checks
	// what one open transaction holds against another (JobListDue skips
	// the jobs another transaction listed; RunUnblockNext waits for them).
	ConcurrentTx bool
	// LockRun and Waiting let the suite put one transaction exactly inside
	// another on a ConcurrentTx store (row locks): LockRun takes, in tx,
	// the lock on run id that RunCancel takes before it changes anything
	// (so a test can stop a cancel between its lock and its write, where a
	// concurrent claim or promote may arrive); Waiting reports whether
	// another transaction is waiting for a lock tx holds. The tests that
	// need them are skipped on a ConcurrentTx store without them.
	LockRun func(ctx context.Context, tx store.Tx, id string) error
	Waiting func(ctx context.Context, tx store.Tx) (bool, error)
	// OldestBuckets returns the oldest stored minute bucket of the
	// throughput, hour bucket of the throughput and minute bucket of the
	// latency (0 for none), after writing or folding whatever the backend
	// holds back, so the suite can see that old buckets are pruned.
	// Required: the test that needs it fails without it.
	OldestBuckets func(ctx context.Context, s store.Store) (minute, hour, latency int64, err error)
}

// Run runs the whole suite. open must return a new, empty store each time
// it is called. At most one Options may be given.
func Run(t *testing.T, open func(t *testing.T) store.Store, options ...Options) {
	t.Helper()
	var opts Options
	switch len(options) {
	case 0:
	case 1:
		opts = options[0]
	default:
		t.Fatalf("storetest.Run: %d Options, want at most one", len(options))
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Name", testName},
		{"InsertAndGet", testInsertAndGet},
		{"InsertDefaults", testInsertDefaults},
		{"InsertRejectsBadStatus", testInsertRejectsBadStatus},
		{"InsertIdempotencyKey", testInsertIdempotencyKey},
		{"InsertLargeMixedBatch", testInsertLargeMixedBatch},
		{"NotFound", testNotFound},
		{"TimePrecision", testTimePrecision},
		{"ClaimOrder", testClaimOrder},
		{"ClaimFilters", testClaimFilters},
		{"ClaimLimitAndEmpty", testClaimLimitAndEmpty},
		{"ClaimManyTypes", testClaimManyTypes},
		{"ClaimConcurrent", testClaimConcurrent},
		{"CancelDuringClaim", func(t *testing.T, s store.Store) { testCancelDuring(t, s, opts, claimStep) }},
		{"CancelDuringPromote", func(t *testing.T, s store.Store) { testCancelDuring(t, s, opts, promoteStep) }},
		{"StartFencing", testStartFencing},
		{"FinishFencing", testFinishFencing},
		{"FinishBatch", testFinishBatch},
		{"FinishSucceeded", testFinishSucceeded},
		{"FinishFailedAndTimedOut", testFinishFailedAndTimedOut},
		{"FinishPendingRetry", testFinishPendingRetry},
		{"FinishQueuedHandsBack", testFinishQueuedHandsBack},
		{"FinishCountsLostAttempts", testFinishCountsLostAttempts},
		{"FinishWithoutStart", testFinishWithoutStart},
		{"FinishRejectsBadStatus", testFinishRejectsBadStatus},
		{"Cancel", testCancel},
		{"CancelTerminal", testCancelTerminal},
		{"Retry", testRetry},
		{"RetryConflict", testRetryConflict},
		{"Promote", testPromote},
		{"NextPendingAt", testNextPendingAt},
		{"CountByGroup", testCountByGroup},
		{"StatsCounters", testStatsCounters},
		{"StatsConcurrent", testStatsConcurrent},
		{"StatsQueueHeads", testStatsQueueHeads},
		{"RatesThroughput", testRatesThroughput},
		{"RatesLatency", testRatesLatency},
		{"RatesRollback", testRatesRollback},
		{"RatesPruned", func(t *testing.T, s store.Store) { testRatesPruned(t, s, opts) }},
		{"RatesSeries", testRatesSeries},
		{"ListFiltersAndPages", testListFiltersAndPages},
		{"ListLimits", testListLimits},
		{"ListAllFilters", testListAllFilters},
		{"ListBudget", testListBudget},
		{"LoadHistory", testLoadHistory},
		{"ListActive", testListActive},
		{"Logs", testLogs},
		{"LogsDefaultLimit", testLogsDefaultLimit},
		{"LogsFenced", testLogsFenced},
		{"LogsCapLines", testLogsCapLines},
		{"LogsCapBytes", testLogsCapBytes},
		{"LogsCapAcrossAttempts", testLogsCapAcrossAttempts},
		{"LogsDroppedEarly", testLogsDroppedEarly},
		{"RollbackOnError", testRollbackOnError},
		{"RollbackOnPanic", testRollbackOnPanic},
		{"RefusalsKeepTxUsable", testRefusalsKeepTxUsable},
		{"TxUnusableAfterReturn", testTxUnusableAfterReturn},
		{"Closed", testClosed},
		{"FencedByServer", testFencedByServer},
		{"FencingMatrix", testFencingMatrix},
		{"Adopt", testAdopt},
		{"RequeueLost", testRequeueLost},
		{"RequeueLostLimit", testRequeueLostLimit},
		{"Leader", testLeader},
		{"LeaderResign", testLeaderResign},
		{"LeaderConcurrent", testLeaderConcurrent},
		{"Servers", testServers},
		{"Notify", func(t *testing.T, s store.Store) { testNotify(t, s, opts) }},
		{"JobPutAndGet", testJobPutAndGet},
		{"JobNotFound", testJobNotFound},
		{"JobDelete", testJobDelete},
		{"JobList", testJobList},
		{"JobPause", testJobPause},
		{"JobNextFire", testJobNextFire},
		{"JobListDue", testJobListDue},
		{"JobAdvance", testJobAdvance},
		{"InsertJobSlot", testInsertJobSlot},
		{"InsertJobSlotLargeBatch", testInsertJobSlotLargeBatch},
		{"InsertSkipped", testInsertSkipped},
		{"RunListActiveForJob", testRunListActiveForJob},
		{"RunUnblockNext", testRunUnblockNext},
		{"RunListSlots", testRunListSlots},
		{"RunGate", testRunGate},
		{"RunUnblockNextLeavesDependents", testRunUnblockNextLeavesDependents},
		{"Backfills", testBackfills},
		{"RetrySucceeded", testRetrySucceeded},
		{"JobListDueConcurrent", testJobListDueConcurrent},
		{"JobListDueHeld", func(t *testing.T, s store.Store) { testJobListDueHeld(t, s, opts) }},
		{"JobsClosed", testJobsClosed},
		{"CallbackInsert", testCallbackInsert},
		{"CallbackFinish", testCallbackFinish},
		{"CallbackCancelAndSkip", testCallbackCancelAndSkip},
		{"CallbackListDue", testCallbackListDue},
		{"CallbackRecord", testCallbackRecord},
		{"CallbackRetry", testCallbackRetry},
		{"CallbackListDueConcurrent", testCallbackListDueConcurrent},
		{"CallbackJob", testCallbackJob},
		{"CallbacksClosed", testCallbacksClosed},
		{"AlertInsert", testAlertInsert},
		{"AlertList", testAlertList},
		{"AlertListDue", testAlertListDue},
		{"AlertRecord", testAlertRecord},
		{"AlertNextAt", testAlertNextAt},
		{"AlertDeleteBefore", testAlertDeleteBefore},
		{"AlertListDueConcurrent", testAlertListDueConcurrent},
		{"GroupAlerts", testGroupAlerts},
		{"JobAlerts", testJobAlerts},
		{"AlertsClosed", testAlertsClosed},
		{"FanoutCreate", testFanoutCreate},
		{"FanoutKeyAndLimits", testFanoutKeyAndLimits},
		{"FanoutCounters", testFanoutCounters},
		{"FanoutRandom", testFanoutRandom},
		{"FanoutConcurrent", testFanoutConcurrent},
		{"FanoutResults", testFanoutResults},
		{"FanoutFinish", testFanoutFinish},
		{"FanoutSetMerge", testFanoutSetMerge},
		{"FanoutJoinable", testFanoutJoinable},
		{"FanoutCancelParent", testFanoutCancelParent},
		{"FanoutJobParent", testFanoutJobParent},
		{"FanoutReopen", testFanoutReopen},
		{"InsertSplit", testInsertSplit},
		{"FanoutExpand", testFanoutExpand},
		{"FanoutExpandFenced", testFanoutExpandFenced},
		{"FanoutExpandJob", testFanoutExpandJob},
		{"FanoutMap", testFanoutMap},
		{"FanoutMapFenced", testFanoutMapFenced},
		{"TokenCreateAndGet", testTokenCreateAndGet},
		{"TokenCreateExists", testTokenCreateExists},
		{"TokenRejectsEmpty", testTokenRejectsEmpty},
		{"TokenNotFound", testTokenNotFound},
		{"TokenRevoke", testTokenRevoke},
		{"TokenList", testTokenList},
		{"TokenBootstrap", testTokenBootstrap},
		{"TokenBootstrapConcurrent", testTokenBootstrapConcurrent},
		{"TokensClosed", testTokensClosed},
		{"AuditAppendAndList", testAuditAppendAndList},
		{"AuditListFilters", testAuditListFilters},
		{"AuditListPages", testAuditListPages},
		{"AuditAppendChecks", testAuditAppendChecks},
		{"AuditDeleteBefore", testAuditDeleteBefore},
		{"RetentionDeletesExpired", testRetentionDeletesExpired},
		{"RetentionPerStatus", testRetentionPerStatus},
		{"RetentionKeyFree", testRetentionKeyFree},
		{"RetentionLimit", testRetentionLimit},
		{"RetentionJobs", testRetentionJobs},
		{"AttemptsRetryThenSucceed", testAttemptsRetryThenSucceed},
		{"AttemptsLost", testAttemptsLost},
		{"AttemptsOperatorRetry", testAttemptsOperatorRetry},
		{"AttemptsFenced", testAttemptsFenced},
		{"AttemptsRetention", testAttemptsRetention},
		{"AttemptsCap", testAttemptsCap},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

// t0 is the suite's reference time: microsecond aligned, not in UTC, so a
// backend that loses the instant while converting zones is caught.
var t0 = time.Date(2026, 11, 21, 10, 30, 0, 123456000, time.FixedZone("CST", 8*3600))

var ctx = context.Background()

// Bounded waits. A test with goroutines must fail, not hang, when a broken
// backend makes one of them block on a lock or loop forever: its store
// calls take a context that ends after concurrentTimeout, and the test waits
// for the goroutines at most concurrentTimeout+waitGrace (the grace lets a
// call that honours its context return on its own, so the store can close).
const (
	concurrentTimeout = 30 * time.Second
	waitGrace         = 10 * time.Second
)

// deadlineCtx is the context of a concurrent test's store calls.
func deadlineCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), concurrentTimeout)
	t.Cleanup(cancel)
	return c
}

// waitAll waits for wg and fails the test at once if it takes longer than
// a concurrent test may.
func waitAll(t *testing.T, what string, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(concurrentTimeout + waitGrace):
		t.Fatalf("%s: still running after %v (blocked on a lock, or looping?)", what, concurrentTimeout+waitGrace)
	}
}

// receive returns the next value from ch, failing the test at once if none
// comes within the time a concurrent test may take.
func receive[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(concurrentTimeout + waitGrace):
		t.Fatalf("%s: nothing received within %v", what, concurrentTimeout+waitGrace)
		var zero T
		return zero
	}
}

// cmpRun compares runs: times with Equal (go-cmp's default for types with
// an Equal method), JSON by value.
var cmpRun = cmp.Options{
	cmp.Comparer(jsonEqual),
}

func jsonEqual(a, b json.RawMessage) bool {
	an, bn := isNullJSON(a), isNullJSON(b)
	if an || bn {
		return an == bn
	}
	var av, bv any
	if json.Unmarshal(a, &av) != nil || json.Unmarshal(b, &bv) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(av, bv)
}

func isNullJSON(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "null"
}

func diffRun(t *testing.T, what string, want, got *store.Run) {
	t.Helper()
	if d := cmp.Diff(want, got, cmpRun); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

// tx runs fn in a transaction and fails the test on error.
func tx(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Tx(ctx, fn); err != nil {
		t.Fatalf("Tx: %v", err)
	}
}

// params is a queued run in group "g" of type "t" created at t0.
func params(id string) store.RunInsertParams {
	return store.RunInsertParams{
		ID:          id,
		Type:        "t",
		Group:       "g",
		Status:      store.StatusQueued,
		MaxAttempts: 1,
		RunAt:       t0,
		Now:         t0,
	}
}

func insert(t *testing.T, s store.Store, ps ...store.RunInsertParams) []*store.Run {
	t.Helper()
	var res []store.RunInsertResult
	tx(t, s, func(tx store.Tx) error {
		var err error
		res, err = tx.RunInsert(ctx, ps)
		return err
	})
	if len(res) != len(ps) {
		t.Fatalf("RunInsert returned %d results for %d runs", len(res), len(ps))
	}
	out := make([]*store.Run, len(res))
	for i, r := range res {
		if r.Existing {
			t.Fatalf("RunInsert %q: unexpected Existing", ps[i].ID)
		}
		if r.Run == nil || r.Run.ID != ps[i].ID {
			t.Fatalf("RunInsert %q: got run %+v", ps[i].ID, r.Run)
		}
		out[i] = r.Run
	}
	return out
}

func claim(t *testing.T, s store.Store, p store.RunClaimParams) []*store.Run {
	t.Helper()
	if p.Now.IsZero() {
		p.Now = t0
	}
	var runs []*store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		runs, err = tx.RunClaim(ctx, p)
		return err
	})
	return runs
}

// claimAll claims every queued run of group g, type t for server "srv".
func claimAll(t *testing.T, s store.Store) []*store.Run {
	t.Helper()
	return claim(t, s, store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: 1000, ServerID: "srv"})
}

func start(t *testing.T, s store.Store, ps ...store.RunStartParams) []bool {
	t.Helper()
	var ok []bool
	tx(t, s, func(tx store.Tx) error {
		var err error
		ok, err = tx.RunStart(ctx, ps)
		return err
	})
	if len(ok) != len(ps) {
		t.Fatalf("RunStart returned %d results for %d", len(ok), len(ps))
	}
	return ok
}

func finish(t *testing.T, s store.Store, ps ...store.RunFinishParams) []store.RunFinishResult {
	t.Helper()
	var res []store.RunFinishResult
	tx(t, s, func(tx store.Tx) error {
		var err error
		res, err = tx.RunFinish(ctx, ps)
		return err
	})
	if len(res) != len(ps) {
		t.Fatalf("RunFinish returned %d results for %d", len(res), len(ps))
	}
	for i := range res {
		if res[i].ID != ps[i].ID {
			t.Fatalf("RunFinish result %d is for %q, want %q (results must be in input order)", i, res[i].ID, ps[i].ID)
		}
	}
	return res
}

// finishOne finishes one attempt and reports whether it was accepted.
func finishOne(t *testing.T, s store.Store, p store.RunFinishParams) bool {
	t.Helper()
	return finish(t, s, p)[0].Accepted
}

func get(t *testing.T, s store.Store, id string) *store.Run {
	t.Helper()
	r, err := s.RunGet(ctx, id)
	if err != nil {
		t.Fatalf("RunGet(%q): %v", id, err)
	}
	return r
}

func ids(runs []*store.Run) []string { return names(runs, func(r *store.Run) string { return r.ID }) }

func names[T any](xs []T, name func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = name(x)
	}
	return out
}

func diffIDs(t *testing.T, what string, want []string, got []*store.Run) {
	t.Helper()
	diffNames(t, what+": run IDs", want, ids(got))
}

func diffNames(t *testing.T, what string, want, got []string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

func runID(i int) string { return fmt.Sprintf("r%05d", i) }

func testName(t *testing.T, s store.Store) {
	if s.Name() == "" {
		t.Error("Name() is empty")
	}
}
