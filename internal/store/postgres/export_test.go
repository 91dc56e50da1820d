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

// OldestBuckets is the conformance suite's look at the rate buckets
// (storetest.Options.OldestBuckets): it folds the deltas first (the fold
// prunes), as a commit would when the fold is due.
func OldestBuckets(ctx context.Context, st store.Store) (minute, hour, latency int64, err error) {
	s, ok := st.(*Store)
	if !ok {
		return 0, 0, 0, fmt.Errorf("postgres: OldestBuckets: %T is not a PostgreSQL store", st)
	}
	fold := "BEGIN; " + fmt.Sprintf(sqlFold, s.foldLockID()) + fmt.Sprintf(sqlFoldRates, s.foldLockID()) + "COMMIT"
	if _, err := s.pool.Exec(ctx, fold); err != nil {
		return 0, 0, 0, err
	}
	err = s.pool.QueryRow(ctx, `SELECT
		coalesce((SELECT min(bucket) FROM run_rates WHERE res = 60), 0),
		coalesce((SELECT min(bucket) FROM run_rates WHERE res = 3600), 0),
		coalesce((SELECT min(bucket) FROM run_latency), 0)`).Scan(&minute, &hour, &latency)
	return minute, hour, latency, err
}

// FillRates fills the rate buckets as 100 jobs (in 10 groups) with ends in
// 5 statuses in every minute and hour bucket kept up to now, and a full
// latency histogram per group: the read benchmark's history.
func FillRates(ctx context.Context, s *Store, now int64) error {
	_, err := s.pool.Exec(ctx, fmt.Sprintf(`
		INSERT INTO run_rates SELECT 60, b, 'g' || (i %% 10), 'job' || i, st, 3
			FROM generate_series(0, 99) AS i, unnest(ARRAY['succeeded', 'failed', 'cancelled', 'timed_out', 'skipped']) AS st,
				generate_series(%[1]d - 119, %[1]d) AS b;
		INSERT INTO run_rates SELECT 3600, b, 'g' || (i %% 10), 'job' || i, st, 180
			FROM generate_series(0, 99) AS i, unnest(ARRAY['succeeded', 'failed', 'cancelled', 'timed_out', 'skipped']) AS st,
				generate_series(%[1]d / 60 - 25, %[1]d / 60) AS b;
		INSERT INTO run_latency SELECT b, 'g' || i, k, 2
			FROM generate_series(0, 9) AS i, generate_series(0, 44) AS k, generate_series(%[1]d - 4, %[1]d) AS b;
		ANALYZE run_rates; ANALYZE run_latency`, now))
	return err
}
