package store

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The throughput windows of RunStats (last minute, hour and day of every
// group, job and terminal status) sum 61 minute buckets and 25 hour
// buckets per key. Read from the store at every call that is 86 rows a
// key: 43,000 rows and 25-70 ms for 500 keys (100 jobs), whatever the
// history's size. But a bucket whose minute is over stops changing: a
// RateCache keeps the settled buckets of every key in memory, adds the
// ones that settled since its last read (a row or two a key a minute),
// and each call reads from the store only the buckets still being
// written: two minute and one or two hour buckets a key.
//
// A bucket is settled two minutes after its own: at minute M, minute
// buckets up to M-2 and hour buckets whose last minute is M-2 or before.
// A transaction stamps its ends with its Now, so a bucket that settled
// could still change only through a transaction that committed more than
// a minute after its Now, or a server whose clock is more than a minute
// behind the reader's: those ends are missed by the windows of the
// servers that had already read the bucket (never by the counts, and not
// after a restart). A store that writes a bucket it knows is settled (a
// test feeding old times) calls Invalidate, and the next read starts over.

// RateBucket is one stored throughput bucket: N runs of (Group, Job) ended
// with Status in bucket Bucket of resolution Res seconds (60: minutes
// since the Unix epoch, 3600: hours).
type RateBucket struct {
	Res    int64
	Bucket int64
	Group  string
	Job    string
	Status RunStatus
	N      int64
}

// RateRange selects buckets to read: minute buckets in [MinuteFrom,
// MinuteTo] and hour buckets in [HourFrom, HourTo], of group and job
// when not empty. A To of RateOpen has no upper bound.
type RateRange struct {
	MinuteFrom, MinuteTo int64
	HourFrom, HourTo     int64
	Group, Job           string
}

// RateOpen is the upper bound of a RateRange that has none.
const RateOpen int64 = 1<<63 - 1

// RateReader reads the buckets of a range from the store, the deltas not
// yet folded into them included, calling fn for each (in any order; a
// bucket may come more than once, its rows add up).
type RateReader func(ctx context.Context, r RateRange, fn func(RateBucket)) error

type rateKey struct {
	group, job string
	status     RunStatus
}

// RateCache holds the settled throughput buckets of a store (backends
// only). The zero value is ready to use.
type RateCache struct {
	// held is settled, or the minute a refresh in progress reads up to,
	// for Invalidate's check without the lock: every write transaction
	// calls it, and the lock is held across a refresh's store read.
	held    atomic.Int64
	mu      sync.Mutex
	settled int64 // minute buckets up to this one are held; 0: nothing held
	hour    int64 // hour buckets up to this one are held
	buckets map[rateKey]map[int64]int64
	// sums are the settled buckets' parts of the windows at minute
	// settled+2, per key (settledSums).
	sums map[rateKey]settledSums
}

// settledSums are a key's settled runs in the last hour and day windows:
// the buckets wholly inside and the straddled one (weighted per call).
type settledSums struct {
	hour, hourEdge, day, dayEdge int64
}

// Invalidate drops what the cache holds if minute (of a bucket being
// written) is one it holds.
func (c *RateCache) Invalidate(minute int64) {
	if h := c.held.Load(); h == 0 || minute > h {
		return // the hot path: a write of a bucket still being written
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.settled != 0 && minute <= c.settled {
		c.settled, c.hour, c.buckets, c.sums = 0, 0, nil, nil
		c.held.Store(0)
	}
}

// Written tells the cache about the ends a transaction writes: if one is
// in a bucket the cache holds, it starts over.
func (c *RateCache) Written(ends map[RateKey]int64) {
	oldest := RateOpen
	for k := range ends {
		oldest = min(oldest, k.Minute)
	}
	if oldest != RateOpen {
		c.Invalidate(oldest)
	}
}

// settledAt returns the last settled minute and hour buckets at minute m.
func settledAt(m int64) (minute, hour int64) {
	minute = m - 2
	return minute, floorDiv(minute-59, 60)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// hourKey is the map key of hour bucket h, and the hour of a map key
// (it is its own inverse): minute buckets are positive minutes since
// 1970, hours are stored negated beside them.
func hourKey(h int64) int64 { return -h - 1 }

// Throughput returns the windows ending at now of every key of group and
// job ("" for all), in group, job, status order, keys with nothing in any
// window left out.
func (c *RateCache) Throughput(ctx context.Context, now time.Time, group, job string, read RateReader) ([]Throughput, error) {
	w := WindowsAt(now)
	sm, sh := settledAt(w.Minute)
	sums := rateSums{w: w, m: make(map[rateKey]*[3]float64)}
	live := RateRange{MinuteFrom: sm + 1, MinuteTo: RateOpen, HourFrom: sh + 1, HourTo: RateOpen, Group: group, Job: job}
	c.mu.Lock()
	if c.settled != 0 && (sm < c.settled || sh < c.hour) {
		// A call for an earlier time than the cache's (a clock went
		// back, or a call that waited across a minute): every bucket
		// is read, and the cache is left as it is.
		c.mu.Unlock()
		live.MinuteFrom, live.HourFrom = w.Minute-60, w.Hour-24
	} else {
		if err := c.refresh(ctx, w, sm, sh, read); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		for k, v := range c.sums {
			if (group == "" || k.group == group) && (job == "" || k.job == job) {
				sums.addSettled(k, v)
			}
		}
		c.mu.Unlock()
	}
	err := read(ctx, live, func(b RateBucket) {
		sums.add(rateKey{b.Group, b.Job, b.Status}, b.Res, b.Bucket, b.N)
	})
	if err != nil {
		return nil, err
	}
	out := make([]Throughput, 0, len(sums.m))
	for k, s := range sums.m {
		if tp, ok := ThroughputOf(Throughput{Group: k.group, Job: k.job, Status: k.status}, s[0], s[1], s[2]); ok {
			out = append(out, tp)
		}
	}
	slices.SortFunc(out, func(a, b Throughput) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Job, b.Job), cmp.Compare(a.Status, b.Status))
	})
	return out, nil
}

