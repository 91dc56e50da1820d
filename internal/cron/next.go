package cron

import (
	"math/bits"
	"time"
)

// spec is a calendar schedule: the sets of matching wall-clock values.
type spec struct {
	sec, min uint64 // bits 0-59
	hour     uint32 // bits 0-23
	dom      uint32 // bits 1-31
	month    uint16 // bits 1-12
	dow      uint8  // bits 0-6, 0=SUN
	years    *set   // bit y-1970; nil: every year

	lastOffsets uint32   // L-n: bit n
	lastWeekday bool     // LW
	nearest     uint32   // nW: bit n
	lastNearest uint32   // L-nW: bit n
	lastDow     uint8    // dL: bit d
	nthDow      [7]uint8 // d#k: bit k of nthDow[d]

	domSpecial, dowSpecial bool
	dowAll                 bool // day-of-week matches every day
	dayOr                  bool // Vixie: both day fields restricted, either matches
	hourFull               bool // every hour matches: repeated wall times fire twice
	lastYear               int  // with a year field, the last year in it
}

func buildSpec(p [7]*parsedField, quartz bool) *spec {
	s := &spec{
		sec:         p[fSecond].values[0],
		min:         p[fMinute].values[0],
		hour:        uint32(p[fHour].values[0]),
		dom:         uint32(p[fDom].values[0]) &^ 1,
		month:       uint16(p[fMonth].values[0]) &^ 1,
		dow:         uint8(p[fDow].values[0]),
		lastOffsets: p[fDom].lastOffsets,
		lastWeekday: p[fDom].lastWeekday,
		nearest:     p[fDom].nearest,
		lastNearest: p[fDom].lastNearest,
		lastDow:     p[fDow].lastDow,
		nthDow:      p[fDow].nthDow,
	}
	s.domSpecial = p[fDom].hasSpecials()
	s.dowSpecial = p[fDow].hasSpecials()
	s.dowAll = s.dow == 0x7f
	s.hourFull = s.hour == 1<<24-1
	// Vixie cron: when both day fields are restricted (neither starts with
	// *), a day matches if either does; otherwise both must match. Quartz
	// forbids restricting both, so there both must match (one is * or ?).
	s.dayOr = !quartz && !p[fDom].star && !p[fDow].star
	if y := p[fYear]; y != nil && !y.any {
		ys := y.values
		s.years = &ys
		for v := maxYear - minYear; v >= 0; v-- {
			if ys.has(v) {
				s.lastYear = minYear + v
				break
			}
		}
	}
	return s
}

const (
	secondsPerDay = 86400
	// horizon bounds every search: the Gregorian calendar repeats every 400
	// years, so an expression that matches nothing in 401 years never will.
	horizon = 401 * 366 * secondsPerDay
	// maxPeriods bounds the walk over a zone's offset periods (a zone with
	// DST has about two per year).
	maxPeriods = 8 * 401
)

