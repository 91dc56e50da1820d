package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Interleavings of two transactions that a store with row locks must get
// right however they overlap. Each one stops a cancel between the lock it
// takes on a run and its write (Options.LockRun), lets a second transaction
// reach the run and wait for that lock (Options.Waiting), then lets the
// cancel commit. On a store that runs one transaction at a time the second
// simply runs after the first; the outcome checked is the same.

// step is the second transaction's work: a statement that moves runs out
// of one status (a claim out of queued, a promote out of pending) and
// that must leave alone a run a committed cancel moved out of it first.
type step struct {
	what   string          // what the step does, for messages
	status store.RunStatus // the status it moves runs out of
	run    func(ctx context.Context, tx store.Tx) ([]*store.Run, error)
	check  func(t *testing.T, s store.Store) // the state after both
}

var claimStep = step{
	what:   "claim",
	status: store.StatusQueued,
	run: func(ctx context.Context, tx store.Tx) ([]*store.Run, error) {
		return tx.RunClaim(ctx, store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: 10, ServerID: "srv", Now: t0})
	},
	check: func(t *testing.T, s store.Store) {
		active, err := s.RunListActive(ctx, store.RunListActiveParams{})
		if err != nil {
			t.Fatal(err)
		}
		diffIDs(t, "active runs", []string{"other"}, active)
	},
}

var promoteStep = step{
	what:   "promote",
	status: store.StatusPending,
	run: func(ctx context.Context, tx store.Tx) ([]*store.Run, error) {
		return tx.RunPromote(ctx, store.RunPromoteParams{Now: t0, Limit: 10})
	},
	check: func(t *testing.T, s store.Store) {
		if at := nextPending(t, s); !at.IsZero() {
			t.Errorf("RunNextPendingAt = %v, want zero (nothing is pending)", at)
		}
		diffIDs(t, "claim after both", []string{"other"}, claimAll(t, s))
	},
}

// testCancelDuring: a cancel holds run "r" (locked, not yet written) while
// st starts and reaches r; the cancel then commits. st must not move r:
// its recheck of r's status, after the wait for r's lock, is what stops
// it (PostgreSQL re-evaluates a waiting UPDATE's WHERE on the row's
// committed version). Run "other", in the same status, shows st did run.
func testCancelDuring(t *testing.T, s store.Store, opts Options, st step) {
	ordered := opts.LockRun != nil && opts.Waiting != nil
	if opts.ConcurrentTx && !ordered {
		t.Skip("needs Options.LockRun and Options.Waiting to order the transactions")
	}
	mk := func(id string) store.RunInsertParams {
		if st.status == store.StatusPending {
			return pending(id, t0.Add(-time.Second))
		}
		return params(id)
	}
	r, other := mk("r"), mk("other")
	r.Priority = 1 // first in claim order
	insert(t, s, r, other)

	type outcome struct {
		runs []*store.Run
		err  error
	}
	dctx := deadlineCtx(t)
	second := make(chan outcome, 1)
	var (
		cancelled store.RunCancelResult
		got       outcome
		early     bool
	)
	err := s.Tx(dctx, func(tx store.Tx) error {
		if ordered {
			if err := opts.LockRun(dctx, tx, "r"); err != nil {
				return fmt.Errorf("LockRun: %w", err)
			}
		}
		go func() {
			var o outcome
			o.err = s.Tx(dctx, func(tx store.Tx) error {
				var err error
				o.runs, err = st.run(dctx, tx)
				return err
			})
			second <- o
		}()
		if ordered {
			if err := waitUntilWaiting(dctx, opts, tx, second); err != nil {
				return fmt.Errorf("the %s never waited for the transaction holding r: %w", st.what, err)
			}
		} else {
			// One transaction at a time: the second cannot end before this
			// one does. Give it the time to (wrongly) do so.
			select {
			case got = <-second:
				early = true
				t.Errorf("the %s committed while another transaction was open on a store that runs one at a time", st.what)
			case <-time.After(50 * time.Millisecond):
			}
		}
		var err error
		cancelled, err = tx.RunCancel(dctx, store.RunCancelParams{ID: "r", Reason: "by user", Now: t0})
		return err
	})
	if err != nil {
		t.Fatalf("cancelling transaction: %v", err)
	}
	if !early {
		got = receive(t, "the "+st.what, second)
	}
	if got.err != nil {
		t.Fatalf("%s: %v", st.what, got.err)
	}
	if !cancelled.Changed || cancelled.Prev != st.status {
		t.Errorf("cancel: Changed %v Prev %s, want true, %s", cancelled.Changed, cancelled.Prev, st.status)
	}
	diffIDs(t, "the "+st.what+" that waited for the cancel (it must not move the run the cancel ended)",
		[]string{"other"}, got.runs)
	if r := get(t, s, "r"); r.Status != store.StatusCancelled || r.Attempt != 0 {
		t.Errorf("r after the cancel committed: %s attempt %d, want cancelled attempt 0", r.Status, r.Attempt)
	}
	st.check(t, s)
}

// waitUntilWaiting polls until a transaction waits for a lock tx holds. It
// fails if the other transaction ends first (it did not wait) or the
// context ends; what the other transaction sent is put back.
func waitUntilWaiting[T any](ctx context.Context, opts Options, tx store.Tx, other chan T) error {
	for {
		ok, err := opts.Waiting(ctx, tx)
		if err != nil {
			return fmt.Errorf("Waiting: %w", err)
		}
		if ok {
			return nil
		}
		select {
		case v := <-other:
			other <- v
			return fmt.Errorf("it ended first")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
