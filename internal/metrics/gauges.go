package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pluto-sched/pluto/internal/engine"
)

// gauges reads the engine at scrape time: connected workers and their
// slots by group and state, and leadership.
type gauges struct {
	src    Source
	groups *limiter
}

var (
	workersDesc = prometheus.NewDesc("pluto_workers", "Workers connected to this server, by group and state (alive, suspect, draining).",
		[]string{"group", "state"}, nil)
	slotsDesc = prometheus.NewDesc("pluto_worker_slots", "Run slots (window) of this server's workers, by group and state (used, free).",
		[]string{"group", "state"}, nil)
	leaderDesc = prometheus.NewDesc("pluto_leader", "1 while this server holds the leader lease.", nil, nil)
	termDesc   = prometheus.NewDesc("pluto_leader_term", "The leader term this server leads in (0 when it does not lead).", nil, nil)
)

func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- workersDesc
	ch <- slotsDesc
	ch <- leaderDesc
	ch <- termDesc
}

type groupState struct{ group, state string }

func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	workers := map[groupState]int{}
	slots := map[groupState]int{}
	for _, w := range g.src.Workers() {
		grp := g.groups.label(w.Group)
		workers[groupState{grp, workerState(w)}]++
		slots[groupState{grp, "used"}] += w.Running
		slots[groupState{grp, "free"}] += max(0, w.Window-w.Running)
	}
	for k, n := range workers {
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(n), k.group, k.state)
	}
	for k, n := range slots {
		ch <- prometheus.MustNewConstMetric(slotsDesc, prometheus.GaugeValue, float64(n), k.group, k.state)
	}
	leading := 0.0
	if g.src.Leading() {
		leading = 1
	}
	ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, leading)
	ch <- prometheus.MustNewConstMetric(termDesc, prometheus.GaugeValue, float64(g.src.Term()))
}

func workerState(w engine.WorkerInfo) string {
	switch {
	case w.Draining || w.Leaving:
		return "draining"
	case w.State == engine.WorkerSuspect:
		return "suspect"
	default:
		return "alive"
	}
}
