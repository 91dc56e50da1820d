package store

import (
	"context"
	"math"
	"time"
)

// Throughput and dispatch latency (GET /api/v1/stats, /api/v1/stats/series).
//
// Both are kept in time buckets, incrementally, by the transactions that
// end and start runs, like the run counters (stats.go): a transaction
// accumulates its changes in a RateDeltas and writes them before COMMIT,
// so a rolled-back transaction changes nothing.
//
// Throughput: a run that ends — a finish to a terminal status, a cancel, a
// skipped insert — adds one to the bucket of (group, job, terminal status)
// of the minute and of the hour of its end time (the params' Now).
// Retention deletes do not touch the buckets: a deleted run still
// finished. Minute buckets are kept RateMinuteKeep minutes, hour buckets
// RateHourKeep hours, both counted back from the newest bucket written
// (not from a clock, so a store fed with other times keeps its buckets);
// older buckets are pruned by the write path about once a minute, a
// delete of a range of the buckets' primary key, never a scan of runs.
//
// A window of length W ending at Now is its current bucket, the full
// buckets before it and, weighted by the part of it inside the window,
// the bucket it starts in: last minute = current minute + (1-f) x the
// previous minute, where f is the part of the current minute elapsed
// (minute buckets); last hour likewise from the 60 minute buckets before
// it; last day from the hour buckets. Ends are assumed uniform inside the
// straddled bucket, so a window is off by at most that one bucket's count
// (and exact at a bucket boundary, or when ends are steady).
//
// Dispatch latency: a start adds one to the histogram bucket of its
// latency, started_at - max(created_at, run_at) (a delayed run counts from
// when it was due), in the bucket of (group, minute of the start). The
// histogram is log-scale: bucket k holds latencies in
// (LatencyBound(k-1), LatencyBound(k)], LatencyBound(k) = 1ms x 2^(k/2),
// k = 0..LatencyBuckets-1 (bucket 0 everything up to 1 ms, the last one
// everything above about 49 minutes, up to its bound of about 70 minutes).
// A percentile is the bound of the bucket it falls in: at least the true
// value and less than sqrt(2) (41%) above it, except past the last bound.
// The last minute is weighted as for throughput (current + (1-f) x
// previous minute); latency buckets are kept LatencyKeep minutes.

const (
	// RateMinuteKeep is how many minute buckets are kept, back from the
	// newest (a window of an hour reads 61).
	RateMinuteKeep = 120
	// RateHourKeep is how many hour buckets are kept (a day reads 25).
	RateHourKeep = 26
	// LatencyKeep is how many minute buckets of latency are kept.
	LatencyKeep = 5
	// LatencyBuckets is the number of histogram buckets.
	LatencyBuckets = 45
)

// MinuteOf is the minute bucket of t: minutes since the Unix epoch.
func MinuteOf(t time.Time) int64 {
	m := t.Unix() / 60
	if t.Unix()%60 < 0 {
		m--
	}
	return m
}

// LatencyBucket is the histogram bucket of latency d: the smallest k with
// d <= LatencyBound(k), at most LatencyBuckets-1. Backends that bucket in
// SQL use the same formula: ceil(2 * log2(microseconds / 1000)).
func LatencyBucket(d time.Duration) int {
	us := d.Microseconds()
	if us <= 1000 {
		return 0
	}
	k := int(math.Ceil(2 * math.Log2(float64(us)/1000)))
	return min(k, LatencyBuckets-1)
}

// LatencyBound is the upper bound of histogram bucket k.
func LatencyBound(k int) time.Duration {
	return time.Duration(float64(time.Millisecond) * math.Pow(2, float64(k)/2))
}

// RateKey names one throughput bucket delta: runs of (group, job) that
// ended with Status in minute Minute (MinuteOf).
type RateKey struct {
	Group  string
	Job    string
	Status RunStatus
	Minute int64
}

// LatencyKey names one latency histogram delta: starts in group with
// latency bucket Bucket in minute Minute.
type LatencyKey struct {
	Group  string
	Minute int64
	Bucket int
}

// RateDeltas accumulates one transaction's throughput and latency deltas
// (backends only). The zero value is ready to use.
type RateDeltas struct {
	ends    map[RateKey]int64
	latency map[LatencyKey]int64
}

// Ended records n runs of (group, job) that ended with status at t.
func (d *RateDeltas) Ended(group, job string, status RunStatus, t time.Time, n int64) {
	d.EndedIn(group, job, status, MinuteOf(t), n)
}

// EndedIn records n runs of (group, job) that ended with status in minute.
func (d *RateDeltas) EndedIn(group, job string, status RunStatus, minute, n int64) {
	if n == 0 || !status.Terminal() {
		return
	}
	if d.ends == nil {
		d.ends = make(map[RateKey]int64, 8)
	}
	d.ends[RateKey{group, job, status, minute}] += n
}

// Started records n starts in group, in minute, with latency bucket k.
func (d *RateDeltas) Started(group string, minute int64, k int, n int64) {
	if n == 0 {
		return
	}
	if d.latency == nil {
		d.latency = make(map[LatencyKey]int64, 8)
	}
	d.latency[LatencyKey{group, minute, min(max(k, 0), LatencyBuckets-1)}] += n
}

// Ends returns the throughput deltas, in no particular order, and the
// newest minute among them (0 if none).
func (d *RateDeltas) Ends() (map[RateKey]int64, int64) {
	var newest int64
	for k := range d.ends {
		newest = max(newest, k.Minute)
	}
	return d.ends, newest
}

