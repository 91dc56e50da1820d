package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/internal/store"
)

// Log lines and their per-run caps: two round trips per append, however
// many runs and lines it holds.

const (
	// sqlLogLock creates the counters of the known runs among $1 and locks
	// them, in run id order, returning their values and the runs' current
	// attempts. The no-op update of an existing row is what locks it (and
	// returns its values); unknown runs return nothing.
	sqlLogLock = `WITH s AS (
			INSERT INTO run_log_stats (run_id)
			SELECT r.id FROM runs AS r WHERE r.id = ANY ($1::text[]) ORDER BY r.id
			ON CONFLICT (run_id) DO UPDATE SET run_id = excluded.run_id
			RETURNING run_id, lines, bytes, dropped)
		SELECT s.run_id, r.attempt, s.lines, s.bytes, s.dropped FROM s JOIN runs AS r ON r.id = s.run_id`
	// sqlLogWrite inserts the kept lines in order and sets the counters.
	sqlLogWrite = `WITH l AS (
			INSERT INTO run_logs (run_id, attempt, time, stream, level, text)
			SELECT u.run_id, u.attempt, u.time, u.stream, u.level, u.text
			FROM unnest($1::text[], $2::int4[], $3::timestamptz[], $4::text[], $5::text[], $6::text[])
				WITH ORDINALITY AS u(run_id, attempt, time, stream, level, text, ord)
			ORDER BY u.ord)
		UPDATE run_log_stats AS s SET lines = c.lines, bytes = c.bytes, dropped = c.dropped
		FROM unnest($7::text[], $8::int8[], $9::int8[], $10::int8[]) AS c(run_id, lines, bytes, dropped)
		WHERE s.run_id = c.run_id`
	sqlLogStats = `SELECT lines, bytes, dropped FROM run_log_stats WHERE run_id = $1`
)

// LogAppend implements store.LogTx: the touched runs' counters are locked
// and read, store.PlanLogAppend decides, and the kept lines and the new
// counters are written in one statement.
func (t *tx) LogAppend(ctx context.Context, p store.LogAppendParams) (store.LogAppendResult, error) {
	if err := t.check(ctx); err != nil {
		return store.LogAppendResult{}, err
	}
	if len(p.Lines) == 0 && len(p.Dropped) == 0 {
		return store.LogAppendResult{}, nil
	}
	rows, err := t.q.Query(ctx, sqlLogLock, p.RunIDs())
	if err != nil {
		return store.LogAppendResult{}, t.s.wrap("LogAppend", err)
	}
	states := map[string]store.LogRunState{}
	var (
		id string
		st store.LogRunState
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &st.Attempt, &st.Stats.Lines, &st.Stats.Bytes, &st.Stats.Dropped}, func() error {
		states[id] = st
		return nil
	})
	if err != nil {
		return store.LogAppendResult{}, t.s.wrap("LogAppend", err)
	}
	plan := store.PlanLogAppend(&p, states)
	n := len(plan.Keep)
	var (
		runIDs, streams, levels, texts = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		attempts                       = make([]int32, n)
		times                          = make([]time.Time, n)
	)
	for i := range plan.Keep {
		l := &plan.Keep[i]
		runIDs[i], attempts[i], times[i], streams[i], levels[i], texts[i] = l.RunID, int32(l.Attempt), l.Time, cleanText(l.Stream), cleanText(l.Level), cleanText(l.Text)
	}
	var (
		ids                   []string
		lines, bytes, dropped []int64
	)
	for id, c := range plan.Stats {
		if c != states[id].Stats {
			ids, lines, bytes, dropped = append(ids, id), append(lines, c.Lines), append(bytes, c.Bytes), append(dropped, c.Dropped)
		}
	}
	if n == 0 && len(ids) == 0 {
		return plan.Result, nil
	}
	if _, err := t.q.Exec(ctx, sqlLogWrite, runIDs, attempts, times, streams, levels, texts, ids, lines, bytes, dropped); err != nil {
		return store.LogAppendResult{}, t.s.wrap("LogAppend", err)
	}
	return plan.Result, nil
}

// LogStats implements store.Store.
func (s *Store) LogStats(ctx context.Context, runID string) (store.LogStats, error) {
	if s.closed.Load() {
		return store.LogStats{}, errClosed
	}
	var c store.LogStats
	err := s.pool.QueryRow(ctx, sqlLogStats, runID).Scan(&c.Lines, &c.Bytes, &c.Dropped)
	if err == pgx.ErrNoRows {
		return store.LogStats{}, nil
	}
	if err != nil {
		return store.LogStats{}, s.wrap("LogStats", err)
	}
	return c, nil
}
