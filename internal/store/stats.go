package store

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Run statistics (GET /api/v1/stats, pluto stats, the queue gauges).
//
// A backend keeps the number of stored runs per (group, job, status)
// incrementally: every statement that changes a run's status reports the
// change to the transaction, which accumulates it in a CountDeltas and
// writes it before COMMIT, in the same transaction. A transaction that
// rolls back therefore changes no counter, and reading the counters costs
// a few rows per group, never a scan of the runs.

// CountKey names one counter: the runs of one job ("" for runs of no job)
// of one group in one status.
type CountKey struct {
	Group  string
	Job    string
	Status RunStatus
}

// RunCount is the value of one counter.
type RunCount struct {
	CountKey
	Count int64
}

// StatsParams selects the statistics RunStats returns. Group and Job, if
// not empty, restrict them to one group and one job. Now is the time the
// queue ages are measured at.
type StatsParams struct {
	Now   time.Time
	Group string
	Job   string
}

// QueueHead is the run at the head of one group's queue of one handler
// type: the next such run a claim takes (highest priority, then earliest
// run_at). Its RunAt is the oldest queued run_at of that type whenever the
// type's queued runs share a priority.
type QueueHead struct {
	Group string
	Type  string
	RunAt time.Time
}

// CallbacksOwedCap bounds the count of owed callback deliveries: RunStats
// counts the pending deliveries in their due-order index up to this many
// (a bounded read), and reports the cap when there are more.
const CallbacksOwedCap = 100000

// Stats is what RunStats returns.
type Stats struct {
	// Counts are the non-zero counters that match the params, by group,
	// job and status.
	Counts []RunCount
	// Heads are the heads of the queues of the matching groups (Job is
	// ignored: queues are per group and type), by group and type.
	Heads []QueueHead
	// CallbacksOwed is the number of runs whose callback delivery is
	// pending, at most CallbacksOwedCap (all groups).
	CallbacksOwed int64
	// Throughput is the runs ended in the windows ending at Now (rates.go)
	// that match the params, by group, job and status; rows whose three
	// windows are all zero are left out.
	Throughput []Throughput
	// Latency is the dispatch latency of the matching groups over the
	// last minute (Job is ignored), by group; groups without starts are
	// left out.
	Latency []DispatchLatency
}

// StatsStore is the read side of the statistics.
type StatsStore interface {
	// RunStats returns the counters and queue heads. It reads no run
	// history: its cost grows with the number of groups, jobs and
	// handler types, not with the number of stored runs.
	RunStats(ctx context.Context, p StatsParams) (Stats, error)
}

// SortedCounts returns the non-zero counts of sums in (group, job,
// status) order (backends only).
func SortedCounts(sums map[CountKey]int64) []RunCount {
	out := make([]RunCount, 0, len(sums))
	for k, n := range sums {
		if n != 0 {
			out = append(out, RunCount{k, n})
		}
	}
	// Compared field by field with early returns: cmp.Or would compare
	// all three strings every time (its arguments are evaluated first),
	// which made sorting 2,000 counters 3 ms.
	slices.SortFunc(out, func(a, b RunCount) int {
		if c := strings.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		if c := strings.Compare(a.Job, b.Job); c != 0 {
			return c
		}
		return strings.Compare(string(a.Status), string(b.Status))
	})
	return out
}

// CountDeltas accumulates one transaction's changes to the counters
// (backends only). The zero value is ready to use.
type CountDeltas struct {
	m map[CountKey]int64
}

// Add changes the counter of (group, job, status) by n.
func (d *CountDeltas) Add(group, job string, status RunStatus, n int64) {
	if n == 0 {
		return
	}
	if d.m == nil {
		d.m = make(map[CountKey]int64, 8)
	}
	d.m[CountKey{group, job, status}] += n
}

// Move records that one run of (group, job) went from status from to
// status to.
func (d *CountDeltas) Move(group, job string, from, to RunStatus) {
	if from == to {
		return
	}
	d.Add(group, job, from, -1)
	d.Add(group, job, to, 1)
}

// Deleted records that runs were deleted (retention).
func (d *CountDeltas) Deleted(runs []DeletedRun) {
	for _, r := range runs {
		d.Add(r.Group, r.Job, r.Status, -1)
	}
}

// Changes returns the non-zero deltas, in no particular order.
func (d *CountDeltas) Changes() []RunCount {
	out := make([]RunCount, 0, len(d.m))
	for k, n := range d.m {
		if n != 0 {
			out = append(out, RunCount{k, n})
		}
	}
	return out
}

// Reset forgets every delta (after they were written).
func (d *CountDeltas) Reset() { clear(d.m) }
