package cron

import (
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	// A job's time zone must resolve even where the host has no zoneinfo
	// (scratch containers): the IANA database is embedded as a fallback.
	_ "time/tzdata"
)

// Schedule is a parsed cron expression bound to a time zone. The zero
// Schedule never fires. A Schedule is immutable and safe for concurrent use.
type Schedule struct {
	expr  string
	loc   *time.Location
	every time.Duration // > 0 for @every
	spec  *spec         // calendar schedules (Quartz, standard, @daily …)
}

// Parse parses expr in UTC. See ParseIn.
func Parse(expr string) (Schedule, error) { return ParseIn(expr, time.UTC) }

// ParseIn parses expr, whose wall-clock fields are read in loc (the job's
// time zone; nil means UTC). The syntax is picked from the expression: a
// leading @ is a descriptor, 5 fields are standard cron, 6 or 7 fields are
// Quartz. Errors are *ParseError.
func ParseIn(expr string, loc *time.Location) (Schedule, error) {
	return parseIn(expr, loc, false)
}

// ParseStored parses a schedule that was accepted when it was saved: as
// ParseIn, but an L item in a list of others ("1,L"), which Pluto read as
// the union before it refused it as Quartz does, still parses, so that a
// job saved then keeps firing as it did. New schedules go through ParseIn.
func ParseStored(expr string, loc *time.Location) (Schedule, error) {
	return parseIn(expr, loc, true)
}

func parseIn(expr string, loc *time.Location, lenient bool) (Schedule, error) {
	if loc == nil {
		loc = time.UTC
	}
	s := Schedule{expr: expr, loc: loc}
	text := strings.TrimSpace(expr)
	if strings.HasPrefix(text, "@") {
		return s.parseDescriptor(text)
	}
	sp, err := parseFields(expr, strings.Fields(text), lenient)
	if err != nil {
		return Schedule{}, err
	}
	s.spec = sp
	return s, nil
}

func (s Schedule) parseDescriptor(text string) (Schedule, error) {
	words := strings.Fields(text)
	name, arg := strings.ToLower(words[0]), strings.Join(words[1:], " ")
	if name == "@every" {
		if arg == "" {
			return Schedule{}, exprError(s.expr, "@every needs a duration, e.g. @every 30s")
		}
		d, err := time.ParseDuration(arg)
		if err != nil {
			return Schedule{}, exprError(s.expr, fmt.Sprintf("@every: invalid duration %q (want a Go duration such as 30s, 5m, 1h30m)", arg))
		}
		if d <= 0 {
			return Schedule{}, exprError(s.expr, fmt.Sprintf("@every: duration %s must be positive", arg))
		}
		s.every = d
		return s, nil
	}
	quartz, ok := descriptors[name]
	if !ok {
		return Schedule{}, exprError(s.expr, fmt.Sprintf("unknown descriptor %q (want @every D, @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually)", name))
	}
	if arg != "" {
		return Schedule{}, exprError(s.expr, fmt.Sprintf("%s takes no argument, got %q", name, arg))
	}
	sp, err := parseFields(quartz, strings.Fields(quartz), false)
	if err != nil { // cannot happen: the table is fixed
		return Schedule{}, err
	}
	s.spec = sp
	return s, nil
}

// descriptors are the @ shorthands, as Quartz expressions in the job's zone.
var descriptors = map[string]string{
	"@yearly":   "0 0 0 1 1 ?",
	"@annually": "0 0 0 1 1 ?",
	"@monthly":  "0 0 0 1 * ?",
	"@weekly":   "0 0 0 ? * SUN",
	"@daily":    "0 0 0 * * ?",
	"@midnight": "0 0 0 * * ?",
	"@hourly":   "0 0 * * * ?",
}

// String returns the expression as it was given to Parse.
func (s Schedule) String() string { return s.expr }

// Location is the time zone the schedule's wall-clock fields are read in.
func (s Schedule) Location() *time.Location {
	if s.loc == nil {
		return time.UTC
	}
	return s.loc
}

// IsZero reports whether s is the zero Schedule, which never fires.
func (s Schedule) IsZero() bool { return s.spec == nil && s.every == 0 }

// Next returns the first fire time strictly after after, in the schedule's
// location (the instant is what matters; t.UTC() for storage). It returns
// the zero time when there is none: the year field is exhausted, the
// expression can never match (nothing within 401 years: the Gregorian
// calendar repeats every 400), or after is beyond ±10^8 years.
func (s Schedule) Next(after time.Time) time.Time {
	loc := s.Location()
	switch {
	case s.every > 0:
		t, ok := nextEvery(after, s.every)
		if !ok {
			return time.Time{}
		}
		return t.In(loc)
	case s.spec != nil:
		sec := after.Unix()
		if sec < minUnix || sec > maxUnix {
			return time.Time{}
		}
		w, ok := s.spec.next(sec+1, loc) // whole seconds: the first one > after
		if !ok {
			return time.Time{}
		}
		return time.Unix(w, 0).In(loc)
	}
	return time.Time{}
}

// Supported instants: about ±10^8 years around 1970, far inside int64
// seconds so that wall-clock arithmetic cannot overflow.
const (
	minUnix = -3_155_760_000_000_000
	maxUnix = 3_155_760_000_000_000
)

// nextEvery is the first multiple of d since the Unix epoch strictly after
// t: @every slots are aligned on 1970-01-01T00:00:00Z, so every server,
// restart and retry computes the same slots.
func nextEvery(t time.Time, d time.Duration) (time.Time, bool) {
	sec, nsec := t.Unix(), int64(t.Nanosecond())
	const lim = math.MaxInt64/int64(time.Second) - 1
	if sec > -lim && sec < lim {
		ns := sec*1e9 + nsec
		k := floorDiv(ns, int64(d)) + 1
		if p := k * int64(d); p/int64(d) == k { // no overflow
			return time.Unix(0, p), true
		}
	}
	// Far from 1970: exact arithmetic.
	ns := new(big.Int).Mul(big.NewInt(sec), big.NewInt(1e9))
	ns.Add(ns, big.NewInt(nsec))
	bd := big.NewInt(int64(d))
	k := new(big.Int).Div(ns, bd) // Euclidean: floor for d > 0
	k.Add(k, big.NewInt(1))
	k.Mul(k, bd)
	q, r := new(big.Int).DivMod(k, big.NewInt(1e9), new(big.Int))
	if !q.IsInt64() || q.Int64() < minUnix || q.Int64() > maxUnix {
		return time.Time{}, false
	}
	return time.Unix(q.Int64(), r.Int64()), true
}

// ParseError is a cron expression that does not parse. Field and Pos name
// the field at fault (Pos counts fields from 1); both are empty when the
// error is about the whole expression.
type ParseError struct {
	Expr  string // the expression as given
	Field string // "second", "minute", "hour", "day-of-month", "month", "day-of-week", "year"
	Pos   int    // 1-based field index, 0 for the whole expression
	Value string // the field's text
	Msg   string // what is wrong
}

func (e *ParseError) Error() string {
	if e.Pos > 0 {
		return fmt.Sprintf("cron: field %d (%s) %q: %s", e.Pos, e.Field, e.Value, e.Msg)
	}
	return fmt.Sprintf("cron: %q: %s", e.Expr, e.Msg)
}

func exprError(expr, msg string) *ParseError { return &ParseError{Expr: expr, Msg: msg} }
