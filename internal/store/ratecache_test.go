package store

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// fakeRates is a store's run_rates: buckets by resolution and key.
type fakeRates struct {
	b     map[RateBucket]int64 // N zero in the key
	reads int                  // buckets returned
	fail  bool
}

func (f *fakeRates) end(k rateKey, minute, n int64) {
	if f.b == nil {
		f.b = make(map[RateBucket]int64)
	}
	f.b[RateBucket{Res: 60, Bucket: minute, Group: k.group, Job: k.job, Status: k.status}] += n
	f.b[RateBucket{Res: 3600, Bucket: floorDiv(minute, 60), Group: k.group, Job: k.job, Status: k.status}] += n
}

func (f *fakeRates) read(_ context.Context, r RateRange, fn func(RateBucket)) error {
	if f.fail {
		return errors.New("store down")
	}
	for b, n := range f.b {
		from, to := r.MinuteFrom, r.MinuteTo
		if b.Res == 3600 {
			from, to = r.HourFrom, r.HourTo
		}
		if b.Bucket < from || b.Bucket > to || (r.Group != "" && b.Group != r.Group) || (r.Job != "" && b.Job != r.Job) {
			continue
		}
		b.N = n
		f.reads++
		fn(b)
	}
	return nil
}

// want computes the windows from every bucket, as the stores' SQL did
// before the cache.
func (f *fakeRates) want(now time.Time, group string) []Throughput {
	w := WindowsAt(now)
	s := rateSums{w: w, m: make(map[rateKey]*[3]float64)}
	for b, n := range f.b {
		if group == "" || b.Group == group {
			s.add(rateKey{b.Group, b.Job, b.Status}, b.Res, b.Bucket, n)
		}
	}
	var out []Throughput
	for k, v := range s.m {
		if tp, ok := ThroughputOf(Throughput{Group: k.group, Job: k.job, Status: k.status}, v[0], v[1], v[2]); ok {
			out = append(out, tp)
		}
	}
	slices.SortFunc(out, func(a, b Throughput) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Job, b.Job), cmp.Compare(a.Status, b.Status))
	})
	return out
}

// Over two simulated days of ends at random times, read at random
// moments (a few a minute, sometimes after an idle gap), the cache's
// windows are those of a read of every bucket, and it reads from the
// store about what is still being written, not the whole windows.
func TestRateCacheMatchesFullRead(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []rateKey{{"g1", "", StatusSucceeded}, {"g1", "nightly", StatusFailed}, {"g2", "", StatusSucceeded}, {"g2", "", StatusSkipped}}
	var (
		f     fakeRates
		c     RateCache
		now   = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		end   = now.Add(48 * time.Hour)
		calls int
	)
	ctx := context.Background()
	for now.Before(end) {
		step := time.Duration(rng.IntN(40_000)) * time.Millisecond
		if rng.IntN(200) == 0 {
			step = time.Duration(rng.IntN(90)) * time.Minute // idle
		}
		now = now.Add(step)
		for range rng.IntN(5) {
			f.end(keys[rng.IntN(len(keys))], MinuteOf(now), int64(1+rng.IntN(50)))
		}
		group := []string{"", "g1", "g2"}[rng.IntN(3)]
		got, err := c.Throughput(ctx, now, group, "", f.read)
		if err != nil {
			t.Fatal(err)
		}
		if want := f.want(now, group); !slices.Equal(got, want) {
			t.Fatalf("at %v (group %q):\n got %v\nwant %v", now, group, got, want)
		}
		calls++
	}
	// A full read is about 86 buckets a key; the cache reads the live ones
	// (2 minutes and 1-2 hours) and the newly settled ones.
	if per := float64(f.reads) / float64(calls*len(keys)); per > 8 {
		t.Errorf("%.1f buckets read per key and call, want a few", per)
	}
}

// A read for an earlier time than the cache's reads everything and
// leaves the cache alone; an end written into a bucket the cache holds
// (a store fed old times) makes it start over; a failed read leaves
// nothing half-filled.
func TestRateCacheClockAndInvalidate(t *testing.T) {
	var (
		f   fakeRates
		c   RateCache
		ctx = context.Background()
		k   = rateKey{"g", "", StatusSucceeded}
		t0  = time.Date(2026, 12, 1, 12, 0, 30, 0, time.UTC)
	)
	check := func(now time.Time) {
		t.Helper()
		got, err := c.Throughput(ctx, now, "", "", f.read)
		if err != nil {
			t.Fatal(err)
		}
		if want := f.want(now, ""); !slices.Equal(got, want) {
			t.Fatalf("at %v: got %v, want %v", now, got, want)
		}
	}
	for i := range 30 {
		f.end(k, MinuteOf(t0)-int64(i), 10)
	}
	check(t0)
	check(t0.Add(-5 * time.Minute)) // behind the cache
	check(t0)
	old := map[RateKey]int64{{Group: "g", Status: StatusSucceeded, Minute: MinuteOf(t0) - 20}: 7}
	f.end(k, MinuteOf(t0)-20, 7)
	c.Written(old)
	check(t0)
	f.fail = true
	if _, err := c.Throughput(ctx, t0.Add(3*time.Minute), "", "", f.read); err == nil {
		t.Fatal("a failed read returned no error")
	}
	f.fail = false
	check(t0.Add(3 * time.Minute))
}
