package sqlite

import (
	"context"
	"fmt"

	"github.com/pluto-sched/pluto/internal/store"
)

// OldestBuckets is the conformance suite's look at the rate buckets
// (storetest.Options.OldestBuckets): SQLite writes them at commit, so
// there is nothing held back.
func OldestBuckets(ctx context.Context, st store.Store) (minute, hour, latency int64, err error) {
	s, ok := st.(*Store)
	if !ok {
		return 0, 0, 0, fmt.Errorf("sqlite: OldestBuckets: %T is not a SQLite store", st)
	}
	err = s.r.QueryRowContext(ctx, `SELECT
		coalesce((SELECT min(bucket) FROM run_rates WHERE res = 60), 0),
		coalesce((SELECT min(bucket) FROM run_rates WHERE res = 3600), 0),
		coalesce((SELECT min(bucket) FROM run_latency), 0)`).Scan(&minute, &hour, &latency)
	return minute, hour, latency, err
}

// FillRates fills the rate buckets as 100 jobs (in 10 groups) with ends in
// 5 statuses in every minute and hour bucket kept up to now, and a full
// latency histogram per group: the read benchmark's history.
func FillRates(ctx context.Context, s *Store, now int64) error {
	_, err := s.main.db.ExecContext(ctx, `
		WITH RECURSIVE j(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM j WHERE i < 99),
			st(s) AS (VALUES ('succeeded'), ('failed'), ('cancelled'), ('timed_out'), ('skipped')),
			m(b) AS (SELECT ?1 - 119 UNION ALL SELECT b + 1 FROM m WHERE b < ?1)
		INSERT INTO run_rates SELECT 60, b, 'g' || (i % 10), 'job' || i, s, 3 FROM j, st, m;
		WITH RECURSIVE j(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM j WHERE i < 99),
			st(s) AS (VALUES ('succeeded'), ('failed'), ('cancelled'), ('timed_out'), ('skipped')),
			h(b) AS (SELECT ?1 / 60 - 25 UNION ALL SELECT b + 1 FROM h WHERE b < ?1 / 60)
		INSERT INTO run_rates SELECT 3600, b, 'g' || (i % 10), 'job' || i, s, 180 FROM j, st, h;
		WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < 9),
			k(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM k WHERE k < 44),
			m(b) AS (SELECT ?1 - 4 UNION ALL SELECT b + 1 FROM m WHERE b < ?1)
		INSERT INTO run_latency SELECT b, 'g' || i, k, 2 FROM g, k, m;`, now)
	return err
}
