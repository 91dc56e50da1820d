package sqlite_test

import (
	"testing"

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
