package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Hooks for the conformance suite (storetest.Options), which orders two
// transactions by the row locks they hold and wait for.

// LockRun takes, in stx, the row lock RunCancel and RunRetry take first
// (sqlGetForUpdate), without changing the run.
func LockRun(ctx context.Context, stx store.Tx, id string) error {
	t, ok := stx.(*tx)
	if !ok {
		return fmt.Errorf("postgres: LockRun: %T is not a transaction of this store", stx)
	}
	_, err := t.getForUpdate(ctx, "LockRun", id)
	return err
}

// sqlWaiting asks whether another backend waits for a lock this one holds.
// It reads pg_locks, which is live: pg_stat_activity would show, for the
// rest of the transaction, the snapshot of its first read.
const sqlWaiting = `SELECT EXISTS (SELECT 1 FROM pg_locks
	WHERE NOT granted AND pid <> pg_backend_pid() AND pg_backend_pid() = ANY (pg_blocking_pids(pid)))`

// Waiting reports whether another transaction waits for a lock stx holds.
func Waiting(ctx context.Context, stx store.Tx) (bool, error) {
	t, ok := stx.(*tx)
	if !ok {
		return false, fmt.Errorf("postgres: Waiting: %T is not a transaction of this store", stx)
	}
	var waiting bool
	if err := t.q.QueryRow(ctx, sqlWaiting).Scan(&waiting); err != nil {
		return false, t.s.wrap("Waiting", err)
	}
	return waiting, nil
}

// SetFoldEvery makes s fold its counter deltas at most every d (before
// the store is used): the conformance suite folds often, so that reads
// see counters folded, unfolded and both.
func SetFoldEvery(s *Store, d time.Duration) { s.foldEvery = d }
