package sim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store/sqlite"
)

// nopConn is a worker stream that drops what the engine sends.
type nopConn struct{}

func (nopConn) Dispatch([]engine.Task)                                 {}
func (nopConn) Cancel(engine.RunRef, string)                           {}
func (nopConn) ResultAcks([]engine.ResultAck)                          {}
func (nopConn) LogsCapped([]engine.RunRef)                             {}
func (nopConn) Drain(bool)                                             {}
func (nopConn) Shutdown(bool)                                          {}
func (nopConn) Command(string, string, json.RawMessage, time.Duration) {}
func (nopConn) Close(string)                                           {}
func (nopConn) MapAck(engine.MapAck)                                   {}

// TestSimMemory is invariant 5 (memory): the engine's memory does not grow
// with group names that come and go. A burst of invented group names —
// runs submitted to them and cancelled, workers that connect with them and
// leave — must leave the heap where it was: the engine keeps no state for
// a group that has no worker, no run it claimed and no claim in flight.
// The heap is measured after a forced GC, around a burst of 20,000 names
// (a leak of a group's record is about 200 bytes a name, 4 MB in all; the
// bound is 1 MB), after a warm-up burst, outside any parallel test.
func TestSimMemory(t *testing.T) {
	const (
		warm  = 2000
		burst = 20000
		limit = 1 << 20
	)
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "pluto.db"), sqlite.Options{Synchronous: "NORMAL"})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		e, err := engine.New(engine.Config{Store: st, ExclusiveStore: true, HeartbeatInterval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer e.Stop(ctx)
		seq := 0
		comeAndGo := func(n int) {
			// Runs in invented groups, submitted and cancelled.
			for done := 0; done < n/2; {
				specs := make([]engine.SubmitSpec, min(1000, n/2-done))
				for i := range specs {
					seq++
					specs[i] = engine.SubmitSpec{Type: "t", Group: fmt.Sprintf("invented-%d", seq)}
				}
				res, err := e.Submit(ctx, specs)
				if err != nil {
					t.Fatal(err)
				}
				var wg sync.WaitGroup
				for _, r := range res {
					wg.Go(func() {
						if _, err := e.Cancel(ctx, r.Run.ID, ""); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
				done += len(specs)
			}
			// Workers of invented groups that connect and leave.
			for range n / 2 {
				seq++
				s, _, err := e.Connect(ctx, engine.Hello{WorkerID: fmt.Sprintf("w%d", seq), Group: fmt.Sprintf("invented-%d", seq), Capacity: 1, Window: 1, Types: []string{"t"}}, nopConn{})
				if err != nil {
					t.Fatal(err)
				}
				s.Close(engine.ErrWorkerLeft)
			}
			synctest.Wait()
		}
		heap := func() uint64 {
			var ms runtime.MemStats
			for range 3 {
				runtime.GC()
			}
			runtime.ReadMemStats(&ms)
			return ms.HeapAlloc
		}
		comeAndGo(warm)
		before := heap()
		comeAndGo(burst)
		after := heap()
		grew := int64(after) - int64(before)
		t.Logf("heap %d → %d bytes after %d invented group names: %+d (%.0f bytes a name)", before, after, burst, grew, float64(grew)/burst)
		if grew > limit {
			t.Errorf("sim: invariant memory: the engine's heap grew by %d bytes (%.0f a name) after %d group names came and went; "+
				"it keeps state for groups that have no worker and no run (bound: %d bytes)", grew, float64(grew)/burst, burst, limit)
		}
	})
}
