package cron

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	tt, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

// nextCase: the fire times of expr after from, in order; "" is the zero
// time (no more fires).
type nextCase struct {
	expr string
	from string
	want []string
}

// checkNext compares instants, and also the printed form in loc.
func checkNext(t *testing.T, loc *time.Location, cases []nextCase) {
	t.Helper()
	for _, c := range cases {
		s, err := ParseIn(c.expr, loc)
		if err != nil {
			t.Errorf("ParseIn(%q): %v", c.expr, err)
			continue
		}
		at := mustTime(t, c.from)
		for i, w := range c.want {
			got := s.Next(at)
			if w == "" {
				if !got.IsZero() {
					t.Errorf("%q from %s: fire %d = %s, want none", c.expr, c.from, i, got.Format(time.RFC3339))
				}
				break
			}
			want := mustTime(t, w)
			if !got.Equal(want) || got.Format(time.RFC3339) != w {
				t.Errorf("%q in %s from %s: fire %d = %s, want %s", c.expr, loc, c.from, i, got.Format(time.RFC3339), w)
				break
			}
			if again := s.Next(got.Add(-time.Nanosecond)); !again.Equal(got) {
				t.Errorf("%q in %s: Next(%s - 1ns) = %s, want %s", c.expr, loc, w, again.Format(time.RFC3339), w)
			}
			if got.Location() != loc {
				t.Errorf("%q: Next returned location %v, want %v", c.expr, got.Location(), loc)
			}
			at = got
		}
	}
}

