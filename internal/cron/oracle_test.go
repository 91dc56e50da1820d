package cron

import (
	"math/rand/v2"
	"testing"
	"time"
)

// The oracle is a brute-force second-by-second reference for Next, written
// from the package's documented rules with the time package only (it shares
// the parsed value sets, which the table tests cover, not the search).

// oracleWallMatch reports whether the wall time w (fields read as UTC)
// matches the spec.
func oracleWallMatch(s *spec, w time.Time) bool {
	y, mo, d := w.Date()
	if s.years != nil && (y < minYear || y > maxYear || !s.years.has(y-minYear)) {
		return false
	}
	if s.month&(1<<int(mo)) == 0 || s.hour&(1<<w.Hour()) == 0 || s.min&(1<<w.Minute()) == 0 || s.sec&(1<<w.Second()) == 0 {
		return false
	}
	last := time.Date(y, mo+1, 0, 0, 0, 0, 0, time.UTC).Day()
	wd := int(w.Weekday())
	weekdayNear := func(n int) int {
		switch time.Date(y, mo, n, 0, 0, 0, 0, time.UTC).Weekday() {
		case time.Saturday:
			if n == 1 {
				return 3
			}
			return n - 1
		case time.Sunday:
			if n == last {
				return n - 2
			}
			return n + 1
		}
		return n
	}
	dom := s.dom&(1<<d) != 0
	for n := 0; n <= 30; n++ {
		if s.lastOffsets&(1<<n) != 0 && d == last-n {
			dom = true
		}
	}
	if s.lastWeekday && d == weekdayNear(last) {
		dom = true
	}
	for n := 1; n <= last; n++ {
		if s.nearest&(1<<n) != 0 && d == weekdayNear(n) {
			dom = true
		}
	}
	for k := 0; k <= 30; k++ {
		if s.lastNearest&(1<<k) != 0 && last-k >= 1 && d == weekdayNear(last-k) {
			dom = true
		}
	}
	dow := s.dow&(1<<wd) != 0
	if s.lastDow&(1<<wd) != 0 && d+7 > last {
		dow = true
	}
	if s.nthDow[wd]&(1<<((d+6)/7)) != 0 {
		dow = true
	}
	if s.dayOr {
		return dom || dow
	}
	return dom && dow
}

func wallOf(t time.Time) time.Time {
	_, off := t.Zone()
	return time.Unix(t.Unix()+int64(off), 0).UTC()
}

func offsetAt(loc *time.Location, sec int64) int {
	_, off := time.Unix(sec, 0).In(loc).Zone()
	return off
}

// oracleNext walks every second of (after, after+window] and returns the
// first fire instant, or ok=false if there is none in the window.
func oracleNext(s *spec, loc *time.Location, after time.Time, window time.Duration) (time.Time, bool) {
	start := after.Unix() + 1
	end := after.Unix() + int64(window/time.Second)
	for sec := start; sec <= end; sec++ {
		t := time.Unix(sec, 0).In(loc)
		off := offsetAt(loc, sec)
		prevOff := offsetAt(loc, sec-1)
		if off > prevOff {
			// sec ends a gap: the wall times skipped fire here.
			for w := sec - 1 + int64(prevOff) + 1; w < sec+int64(off); w++ {
				if oracleWallMatch(s, time.Unix(w, 0).UTC()) {
					return t, true
				}
			}
		}
		w := wallOf(t)
		if !oracleWallMatch(s, w) {
			continue
		}
		if !s.hourFull {
			// Skip the second occurrence of a repeated wall time: an earlier
			// instant with a larger offset showed the same wall time.
			second := false
			for back := int64(60); back <= 26*3600; back += 60 {
				if o2 := offsetAt(loc, sec-back); o2 > off {
					t2 := sec - int64(o2-off)
					if offsetAt(loc, t2) == o2 {
						second = true
					}
					break
				}
			}
			if second {
				continue
			}
		}
		return t, true
	}
	return time.Time{}, false
}

// oracleCases is how many random cases TestOracle checks (fewer under the
// race detector: race_test.go).
var oracleCases = 400

