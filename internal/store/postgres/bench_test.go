package postgres_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/postgres"
	"github.com/pluto-sched/pluto/internal/store/storetest"
)

// BenchmarkStore runs the shared store benchmarks (storetest.Bench), each
// in a fresh schema of the database PLUTO_TEST_POSTGRES names, with
// PostgreSQL's defaults (synchronous_commit on: every commit waits for its
// WAL flush). When PostgreSQL runs on this machine it also reports
// pg-cpu-µs/run: the CPU time of the store's server processes, from
// /proc/PID/schedstat.
//
//	go test -run '^$' -bench . -benchtime 200x ./internal/store/postgres/
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) storetest.BenchStore {
		schema := freshSchema(b)
		app := "pluto-bench-" + schema
		s, err := postgres.Open(context.Background(), withParam(b, testURL, "application_name", app), postgres.Options{Schema: schema})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return storetest.BenchStore{Store: s, ServerCPU: func() (time.Duration, bool) { return serverCPU(app) }, ServerCPUUnit: "pg-cpu-µs/run"}
	})
}

// serverCPU returns the CPU time so far of the server processes whose
// connections carry application_name app (false if they cannot be read:
// PostgreSQL on another machine).
func serverCPU(app string) (time.Duration, bool) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testURL)
	if err != nil {
		return 0, false
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", app)
	if err != nil {
		return 0, false
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0, false
	}
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
		if err != nil {
			return 0, false
		}
		var ns int64
		if _, err := fmt.Sscan(string(b), &ns); err != nil {
			return 0, false
		}
		total += time.Duration(ns)
	}
	return total, true
}

// BenchmarkRunStatsRates reads the statistics with a full history of rate
// buckets (100 jobs x 5 statuses, every bucket kept): the budget is 20 ms.
func BenchmarkRunStatsRates(b *testing.B) {
	needPostgres(b)
	s := openTest(b)
	now := time.Date(2026, 11, 21, 10, 30, 0, 0, time.UTC)
	if err := postgres.FillRates(context.Background(), s, store.MinuteOf(now)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		st, err := s.RunStats(context.Background(), store.StatsParams{Now: now})
		if err != nil || len(st.Throughput) != 500 || len(st.Latency) != 10 {
			b.Fatalf("RunStats: %d rows, %d latencies, %v", len(st.Throughput), len(st.Latency), err)
		}
	}
}
