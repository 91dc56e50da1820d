package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// BenchStore is a store for one benchmark.
type BenchStore struct {
	Store store.Store
	// ServerCPU, if set, returns the CPU time so far of the processes
	// serving Store (false when they cannot be read, e.g. a database on
	// another machine); it is reported per run as ServerCPUUnit.
	ServerCPU     func() (time.Duration, bool)
	ServerCPUUnit string
}

// Bench runs the store benchmarks shared by every backend, each with a
// store from open. They mirror the engine's group commit — one transaction
// per batch of state changes — and report runs/s (wall clock) and
// cpu-µs/run (user+system CPU of the whole process per run, which other
// load on the machine disturbs less than wall time):
//
//	Insert        one transaction inserting 1,000 runs
//	InsertJobRuns 1,000 runs of jobs with slots, 90 naming a taken slot
//	Claim         one transaction claiming 512 queued runs
//	Start         one transaction marking 512 dispatched runs running
//	Finish        one transaction finishing 512 running runs
//	Cycle         insert, claim, start, finish of 512 runs, a transaction each
//	CycleOneTx    the same in one transaction
//	LogAppend     one transaction appending 500 log lines of 8 running
//	              runs, 5 of a run at a time (the log writer's batch);
//	              the unit is lines
//	LogBurst      the same, all of a run's lines together
//	Steady/P=N    the engine's steady state in N concurrent pipelines
func Bench(b *testing.B, open func(b *testing.B) BenchStore) {
	for _, bm := range []struct {
		name  string
		perOp int
		fn    func(bb *bencher)
	}{
		{"Insert", 1000, benchInsert},
		{"InsertJobRuns", 1000, benchInsertJobRuns},
		{"Claim", 512, benchClaim},
		{"Start", 512, benchStart},
		{"Finish", 512, benchFinish},
		{"Cycle", 512, benchCycle},
		{"CycleOneTx", 512, benchCycleOneTx},
		{"LogAppend", logBatchLines, benchLogAppend},
		{"LogBurst", logBatchLines, benchLogBurst},
	} {
		b.Run(bm.name, func(b *testing.B) {
			bb := &bencher{b: b, BenchStore: open(b), now: benchT0}
			b.StopTimer()
			for range b.N {
				bm.fn(bb)
			}
			bb.report(bm.perOp)
		})
	}
	for _, p := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("Steady/P=%d", p), func(b *testing.B) {
			bb := &bencher{b: b, BenchStore: open(b), now: benchT0}
			b.StopTimer()
			bb.measure(func() { benchSteady(bb, p) })
			bb.report(512)
		})
	}
}

var (
	benchPayload = json.RawMessage(`{"cmd":"echo hello","env":{"A":"1"}}`)
	benchResult  = json.RawMessage(`{"exit_code":0,"stdout":"hello\n"}`)
	benchT0      = time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
)