func TestQuartz(t *testing.T) {
	checkNext(t, time.UTC, []nextCase{
		// every minute, at second 0
		{"0 0/1 * * * ?", "2026-01-01T10:00:30Z", []string{"2026-01-01T10:01:00Z", "2026-01-01T10:02:00Z", "2026-01-01T10:03:00Z"}},
		{"0 * * * * ?", "2026-01-01T10:00:00Z", []string{"2026-01-01T10:01:00Z"}},
		// strictly after, also with fractions of a second
		{"0 0/1 * * * ?", "2026-01-01T10:01:00Z", []string{"2026-01-01T10:02:00Z"}},
		{"*/15 * * * * ?", "2026-01-01T23:59:31Z", []string{"2026-01-01T23:59:45Z", "2026-01-02T00:00:00Z", "2026-01-02T00:00:15Z"}},
		{"10-12 0 0 * * ?", "2026-01-01T00:00:00Z", []string{"2026-01-01T00:00:10Z", "2026-01-01T00:00:11Z", "2026-01-01T00:00:12Z", "2026-01-02T00:00:10Z"}},
		{"0 0 0/6 * * ?", "2026-01-01T05:00:00Z", []string{"2026-01-01T06:00:00Z", "2026-01-01T12:00:00Z", "2026-01-01T18:00:00Z", "2026-01-02T00:00:00Z"}},
		{"0 5-20/5 9 * * ?", "2026-01-01T00:00:00Z", []string{"2026-01-01T09:05:00Z", "2026-01-01T09:10:00Z", "2026-01-01T09:15:00Z", "2026-01-01T09:20:00Z", "2026-01-02T09:05:00Z"}},
		{"0 30 9 1,15 * ?", "2026-01-01T10:00:00Z", []string{"2026-01-15T09:30:00Z", "2026-02-01T09:30:00Z"}},
		{"0 0 12 * * *", "2026-01-01T12:00:00Z", []string{"2026-01-02T12:00:00Z", "2026-01-03T12:00:00Z"}},
		// months: names, steps over names, lowercase
		{"0 0 0 1 JAN-MAR/2 ?", "2026-01-01T00:00:00Z", []string{"2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z"}},
		{"0 0 0 1 jul,Dec ?", "2026-01-01T00:00:00Z", []string{"2026-07-01T00:00:00Z", "2026-12-01T00:00:00Z", "2027-07-01T00:00:00Z"}},
		// day-of-week: 1=SUN … 7=SAT
		{"0 0 0 ? * 1", "2026-01-01T00:00:00Z", []string{"2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"}}, // Sundays
		{"0 0 0 ? * 7", "2026-01-01T00:00:00Z", []string{"2026-01-03T00:00:00Z", "2026-01-10T00:00:00Z"}}, // Saturdays
		{"0 0 0 ? * L", "2026-01-01T00:00:00Z", []string{"2026-01-03T00:00:00Z", "2026-01-10T00:00:00Z"}}, // L alone = SAT
		{"0 0 0 ? * MON-FRI", "2026-01-02T10:00:00Z", []string{"2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"}},
		{"0 0 0 ? * 2/2", "2026-01-01T00:00:00Z", []string{"2026-01-02T00:00:00Z", "2026-01-05T00:00:00Z", "2026-01-07T00:00:00Z"}}, // MON,WED,FRI
		{"0 0 0 ? * sun,sat", "2026-01-05T00:00:00Z", []string{"2026-01-10T00:00:00Z", "2026-01-11T00:00:00Z"}},
		// L, L-n, W, LW in day-of-month
		{"0 0 0 L * ?", "2026-01-01T00:00:00Z", []string{"2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z"}},
		{"0 0 0 L * ?", "2028-02-01T00:00:00Z", []string{"2028-02-29T00:00:00Z"}},
		{"0 0 0 L-3 * ?", "2026-01-01T00:00:00Z", []string{"2026-01-28T00:00:00Z", "2026-02-25T00:00:00Z", "2026-03-28T00:00:00Z"}},
		// L-nW: the weekday nearest the n-th day before the last (Quartz).
		// Jan 2026: 31-3 = 28th, a Wednesday; Feb: 25th Wed; Mar: 28th Sat → Fri 27th;
		// May: 28th Thu; Jun: 27th Sat → Fri 26th; Aug: 28th Fri.
		{"0 0 0 L-3W * ?", "2026-01-01T00:00:00Z", []string{"2026-01-28T00:00:00Z", "2026-02-25T00:00:00Z", "2026-03-27T00:00:00Z", "2026-04-27T00:00:00Z"}},
		{"0 0 0 L-3w * ?", "2026-06-01T00:00:00Z", []string{"2026-06-26T00:00:00Z", "2026-07-28T00:00:00Z", "2026-08-28T00:00:00Z"}},
		// L-30W: day 1 in months of 31 days (Sat Aug 1st 2026 → Mon 3rd), none in shorter ones.
		{"0 0 0 L-30W * ?", "2026-07-15T00:00:00Z", []string{"2026-08-03T00:00:00Z", "2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z"}},
		{"0 0 12 1W * ?", "2026-01-01T12:00:00Z", []string{"2026-02-02T12:00:00Z", "2026-03-02T12:00:00Z", "2026-04-01T12:00:00Z", "2026-05-01T12:00:00Z"}},
		{"0 0 12 1W * ?", "2026-07-15T00:00:00Z", []string{"2026-08-03T12:00:00Z"}},  // Sat 1st → Mon 3rd
		{"0 0 12 15W * ?", "2026-08-01T00:00:00Z", []string{"2026-08-14T12:00:00Z"}}, // Sat → Fri
		{"0 0 12 15W * ?", "2026-11-01T00:00:00Z", []string{"2026-11-16T12:00:00Z"}}, // Sun → Mon
		{"0 0 12 31W * ?", "2026-04-01T00:00:00Z", []string{"2026-05-29T12:00:00Z"}}, // no 31 in April; Sun 31 May → Fri 29
		{"0 0 12 31W * ?", "2026-01-01T00:00:00Z", []string{"2026-01-30T12:00:00Z", "2026-03-31T12:00:00Z"}},
		{"0 0 12 LW * ?", "2026-01-01T00:00:00Z", []string{"2026-01-30T12:00:00Z", "2026-02-27T12:00:00Z", "2026-03-31T12:00:00Z", "2026-04-30T12:00:00Z"}},
		{"0 0 12 lw * ?", "2026-05-01T00:00:00Z", []string{"2026-05-29T12:00:00Z"}},
		// L, #, in day-of-week
		{"0 15 10 ? * 6L 2027", "2026-03-07T12:00:00Z", []string{"2027-01-29T10:15:00Z", "2027-02-26T10:15:00Z", "2027-03-26T10:15:00Z"}},
		{"0 15 10 ? * 6L 2027", "2027-12-01T00:00:00Z", []string{"2027-12-31T10:15:00Z", ""}},
		{"0 15 10 ? * FRIL", "2026-01-01T00:00:00Z", []string{"2026-01-30T10:15:00Z"}},
		{"0 0 0 ? * 1L", "2026-01-01T00:00:00Z", []string{"2026-01-25T00:00:00Z", "2026-02-22T00:00:00Z", "2026-03-29T00:00:00Z"}},
		{"0 0 0 ? * 6#3", "2026-01-01T00:00:00Z", []string{"2026-01-16T00:00:00Z", "2026-02-20T00:00:00Z", "2026-03-20T00:00:00Z"}},
		{"0 0 0 ? * FRI#5", "2026-01-01T00:00:00Z", []string{"2026-01-30T00:00:00Z", "2026-05-29T00:00:00Z", "2026-07-31T00:00:00Z"}},
		{"0 0 9 ? * mon#1,fri#5", "2026-01-01T00:00:00Z", []string{"2026-01-05T09:00:00Z", "2026-01-30T09:00:00Z", "2026-02-02T09:00:00Z"}},
		// years
		{"0 0 0 1 1 ? 2030-2032", "2026-01-01T00:00:00Z", []string{"2030-01-01T00:00:00Z", "2031-01-01T00:00:00Z", "2032-01-01T00:00:00Z", ""}},
		{"0 0 0 1 1 ? */50", "2026-01-01T00:00:00Z", []string{"2070-01-01T00:00:00Z", "2120-01-01T00:00:00Z", "2170-01-01T00:00:00Z", ""}},
		{"0 0 0 1 1 ? 2199", "2026-01-01T00:00:00Z", []string{"2199-01-01T00:00:00Z", ""}},
		{"0 0 0 1 1 ? 2020", "2026-01-01T00:00:00Z", []string{""}}, // a past year
		{"0 0 0 * * ? 2026", "2026-12-31T00:00:00Z", []string{""}},
		{"0 0 0 1 1 ? 1970", "1960-06-01T00:00:00Z", []string{"1970-01-01T00:00:00Z", ""}},
		// leap days and never
		{"0 0 0 29 2 ?", "2026-01-01T00:00:00Z", []string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
		{"0 0 0 29 2 ?", "2096-03-01T00:00:00Z", []string{"2104-02-29T00:00:00Z"}}, // 2100 is no leap year
		{"0 0 0 29 2 ? 2100", "2026-01-01T00:00:00Z", []string{""}},
		{"0 0 0 30 2 ?", "2026-01-01T00:00:00Z", []string{""}},
		{"0 0 0 31 4,6,9,11 ?", "2026-01-01T00:00:00Z", []string{""}},
		{"0 0 0 L-30 2 ?", "2026-01-01T00:00:00Z", []string{""}},
		{"0 0 0 ? 2 1#5", "2026-01-01T00:00:00Z", []string{"2032-02-29T00:00:00Z", "2060-02-29T00:00:00Z"}},
	})
}

func TestStandard(t *testing.T) {
	checkNext(t, time.UTC, []nextCase{
		{"*/15 * * * *", "2026-01-01T10:07:30Z", []string{"2026-01-01T10:15:00Z", "2026-01-01T10:30:00Z", "2026-01-01T10:45:00Z", "2026-01-01T11:00:00Z"}},
		{"* * * * *", "2026-01-01T10:07:30Z", []string{"2026-01-01T10:08:00Z", "2026-01-01T10:09:00Z"}},
		{"30 2 * * *", "2026-01-01T10:00:00Z", []string{"2026-01-02T02:30:00Z", "2026-01-03T02:30:00Z"}},
		{"0 9-17/2 * * *", "2026-01-01T00:00:00Z", []string{"2026-01-01T09:00:00Z", "2026-01-01T11:00:00Z", "2026-01-01T13:00:00Z", "2026-01-01T15:00:00Z", "2026-01-01T17:00:00Z", "2026-01-02T09:00:00Z"}},
		// 0 and 7 are Sunday, 6 Saturday
		{"0 12 * * 0", "2026-01-01T00:00:00Z", []string{"2026-01-04T12:00:00Z", "2026-01-11T12:00:00Z"}},
		{"0 12 * * 7", "2026-01-01T00:00:00Z", []string{"2026-01-04T12:00:00Z", "2026-01-11T12:00:00Z"}},
		{"0 12 * * Sun", "2026-01-01T00:00:00Z", []string{"2026-01-04T12:00:00Z"}},
		{"0 12 * * 6", "2026-01-01T00:00:00Z", []string{"2026-01-03T12:00:00Z"}},
		{"0 12 * * 5-7", "2026-01-01T00:00:00Z", []string{"2026-01-02T12:00:00Z", "2026-01-03T12:00:00Z", "2026-01-04T12:00:00Z", "2026-01-09T12:00:00Z"}},
		{"0 0 * * MON-FRI", "2026-01-02T10:00:00Z", []string{"2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"}},
		{"0 0 * * */3", "2026-01-01T00:00:00Z", []string{"2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-07T00:00:00Z"}}, // 0,3,6: SUN,WED,SAT
		// months
		{"0 0 1 JAN,jul *", "2026-01-01T00:00:00Z", []string{"2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"}},
		{"0 0 1 */4 *", "2026-01-01T00:00:00Z", []string{"2026-05-01T00:00:00Z", "2026-09-01T00:00:00Z", "2027-01-01T00:00:00Z"}},
		// both day fields restricted: either matches (Vixie)
		{"0 12 13 * FRI", "2026-01-01T00:00:00Z", []string{"2026-01-02T12:00:00Z", "2026-01-09T12:00:00Z", "2026-01-13T12:00:00Z", "2026-01-16T12:00:00Z"}},
		{"0 0 1,15 * 3", "2026-01-01T00:00:00Z", []string{"2026-01-07T00:00:00Z", "2026-01-14T00:00:00Z", "2026-01-15T00:00:00Z", "2026-01-21T00:00:00Z"}},
		// one starts with *: both must match (odd days that are Fridays)
		{"0 12 */2 * FRI", "2026-01-01T00:00:00Z", []string{"2026-01-09T12:00:00Z", "2026-01-23T12:00:00Z", "2026-02-13T12:00:00Z"}},
		{"0 12 * * FRI", "2026-01-01T00:00:00Z", []string{"2026-01-02T12:00:00Z"}},
		{"0 12 ? * FRI", "2026-01-01T00:00:00Z", []string{"2026-01-02T12:00:00Z"}},
		{"0 0 29 2 *", "2026-01-01T00:00:00Z", []string{"2028-02-29T00:00:00Z"}},
		{"0 0 30 2 *", "2026-01-01T00:00:00Z", []string{""}},
		{"0 0 30 2 MON", "2026-01-01T00:00:00Z", []string{"2026-02-02T00:00:00Z"}}, // OR: the Mondays of February
	})
}

func TestDescriptors(t *testing.T) {
	checkNext(t, time.UTC, []nextCase{
		{"@hourly", "2026-01-01T10:30:00Z", []string{"2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"}},
		{"@daily", "2026-01-01T10:30:00Z", []string{"2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"}},
		{"@midnight", "2026-01-01T00:00:00Z", []string{"2026-01-02T00:00:00Z"}},
		{"@weekly", "2026-01-01T00:00:00Z", []string{"2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"}}, // Sundays
		{"@monthly", "2026-01-15T00:00:00Z", []string{"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"}},
		{"@yearly", "2026-01-01T00:00:00Z", []string{"2027-01-01T00:00:00Z"}},
		{"@annually", "2026-06-01T00:00:00Z", []string{"2027-01-01T00:00:00Z"}},
		{"@Daily", "2026-01-01T10:30:00Z", []string{"2026-01-02T00:00:00Z"}},
		{"  @hourly ", "2026-01-01T10:30:00Z", []string{"2026-01-01T11:00:00Z"}},
		{"@every\t 45m", "2026-01-01T10:30:00Z", []string{"2026-01-01T11:15:00Z"}},
		// @every: multiples of D since the Unix epoch
		{"@every 90m", "2026-01-01T12:00:00Z", []string{"2026-01-01T13:30:00Z", "2026-01-01T15:00:00Z"}},
		{"@every 1h", "2026-01-01T10:00:00Z", []string{"2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"}},
		{"@every 1h", "2026-01-01T10:59:59Z", []string{"2026-01-01T11:00:00Z"}},
		{"@every 30s", "2026-01-01T10:00:10Z", []string{"2026-01-01T10:00:30Z", "2026-01-01T10:01:00Z"}},
		{"@every 7s", "1970-01-01T00:00:00Z", []string{"1970-01-01T00:00:07Z", "1970-01-01T00:00:14Z"}},
		{"@every 7s", "1969-12-31T23:59:58Z", []string{"1970-01-01T00:00:00Z"}},
		{"@every 24h", "2026-01-01T10:00:00Z", []string{"2026-01-02T00:00:00Z"}},
		{"@every 1h30m", "1600-01-01T00:10:00Z", []string{"1600-01-01T01:30:00Z"}}, // far from 1970: exact arithmetic
	})

	// Sub-second @every, and epoch alignment of an odd duration.
	s, err := Parse("@every 1.5s")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Unix(100, 0)
	if got := s.Next(from); !got.Equal(time.Unix(100, 5e8)) {
		t.Errorf("@every 1.5s after %v = %v", from, got)
	}
	// @every ignores DST: real durations in any zone.
	ny := mustLoad(t, "America/New_York")
	s, _ = ParseIn("@every 1h", ny)
	at := mustTime(t, "2026-03-08T00:30:00-05:00")
	for i := 0; i < 4; i++ {
		next := s.Next(at)
		if d := next.Sub(at); i > 0 && d != time.Hour {
			t.Errorf("@every 1h across DST: step %d is %v", i, d)
		}
		at = next
	}
}

func TestDST(t *testing.T) {
	for _, z := range []struct {
		zone  string
		cases []nextCase
	}{
		{"America/New_York", []nextCase{
			// spring forward 2026-03-08 02:00 EST → 03:00 EDT
			{"0 30 2 * * ?", "2026-03-07T12:00:00-05:00", []string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
			{"30 2 * * *", "2026-03-07T12:00:00-05:00", []string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
			{"0 30 2 * * ?", "2026-03-08T01:59:59.999999999-05:00", []string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
			{"0 30 2 * * ?", "2026-03-08T01:59:59-05:00", []string{"2026-03-08T03:00:00-04:00"}},
			{"0 2 8 * 0", "2026-03-08T01:59:59.5-05:00", []string{"2026-03-08T03:00:00-04:00", "2026-03-15T02:00:00-04:00"}}, // fuzz find
			{"0 0/15 2 * * ?", "2026-03-08T00:00:00-05:00", []string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"}},
			{"0 30 2,3 * * ?", "2026-03-08T00:00:00-05:00", []string{"2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"}},
			{"0 0 2,3 * * ?", "2026-03-08T00:00:00-05:00", []string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"}},
			{"0 0 * * * ?", "2026-03-08T00:30:00-05:00", []string{"2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"}},
			{"@hourly", "2026-03-08T00:30:00-05:00", []string{"2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"}},
			{"0 * * * * ?", "2026-03-08T01:58:30-05:00", []string{"2026-03-08T01:59:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:01:00-04:00"}},
			{"* * * * *", "2026-03-08T01:58:30-05:00", []string{"2026-03-08T01:59:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:01:00-04:00"}},
			{"* * * * * ?", "2026-03-08T01:59:58-05:00", []string{"2026-03-08T01:59:59-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:00:01-04:00"}},
			{"@daily", "2026-03-07T12:00:00-05:00", []string{"2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00"}},
			// fall back 2026-11-01 02:00 EDT → 01:00 EST
			{"0 30 1 * * ?", "2026-10-31T12:00:00-04:00", []string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
			{"30 1 * * *", "2026-10-31T12:00:00-04:00", []string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
			{"0 30 1 * * ?", "2026-11-01T01:45:00-04:00", []string{"2026-11-02T01:30:00-05:00"}},
			{"0 30 1 * * ?", "2026-11-01T01:10:00-05:00", []string{"2026-11-02T01:30:00-05:00"}},
			{"0 0/30 1 * * ?", "2026-11-01T00:00:00-04:00", []string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:00:00-05:00"}},
			{"0 0 * * * ?", "2026-11-01T00:30:00-04:00", []string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"}},
			{"0 * * * *", "2026-11-01T00:30:00-04:00", []string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"}},
			{"0 */20 * * * ?", "2026-11-01T00:50:00-04:00", []string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:20:00-04:00", "2026-11-01T01:40:00-04:00",
				"2026-11-01T01:00:00-05:00", "2026-11-01T01:20:00-05:00", "2026-11-01T01:40:00-05:00", "2026-11-01T02:00:00-05:00"}},
			{"0 59 * * * ?", "2026-11-01T01:30:00-04:00", []string{"2026-11-01T01:59:00-04:00", "2026-11-01T01:59:00-05:00", "2026-11-01T02:59:00-05:00"}},
			{"@daily", "2026-10-31T12:00:00-04:00", []string{"2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"}},
		}},
		{"Europe/Berlin", []nextCase{
			// spring forward 2026-03-29 02:00 CET → 03:00 CEST
			{"0 30 2 * * ?", "2026-03-28T12:00:00+01:00", []string{"2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"}},
			{"30 2 * * *", "2026-03-28T12:00:00+01:00", []string{"2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"}},
			{"0 0 * * * ?", "2026-03-29T00:30:00+01:00", []string{"2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"}},
			{"0 * * * * ?", "2026-03-29T01:58:00+01:00", []string{"2026-03-29T01:59:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:01:00+02:00"}},
			// fall back 2026-10-25 03:00 CEST → 02:00 CET
			{"0 30 2 * * ?", "2026-10-24T12:00:00+02:00", []string{"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}},
			{"30 2 * * *", "2026-10-25T02:40:00+01:00", []string{"2026-10-26T02:30:00+01:00"}},
			{"0 0 * * * ?", "2026-10-25T00:30:00+02:00", []string{"2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"}},
			{"* * * * * ?", "2026-10-25T02:59:58+02:00", []string{"2026-10-25T02:59:59+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T02:00:01+01:00"}},
			{"0 15 10 ? * 1L", "2026-03-01T00:00:00+01:00", []string{"2026-03-29T10:15:00+02:00", "2026-04-26T10:15:00+02:00"}},
		}},
		{"Australia/Sydney", []nextCase{
			// fall back 2026-04-05 03:00 AEDT → 02:00 AEST; spring forward 2026-10-04 02:00 → 03:00
			{"0 30 2 * * ?", "2026-04-04T12:00:00+11:00", []string{"2026-04-05T02:30:00+11:00", "2026-04-06T02:30:00+10:00"}},
			{"0 0 * * * ?", "2026-04-05T01:30:00+11:00", []string{"2026-04-05T02:00:00+11:00", "2026-04-05T02:00:00+10:00", "2026-04-05T03:00:00+10:00"}},
			{"0 30 2 * * ?", "2026-10-03T12:00:00+10:00", []string{"2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00"}},
		}},
		{"Australia/Lord_Howe", []nextCase{
			// 30-minute DST: fall back 2026-04-05 02:00 → 01:30; spring forward 2026-10-04 02:00 → 02:30
			{"0 45 1 * * ?", "2026-04-04T12:00:00+11:00", []string{"2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"}},
			{"0 45 * * * ?", "2026-04-05T01:00:00+11:00", []string{"2026-04-05T01:45:00+11:00", "2026-04-05T01:45:00+10:30", "2026-04-05T02:45:00+10:30"}},
			{"0 15 2 * * ?", "2026-10-03T12:00:00+10:30", []string{"2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"}},
		}},
		{"Pacific/Apia", []nextCase{
			// Samoa skipped 2011-12-30: every wall time of that day fires once at its end.
			{"0 0 12 * * ?", "2011-12-29T13:00:00-10:00", []string{"2011-12-31T00:00:00+14:00", "2011-12-31T12:00:00+14:00"}},
			{"0 0 * * * ?", "2011-12-29T22:30:00-10:00", []string{"2011-12-29T23:00:00-10:00", "2011-12-31T00:00:00+14:00", "2011-12-31T01:00:00+14:00"}},
		}},
	} {
		t.Run(z.zone, func(t *testing.T) { checkNext(t, mustLoad(t, z.zone), z.cases) })
	}
}

// TestDSTContinuity: every-minute and hourly schedules fire at every real
// minute / hour across both transitions, without duplicates or gaps.
func TestDSTContinuity(t *testing.T) {
	for _, zone := range []string{"America/New_York", "Europe/Berlin", "Australia/Sydney"} {
		loc := mustLoad(t, zone)
		for _, c := range []struct {
			expr string
			step time.Duration
		}{
			{"0 * * * * ?", time.Minute},
			{"* * * * *", time.Minute},
			{"0 0 * * * ?", time.Hour},
			{"@hourly", time.Hour},
			{"0 0/10 * * * ?", 10 * time.Minute},
		} {
			s, err := ParseIn(c.expr, loc)
			if err != nil {
				t.Fatal(err)
			}
			for _, tr := range transitions(loc, 2026) {
				at := tr.Add(-3 * time.Hour).Truncate(c.step)
				for end := tr.Add(3 * time.Hour); at.Before(end); {
					next := s.Next(at)
					if d := next.Sub(at); d != c.step {
						t.Errorf("%s %q: after %s next is %s (%v later), want %v later", zone, c.expr, at.Format(time.RFC3339), next.Format(time.RFC3339), d, c.step)
						break
					}
					at = next
				}
			}
		}
	}
}

// transitions returns the instants the offset of loc changes in year y.
func transitions(loc *time.Location, y int) []time.Time {
	var out []time.Time
	t := time.Date(y, 1, 1, 0, 0, 0, 0, loc)
	end := time.Date(y+1, 1, 1, 0, 0, 0, 0, loc)
	for t.Before(end) {
		_, e := t.ZoneBounds()
		if e.IsZero() || !e.Before(end) {
			break
		}
		out = append(out, e)
		t = e
	}
	return out
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		expr  string
		msg   string // the whole message when it starts with "cron:", else a part of it
		field string
		pos   int
	}{
		{"0 0 25 * * ?", `cron: field 3 (hour) "25": value out of range 0-23`, "hour", 3},
		{"0 25 * * *", `cron: field 2 (hour) "25": value out of range 0-23`, "hour", 2},
		{"0 0 1,25 * * ?", `cron: field 3 (hour) "1,25": value 25 out of range 0-23`, "hour", 3},
		{"0 0 20-25 * * ?", `value 25 out of range 0-23`, "hour", 3},
		{"0 0 0 L * MON", `cron: "0 0 0 L * MON": day-of-month and day-of-week cannot both be set (use ? in one of them)`, "", 0},
		{"0 0 0 1 * 2", `cannot both be set`, "", 0},
		{"0 0 0 ? * ?", `cannot both be ?`, "", 0},
		{"", `cron: "": empty expression`, "", 0},
		{"   ", `empty expression`, "", 0},
		{"* * * *", `4 fields: want 5`, "", 0},
		{"1 2 3 4 5 6 7 8", `8 fields`, "", 0},
		{"60 * * * * ?", `cron: field 1 (second) "60": value out of range 0-59`, "second", 1},
		{"60 * * * *", `cron: field 1 (minute) "60": value out of range 0-59`, "minute", 1},
		{"0 0 0 0 * ?", `field 4 (day-of-month) "0": value out of range 1-31`, "day-of-month", 4},
		{"0 0 0 32 * ?", `value out of range 1-31`, "day-of-month", 4},
		{"0 0 0 * 13 ?", `field 5 (month) "13": value out of range 1-12`, "month", 5},
		{"0 0 0 * FOO ?", `field 5 (month) "FOO": invalid value "FOO" (want 1-12 or JAN-DEC)`, "month", 5},
		{"0 0 0 ? * 8", `field 6 (day-of-week) "8": value out of range 1-7`, "day-of-week", 6},
		{"0 0 0 ? * 0", `value out of range 1-7`, "day-of-week", 6}, // Quartz: 1=SUN
		{"0 0 * * 8", `field 5 (day-of-week) "8": value out of range 0-7`, "day-of-week", 5},
		{"0 0 * * FUN", `invalid value "FUN" (want 0-7 or SUN-SAT)`, "day-of-week", 5},
		{"0 0 0 ? * 6#6", `(day-of-week) "6#6": occurrence after # must be 1-5`, "day-of-week", 6},
		{"0 0 0 ? * 6#0", `occurrence after # must be 1-5`, "day-of-week", 6},
		{"0 0 0 ? * 9#1", `value 9 out of range 1-7`, "day-of-week", 6},
		{"0 0 0 ? * 6#", `missing number`, "day-of-week", 6},
		{"0 0 0 ? * 8L", `value 8 out of range 1-7`, "day-of-week", 6},
		{"0 0 0 L-31 * ?", `offset from the last day must be 0-30`, "day-of-month", 4},
		{"0 0 0 L-x * ?", `"x" is not a number`, "day-of-month", 4},
		{"0 0 0 32W * ?", `day before W must be 1-31`, "day-of-month", 4},
		{"0 0 0 W * ?", `missing number`, "day-of-month", 4},
		{"0 0 0 5-1 * ?", `range start 5 is after end 1`, "day-of-month", 4},
		{"0 0 0 ? * FRI-MON", `range start FRI is after end MON`, "day-of-week", 6},
		{"0 0/0 * * * ?", `step 0 out of range 1-60`, "minute", 2},
		{"0 0/61 * * * ?", `step 61 out of range 1-60`, "minute", 2},
		{"0 0/x * * * ?", `"x" is not a number`, "minute", 2},
		{"0 /5 * * * ?", `missing value before /`, "minute", 2},
		{"0 0 0 * * ? 1969", `field 7 (year) "1969": value out of range 1970-2199`, "year", 7},
		{"0 0 0 * * ? 2200", `value out of range 1970-2199`, "year", 7},
		{"0 0 0 * * ? ?", `? is only allowed in day-of-month and day-of-week`, "year", 7},
		{"0 0 ? * * *", `? is only allowed in day-of-month and day-of-week`, "hour", 3},
		{"0 0 0 ?,1 * ?", `? must be the whole field`, "day-of-month", 4},
		{"0 0 1,,2 * * ?", `empty list item`, "hour", 3},
		{"0 0 1- * * ?", `missing value`, "hour", 3},
		{"0 0 -1 * * ?", `missing value`, "hour", 3},
		{"0 0 1-2-3 * * ?", `invalid value "2-3"`, "hour", 3},
		{"0 0 99999999999 * * ?", `invalid value`, "hour", 3},
		// As Quartz: an item with L stands alone in its field.
		{"0 0 0 1,5,L * ?", `L cannot be combined with other values in a list ("1,5,L")`, "day-of-month", 4},
		{"0 0 0 L,15 * ?", `L cannot be combined`, "day-of-month", 4},
		{"0 0 0 LW,1W * ?", `L cannot be combined`, "day-of-month", 4},
		{"0 0 0 1,L-3W * ?", `L cannot be combined`, "day-of-month", 4},
		{"0 0 0 ? * 6,7,L", `L cannot be combined with other values in a list ("6,7,L")`, "day-of-week", 6},
		{"0 0 0 ? * mon#1,6L", `L cannot be combined`, "day-of-week", 6},
		{"0 0 0 L-31W * ?", `offset from the last day must be 0-30`, "day-of-month", 4},
		{"0 0 0 L-W * ?", `missing number`, "day-of-month", 4},
		{"0 0 L * *", `L, W and # are Quartz syntax`, "day-of-month", 3},
		{"0 0 15W * *", `L, W and # are Quartz syntax`, "day-of-month", 3},
		{"0 0 * * 5#3", `L, W and # are Quartz syntax`, "day-of-week", 5},
		{"0 0 * * 5L", `L, W and # are Quartz syntax`, "day-of-week", 5},
		{"0 0 0 L * ? 2026 x", `8 fields`, "", 0},
		{"@every", `@every needs a duration`, "", 0},
		{"@every 0s", `duration 0s must be positive`, "", 0},
		{"@every -1m", `must be positive`, "", 0},
		{"@every soon", `@every: invalid duration "soon"`, "", 0},
		{"@often", `unknown descriptor "@often"`, "", 0},
		{"@daily 5", `@daily takes no argument`, "", 0},
		{"@", `unknown descriptor`, "", 0},
	} {
		_, err := Parse(c.expr)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) = %v, want a *ParseError", c.expr, err)
			continue
		}
		msg := err.Error()
		if strings.HasPrefix(c.msg, "cron:") && msg != c.msg || !strings.Contains(msg, c.msg) {
			t.Errorf("Parse(%q):\n got %s\nwant %s", c.expr, msg, c.msg)
		}
		if !strings.HasPrefix(msg, "cron: ") {
			t.Errorf("Parse(%q): %q does not start with cron:", c.expr, msg)
		}
		if pe.Field != c.field || pe.Pos != c.pos || pe.Expr != c.expr {
			t.Errorf("Parse(%q): Field %q Pos %d Expr %q, want %q %d", c.expr, pe.Field, pe.Pos, pe.Expr, c.field, c.pos)
		}
	}
}

func TestScheduleBasics(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	for _, expr := range []string{"0 0/1 * * * ?", "0  0 * * *", "@every 30s", "@daily", " @hourly"} {
		s, err := ParseIn(expr, ny)
		if err != nil {
			t.Fatal(err)
		}
		if s.String() != expr {
			t.Errorf("String() = %q, want %q", s.String(), expr)
		}
		if s.Location() != ny || s.IsZero() {
			t.Errorf("%q: Location %v IsZero %v", expr, s.Location(), s.IsZero())
		}
	}
	s, err := ParseIn("@daily", nil)
	if err != nil || s.Location() != time.UTC {
		t.Errorf("ParseIn(nil location): %v %v", s.Location(), err)
	}
	var zero Schedule
	if !zero.IsZero() || !zero.Next(time.Now()).IsZero() || zero.Location() != time.UTC {
		t.Error("the zero Schedule must never fire")
	}
	// Instants out of range give the zero time, not a panic or a wrap.
	s, _ = Parse("* * * * * ?")
	for _, at := range []time.Time{{}, time.Unix(1<<62, 0), time.Unix(-1<<62, 0), time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		got := s.Next(at)
		if !got.IsZero() && !got.After(at) {
			t.Errorf("Next(%v) = %v", at, got)
		}
	}
	if got := s.Next(time.Time{}); !got.Equal(time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)) {
		t.Errorf("Next(zero time) = %v", got)
	}
}

// TestNeverFiresQuickly: expressions that can never fire give up fast.
func TestNeverFiresQuickly(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	for _, expr := range []string{"0 0 0 30 2 ?", "0 0 0 31 2,4,6,9,11 ?", "0 0 0 L-30 2 ?", "0 0 31 2 *", "0 0 0 31 4 ? 2026-2199", "0 0 0 30W 2 ?"} {
		for _, loc := range []*time.Location{time.UTC, berlin} {
			s, err := ParseIn(expr, loc)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			got := s.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			if el := time.Since(start); !got.IsZero() || el > 2*time.Second {
				t.Errorf("%q in %v: %v after %v", expr, loc, got, el)
			}
		}
	}
}

// A schedule saved before L was refused in lists still parses for its
// job (ParseStored) and fires on the union it always meant.
func TestParseStoredKeepsLInLists(t *testing.T) {
	if _, err := ParseIn("0 0 0 1,L * ?", time.UTC); err == nil {
		t.Fatal("ParseIn accepted 1,L")
	}
	s, err := ParseStored("0 0 0 1,L * ?", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	var got []string
	for range 3 {
		at = s.Next(at)
		got = append(got, at.Format("2006-01-02"))
	}
	if want := "2026-01-31 2026-02-01 2026-02-28"; strings.Join(got, " ") != want {
		t.Errorf("ParseStored(1,L) fires %v, want %s", got, want)
	}
	if _, err := ParseStored("0 0 0 1,X * ?", time.UTC); err == nil {
		t.Error("ParseStored accepted a bad value")
	}
}
