package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pluto-sched/pluto/internal/store"
)

// StatsSource is the engine's run statistics (*engine.Engine implements
// it). A Source that also implements it gets the queue gauges.
type StatsSource interface {
	Stats(ctx context.Context, p store.StatsParams) (store.Stats, error)
}

// statsCacheFor bounds what scrapes cost the store: several scrapers (or
// a scraper and a dashboard) within this long share one read.
const statsCacheFor = time.Second

// statsReadTimeout bounds one read at scrape time.
const statsReadTimeout = 2 * time.Second

var (
	queueDepthDesc = prometheus.NewDesc("pluto_queue_depth", "Runs queued (ready, waiting for a worker), by group; from the store, all servers.",
		[]string{"group"}, nil)
	queueAgeDesc = prometheus.NewDesc("pluto_queue_oldest_age_seconds",
		"Age of the oldest run at the head of the group's queues (now minus its run_at); 0 when nothing is queued.",
		[]string{"group"}, nil)
	callbacksOwedDesc = prometheus.NewDesc("pluto_callbacks_owed",
		"Runs whose callback delivery is pending (counted up to 100000).", nil, nil)
	dispatchLatencyDesc = prometheus.NewDesc("pluto_group_dispatch_latency_seconds", dispatchLatencyHelp,
		[]string{"group", "quantile"}, nil)
)

const dispatchLatencyHelp = "Time from when a run was due (created, or its run_at if later) to its start " +
	"over the last minute, by group: the upper bound of a log-scale histogram bucket (at most 41% above the " +
	"true value); from the store, all servers; no series for a group without starts in the last minute."

// queueGauges reads the store's statistics at scrape time, at most once
// per statsCacheFor.
type queueGauges struct {
	src    StatsSource
	groups *limiter

	mu   sync.Mutex
	at   time.Time
	last store.Stats
	ok   bool
}

func (g *queueGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueAgeDesc
	ch <- callbacksOwedDesc
	ch <- dispatchLatencyDesc
}

func (g *queueGauges) read() (store.Stats, time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if now.Sub(g.at) >= statsCacheFor {
		ctx, cancel := context.WithTimeout(context.Background(), statsReadTimeout)
		st, err := g.src.Stats(ctx, store.StatsParams{Now: now})
		cancel()
		g.at, g.last, g.ok = now, st, err == nil
	}
	return g.last, g.at, g.ok
}

func (g *queueGauges) Collect(ch chan<- prometheus.Metric) {
	st, now, ok := g.read()
	if !ok { // the store did not answer: no stale values
		return
	}
	depth := map[string]int64{}
	age := map[string]float64{}
	for _, c := range st.Counts { // every group with runs: an empty queue is 0
		n := int64(0)
		if c.Status == store.StatusQueued {
			n = c.Count
		}
		depth[g.groups.label(c.Group)] += n
	}
	for _, h := range st.Heads {
		grp := g.groups.label(h.Group)
		if a := now.Sub(h.RunAt).Seconds(); a > age[grp] {
			age[grp] = a
		}
	}
	for grp, n := range depth {
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(n), grp)
		ch <- prometheus.MustNewConstMetric(queueAgeDesc, prometheus.GaugeValue, age[grp], grp)
	}
	ch <- prometheus.MustNewConstMetric(callbacksOwedDesc, prometheus.GaugeValue, float64(st.CallbacksOwed))
	// Groups sharing the overflow label report the worst of them.
	lat := map[string][2]float64{}
	for _, l := range st.Latency {
		grp := g.groups.label(l.Group)
		v := lat[grp]
		lat[grp] = [2]float64{max(v[0], l.P50.Seconds()), max(v[1], l.P99.Seconds())}
	}
	for grp, v := range lat {
		ch <- prometheus.MustNewConstMetric(dispatchLatencyDesc, prometheus.GaugeValue, v[0], grp, "0.5")
		ch <- prometheus.MustNewConstMetric(dispatchLatencyDesc, prometheus.GaugeValue, v[1], grp, "0.99")
	}
}
