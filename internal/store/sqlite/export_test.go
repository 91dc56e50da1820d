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
