package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/postgres"
)

// The benchmarks mirror the engine's group commit: one transaction per
// batch of state changes. Each reports runs/s (wall clock), cpu-µs/run
// (user+system CPU time of the whole process per run, which other load on
// the machine disturbs less than wall time) and, when PostgreSQL runs on
// this machine, pg-cpu-µs/run (CPU time of the store's server processes,
// from /proc/PID/schedstat).
//
// PostgreSQL runs with its defaults (synchronous_commit on: every commit
// waits for its WAL flush), on the database PLUTO_TEST_POSTGRES names.
//
//	go test -run '^$' -bench . -benchtime 200x ./internal/store/postgres/

var (
	benchPayload = json.RawMessage(`{"cmd":"echo hello","env":{"A":"1"}}`)
	benchResult  = json.RawMessage(`{"exit_code":0,"stdout":"hello\n"}`)
	benchT0      = time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
)

type bencher struct {
	b     *testing.B
	s     *postgres.Store
	app   string // application_name of the store's connections
	ctx   context.Context
	n     int // runs inserted so far
	now   time.Time
	cpu   time.Duration // CPU time inside measured sections
	pgCPU time.Duration // CPU time of the server processes, likewise
	pgOK  bool          // pgCPU could be read
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU returns the CPU time so far of each server process serving the
// store (nil if they cannot be read: PostgreSQL on another machine).
func (bb *bencher) serverCPU() map[int]time.Duration {
	conn, err := pgx.Connect(bb.ctx, testURL)
	if err != nil {
		return nil
	}
	defer conn.Close(bb.ctx)
	rows, err := conn.Query(bb.ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", bb.app)
	if err != nil {
		return nil
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil
	}
	out := map[int]time.Duration{}
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
		if err != nil {
			return nil
		}
		var ns int64
		if _, err := fmt.Sscan(string(b), &ns); err != nil {
			return nil
		}
		out[int(pid)] = time.Duration(ns)
	}
	return out
}

// measure runs fn with the timer and the CPU clocks running.
func (bb *bencher) measure(fn func()) {
	before := bb.serverCPU()
	bb.b.StartTimer()
	c := cpuTime()
	fn()
	bb.cpu += cpuTime() - c
	bb.b.StopTimer()
	after := bb.serverCPU()
	bb.pgOK = before != nil && after != nil
	for pid, t := range after {
		bb.pgCPU += t - before[pid]
	}
}

func (bb *bencher) report(perOp int) {
	runs := float64(bb.b.N * perOp)
	bb.b.ReportMetric(runs/bb.b.Elapsed().Seconds(), "runs/s")
	bb.b.ReportMetric(float64(bb.cpu.Microseconds())/runs, "cpu-µs/run")
	if bb.pgOK {
		bb.b.ReportMetric(float64(bb.pgCPU.Microseconds())/runs, "pg-cpu-µs/run")
	}
}

func newBencher(b *testing.B) *bencher {
	schema := freshSchema(b)
	app := "pluto-bench-" + schema
	s, err := postgres.Open(context.Background(), withParam(b, testURL, "application_name", app), postgres.Options{Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return &bencher{b: b, s: s, app: app, ctx: context.Background(), now: benchT0}
}

func (bb *bencher) tx(fn func(tx store.Tx) error) {
	if err := bb.s.Tx(bb.ctx, fn); err != nil {
		bb.b.Fatal(err)
	}
}

func (bb *bencher) insertParams(n int) []store.RunInsertParams {
	ps := make([]store.RunInsertParams, n)
	for i := range ps {
		bb.n++
		bb.now = bb.now.Add(time.Microsecond)
		ps[i] = store.RunInsertParams{
			ID: fmt.Sprintf("r_%010d", bb.n), Type: "shell", Group: "default", Payload: benchPayload,
			Status: store.StatusQueued, MaxAttempts: 3, Now: bb.now, Routing: "least-recent",
		}
	}
	return ps
}

func (bb *bencher) insert(n int) {
	ps := bb.insertParams(n)
	bb.tx(func(tx store.Tx) error {
		_, err := tx.RunInsert(bb.ctx, ps)
		return err
	})
}

func (bb *bencher) claim(n int) []*store.Run {
	var runs []*store.Run
	bb.tx(func(tx store.Tx) error {
		var err error
		runs, err = tx.RunClaim(bb.ctx, store.RunClaimParams{Group: "default", Types: []string{"shell"}, Limit: n, ServerID: "srv", Now: bb.now})
		return err
	})
	if len(runs) != n {
		bb.b.Fatalf("claimed %d, want %d", len(runs), n)
	}
	return runs
}

func startParams(runs []*store.Run, now time.Time) []store.RunStartParams {
	ps := make([]store.RunStartParams, len(runs))
	for i, r := range runs {
		ps[i] = store.RunStartParams{ID: r.ID, Attempt: r.Attempt, WorkerID: "w-1", Now: now}
	}
	return ps
}

func finishParams(runs []*store.Run, now time.Time) []store.RunFinishParams {
	ps := make([]store.RunFinishParams, len(runs))
	for i, r := range runs {
		ps[i] = store.RunFinishParams{ID: r.ID, Attempt: r.Attempt, Status: store.StatusSucceeded,
			Result: benchResult, WorkerID: "w-1", StartedAt: now, Now: now}
	}
	return ps
}

func (bb *bencher) start(runs []*store.Run) {
	ps := startParams(runs, bb.now)
	bb.tx(func(tx store.Tx) error {
		ok, err := tx.RunStart(bb.ctx, ps)
		if err == nil && !ok[len(ok)-1] {
			err = fmt.Errorf("start rejected")
		}
		return err
	})
}

func (bb *bencher) finish(runs []*store.Run) {
	ps := finishParams(runs, bb.now)
	bb.tx(func(tx store.Tx) error {
		res, err := tx.RunFinish(bb.ctx, ps)
		if err == nil && !res[len(res)-1].Accepted {
			err = fmt.Errorf("finish rejected")
		}
		return err
	})
}

// BenchmarkInsert: one transaction inserting 1,000 runs.
func BenchmarkInsert(b *testing.B) {
	bb := newBencher(b)
	{
		b.StopTimer()
		for range b.N {
			ps := bb.insertParams(1000)
			bb.measure(func() {
				bb.tx(func(tx store.Tx) error {
					_, err := tx.RunInsert(bb.ctx, ps)
					return err
				})
			})
		}
		bb.report(1000)
	}
}

// BenchmarkInsertJobRuns: one transaction inserting 1,000 runs of jobs,
// each with a slot (the statement that also checks slots and fills
// job_live), 90 of them naming the slot of an earlier run of the batch.
func BenchmarkInsertJobRuns(b *testing.B) {
	bb := newBencher(b)
	{
		b.StopTimer()
		for range b.N {
			ps := bb.insertParams(1000)
			for i := range ps {
				ps[i].Job = fmt.Sprintf("job-%d", i%10)
				ps[i].LogicalTime = bb.now.Add(time.Duration(i) * time.Second)
				if i >= 100 && i%100 < 10 {
					ps[i].LogicalTime = ps[i-10].LogicalTime // taken (same job)
				}
			}
			bb.measure(func() {
				bb.tx(func(tx store.Tx) error {
					_, err := tx.RunInsert(bb.ctx, ps)
					return err
				})
			})
		}
		bb.report(1000)
	}
}

// BenchmarkClaim: one transaction claiming 512 queued runs.
func BenchmarkClaim(b *testing.B) {
	bb := newBencher(b)
	{
		b.StopTimer()
		for range b.N {
			bb.insert(512)
			bb.measure(func() { bb.claim(512) })
		}
		bb.report(512)
	}
}

// BenchmarkStart: one transaction marking 512 dispatched runs running.
func BenchmarkStart(b *testing.B) {
	bb := newBencher(b)
	{
		b.StopTimer()
		for range b.N {
			bb.insert(512)
			runs := bb.claim(512)
			bb.measure(func() { bb.start(runs) })
		}
		bb.report(512)
	}
}

// BenchmarkFinish: one transaction finishing 512 running runs.
func BenchmarkFinish(b *testing.B) {
	bb := newBencher(b)
	{
		b.StopTimer()
		for range b.N {
			bb.insert(512)
			runs := bb.claim(512)
			bb.start(runs)
			bb.measure(func() { bb.finish(runs) })
		}
		bb.report(512)
	}
}

// BenchmarkCycle: the whole life of 512 runs, one transaction per step
// (insert, claim, start, finish), as the engine's group commit does it.
func BenchmarkCycle(b *testing.B) {
	bb := newBencher(b)
	{
		b.StopTimer()
		for range b.N {
			bb.measure(func() {
				bb.insert(512)
				runs := bb.claim(512)
				bb.start(runs)
				bb.finish(runs)
			})
		}
		bb.report(512)
	}
}

// BenchmarkCycleOneTx: the whole life of 512 runs in one transaction.
func BenchmarkCycleOneTx(b *testing.B) {
	bb := newBencher(b)
	{
		b.StopTimer()
		for range b.N {
			ps := bb.insertParams(512)
			bb.measure(func() {
				bb.tx(func(tx store.Tx) error {
					if _, err := tx.RunInsert(bb.ctx, ps); err != nil {
						return err
					}
					runs, err := tx.RunClaim(bb.ctx, store.RunClaimParams{Group: "default", Types: []string{"shell"}, Limit: 512, ServerID: "srv", Now: bb.now})
					if err != nil {
						return err
					}
					if _, err := tx.RunStart(bb.ctx, startParams(runs, bb.now)); err != nil {
						return err
					}
					_, err = tx.RunFinish(bb.ctx, finishParams(runs, bb.now))
					return err
				})
			})
		}
		bb.report(512)
	}
}

// BenchmarkSteady is the engine's steady state: every transaction inserts
// 512 runs, finishes the runs started by the pipeline's previous
// transaction, starts the runs it claimed, and claims 512 more — in P
// concurrent pipelines on one group (P transactions in flight, as several
// committers or several servers would have). Each iteration is one
// transaction; runs/s counts runs inserted.
func BenchmarkSteady(b *testing.B) {
	for _, p := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("P=%d", p), func(b *testing.B) {
			bb := newBencher(b)
			b.StopTimer()
			var (
				next atomic.Int64 // run numbers
				todo atomic.Int64 // iterations left
			)
			todo.Store(int64(b.N))
			params := func(n int, now time.Time) []store.RunInsertParams {
				ps := make([]store.RunInsertParams, n)
				for i := range ps {
					ps[i] = store.RunInsertParams{
						ID: fmt.Sprintf("r_%010d", next.Add(1)), Type: "shell", Group: "default", Payload: benchPayload,
						Status: store.StatusQueued, MaxAttempts: 3, Now: now, Routing: "least-recent",
					}
				}
				return ps
			}
			bb.measure(func() {
				var wg sync.WaitGroup
				for range p {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var claimed, started []*store.Run
						for todo.Add(-1) >= 0 {
							now := time.Now()
							ps := params(512, now)
							err := bb.s.Tx(bb.ctx, func(tx store.Tx) error {
								if _, err := tx.RunInsert(bb.ctx, ps); err != nil {
									return err
								}
								if len(started) > 0 {
									if _, err := tx.RunFinish(bb.ctx, finishParams(started, now)); err != nil {
										return err
									}
								}
								if len(claimed) > 0 {
									if _, err := tx.RunStart(bb.ctx, startParams(claimed, now)); err != nil {
										return err
									}
								}
								got, err := tx.RunClaim(bb.ctx, store.RunClaimParams{Group: "default", Types: []string{"shell"}, Limit: 512, ServerID: "srv", Now: now})
								started, claimed = claimed, got
								return err
							})
							if err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
			})
			bb.report(512)
		})
	}
}