// rateSums are the weighted window sums of each key: last minute, hour
// and day (see Windows).
type rateSums struct {
	w Windows
	m map[rateKey]*[3]float64
}

// addSettled adds a key's settled sums.
func (s *rateSums) addSettled(k rateKey, v settledSums) {
	s.m[k] = &[3]float64{0,
		float64(v.hour) + s.w.MinuteWeight*float64(v.hourEdge),
		float64(v.day) + s.w.HourWeight*float64(v.dayEdge)}
}

// add adds n runs of k in bucket b of resolution res to the windows it
// is in.
func (s *rateSums) add(k rateKey, res, b, n int64) {
	w := s.w
	var day float64
	switch {
	case res == 3600 && b > w.Hour-24:
		day = 1
	case res == 3600 && b == w.Hour-24:
		day = w.HourWeight
	case res == 3600 || b < w.Minute-60:
		return
	}
	v := s.m[k]
	if v == nil {
		v = new([3]float64)
		s.m[k] = v
	}
	if res == 3600 {
		v[2] += day * float64(n)
		return
	}
	switch {
	case b >= w.Minute:
		v[0] += float64(n)
	case b == w.Minute-1:
		v[0] += w.MinuteWeight * float64(n)
	}
	if b > w.Minute-60 {
		v[1] += float64(n)
	} else {
		v[1] += w.MinuteWeight * float64(n)
	}
}

// refresh reads the buckets settled since the last call (all the windows
// need, the first time) and forgets those
// no window ending at w reads any more. Called with c.mu held.
func (c *RateCache) refresh(ctx context.Context, w Windows, sm, sh int64, read RateReader) error {
	if c.settled == sm && c.hour == sh {
		return nil
	}
	c.held.Store(sm) // a write of what this reads now waits for the lock
	r := RateRange{MinuteFrom: w.Minute - 60, MinuteTo: sm, HourFrom: w.Hour - 24, HourTo: sh}
	if c.settled != 0 {
		r.MinuteFrom = max(r.MinuteFrom, c.settled+1)
		r.HourFrom = max(r.HourFrom, c.hour+1)
	}
	if c.buckets == nil {
		c.buckets = make(map[rateKey]map[int64]int64)
	}
	err := read(ctx, r, func(b RateBucket) {
		k := rateKey{b.Group, b.Job, b.Status}
		bs := c.buckets[k]
		if bs == nil {
			bs = make(map[int64]int64, 4)
			c.buckets[k] = bs
		}
		if b.Res == 3600 {
			bs[hourKey(b.Bucket)] += b.N
		} else {
			bs[b.Bucket] += b.N
		}
	})
	if err != nil {
		c.settled, c.hour, c.buckets, c.sums = 0, 0, nil, nil // partly read: start over
		c.held.Store(0)
		return err
	}
	c.settled, c.hour = sm, sh
	c.sums = make(map[rateKey]settledSums, len(c.buckets))
	for k, bs := range c.buckets {
		var v settledSums
		for b, n := range bs {
			switch h := hourKey(b); {
			case b >= 0 && b > w.Minute-60:
				v.hour += n
			case b >= 0 && b == w.Minute-60:
				v.hourEdge += n
			case b < 0 && h > w.Hour-24:
				v.day += n
			case b < 0 && h == w.Hour-24:
				v.dayEdge += n
			default: // out of every window from now on
				delete(bs, b)
			}
		}
		if len(bs) == 0 {
			delete(c.buckets, k)
		} else {
			c.sums[k] = v
		}
	}
	return nil
}