// next returns the first fire instant (Unix seconds) at or after from.
//
// It walks the zone's periods of constant UTC offset. Within a period the
// wall clock is the instant plus the offset, so the first matching wall
// time gives the fire instant. At the boundaries:
//   - a gap (the clock jumps forward): a matching wall time inside it does
//     not exist and fires once, at the first instant after the gap;
//   - an overlap (the clock jumps back): a wall time that occurs twice
//     fires at its first occurrence only, unless every hour matches (then
//     it fires at both, so hourly and finer schedules keep firing every
//     real hour).
func (s *spec) next(from int64, loc *time.Location) (int64, bool) {
	limit := from + horizon
	if s.years != nil {
		// Stop a day after the last year's end (offsets are under a day).
		if l := daysFromCivil(s.lastYear+1, 1, 1)*secondsPerDay + 2*secondsPerDay; l < limit {
			limit = l
		}
	}
	for range maxPeriods {
		t := time.Unix(from, 0).In(loc)
		_, off := t.Zone()
		start, end := t.ZoneBounds()
		lo := from + int64(off)
		if !start.IsZero() {
			_, prev := start.Add(-time.Nanosecond).Zone()
			switch {
			case prev > off && !s.hourFull:
				// Wall times that the previous period already showed are
				// second occurrences: skip them.
				lo = max(lo, start.Unix()+int64(prev))
			case prev < off && from == start.Unix():
				// from is the first instant after a gap, where the gap's
				// wall times fire: search them too.
				lo = from + int64(prev)
			}
		}
		hi := limit
		var endSec int64
		if !end.IsZero() {
			endSec = end.Unix()
			_, nextOff := end.Zone()
			// Include the wall times of a gap after this period.
			hi = min(hi, endSec+int64(max(off, nextOff)))
		}
		if lo < hi {
			if w, ok := s.match(lo, hi); ok {
				if w < from+int64(off) {
					return from, true // in the gap that ends at from
				}
				if !end.IsZero() && w >= endSec+int64(off) {
					return endSec, true // in the gap: the first instant after it
				}
				return w - int64(off), true
			}
		}
		if end.IsZero() || hi >= limit || endSec <= from {
			return 0, false
		}
		from = endSec
	}
	return 0, false
}

// match returns the first matching wall time w with lo <= w < hi. Wall
// times are seconds since 1970-01-01T00:00:00 on the wall clock (as if UTC).
func (s *spec) match(lo, hi int64) (int64, bool) {
	days := floorDiv(lo, secondsPerDay)
	sod := int(lo - days*secondsPerDay)
	y, m, d := civilFromDays(days)
	h, mi, sc := sod/3600, sod/60%60, sod%60
	for {
		day := daysFromCivil(y, m, d)
		if day*secondsPerDay+int64(h*3600+mi*60+sc) >= hi {
			return 0, false
		}
		if s.years != nil && !(y >= minYear && y <= maxYear && s.years.has(y-minYear)) {
			ny, ok := s.nextYear(y + 1)
			if !ok {
				return 0, false
			}
			y, m, d, h, mi, sc = ny, 1, 1, 0, 0, 0
			continue
		}
		if s.month&(1<<m) == 0 {
			nm := bits.TrailingZeros16(s.month &^ (1<<(m+1) - 1))
			if nm > 12 {
				y, m = y+1, firstBit16(s.month)
			} else {
				m = nm
			}
			d, h, mi, sc = 1, 0, 0, 0
			continue
		}
		last := daysIn(y, m)
		if !s.dayOK(y, m, d, day, last) {
			d++
			if !s.dayOr && !s.domSpecial && s.dowAll {
				// Only plain day-of-month values: jump to the next one.
				d = bits.TrailingZeros32(s.dom &^ (1<<d - 1))
			}
			if d > last {
				y, m, d = nextMonth(y, m)
			}
			h, mi, sc = 0, 0, 0
			continue
		}
		if s.hour&(1<<h) == 0 {
			nh := bits.TrailingZeros32(s.hour &^ (1<<h - 1))
			if nh > 23 {
				y, m, d = nextDay(y, m, d, last)
				h, mi, sc = 0, 0, 0
				continue
			}
			h, mi, sc = nh, 0, 0
		}
		if s.min&(1<<mi) == 0 {
			nmi := bits.TrailingZeros64(s.min &^ (1<<mi - 1))
			if nmi > 59 {
				h, mi, sc = h+1, 0, 0
				if h == 24 {
					y, m, d = nextDay(y, m, d, last)
					h = 0
				}
				continue
			}
			mi, sc = nmi, 0
		}
		if s.sec&(1<<sc) == 0 {
			nsc := bits.TrailingZeros64(s.sec &^ (1<<sc - 1))
			if nsc > 59 {
				mi, sc = mi+1, 0
				if mi == 60 {
					h, mi = h+1, 0
					if h == 24 {
						y, m, d = nextDay(y, m, d, last)
						h = 0
					}
				}
				continue
			}
			sc = nsc
		}
		w := day*secondsPerDay + int64(h*3600+mi*60+sc)
		if w >= hi {
			return 0, false
		}
		return w, true
	}
}

