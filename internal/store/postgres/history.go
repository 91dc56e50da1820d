package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/internal/store"
)

// historyCols are the columns LoadHistory copies; the others take their
// defaults (seq is generated in copy order).
var historyCols = []string{"id", "job", "type", "grp", "payload", "status", "attempt", "max_attempts", "failures",
	"run_at", "created_at", "started_at", "finished_at", "worker_id", "result", "error"}

const historyChunk = 50000

// LoadHistory implements store.HistoryLoader with COPY, in chunks of
// historyChunk runs, fills ended, then VACUUM ANALYZE — what autovacuum does
// after a load — so that the visibility map lets lists walk indexes
// without visiting the heap, as they would on a store that grew slowly —
// and a CHECKPOINT.
func (s *Store) LoadHistory(ctx context.Context, n int, gen func(i int) *store.Run) error {
	if s.closed.Load() {
		return errClosed
	}
	var before int64
	if err := s.pool.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM runs").Scan(&before); err != nil {
		return s.wrap("LoadHistory", err)
	}
	rows := make([][]any, 0, historyChunk)
	for i := 0; i < n; {
		rows = rows[:0]
		for ; i < n && len(rows) < historyChunk; i++ {
			r := gen(i)
			rows = append(rows, []any{r.ID, r.Job, r.Type, r.Group, textOrNil(r.Payload), string(r.Status),
				int32(r.Attempt), int32(r.MaxAttempts), int32(r.Failures), r.RunAt, r.CreatedAt,
				r.StartedAt, r.FinishedAt, r.WorkerID, textOrNil(r.Result), r.Error})
		}
		if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"runs"}, historyCols, pgx.CopyFromRows(rows)); err != nil {
			return s.wrap("LoadHistory", err)
		}
	}
	// The side table of the runs that ended badly, as the write path
	// would have filled it.
	if _, err := s.pool.Exec(ctx, `INSERT INTO ended (seq) SELECT seq FROM runs
		WHERE seq > $1 AND status IN (`+endedStatuses+`) ON CONFLICT DO NOTHING`, before); err != nil {
		return s.wrap("LoadHistory: ended", err)
	}
	// And the counters, as deltas (a fold may run meanwhile).
	if _, err := s.pool.Exec(ctx, `INSERT INTO run_count_deltas (grp, job, status, n)
		SELECT grp, job, status, count(*) FROM runs WHERE seq > $1 GROUP BY grp, job, status`, before); err != nil {
		return s.wrap("LoadHistory: counts", err)
	}
	if _, err := s.pool.Exec(ctx, "VACUUM (ANALYZE) runs, ended"); err != nil {
		return s.wrap("LoadHistory: vacuum", err)
	}
	// Write the load out now, so that its checkpoint does not land in
	// what is measured next. (Needs superuser or pg_checkpoint: skipped
	// without.)
	_, _ = s.pool.Exec(ctx, "CHECKPOINT")
	return nil
}

func textOrNil(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}
