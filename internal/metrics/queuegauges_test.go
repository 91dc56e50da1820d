package metrics

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// fakeStats answers RunStats with fixed statistics and counts the reads.
type fakeStats struct {
	st    store.Stats
	reads atomic.Int32
}

func (f *fakeStats) Stats(_ context.Context, p store.StatsParams) (store.Stats, error) {
	f.reads.Add(1)
	st := f.st
	// Heads relative to the scrape time: an age the test can predict.
	for i := range st.Heads {
		st.Heads[i].RunAt = p.Now.Add(-time.Duration(i+1) * 10 * time.Second)
	}
	return st, nil
}

func TestQueueGauges(t *testing.T) {
	src := &fakeStats{st: store.Stats{
		Counts: []store.RunCount{
			{CountKey: store.CountKey{Group: "mail", Status: store.StatusQueued}, Count: 4},
			{CountKey: store.CountKey{Group: "mail", Job: "j", Status: store.StatusQueued}, Count: 1},
			{CountKey: store.CountKey{Group: "idle", Status: store.StatusSucceeded}, Count: 9},
		},
		Heads:         []store.QueueHead{{Group: "mail", Type: "a"}, {Group: "mail", Type: "b"}},
		CallbacksOwed: 3,
		Latency: []store.DispatchLatency{
			{Group: "mail", P50: 5 * time.Millisecond, P99: 2 * time.Second, Samples: 10},
		},
	}}
	g := &queueGauges{src: src, groups: newLimiter()}
	// The fake places the heads 10 and 20 s before the scrape's time.
	want := `
# HELP pluto_callbacks_owed Runs whose callback delivery is pending (counted up to 100000).
# TYPE pluto_callbacks_owed gauge
pluto_callbacks_owed 3
# HELP pluto_group_dispatch_latency_seconds ` + dispatchLatencyHelp + `
# TYPE pluto_group_dispatch_latency_seconds gauge
pluto_group_dispatch_latency_seconds{group="mail",quantile="0.5"} 0.005
pluto_group_dispatch_latency_seconds{group="mail",quantile="0.99"} 2
# HELP pluto_queue_depth Runs queued (ready, waiting for a worker), by group; from the store, all servers.
# TYPE pluto_queue_depth gauge
pluto_queue_depth{group="idle"} 0
pluto_queue_depth{group="mail"} 5
# HELP pluto_queue_oldest_age_seconds Age of the oldest run at the head of the group's queues (now minus its run_at); 0 when nothing is queued.
# TYPE pluto_queue_oldest_age_seconds gauge
pluto_queue_oldest_age_seconds{group="idle"} 0
pluto_queue_oldest_age_seconds{group="mail"} 20
`
	if err := testutil.CollectAndCompare(g, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(g); n != 7 {
		t.Errorf("%d series, want 7", n)
	}
	// Scrapes within statsCacheFor share one read.
	if n := src.reads.Load(); n != 1 {
		t.Errorf("%d reads for scrapes within %v, want 1", n, statsCacheFor)
	}
}

// fakeSource is a Source with statistics: SetSource registers the queue
// gauges next to the instruments (a name clash would panic there).
type fakeSource struct{ *fakeStats }

func (fakeSource) Workers() []engine.WorkerInfo { return nil }
func (fakeSource) Leading() bool                { return true }
func (fakeSource) Term() int64                  { return 1 }

func TestQueueGaugesRegister(t *testing.T) {
	m := New()
	m.Started("g", "t", time.Second) // the dispatch histogram has a series
	m.SetSource(fakeSource{&fakeStats{st: store.Stats{Latency: []store.DispatchLatency{{Group: "g", P50: time.Second, P99: time.Second, Samples: 1}}}}})
	if n, err := testutil.GatherAndCount(m.reg, "pluto_group_dispatch_latency_seconds", "pluto_dispatch_latency_seconds"); err != nil || n != 3 {
		t.Fatalf("gathered %d series (%v), want 2 gauges and 1 histogram", n, err)
	}
}
