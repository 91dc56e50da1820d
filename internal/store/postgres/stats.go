package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/internal/store"
)

// Statistics (migration 00008_stats, store/stats.go). Every Tx method
// that changes a run's status records the change in tx.counts, from what
// its statement returned or the params said: inserts count the rows they
// wrote (not those refused for a key or slot), claims, promotes, unblocks
// and lost-run requeues the rows they returned (a requeue also returns
// the status each run left, read under the run's lock), cancels and
// retries the run they locked first, starts and finishes the rows their
// UPDATE … RETURNING gave back (a finish's prev_status is set from the old
// row in the same UPDATE). Every such statement re-checks the status
// under the run's lock, so concurrent transactions never count one change
// twice.
//
// At commit the deltas go to run_count_deltas, one row per touched
// counter, in the round trip of COMMIT: an append conflicts with no other
// transaction's, where an upsert of shared counter rows would serialise
// every server's batches on the hot counters (and could deadlock, two
// batches locking them in different orders). Roughly once a second per
// server a commit also folds the deltas into run_counts; the fold takes a
// transaction-level advisory lock with pg_try_advisory_xact_lock and is
// skipped when another server holds it, so folds never wait for each
// other. Reads add run_counts and the unfolded deltas in one statement.

// foldEvery is how often a server folds the deltas, at most
// (Store.foldEvery; tests fold more often).
const foldEvery = time.Second

const (
	// sqlStatsCounts: the counters of group $1 ("" for all), folded and
	// not yet folded, from one snapshot (one statement). They are summed
	// and sorted in Go: at 2,000 counters PostgreSQL's numeric sum and
	// sort took 5 ms, a plain read of the table 1 ms.
	sqlStatsCounts = `SELECT grp, job, status, n FROM run_counts WHERE $1 = '' OR grp = $1
		UNION ALL
		SELECT grp, job, status, sum(n)::int8 FROM run_count_deltas WHERE $1 = '' OR grp = $1
		GROUP BY grp, job, status`

	sqlCountByGroup = `SELECT grp, status, sum(n)::int8 FROM (
			SELECT grp, status, n FROM run_counts
			UNION ALL
			SELECT grp, status, n FROM run_count_deltas) AS c
		GROUP BY grp, status HAVING sum(n) <> 0
		ORDER BY grp, status`

	// sqlStatsHead: the head of group $1's queue of the next handler type
	// after $2, one seek in queue_order.
	sqlStatsHead = `SELECT type, run_at FROM queue WHERE grp = $1 AND type > $2
		ORDER BY grp, type, priority DESC, run_at, seq LIMIT 1`

	// sqlFold moves the deltas into the counters, if this transaction
	// gets the fold lock ($1) without waiting. Deltas committed after the
	// statement's snapshot stay for the next fold; a delta another fold
	// deleted meanwhile is skipped by the DELETE, never counted twice.
	//
	// run_count_deltas has no index, so the DELETE scans it (it is small:
	// what a second of commits appended); the write transaction's
	// enable_seqscan = off (tx.go) would price that scan so high that the
	// planner compiles the statement with JIT, 200 ms, so the fold turns
	// sequential scans back on for the rest of the transaction (COMMIT
	// follows).
	sqlFold = `SET LOCAL enable_seqscan = on; WITH d AS (
			DELETE FROM run_count_deltas WHERE (SELECT pg_try_advisory_xact_lock(%d))
			RETURNING grp, job, status, n)
		INSERT INTO run_counts (grp, job, status, n)
		SELECT grp, job, status, sum(n) FROM d GROUP BY grp, job, status ORDER BY grp, job, status
		ON CONFLICT (grp, job, status) DO UPDATE SET n = run_counts.n + excluded.n; `
)