// Latency returns the latency deltas and the newest minute among them.
func (d *RateDeltas) Latency() (map[LatencyKey]int64, int64) {
	var newest int64
	for k := range d.latency {
		newest = max(newest, k.Minute)
	}
	return d.latency, newest
}

// Empty reports whether there is nothing to write.
func (d *RateDeltas) Empty() bool { return len(d.ends) == 0 && len(d.latency) == 0 }

// Reset forgets every delta.
func (d *RateDeltas) Reset() {
	clear(d.ends)
	clear(d.latency)
}

// Throughput is the number of runs of (group, job) that ended with Status
// in the windows ending at StatsParams.Now.
type Throughput struct {
	Group      string
	Job        string
	Status     RunStatus
	LastMinute int64
	LastHour   int64
	LastDay    int64
}

// DispatchLatency is one group's dispatch latency over the last minute.
type DispatchLatency struct {
	Group    string
	P50, P99 time.Duration
	Samples  int64
}

// Windows are the bucket bounds and weights of the windows ending at now
// (see the package comment above): Minute and Hour are the current
// buckets, MinuteWeight and HourWeight the weights of the straddled ones
// (Minute-1 for the last minute, Minute-60 for the last hour, Hour-24
// for the last day).
type Windows struct {
	Minute, Hour             int64
	MinuteWeight, HourWeight float64
}

// WindowsAt returns the windows ending at now.
func WindowsAt(now time.Time) Windows {
	m := MinuteOf(now)
	intoMinute := float64(now.UnixMicro()-m*60e6) / 60e6
	h := m / 60
	if m%60 < 0 {
		h--
	}
	intoHour := float64(now.UnixMicro()-h*3600e6) / 3600e6
	return Windows{Minute: m, Hour: h, MinuteWeight: 1 - intoMinute, HourWeight: 1 - intoHour}
}

// LatencyFrom computes percentiles from a weighted histogram (counts by
// bucket). It returns ok=false for an empty one.
func LatencyFrom(group string, hist []float64) (DispatchLatency, bool) {
	var total float64
	for _, n := range hist {
		total += n
	}
	if total <= 0 {
		return DispatchLatency{}, false
	}
	at := func(q float64) time.Duration {
		var cum float64
		for k, n := range hist {
			cum += n
			if n > 0 && cum >= q*total-1e-9 {
				return LatencyBound(k)
			}
		}
		return LatencyBound(len(hist) - 1)
	}
	return DispatchLatency{Group: group, P50: at(0.5), P99: at(0.99), Samples: int64(math.Round(total))}, true
}

// Series windows.
const (
	SeriesHour = "hour" // per minute for the last hour
	SeriesDay  = "day"  // per hour for the last day
)

// SeriesParams selects a series: Window is SeriesHour or SeriesDay; Group
// and Job, if not empty, restrict it.
type SeriesParams struct {
	Now    time.Time
	Window string
	Group  string
	Job    string
}

// SeriesPoint is the number of runs of Group that ended with Status in the
// bucket starting at Start.
type SeriesPoint struct {
	Start  time.Time
	Group  string
	Status RunStatus
	Count  int64
}

// Series is what RunSeries returns: the step and the first bucket of the
// window (Points may start later: empty buckets have no point), and the
// non-zero points in time, then group, then status order.
type Series struct {
	Step   time.Duration
	From   time.Time
	Steps  int
	Points []SeriesPoint
}

// SeriesRange returns the step, the first bucket number and the number of
// buckets of a window ending at now: the 60 minutes (or 24 hours) ending
// with the current one. ok is false for an unknown window.
func SeriesRange(window string, now time.Time) (step time.Duration, first int64, n int, ok bool) {
	w := WindowsAt(now)
	switch window {
	case SeriesHour:
		return time.Minute, w.Minute - 59, 60, true
	case SeriesDay:
		return time.Hour, w.Hour - 23, 24, true
	}
	return 0, 0, 0, false
}

// RatesStore is the read side of the time series.
type RatesStore interface {
	// RunSeries returns the runs ended per bucket of the window, by group
	// and status, from the throughput buckets (never the runs).
	RunSeries(ctx context.Context, p SeriesParams) (Series, error)
}

// ThroughputOf rounds the weighted window sums of tp (backends only); ok
// is false when all three are zero.
func ThroughputOf(tp Throughput, minute, hour, day float64) (Throughput, bool) {
	tp.LastMinute, tp.LastHour, tp.LastDay = int64(math.Round(minute)), int64(math.Round(hour)), int64(math.Round(day))
	return tp, tp.LastMinute != 0 || tp.LastHour != 0 || tp.LastDay != 0
}

// LatencyHistograms collects weighted histogram rows in group order
// (backends only).
type LatencyHistograms struct {
	groups []string
	hists  [][]float64
}

// Add adds n to bucket le of group's histogram; rows of one group must
// be consecutive.
func (h *LatencyHistograms) Add(group string, le int, n float64) {
	if len(h.groups) == 0 || h.groups[len(h.groups)-1] != group {
		h.groups = append(h.groups, group)
		h.hists = append(h.hists, make([]float64, LatencyBuckets))
	}
	h.hists[len(h.hists)-1][min(max(le, 0), LatencyBuckets-1)] += n
}

// Latencies returns the percentiles of every non-empty histogram.
func (h *LatencyHistograms) Latencies() []DispatchLatency {
	var out []DispatchLatency
	for i, g := range h.groups {
		if l, ok := LatencyFrom(g, h.hists[i]); ok {
			out = append(out, l)
		}
	}
	return out
}
