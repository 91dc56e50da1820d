package listq

import (
	"context"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// bounds are exclusive seq bounds (0: none).
type bounds struct{ lo, hi int64 }

// seqBounds turns the cursor and the time bounds into seq bounds; empty
// reports that no run can match.
//
// A run's created_at is taken when it is submitted and its seq when its
// group commit inserts it, so created_at grows with seq up to a jitter of
// milliseconds (or the clock skew between servers), which CreatedSlack
// bounds. Then every run created at or after t comes after any run created
// before t-slack, and every run created before t comes before any run
// created at or after t+slack. Such runs are found by a binary search over
// seq, each step a primary key probe, rather than through an index on
// created_at: that index would cost every insert (measured: 4% of
// PostgreSQL's submit rate), and a search costs a list some 25 probes. The
// bounds are correct whatever the search lands on — only the two runs'
// times matter — and tight when created_at follows seq.
func seqBounds(ctx context.Context, q Querier, p store.RunListParams, cursor int64) (bounds, bool, error) {
	var b bounds
	if cursor > 0 {
		if p.Order == store.OrderAsc {
			b.lo = cursor
		} else {
			b.hi = cursor
		}
	}
	if p.CreatedAfter.IsZero() && p.CreatedBefore.IsZero() && p.FinishedBefore.IsZero() {
		return b, false, nil
	}
	last, err := q.MaxSeq(ctx)
	if err != nil || last == 0 {
		return b, last == 0, err
	}
	if !p.CreatedAfter.IsZero() {
		seq, err := lastBefore(ctx, q, last, p.CreatedAfter.Add(-CreatedSlack))
		if err != nil {
			return b, false, err
		}
		b.lo = max(b.lo, seq)
	}
	// A run finishes after it is created: finished before t means created
	// before t.
	for _, t := range []time.Time{p.CreatedBefore, p.FinishedBefore} {
		if t.IsZero() {
			continue
		}
		t = t.Add(CreatedSlack)
		seq, err := lastBefore(ctx, q, last, t)
		if err != nil {
			return b, false, err
		}
		next, created, ok, err := q.RunFrom(ctx, seq+1)
		if err != nil {
			return b, false, err
		}
		if ok && !created.Before(t) && (b.hi == 0 || next < b.hi) {
			b.hi = next
		}
	}
	return b, b.hi > 0 && b.hi <= b.lo+1, nil
}

// lastBefore returns the seq of a run created before t — the last one
// before the first created at or after t, when created_at grows with seq
// — or 0 when the search finds none. last is the largest seq.
func lastBefore(ctx context.Context, q Querier, last int64, t time.Time) (int64, error) {
	// Invariant: lo is 0 or a run created before t; no run in (lo, hi) was
	// found created at or after t.
	lo, hi := int64(0), last+1
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		seq, created, ok, err := q.RunFrom(ctx, mid)
		if err != nil {
			return 0, err
		}
		switch {
		case !ok || seq >= hi:
			hi = mid // no run in [mid, hi)
		case created.Before(t):
			lo = seq
		default:
			hi = mid
		}
	}
	return lo, nil
}
