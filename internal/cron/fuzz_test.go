package cron

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var fuzzSeeds = []string{
	"0 0/1 * * * ?", "0 15 10 ? * 6L 2027", "0 0 12 1W * ?", "0 0 12 LW * ?", "0 0 0 L-3 * ?", "0 0 0 ? * 6#3",
	"0 0 0 30 2 ?", "*/15 * * * *", "0 12 13 * FRI", "0 0 * * 7", "@every 90m", "@every 1ns", "@daily", "@weekly",
	"0 0 0 1 1 ? */50", "0 0 0 ? * FRIL", "0 0 9 ? * mon#1,6L", "0 0 0 1,L * ?", "0 0 0 L 3W ?", "0 0 L * *",
	"* * * * * ? 1970", "59 59 23 31 12 ? 2199", "0 0 0 31W 2 ?", "0 0 0 ? 2 1#5", "1-2-3", "@every 2562047h",
}

// fuzzInstants are the instants every parsed expression is asked about.
var fuzzInstants = []time.Time{
	{},
	time.Unix(0, 0),
	time.Date(2026, 3, 8, 6, 59, 59, 999_999_999, time.UTC), // New York spring forward
	time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC),           // New York fall back
	time.Date(2199, 12, 31, 23, 59, 59, 0, time.UTC),        // end of the Quartz years
	time.Date(1969, 12, 31, 23, 59, 59, 500_000_000, time.UTC),
	time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
	time.Unix(1<<62, 0),
}

// FuzzParse: any string parses or fails with a *ParseError, never panics;
// a parsed schedule's Next is after its input (or zero) and fast.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	ny := mustLoad(f, "America/New_York")
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := Parse(expr)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "cron: ") {
				t.Fatalf("Parse(%q): %v is not a *ParseError", expr, err)
			}
			if s != (Schedule{}) {
				t.Fatalf("Parse(%q) failed but returned %v", expr, s)
			}
			return
		}
		if s.String() != expr {
			t.Fatalf("String() = %q, want %q", s.String(), expr)
		}
		for _, loc := range []*time.Location{time.UTC, ny} {
			s, err := ParseIn(expr, loc)
			if err != nil {
				t.Fatalf("ParseIn(%q, %v): %v, Parse succeeded", expr, loc, err)
			}
			for _, at := range fuzzInstants {
				start := time.Now()
				got := s.Next(at)
				if el := time.Since(start); el > 2*time.Second {
					t.Fatalf("%q in %v: Next(%v) took %v", expr, loc, at, el)
				}
				if !got.IsZero() && !got.After(at) {
					t.Fatalf("%q in %v: Next(%v) = %v, not after", expr, loc, at, got)
				}
			}
		}
	})
}

var fuzzZones = []string{"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago", "Pacific/Apia"}

// FuzzNext: for any expression, zone and instant, Next is after the
// instant, nothing fires in between (Next just before the result is the
// result), and the result's wall time matches the expression unless it is
// the first instant after a DST gap.
func FuzzNext(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add(s, int64(1_700_000_000+i*86_400*37), uint32(i*7919), uint8(i))
	}
	f.Add("0 30 2 * * ?", int64(1772953200), uint32(0), uint8(1)) // 2026-03-08 01:00 EST
	f.Add("0 0 * * * ?", int64(1793422800), uint32(0), uint8(1))  // 2026-11-01 00:00 EDT
	locs := make([]*time.Location, len(fuzzZones))
	for i, z := range fuzzZones {
		locs[i] = mustLoad(f, z)
	}
	f.Fuzz(func(t *testing.T, expr string, sec int64, nsec uint32, zone uint8) {
		loc := locs[int(zone)%len(locs)]
		s, err := ParseIn(expr, loc)
		if err != nil {
			return
		}
		at := time.Unix(sec, int64(nsec%1e9))
		start := time.Now()
		got := s.Next(at)
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("%q in %v: Next(%v) took %v", expr, loc, at, el)
		}
		if got.IsZero() {
			return
		}
		if !got.After(at) {
			t.Fatalf("%q in %v: Next(%v) = %v, not after", expr, loc, at, got)
		}
		if again := s.Next(got.Add(-time.Nanosecond)); !again.Equal(got) {
			t.Fatalf("%q in %v: Next(%v) = %v, but Next(%v) = %v", expr, loc, at, got, got.Add(-time.Nanosecond), again)
		}
		if s.every > 0 {
			if got.Sub(at) > s.every {
				t.Fatalf("%q: Next(%v) = %v, more than one period later", expr, at, got)
			}
			return
		}
		if got.Nanosecond() != 0 {
			t.Fatalf("%q: Next(%v) = %v, not a whole second", expr, at, got)
		}
		if !oracleWallMatch(s.spec, wallOf(got)) && offsetAt(loc, got.Unix()) <= offsetAt(loc, got.Unix()-1) {
			t.Fatalf("%q in %v: Next(%v) = %v, whose wall time does not match and that ends no gap", expr, loc, at, got)
		}
	})
}