func (s *spec) nextYear(y int) (int, bool) {
	if y < minYear {
		y = minYear
	}
	for ; y <= s.lastYear; y++ {
		if s.years.has(y - minYear) {
			return y, true
		}
	}
	return 0, false
}

// dayOK reports whether day d of month m of year y matches the day fields;
// day is its day number since 1970-01-01 and last the month's last day.
func (s *spec) dayOK(y, m, d int, day int64, last int) bool {
	if s.dayOr {
		return s.domOK(d, day, last) || s.dowOK(d, day, last)
	}
	return s.domOK(d, day, last) && s.dowOK(d, day, last)
}

func (s *spec) domOK(d int, day int64, last int) bool {
	if s.dom&(1<<d) != 0 {
		return true
	}
	if !s.domSpecial {
		return false
	}
	if off := last - d; off >= 0 && s.lastOffsets&(1<<off) != 0 {
		return true
	}
	wd := weekday(day)
	if wd == 0 || wd == 6 {
		return false // W and LW only ever fire on a weekday
	}
	if s.lastWeekday && d == nearestWeekday(last, day+int64(last-d), last) {
		return true
	}
	if s.nearest != 0 {
		// The nW that can land on d are n in d-2..d+2.
		for n := max(1, d-2); n <= min(last, d+2); n++ {
			if s.nearest&(1<<n) != 0 && nearestWeekday(n, day+int64(n-d), last) == d {
				return true
			}
		}
	}
	if s.lastNearest != 0 {
		// L-kW aims at day last-k; those that can land on d aim at d-2..d+2.
		for t := max(1, d-2); t <= min(last, d+2); t++ {
			if k := last - t; k <= 30 && s.lastNearest&(1<<k) != 0 && nearestWeekday(t, day+int64(t-d), last) == d {
				return true
			}
		}
	}
	return false
}

func (s *spec) dowOK(d int, day int64, last int) bool {
	wd := weekday(day)
	if s.dow&(1<<wd) != 0 {
		return true
	}
	if !s.dowSpecial {
		return false
	}
	if s.lastDow&(1<<wd) != 0 && d+7 > last {
		return true
	}
	return s.nthDow[wd]&(1<<((d-1)/7+1)) != 0
}

// nearestWeekday is the weekday of the month closest to day n (whose day
// number since 1970 is day), without leaving the month: Saturday moves to
// Friday (or Monday the 3rd when n is the 1st), Sunday to Monday (or Friday
// when n is the last day).
func nearestWeekday(n int, day int64, last int) int {
	switch weekday(day) {
	case 6:
		if n == 1 {
			return 3
		}
		return n - 1
	case 0:
		if n == last {
			return n - 2
		}
		return n + 1
	}
	return n
}

func firstBit16(v uint16) int { return bits.TrailingZeros16(v) }

func nextMonth(y, m int) (int, int, int) {
	if m == 12 {
		return y + 1, 1, 1
	}
	return y, m + 1, 1
}

func nextDay(y, m, d, last int) (int, int, int) {
	if d < last {
		return y, m, d + 1
	}
	return nextMonth(y, m)
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// weekday of a day number since 1970-01-01 (a Thursday): 0=SUN … 6=SAT.
func weekday(day int64) int { return int(floorMod(day+4, 7)) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// daysFromCivil is the day number since 1970-01-01 of a proleptic
// Gregorian date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	yy := int64(y)
	if m <= 2 {
		yy--
	}
	era := floorDiv(yy, 400)
	yoe := yy - era*400
	mp := int64((m + 9) % 12)
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y, m, d int) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = int(mp + 3)
	} else {
		m = int(mp - 9)
	}
	yy := yoe + era*400
	if m <= 2 {
		yy++
	}
	return int(yy), m, d
}