// TestOracle compares Next with the oracle for random expressions around
// the DST transitions of several zones.
func TestOracle(t *testing.T) {
	secs := []string{"0", "*/20", "15,45", "0-2", "30"}
	mins := []string{"0", "*/15", "30", "*", "5-10", "59"}
	hours := []string{"*", "1", "2", "0-3", "*/2", "1,2,3", "23", "0", "2-4/2"}
	days := [][2]string{{"*", "?"}, {"?", "*"}, {"*", "*"}, {"L", "?"}, {"LW", "?"}, {"4W", "?"}, {"?", "1L"}, {"?", "1#1"},
		{"1-7", "?"}, {"?", "SUN"}, {"L-2", "?"}, {"?", "2-6"}, {"25-31", "?"}, {"L-3W", "?"}, {"L-30W", "?"}}
	months := []string{"*", "*", "3,4,10,11", "4,10"}
	zones := []string{"America/New_York", "Europe/Berlin", "Australia/Sydney", "Australia/Lord_Howe", "America/Santiago", "Asia/Tehran", "UTC"}
	n := oracleCases
	if testing.Short() {
		n = min(n, 60)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(a []string) string { return a[rng.IntN(len(a))] }
	for i := 0; i < n; i++ {
		zone := zones[rng.IntN(len(zones))]
		loc := mustLoad(t, zone)
		d := days[rng.IntN(len(days))]
		var expr string
		if rng.IntN(4) == 0 { // standard syntax
			dom, dow := d[0], d[1]
			if len(dow) > 1 && (dow[1] == 'L' || dow[1] == '#') {
				dow = "0"
			}
			if dom[0] == 'L' || dom[len(dom)-1] == 'W' {
				dom = "*"
			}
			expr = pick(mins) + " " + pick(hours) + " " + dom + " " + pick(months) + " " + dow
		} else {
			expr = pick(secs) + " " + pick(mins) + " " + pick(hours) + " " + d[0] + " " + pick(months) + " " + d[1]
		}
		s, err := ParseIn(expr, loc)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		trs := transitions(loc, 2026)
		var at time.Time
		if len(trs) == 0 {
			at = time.Date(2026, 3, 1, 0, 0, 0, 0, loc).Add(time.Duration(rng.IntN(86400*30)) * time.Second)
		} else {
			tr := trs[rng.IntN(len(trs))]
			if rng.IntN(4) > 0 { // mostly just before the transition
				at = tr.Add(-time.Duration(rng.IntN(8*3600)) * time.Second)
			} else {
				at = tr.Add(time.Duration(rng.IntN(2*26*3600)-26*3600) * time.Second)
			}
		}
		if rng.IntN(3) == 0 {
			at = at.Add(time.Duration(rng.Int64N(1e9))) // a fraction of a second
		}
		const window = 30 * time.Hour
		want, ok := oracleNext(s.spec, loc, at, window)
		got := s.Next(at)
		if ok && !got.Equal(want) {
			t.Errorf("%q in %s after %s: Next %s, oracle %s", expr, zone, at.Format(time.RFC3339), got.Format(time.RFC3339), want.Format(time.RFC3339))
		}
		if !ok && !got.IsZero() && !got.After(at.Add(window)) {
			t.Errorf("%q in %s after %s: Next %s, oracle: nothing within %v", expr, zone, at.Format(time.RFC3339), got.Format(time.RFC3339), window)
		}
	}
}

// TestConsistency: for random expressions and instants, Next is strictly
// increasing and nothing fires between after and Next(after).
func TestConsistency(t *testing.T) {
	exprs := []string{"0 0/1 * * * ?", "0 15 10 ? * 6L", "0 0 12 1W * ?", "0 0 12 LW * ?", "0 0 0 ? * 6#3", "*/7 */11 */5 * * ?",
		"0 12 13 * FRI", "*/5 * * * *", "@daily", "@weekly", "@every 17s", "@every 25h", "0 0 0 29 2 ?", "0 30 2 * * ?", "0 30 1 * * ?"}
	zones := []string{"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, zone := range zones {
		loc := mustLoad(t, zone)
		for _, expr := range exprs {
			s, err := ParseIn(expr, loc)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 20; i++ {
				at := time.Unix(1_700_000_000+rng.Int64N(400_000_000), rng.Int64N(1e9))
				got := s.Next(at)
				if !got.After(at) {
					t.Fatalf("%q in %s: Next(%v) = %v", expr, zone, at, got)
				}
				if again := s.Next(got.Add(-time.Nanosecond)); !again.Equal(got) {
					t.Errorf("%q in %s: Next(%v) = %v but Next(%v) = %v", expr, zone, at, got, got.Add(-time.Nanosecond), again)
				}
				if mid := at.Add(got.Sub(at) / 2); !s.Next(mid).Equal(got) && mid.Before(got) {
					t.Errorf("%q in %s: Next(%v) = %v but Next(%v) = %v", expr, zone, at, got, mid, s.Next(mid))
				}
			}
		}
	}
}
