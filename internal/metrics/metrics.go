// Package metrics is Pluto's Prometheus instrumentation: the engine's
// counters and histograms (it implements engine.Observer), gauges read
// from the engine at scrape time (workers, slots, leadership), and the Go
// and process collectors, on a registry of its own served at /metrics.
//
// Labels are groups, handler types and statuses, never a run or worker
// id. Group and type names come from clients, so each label keeps at most
// MaxLabelValues distinct values; later ones are counted under "_other" —
// a client inventing names cannot grow the scrape without bound.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// MaxLabelValues bounds the distinct groups (and types) a metric shows.
const MaxLabelValues = 1000

// otherLabel is the value of names beyond MaxLabelValues.
const otherLabel = "_other"

// Source is what the scrape-time gauges read.
type Source interface {
	Workers() []engine.WorkerInfo
	Leading() bool
	Term() int64
}

// Metrics is the registry and the engine's instruments.
type Metrics struct {
	reg *prometheus.Registry

	submitted  *prometheus.CounterVec
	finished   *prometheus.CounterVec
	dispatch   prometheus.Histogram
	duration   *prometheus.HistogramVec
	batchSize  prometheus.Histogram
	commitTime prometheus.Histogram
	storeErrs  *prometheus.CounterVec
	cronLate   prometheus.Histogram
	repairs    prometheus.Counter
	retention  *prometheus.CounterVec
	logDrops   prometheus.Counter
	alerts     *prometheus.CounterVec

	groups, types *limiter
}

var _ engine.Observer = (*Metrics)(nil)

// New makes the instruments; src (may be nil until the engine exists:
// SetSource) feeds the gauges.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), groups: newLimiter(), types: newLimiter()}
	m.submitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pluto_runs_submitted_total", Help: "Runs created (submits, job triggers, cron slots), by group.",
	}, []string{"group"})
	m.finished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pluto_runs_finished_total", Help: "Runs that reached a terminal status, by group, type and status.",
	}, []string{"group", "type", "status"})
	m.dispatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pluto_dispatch_latency_seconds", Help: "From when a run was due (its submit, for a run due at once) to its start on a worker.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14), // 1 ms … ~2 h
	})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "pluto_run_duration_seconds", Help: "How long a run's last attempt ran, by group and type.",
		Buckets: prometheus.ExponentialBuckets(0.01, 3, 12), // 10 ms … ~30 min
	}, []string{"group", "type"})
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pluto_commit_batch_size", Help: "Ops applied in one store transaction (group commit).",
		Buckets: prometheus.ExponentialBuckets(1, 4, 8), // 1 … 16384
	})
	m.commitTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pluto_commit_duration_seconds", Help: "How long one store transaction of ops took.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
	})
	m.storeErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pluto_store_errors_total", Help: "Store writes that failed (and are retried), by operation.",
	}, []string{"op"})
	m.cronLate = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pluto_cron_fire_lateness_seconds", Help: "How late after its time a cron slot fired.",
		Buckets: prometheus.ExponentialBuckets(0.001, 3, 12),
	})
	m.repairs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pluto_reconciler_repairs_total", Help: "Runs and jobs the reconciler found undriven and repaired.",
	})
	m.retention = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pluto_retention_deleted_total", Help: "Finished runs deleted by retention, by status.",
	}, []string{"status"})
	m.logDrops = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pluto_log_lines_dropped_total", Help: "Log lines dropped past their run's log cap.",
	})
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pluto_alerts_total", Help: "Alerts raised by jobs' alert rules, by rule (failed, timed_out, skipped, sla, max_duration).",
	}, []string{"rule"})
	for _, r := range []string{store.AlertFailed, store.AlertTimedOut, store.AlertSkipped, store.AlertSLA, store.AlertMaxDuration} {
		m.alerts.WithLabelValues(r)
	}
	// Series alert rules name exist from the start (at 0), not only after
	// the first error or deletion: an absent series makes rate() silent.
	m.storeErrs.WithLabelValues("commit")
	for _, st := range store.AllStatuses {
		if st.Terminal() {
			m.retention.WithLabelValues(string(st))
		}
	}
	m.reg.MustRegister(m.submitted, m.finished, m.dispatch, m.duration, m.batchSize, m.commitTime,
		m.storeErrs, m.cronLate, m.repairs, m.retention, m.logDrops, m.alerts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SetSource registers the scrape-time gauges of src.
func (m *Metrics) SetSource(src Source) {
	m.reg.MustRegister(&gauges{src: src, groups: m.groups})
	if ss, ok := src.(StatsSource); ok {
		m.reg.MustRegister(&queueGauges{src: ss, groups: m.groups})
	}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry is the registry (tests, extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Submitted implements engine.Observer.
func (m *Metrics) Submitted(group string, n int) {
	m.submitted.WithLabelValues(m.groups.label(group)).Add(float64(n))
}

// Started implements engine.Observer.
func (m *Metrics) Started(_, _ string, wait time.Duration) { m.dispatch.Observe(wait.Seconds()) }

// Finished implements engine.Observer.
func (m *Metrics) Finished(group, typ string, st store.RunStatus, ran time.Duration) {
	g, t := m.groups.label(group), m.types.label(typ)
	m.finished.WithLabelValues(g, t, string(st)).Inc()
	if ran > 0 {
		m.duration.WithLabelValues(g, t).Observe(ran.Seconds())
	}
}

// Committed implements engine.Observer.
func (m *Metrics) Committed(ops int, took time.Duration, err error) {
	if err != nil {
		m.storeErrs.WithLabelValues("commit").Inc()
		return
	}
	m.batchSize.Observe(float64(ops))
	m.commitTime.Observe(took.Seconds())
}

// CronFired implements engine.Observer.
func (m *Metrics) CronFired(late time.Duration) { m.cronLate.Observe(late.Seconds()) }

// Reconciled implements engine.Observer.
func (m *Metrics) Reconciled(n int) { m.repairs.Add(float64(n)) }

// RetentionDeleted implements engine.Observer.
func (m *Metrics) RetentionDeleted(st store.RunStatus, n int) {
	m.retention.WithLabelValues(string(st)).Add(float64(n))
}

// LogLinesDropped implements engine.Observer.
func (m *Metrics) LogLinesDropped(n int) { m.logDrops.Add(float64(n)) }

// limiter maps names to label values, at most MaxLabelValues distinct.
type limiter struct {
	mu   sync.RWMutex // read-locked on the hot path: names are seen once
	seen map[string]struct{}
}

func newLimiter() *limiter { return &limiter{seen: make(map[string]struct{})} }

func (l *limiter) label(name string) string {
	l.mu.RLock()
	_, ok := l.seen[name]
	l.mu.RUnlock()
	if ok {
		return name
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[name]; ok {
		return name
	}
	if len(l.seen) >= MaxLabelValues {
		return otherLabel
	}
	l.seen[name] = struct{}{}
	return name
}

// Alerted implements engine.Observer.
func (m *Metrics) Alerted(rule string) { m.alerts.WithLabelValues(rule).Inc() }
