package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"

	"github.com/pluto-sched/pluto/internal/store"
)

// Statistics (migration 00009_stats, store/stats.go). Every Tx method
// that changes a run's status records the change in tx.counts, from what
// its statement returned or the params said: an insert counts the runs it
// wrote (not those refused for their key or slot), a claim, promote,
// unblock, cancel or retry the runs it returned. Starts and finishes, the
// hottest statements, stay plain UPDATEs: a RETURNING clause makes SQLite
// build a temporary table per statement, which doubled their cost
// (BenchmarkStore). Instead the batch's applied runs are counted by one
// aggregate read at its end (countMoved): group, job, and for a finish the
// status it left (prev_status, which the finish sets from the old row).
// flushCounts writes one upsert per touched counter just before COMMIT, so
// a rolled-back transaction changes nothing and a batch of 512 finishes of
// one group and job writes one row. No trigger and no index on status is
// involved. The same read gives the finished children of fan-outs, by
// parent (fanout.go).

func init() {
	wSQL[wCountAdd] = `INSERT INTO run_counts (grp, job, status, n) VALUES (?, ?, ?, ?)
		ON CONFLICT (grp, job, status) DO UPDATE SET n = n + excluded.n`
	// The runs a start or finish batch applied, by id (the runs_id index),
	// grouped: a handful of rows for hundreds of runs.
	// A start's row also says the minute of the start and the latency
	// bucket (rates.go); a finish's the minute of its end.
	// A finish's row also says, for a fan-out's children, their parent
	// (fanout.go): NULL for every other run, so the groups stay as few.
	wSQL[wCountStarted] = `SELECT grp, job, 'dispatched', status, started_at / 60000000, ` + latencyBucketSQL + `, count(*), NULL
		FROM runs WHERE id IN (SELECT value FROM json_each(?)) GROUP BY grp, job, status, 5, 6`
	wSQL[wCountFinished] = `SELECT grp, job, prev_status, status, finished_at / 60000000, 0, count(*),
			CASE WHEN shard_count > 0 THEN parent_id END
		FROM runs WHERE id IN (SELECT value FROM json_each(?)) GROUP BY grp, job, prev_status, status, 5, 8`
	rSQL[rStatsCounts] = `SELECT grp, job, status, n FROM run_counts
		WHERE n <> 0 AND (?1 = '' OR grp = ?1) ORDER BY grp, job, status`
	// The head of the group's next handler type after ?2 (in type order),
	// one seek in runs_claim, whose order this is.
	rSQL[rStatsHead] = `SELECT type, run_at FROM runs
		WHERE status = 'queued' AND grp = ?1 AND type > ?2
		ORDER BY type, priority DESC, run_at, seq LIMIT 1`
	// Pending deliveries, from the partial index runs_callback_due, at most
	// store.CallbacksOwedCap of them.
	rSQL[rCallbacksOwed] = fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM runs
		WHERE callback_next_at IS NOT NULL LIMIT %d)`, store.CallbacksOwedCap)
}

// countByGroupSQL answers RunCountByGroup from the counters.
const countByGroupSQL = `SELECT grp, status, sum(n) FROM run_counts
	GROUP BY grp, status HAVING sum(n) <> 0 ORDER BY grp, status`

// flushCounts writes the transaction's counter changes, in the
// transaction.
func (t *tx) flushCounts() error {
	for _, c := range t.counts.Changes() {
		t.bind()
		t.arg(c.Group)
		t.arg(c.Job)
		t.arg(string(c.Status))
		t.arg(c.Count)
		if _, _, err := t.exec("counts", wCountAdd); err != nil {
			return err
		}
	}
	t.counts.Reset()
	return nil
}

// RunStats implements store.Store.
func (s *Store) RunStats(ctx context.Context, p store.StatsParams) (store.Stats, error) {
	if s.closed.Load() {
		return store.Stats{}, errClosed
	}
	var out store.Stats
	rows, err := s.rs[rStatsCounts].QueryContext(ctx, p.Group)
	if err != nil {
		return out, s.wrap("RunStats", err)
	}
	defer rows.Close()
	var queued []string // groups with queued runs
	for rows.Next() {
		var (
			c      store.RunCount
			status string
		)
		if err := rows.Scan(&c.Group, &c.Job, &status, &c.Count); err != nil {
			return out, s.wrap("RunStats", err)
		}
		c.Status = store.RunStatus(status)
		if c.Status == store.StatusQueued && c.Count > 0 && (len(queued) == 0 || queued[len(queued)-1] != c.Group) {
			queued = append(queued, c.Group)
		}
		if p.Job == "" || c.Job == p.Job {
			out.Counts = append(out.Counts, c)
		}
	}
	if err := rows.Err(); err != nil {
		return out, s.wrap("RunStats", err)
	}
	for _, g := range queued {
		if out.Heads, err = s.queueHeads(ctx, out.Heads, g); err != nil {
			return out, err
		}
	}
	if err := s.rs[rCallbacksOwed].QueryRowContext(ctx).Scan(&out.CallbacksOwed); err != nil {
		return out, s.wrap("RunStats", err)
	}
	return out, s.rates(ctx, p, &out)
}

// queueHeads appends the heads of group's queues, one type at a time (a
// skip scan of runs_claim: one seek per type).
func (s *Store) queueHeads(ctx context.Context, heads []store.QueueHead, group string) ([]store.QueueHead, error) {
	after := ""
	for {
		var (
			h     = store.QueueHead{Group: group}
			runAt int64
		)
		err := s.rs[rStatsHead].QueryRowContext(ctx, group, after).Scan(&h.Type, &runAt)
		if err == sql.ErrNoRows {
			return heads, nil
		}
		if err != nil {
			return heads, s.wrap("RunStats", err)
		}
		h.RunAt = fromMicro(runAt)
		heads = append(heads, h)
		after = h.Type
	}
}

// countMoved counts the runs whose ids RunStart or RunFinish collected in
// t.moved (one aggregate read, statement st) and empties the list: in the
// counters, in the throughput buckets (finishes to a terminal status) or
// the latency histogram (starts), and in their parents' fan-out rows
// (children that ended, fanout.go).
func (t *tx) countMoved(op string, st wStmt) error {
	if len(*t.moved) == 0 {
		return nil
	}
	ids, err := json.Marshal(*t.moved)
	*t.moved = (*t.moved)[:0]
	if err != nil {
		return err
	}
	t.bind()
	t.arg(string(ids))
	var children []fanoutMove
	err = t.query(op, st, 8, func(v []driver.Value) {
		n, _ := v[6].(int64)
		grp, job, from, to := asString(v[0]), asString(v[1]), store.RunStatus(asString(v[2])), store.RunStatus(asString(v[3]))
		t.counts.Add(grp, job, from, -n)
		t.counts.Add(grp, job, to, n)
		if st == wCountStarted {
			t.rates.Started(grp, asInt(v[4]), int(asInt(v[5])), n)
		} else if v[4] != nil {
			t.rates.EndedIn(grp, job, to, asInt(v[4]), n)
		}
		if v[7] != nil {
			children = append(children, fanoutMove{asString(v[7]), from, to, n})
		}
	})
	if err != nil {
		return err
	}
	return t.countChildren(op, children...)
}