type bencher struct {
	BenchStore
	b         *testing.B
	n         atomic.Int64 // runs inserted so far
	now       time.Time
	logRuns   []*store.Run  // benchLogAppend's running runs
	cpu       time.Duration // CPU time inside measured sections
	serverCPU time.Duration // the server's, likewise
	serverOK  bool
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs fn with the timer and the CPU clocks running.
func (bb *bencher) measure(fn func()) {
	var before time.Duration
	ok := bb.ServerCPU != nil
	if ok {
		before, ok = bb.ServerCPU()
	}
	bb.b.StartTimer()
	c := processCPU()
	fn()
	bb.cpu += processCPU() - c
	bb.b.StopTimer()
	if ok {
		var after time.Duration
		after, ok = bb.ServerCPU()
		bb.serverCPU += after - before
	}
	bb.serverOK = ok
}

func (bb *bencher) report(perOp int) {
	runs := float64(bb.b.N * perOp)
	bb.b.ReportMetric(runs/bb.b.Elapsed().Seconds(), "runs/s")
	bb.b.ReportMetric(float64(bb.cpu.Microseconds())/runs, "cpu-µs/run")
	if bb.serverOK {
		bb.b.ReportMetric(float64(bb.serverCPU.Microseconds())/runs, bb.ServerCPUUnit)
	}
}

func (bb *bencher) tx(fn func(tx store.Tx) error) {
	if err := bb.Store.Tx(context.Background(), fn); err != nil {
		bb.b.Fatal(err)
	}
}

func (bb *bencher) insertParams(n int, now time.Time) []store.RunInsertParams {
	ps := make([]store.RunInsertParams, n)
	for i := range ps {
		ps[i] = store.RunInsertParams{
			ID: fmt.Sprintf("r_%010d", bb.n.Add(1)), Type: "shell", Group: "default", Payload: benchPayload,
			Status: store.StatusQueued, MaxAttempts: 3, Now: now, Routing: "least-recent",
		}
	}
	return ps
}

func (bb *bencher) insert(ps []store.RunInsertParams) {
	bb.tx(func(tx store.Tx) error {
		_, err := tx.RunInsert(context.Background(), ps)
		return err
	})
}

func (bb *bencher) claim(n int) []*store.Run {
	var runs []*store.Run
	bb.tx(func(tx store.Tx) error {
		var err error
		runs, err = tx.RunClaim(context.Background(), benchClaimParams(n, bb.now))
		return err
	})
	if len(runs) != n {
		bb.b.Fatalf("claimed %d, want %d", len(runs), n)
	}
	return runs
}

func (bb *bencher) start(runs []*store.Run) {
	bb.tx(func(tx store.Tx) error {
		ok, err := tx.RunStart(context.Background(), benchStartParams(runs, bb.now))
		if err == nil && !ok[len(ok)-1] {
			err = fmt.Errorf("start rejected")
		}
		return err
	})
}

func (bb *bencher) finish(runs []*store.Run) {
	bb.tx(func(tx store.Tx) error {
		res, err := tx.RunFinish(context.Background(), benchFinishParams(runs, bb.now))
		if err == nil && !res[len(res)-1].Accepted {
			err = fmt.Errorf("finish rejected")
		}
		return err
	})
}

func benchClaimParams(n int, now time.Time) store.RunClaimParams {
	return store.RunClaimParams{Group: "default", Types: []string{"shell"}, Limit: n, ServerID: "srv", Now: now}
}

func benchStartParams(runs []*store.Run, now time.Time) []store.RunStartParams {
	ps := make([]store.RunStartParams, len(runs))
	for i, r := range runs {
		ps[i] = store.RunStartParams{ID: r.ID, Attempt: r.Attempt, WorkerID: "w-1", Now: now}
	}
	return ps
}

func benchFinishParams(runs []*store.Run, now time.Time) []store.RunFinishParams {
	ps := make([]store.RunFinishParams, len(runs))
	for i, r := range runs {
		ps[i] = store.RunFinishParams{ID: r.ID, Attempt: r.Attempt, Status: store.StatusSucceeded,
			Result: benchResult, WorkerID: "w-1", StartedAt: now, Now: now}
	}
	return ps
}

func benchInsert(bb *bencher) {
	bb.now = bb.now.Add(time.Millisecond)
	ps := bb.insertParams(1000, bb.now)
	bb.measure(func() { bb.insert(ps) })
}

// benchInsertJobRuns inserts runs of ten jobs, each with a slot (the
// statement that also checks slots), 90 of them naming the slot of an
// earlier run of the batch.
func benchInsertJobRuns(bb *bencher) {
	bb.now = bb.now.Add(time.Hour)
	ps := bb.insertParams(1000, bb.now)
	for i := range ps {
		ps[i].Job = fmt.Sprintf("job-%d", i%10)
		ps[i].LogicalTime = bb.now.Add(time.Duration(i) * time.Second)
		if i >= 100 && i%100 < 10 {
			ps[i].LogicalTime = ps[i-10].LogicalTime // taken (same job)
		}
	}
	bb.measure(func() { bb.insert(ps) })
}

func benchClaim(bb *bencher) {
	bb.insert(bb.insertParams(512, bb.now))
	bb.measure(func() { bb.claim(512) })
}

func benchStart(bb *bencher) {
	bb.insert(bb.insertParams(512, bb.now))
	runs := bb.claim(512)
	bb.measure(func() { bb.start(runs) })
}

func benchFinish(bb *bencher) {
	bb.insert(bb.insertParams(512, bb.now))
	runs := bb.claim(512)
	bb.start(runs)
	bb.measure(func() { bb.finish(runs) })
}

func benchCycle(bb *bencher) {
	ps := bb.insertParams(512, bb.now)
	bb.measure(func() {
		bb.insert(ps)
		runs := bb.claim(512)
		bb.start(runs)
		bb.finish(runs)
	})
}

func benchCycleOneTx(bb *bencher) {
	ps := bb.insertParams(512, bb.now)
	ctx := context.Background()
	bb.measure(func() {
		bb.tx(func(tx store.Tx) error {
			if _, err := tx.RunInsert(ctx, ps); err != nil {
				return err
			}
			runs, err := tx.RunClaim(ctx, benchClaimParams(512, bb.now))
			if err != nil {
				return err
			}
			if _, err := tx.RunStart(ctx, benchStartParams(runs, bb.now)); err != nil {
				return err
			}
			_, err = tx.RunFinish(ctx, benchFinishParams(runs, bb.now))
			return err
		})
	})
}

// benchSteady is the engine's steady state: every transaction inserts 512
// runs, finishes the runs started by the pipeline's previous transaction,
// starts the runs it claimed, and claims 512 more — in p concurrent
// pipelines on one group (p transactions in flight, as several committers
// or servers would have). Each iteration is one transaction; runs/s counts
// runs inserted.
func benchSteady(bb *bencher, p int) {
	var todo atomic.Int64
	todo.Store(int64(bb.b.N))
	ctx := context.Background()
	var wg sync.WaitGroup
	for range p {
		wg.Go(func() {
			var claimed, started []*store.Run
			for todo.Add(-1) >= 0 {
				now := time.Now()
				ps := bb.insertParams(512, now)
				err := bb.Store.Tx(ctx, func(tx store.Tx) error {
					if _, err := tx.RunInsert(ctx, ps); err != nil {
						return err
					}
					if len(started) > 0 {
						if _, err := tx.RunFinish(ctx, benchFinishParams(started, now)); err != nil {
							return err
						}
					}
					if len(claimed) > 0 {
						if _, err := tx.RunStart(ctx, benchStartParams(claimed, now)); err != nil {
							return err
						}
					}
					got, err := tx.RunClaim(ctx, benchClaimParams(512, now))
					started, claimed = claimed, got
					return err
				})
				if err != nil {
					bb.b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// logBatchLines is the most the engine's log writer puts in one
// transaction.
const logBatchLines = 500

// benchLogAppend appends logBatchLines lines of 8 running runs, five of a
// run after five of the next (a worker's message holds its runs' lines as
// they were printed), each of its own ~80 bytes, with caps the runs never
// reach.
func benchLogAppend(bb *bencher) { bb.logAppend(5) }

// benchLogBurst is benchLogAppend with one run's lines after another's, as
// when a run prints a burst.
func benchLogBurst(bb *bencher) { bb.logAppend(logBatchLines) }

func (bb *bencher) logAppend(block int) {
	if bb.logRuns == nil {
		bb.insert(bb.insertParams(8, bb.now))
		runs := bb.claim(8)
		bb.start(runs)
		bb.logRuns = runs
	}
	lines := make([]store.LogLine, logBatchLines)
	for i := range lines {
		r := bb.logRuns[i/block%len(bb.logRuns)]
		lines[i] = store.LogLine{RunID: r.ID, Attempt: r.Attempt, Time: bb.now, Stream: "stdout",
			Text: fmt.Sprintf("%06d processed batch 42 of the nightly export: 1,000 rows in 12 ms", i)}
	}
	bb.measure(func() {
		err := bb.Store.LogTx(context.Background(), func(tx store.LogTx) error {
			res, err := tx.LogAppend(context.Background(), store.LogAppendParams{Lines: lines, MaxLines: 1 << 40, MaxBytes: 1 << 50})
			if err == nil && (res.Dropped != 0 || res.Fenced != 0) {
				err = fmt.Errorf("LogAppend dropped %d, fenced %d", res.Dropped, res.Fenced)
			}
			return err
		})
		if err != nil {
			bb.b.Fatal(err)
		}
	})
}
