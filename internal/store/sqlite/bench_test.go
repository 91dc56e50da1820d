package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/sqlite"
	"github.com/pluto-sched/pluto/internal/store/storetest"
)

// BenchmarkStore runs the shared store benchmarks (storetest.Bench) with
// both durability settings: FULL (the default: every commit is fsynced)
// and NORMAL.
//
//	go test -run '^$' -bench . -benchtime 200x ./internal/store/sqlite/
func BenchmarkStore(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		b.Run("sync="+sync, func(b *testing.B) {
			storetest.Bench(b, func(b *testing.B) storetest.BenchStore {
				return storetest.BenchStore{Store: openTest(b, sqlite.Options{Synchronous: sync})}
			})
		})
	}
}

// BenchmarkRunStatsRates reads the statistics with a full history of rate
// buckets (100 jobs x 5 statuses, every bucket kept): the budget is 20 ms.
func BenchmarkRunStatsRates(b *testing.B) {
	s := openTest(b, sqlite.Options{Synchronous: "NORMAL"})
	now := time.Date(2026, 11, 21, 10, 30, 0, 0, time.UTC)
	if err := sqlite.FillRates(context.Background(), s, store.MinuteOf(now)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		st, err := s.RunStats(context.Background(), store.StatsParams{Now: now})
		if err != nil || len(st.Throughput) != 500 || len(st.Latency) != 10 {
			b.Fatalf("RunStats: %d rows, %d latencies, %v", len(st.Throughput), len(st.Latency), err)
		}
	}
}
