package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pluto-sched/pluto/internal/store"
)

// TestSideTablesConsistent drives runs through every transition from
// several goroutines at once (as several servers would), then checks that
// the queue, pending, active, blocked and job_live tables hold exactly the
// queued, pending, active, blocked and live runs of jobs, with their
// current keys. Some runs belong to jobs, with slots that collide across
// transactions; jobs j0, j1 and q0 have rows (cron ticks lock them), j2
// and q1 have none. The runs of q0 and q1 are mostly blocked, in a group
// of their own that drains, so that the queue policy releases them. Each
// round also creates a fan-out, whose children go through it all, and
// finishes or cancels earlier parents; some runs have a split, and about
// half of those a worker holds expand (FanoutExpand) into children: no
// parent is ever in queue, pending or active, and each fan-out's counters
// (folded and not) are its children's.
func TestSideTablesConsistent(t *testing.T) {
	s := openInternal(t)
	// Bounds every transaction, so that a store that blocks fails the test
	// (below) instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	jobs := []string{"", "", "j0", "j1", "q0", "j2", "q1"}
	if err := s.Tx(ctx, func(tx store.Tx) error {
		for _, name := range jobs[2:5] {
			j := store.Job{Name: name, Type: "a", Group: "g", Schedule: "* * * * * *", NextFire: base}
			if _, _, err := tx.JobPut(ctx, store.JobPutParams{Job: j, Now: base}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const workers, rounds, perRound = 4, 40, 25
	var (
		wg        sync.WaitGroup
		unblocked atomic.Int64
		expanded  atomic.Int64
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			server := fmt.Sprintf("srv-%d", w%2)
			var mine []*store.Run // runs this worker claimed
			for r := range rounds {
				now := base.Add(time.Duration(r) * time.Second)
				var (
					err    error
					before = slices.Clone(mine)
				)
				for try := 0; ; try++ {
					mine = slices.Clone(before)
					err = s.Tx(ctx, func(tx store.Tx) error {
						var ps []store.RunInsertParams
						for i := range perRound {
							p := store.RunInsertParams{ID: fmt.Sprintf("w%d-r%d-%d", w, r, i), Type: []string{"a", "b"}[i%2],
								Group: "g", Priority: rng.IntN(3), Status: store.StatusQueued, Now: now, RunAt: now.Add(-time.Duration(rng.IntN(5)) * time.Second)}
							switch rng.IntN(7) {
							case 0:
								p.Status, p.RunAt = store.StatusPending, now.Add(time.Duration(rng.IntN(5))*time.Second)
							case 1:
								p.Status = store.StatusBlocked
							case 2:
								p.Status, p.Error = store.StatusSkipped, "skipped"
							}
							if rng.IntN(4) == 0 {
								p.Key = fmt.Sprintf("k%d", rng.IntN(200))
							}
							if rng.IntN(3) == 0 {
								p.CallbackURL = "http://hook/"
							}
							if p.Job = jobs[rng.IntN(len(jobs))]; p.Job != "" && rng.IntN(2) == 0 {
								p.LogicalTime = base.Add(time.Duration(rng.IntN(300)) * time.Second)
							}
							if p.Job == "q0" || p.Job == "q1" {
								p.Group, p.Status = "q", store.StatusBlocked
								if rng.IntN(10) == 0 {
									p.Status = store.StatusQueued
								}
							}
							if rng.IntN(8) == 0 {
								p.Split = &store.Split{Shards: 2}
							}
							ps = append(ps, p)
						}
						if _, err := tx.RunInsert(ctx, ps); err != nil {
							return err
						}
						if err := fanoutRound(ctx, tx, rng, w, r, now, jobs); err != nil {
							return err
						}
						// Act on runs claimed earlier: start, finish in every way.
						var starts []store.RunStartParams
						var fins []store.RunFinishParams
						var adopts []store.RunAdoptParams
						keep := mine[:0]
						for _, run := range mine {
							if run.Split != nil && run.Attempt == 1 && rng.IntN(2) == 0 {
								// Not applied if another server adopted it or a
								// cancel took it meanwhile. At attempt 1 only: the
								// parent takes the attempt before its claim, and
								// this test's unfenced reports of a stale attempt
								// would finish a parent at attempt 1 or more (the
								// engine never gives a split run to a worker).
								ep := store.FanoutExpandParams{ID: run.ID, Attempt: run.Attempt, ServerID: server, MinSuccess: 1, Now: now}
								for c := range 2 {
									ep.Children = append(ep.Children, store.RunInsertParams{ID: fmt.Sprintf("%s-a%d-c%d", run.ID, run.Attempt, c),
										Type: []string{"a", "b"}[c], Group: "g", Status: store.StatusQueued, MaxAttempts: 2, Now: now})
								}
								parent, _, err := tx.FanoutExpand(ctx, ep)
								if err != nil {
									return err
								}
								if parent != nil {
									expanded.Add(1)
								}
								continue
							}
							switch rng.IntN(8) {
							case 0:
								starts = append(starts, store.RunStartParams{ID: run.ID, Attempt: run.Attempt, WorkerID: "w", Now: now})
								keep = append(keep, run)
							case 1:
								fins = append(fins, store.RunFinishParams{ID: run.ID, Attempt: run.Attempt, Status: store.StatusQueued, ServerID: server, Now: now})
							case 2:
								fins = append(fins, store.RunFinishParams{ID: run.ID, Attempt: run.Attempt, Status: store.StatusPending, RunAt: now.Add(2 * time.Second), Failure: true, Now: now})
							case 3:
								fins = append(fins, store.RunFinishParams{ID: run.ID, Attempt: run.Attempt, Status: store.StatusFailed, Failure: true, Now: now})
							case 4:
								adopts = append(adopts, store.RunAdoptParams{ID: run.ID, Attempt: run.Attempt, ServerID: "srv-x"})
								keep = append(keep, run)
							case 5:
								if _, err := tx.RunCancel(ctx, store.RunCancelParams{ID: run.ID, Now: now}); err != nil {
									return err
								}
							default:
								fins = append(fins, store.RunFinishParams{ID: run.ID, Attempt: run.Attempt, Status: store.StatusSucceeded, Now: now})
							}
						}
						mine = keep
						if _, err := tx.RunStart(ctx, starts); err != nil {
							return err
						}
						if _, err := tx.RunFinish(ctx, fins); err != nil {
							return err
						}
						if _, err := tx.RunAdopt(ctx, adopts); err != nil {
							return err
						}
						// Cancel and retry some runs of other workers, whatever their state
						// (children of fan-outs among them).
						for range 3 {
							id := fmt.Sprintf("w%d-r%d-%d", rng.IntN(workers), rng.IntN(r+1), rng.IntN(perRound))
							if rng.IntN(3) == 0 {
								id = fmt.Sprintf("w%d-f%d-c%d", rng.IntN(workers), rng.IntN(r+1), rng.IntN(4))
							}
							if rng.IntN(2) == 0 {
								if _, err := tx.RunCancel(ctx, store.RunCancelParams{ID: id, Now: now}); err != nil && !isRefusal(err) {
									return err
								}
							} else if _, err := tx.RunRetry(ctx, store.RunRetryParams{ID: id, Now: now}); err != nil && !isRefusal(err) {
								return err
							}
						}
						if _, err := tx.RunPromote(ctx, store.RunPromoteParams{Now: now, Limit: 10}); err != nil {
							return err
						}
						// Deliveries: claim some, record most (the others' leases lapse).
						lease := now.Add(3 * time.Second)
						due, err := tx.CallbackListDue(ctx, store.CallbackListDueParams{Now: now, LeaseUntil: lease, Limit: 1 + rng.IntN(5)})
						if err != nil {
							return err
						}
						var recs []store.CallbackRecordParams
						for _, d := range due {
							rec := store.CallbackRecordParams{ID: d.ID, Attempt: d.Callback.Attempts, Lease: lease, Now: now}
							switch rng.IntN(4) {
							case 0:
								continue
							case 1:
								rec.State, rec.NextAt, rec.Error = store.CallbackPending, now.Add(time.Second), "500"
							case 2:
								rec.State, rec.Error = store.CallbackFailed, "expired"
							default:
								rec.State = store.CallbackDelivered
							}
							recs = append(recs, rec)
						}
						if _, err := tx.CallbackRecord(ctx, recs); err != nil {
							return err
						}
						// A cron tick, and the queue policy releasing blocked runs.
						if rng.IntN(3) == 0 {
							due, err := tx.JobListDue(ctx, store.JobListDueParams{Now: now, Limit: 2})
							if err != nil {
								return err
							}
							for _, j := range due {
								if _, err := tx.RunListActiveForJob(ctx, j.Name, 10); err != nil {
									return err
								}
								if _, err := tx.JobAdvance(ctx, []store.JobAdvanceParams{{Name: j.Name, From: j.NextFire, To: now.Add(time.Second), Now: now}}); err != nil {
									return err
								}
							}
						}
						for _, j := range []string{"q0", "q1", jobs[rng.IntN(len(jobs))]} {
							r, err := tx.RunUnblockNext(ctx, j, now)
							if err != nil {
								return err
							}
							if r != nil {
								unblocked.Add(1)
							}
						}
						if r%5 == 4 {
							if _, err := tx.RunRequeueLost(ctx, store.RunRequeueLostParams{StaleBefore: now, Limit: 20, Now: now}); err != nil {
								return err
							}
						}
						got, err := tx.RunClaim(ctx, store.RunClaimParams{Group: "g", Types: []string{"a", "b"}, Limit: 1 + rng.IntN(20), ServerID: server, Now: now})
						if err != nil {
							return err
						}
						mine = append(mine, got...)
						got, err = tx.RunClaim(ctx, store.RunClaimParams{Group: "q", Types: []string{"a", "b"}, Limit: 1 + rng.IntN(10), ServerID: server, Now: now})
						mine = append(mine, got...)
						return err
					})
					// Transactions that change the same runs in different orders
					// deadlock now and then; PostgreSQL aborts one, which retries.
					var pe *pgconn.PgError
					if errors.As(err, &pe) && pe.Code == "40P01" && try < 10 {
						continue
					}
					break
				}
				if err != nil {
					var pe *pgconn.PgError
					if errors.As(err, &pe) {
						t.Logf("detail: %s", pe.Detail)
					}
					t.Errorf("worker %d round %d: %v", w, r, err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3*time.Minute + 10*time.Second):
		t.Fatal("the workers did not finish within 3 minutes")
	}
	checkSideTables(t, s)
	t.Logf("%d runs unblocked, %d expanded", unblocked.Load(), expanded.Load())
	var delivered, failed, pendingCB, callbackRows int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE callback_state = 'delivered'),
		count(*) FILTER (WHERE callback_state = 'failed'), count(*) FILTER (WHERE callback_state = 'pending'),
		(SELECT count(*) FROM callbacks) FROM runs`).Scan(&delivered, &failed, &pendingCB, &callbackRows); err != nil {
		t.Fatal(err)
	}
	t.Logf("deliveries: %d delivered, %d failed, %d pending; %d callbacks rows", delivered, failed, pendingCB, callbackRows)
	var fanouts, fanoutsDone, deltas, ended int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE done), (SELECT count(*) FROM fanout_deltas),
		(SELECT count(*) FROM runs WHERE shard_count > 0 AND parent_id <> ''
			AND status IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'skipped')) FROM fanouts`).Scan(
		&fanouts, &fanoutsDone, &deltas, &ended); err != nil {
		t.Fatal(err)
	}
	t.Logf("fan-outs: %d, %d done; %d children ended; %d unfolded deltas", fanouts, fanoutsDone, ended, deltas)
}

// fanoutRound creates a fan-out of worker w in round r (some of a job,
// some keyed, children in every insert status), and acts on the parents
// of earlier rounds: reads their join state (a fold), finishes or cancels
// some.
func fanoutRound(ctx context.Context, tx store.Tx, rng *rand.Rand, w, r int, now time.Time, jobs []string) error {
	p := store.FanoutCreateParams{MinSuccess: 1 + rng.IntN(4), Parent: store.RunInsertParams{ID: fmt.Sprintf("w%d-f%d", w, r),
		Type: "split", Group: "g", Status: store.StatusRunning, Now: now}}
	if rng.IntN(2) == 0 {
		p.Parent.Job = jobs[rng.IntN(len(jobs))]
	}
	if rng.IntN(4) == 0 {
		p.Parent.Key = fmt.Sprintf("fk%d", rng.IntN(50))
	}
	for i := range 4 {
		c := store.RunInsertParams{ID: fmt.Sprintf("w%d-f%d-c%d", w, r, i), Type: []string{"a", "b"}[i%2], Group: "g",
			Status: store.StatusQueued, MaxAttempts: 2, Now: now}
		switch rng.IntN(6) {
		case 0:
			c.Status, c.RunAt = store.StatusPending, now.Add(time.Duration(rng.IntN(5))*time.Second)
		case 1:
			c.Status, c.Error = store.StatusSkipped, "skipped"
		}
		p.Children = append(p.Children, c)
	}
	if _, err := tx.FanoutCreate(ctx, p); err != nil {
		return err
	}
	for range 2 {
		id := fmt.Sprintf("w%d-f%d", rng.IntN(4), rng.IntN(r+1))
		if _, err := tx.FanoutGet(ctx, id); err != nil && !isRefusal(err) {
			return err
		}
		var err error
		switch rng.IntN(6) {
		case 0:
			_, err = tx.FanoutFinish(ctx, store.FanoutFinishParams{ParentID: id, Status: store.StatusSucceeded, Now: now})
		case 1:
			_, err = tx.FanoutFinish(ctx, store.FanoutFinishParams{ParentID: id, Status: store.StatusFailed, Error: "x", Now: now})
		case 2:
			_, err = tx.RunCancel(ctx, store.RunCancelParams{ID: id, Now: now})
		}
		if err != nil && !isRefusal(err) {
			return err
		}
	}
	return nil
}

func isRefusal(err error) bool {
	return err != nil && (errorsIs(err, store.ErrNotFound) || errorsIs(err, store.ErrConflict))
}

// checkSideTables fails the test unless queue, pending and active mirror
// runs exactly.
func checkSideTables(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for _, c := range []struct{ what, sql string }{
		{"queued runs missing from queue or with other keys", `SELECT r.id FROM runs r WHERE r.status = 'queued' AND NOT EXISTS (
			SELECT 1 FROM queue q WHERE q.seq = r.seq AND q.grp = r.grp AND q.type = r.type AND q.priority = r.priority AND q.run_at = r.run_at)`},
		// A queue row may outlive its run's queued state when a cancel found
		// it locked by a claimer that then left it (a claim for several types
		// locks the head of each); the next claim that reaches it drops it,
		// so such rows are not checked.
		{"pending runs missing from pending", `SELECT r.id FROM runs r WHERE r.status = 'pending' AND NOT EXISTS (
			SELECT 1 FROM pending p WHERE p.seq = r.seq AND p.run_at = r.run_at)`},
		{"pending rows of runs not pending, or twice", `SELECT p.seq::text FROM pending p LEFT JOIN runs r ON r.seq = p.seq
			WHERE r.status IS DISTINCT FROM 'pending' OR (SELECT count(*) FROM pending p2 WHERE p2.seq = p.seq) > 1`},
		{"active runs missing from active", `SELECT r.id FROM runs r WHERE r.status IN ('dispatched', 'running') AND NOT EXISTS (
			SELECT 1 FROM active a WHERE a.seq = r.seq AND a.server_id = r.server_id)
			AND NOT (r.shard_count > 0 AND r.parent_id = '')`},
		// A fan-out's parent runs held by no server, never queued; it has
		// no split (an expanded run's is cleared).
		{"parents in queue, pending or active", `SELECT r.id FROM runs r WHERE r.shard_count > 0 AND r.parent_id = ''
			AND (r.server_id IS NOT NULL OR r.worker_id <> '' OR r.attempt <> 0 OR r.split IS NOT NULL
				OR r.status NOT IN ('running', 'succeeded', 'failed', 'cancelled')
				OR EXISTS (SELECT 1 FROM queue q WHERE q.seq = r.seq) OR EXISTS (SELECT 1 FROM pending p WHERE p.seq = r.seq)
				OR EXISTS (SELECT 1 FROM active a WHERE a.seq = r.seq))`},
		{"fan-out counters not the children's", `SELECT f.parent_id FROM fanouts f
			LEFT JOIN LATERAL (SELECT coalesce(sum(ended), 0) AS ended, coalesce(sum(failed), 0) AS failed
				FROM fanout_deltas d WHERE d.parent_id = f.parent_id) AS d ON true
			LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE c.status IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'skipped')) AS ended,
					count(*) FILTER (WHERE c.status IN ('failed', 'cancelled', 'timed_out', 'skipped')) AS failed
				FROM runs c WHERE c.parent_id = f.parent_id AND c.shard_count > 0) AS c ON true
			WHERE f.ended + d.ended <> c.ended OR f.failed + d.failed <> c.failed`},
		{"fan-outs done while their parent runs, or open after", `SELECT f.parent_id FROM fanouts f JOIN runs r ON r.id = f.parent_id
			WHERE f.done = (r.status = 'running')`},
		{"active rows of runs not active", `SELECT a.seq::text FROM active a LEFT JOIN runs r ON r.seq = a.seq
			WHERE r.status NOT IN ('dispatched', 'running') OR r.status IS NULL OR r.server_id IS DISTINCT FROM a.server_id`},
		{"server_id set on runs not active", `SELECT id FROM runs WHERE server_id IS NOT NULL AND status NOT IN ('dispatched', 'running')`},
		{"blocked runs missing from blocked", `SELECT r.id FROM runs r WHERE r.status = 'blocked' AND NOT EXISTS (
			SELECT 1 FROM blocked b WHERE b.seq = r.seq AND b.job = r.job)`},
		{"blocked rows of runs not blocked", `SELECT b.seq::text FROM blocked b LEFT JOIN runs r ON r.seq = b.seq
			WHERE r.status IS DISTINCT FROM 'blocked' OR r.job <> b.job`},
		{"live runs of jobs missing from job_live", `SELECT r.id FROM runs r
			WHERE r.job <> '' AND r.status IN ('pending', 'queued', 'dispatched', 'running') AND NOT EXISTS (
				SELECT 1 FROM job_live l WHERE l.seq = r.seq AND l.job = r.job)`},
		{"job_live rows of runs not live, or of no job", `SELECT l.seq::text FROM job_live l LEFT JOIN runs r ON r.seq = l.seq
			WHERE r.status IS NULL OR r.status NOT IN ('pending', 'queued', 'dispatched', 'running') OR r.job <> l.job OR l.job = ''`},
		{"skipped runs not finished", `SELECT id FROM runs WHERE status = 'skipped' AND finished_at IS NULL`},
		// An ended row may outlive its run's end (a retry raced the
		// finish); lists re-test the status.
		{"runs that ended badly missing from ended", `SELECT r.id FROM runs r
			WHERE r.status IN (` + endedStatuses + `) AND NOT EXISTS (SELECT 1 FROM ended e WHERE e.seq = r.seq)`},
		// A callbacks row may outlive its run's pending delivery (a retry
		// found it locked by a claim); the next claim drops it.
		{"pending deliveries missing from callbacks", `SELECT r.id FROM runs r WHERE r.callback_state = 'pending' AND NOT EXISTS (
			SELECT 1 FROM callbacks c WHERE c.seq = r.seq AND c.next_at = r.callback_next_at)`},
		{"terminal runs with a callback URL owing nothing", `SELECT id FROM runs WHERE callback_url IS NOT NULL AND callback_state = ''
			AND status IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'skipped')`},
		{"unfinished runs with a delivery state", `SELECT id FROM runs WHERE callback_state <> ''
			AND status NOT IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'skipped')`},
		{"next_at set unless pending", `SELECT id FROM runs WHERE (callback_next_at IS NOT NULL) <> (callback_state = 'pending')`},
	} {
		rows, err := s.pool.Query(ctx, c.sql)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		bad, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if len(bad) > 0 {
			t.Errorf("%s: %v", c.what, bad)
		}
	}
	var counts [7]int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM queue),
		(SELECT count(*) FROM pending), (SELECT count(*) FROM active), (SELECT count(*) FROM blocked),
		(SELECT count(*) FROM job_live), (SELECT count(*) FROM runs WHERE logical_time IS NOT NULL AND job <> '')`).Scan(
		&counts[0], &counts[1], &counts[2], &counts[3], &counts[4], &counts[5], &counts[6]); err != nil {
		t.Fatal(err)
	}
	t.Logf("runs %d, queued %d, pending %d, active %d, blocked %d, live runs of jobs %d, runs with slots %d",
		counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6])
}

var errorsIs = errors.Is