var sqlCallbacksOwed = fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM callbacks LIMIT %d) AS c`, store.CallbacksOwedCap)

// countsSQL is the statement (ending with "; ") that writes the
// transaction's counter changes, and folds them when due, or "" when
// there are none. It runs in the simple protocol together with COMMIT;
// groups and jobs are dollar-quoted (quoteLiteral), statuses are known
// words.
func (t *tx) countsSQL() string {
	changes := t.counts.Changes()
	if len(changes) == 0 && t.rates.Empty() {
		return ""
	}
	var b strings.Builder
	if len(changes) > 0 {
		b.WriteString("INSERT INTO run_count_deltas (grp, job, status, n) VALUES ")
		for i, c := range changes {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			b.WriteString(quoteLiteral(c.Group))
			b.WriteString(", ")
			b.WriteString(quoteLiteral(c.Job))
			b.WriteString(", '")
			b.WriteString(string(c.Status)) // one of store.AllStatuses
			b.WriteString("', ")
			b.WriteString(strconv.FormatInt(c.Count, 10))
			b.WriteByte(')')
		}
		b.WriteString("; ")
	}
	t.ratesSQL(&b)
	if t.s.foldDue(time.Now()) {
		fmt.Fprintf(&b, sqlFold, t.s.foldLockID())
		fmt.Fprintf(&b, sqlFoldRates, t.s.foldLockID())
		b.WriteString(sqlFoldFanouts) // fanout.go
	}
	return b.String()
}

// foldDue reports whether this server's next commit should fold (about
// once per foldEvery), and if so marks it done.
func (s *Store) foldDue(now time.Time) bool {
	last := s.lastFold.Load()
	if now.UnixNano()-last < int64(s.foldEvery) {
		return false
	}
	return s.lastFold.CompareAndSwap(last, now.UnixNano())
}

// foldLockID is the advisory lock of the fold; advisory locks are per
// database, so the schema is part of it.
func (s *Store) foldLockID() int64 {
	sum := sha256.Sum256([]byte("pluto stats fold " + s.schema))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// RunStats implements store.Store.
func (s *Store) RunStats(ctx context.Context, p store.StatsParams) (store.Stats, error) {
	if s.closed.Load() {
		return store.Stats{}, errClosed
	}
	var out store.Stats
	rows, err := s.pool.Query(ctx, sqlStatsCounts, p.Group)
	if err != nil {
		return out, s.wrap("RunStats", err)
	}
	var (
		sums   = make(map[store.CountKey]int64)
		c      store.RunCount
		status string
	)
	_, err = pgx.ForEachRow(rows, []any{&c.Group, &c.Job, &status, &c.Count}, func() error {
		sums[store.CountKey{Group: c.Group, Job: c.Job, Status: store.RunStatus(status)}] += c.Count
		return nil
	})
	if err != nil {
		return out, s.wrap("RunStats", err)
	}
	var queued []string // groups with queued runs, whatever the job
	for _, c := range store.SortedCounts(sums) {
		if c.Status == store.StatusQueued && c.Count > 0 && (len(queued) == 0 || queued[len(queued)-1] != c.Group) {
			queued = append(queued, c.Group)
		}
		if p.Job == "" || c.Job == p.Job {
			out.Counts = append(out.Counts, c)
		}
	}
	for _, g := range queued {
		if out.Heads, err = s.queueHeads(ctx, out.Heads, g); err != nil {
			return out, err
		}
	}
	if err := s.pool.QueryRow(ctx, sqlCallbacksOwed).Scan(&out.CallbacksOwed); err != nil {
		return out, s.wrap("RunStats", err)
	}
	return out, s.rates(ctx, p, &out)
}

// queueHeads appends the heads of group's queues, one type at a time (a
// skip scan of queue_order: one seek per type).
func (s *Store) queueHeads(ctx context.Context, heads []store.QueueHead, group string) ([]store.QueueHead, error) {
	after := ""
	for {
		h := store.QueueHead{Group: group}
		err := s.pool.QueryRow(ctx, sqlStatsHead, group, after).Scan(&h.Type, &h.RunAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return heads, nil
		}
		if err != nil {
			return heads, s.wrap("RunStats", err)
		}
		h.RunAt = utc(h.RunAt)
		heads = append(heads, h)
		after = h.Type
	}
}
