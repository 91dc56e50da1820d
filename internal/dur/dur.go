// Package dur parses durations as people write them for a scheduler: Go
// duration strings ("90s", "1h30m") plus days and weeks ("3d", "1w2d12h").
// A day here is 24 hours of elapsed time, not a calendar day.
package dur

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// Parse parses a duration with the units of time.ParseDuration and d
// (24h) and w (7d).
func Parse(s string) (time.Duration, error) {
	orig := s
	if s == "" {
		return 0, errors.New("empty duration")
	}
	neg := false
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		s = s[1:]
		if s == "" {
			return 0, fmt.Errorf("invalid duration %q", orig)
		}
	}
	var total time.Duration
	var rest strings.Builder
	for s != "" {
		i := 0
		for i < len(s) && (s[i] == '.' || s[i] >= '0' && s[i] <= '9') {
			i++
		}
		j := i
		for j < len(s) && !(s[j] == '.' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		num, unit := s[:i], s[i:j]
		if num == "" || unit == "" {
			return 0, fmt.Errorf("invalid duration %q", orig)
		}
		switch unit {
		case "d", "w":
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q", orig)
			}
			per := day
			if unit == "w" {
				per = week
			}
			v := f * float64(per)
			if v > math.MaxInt64-float64(total) {
				return 0, fmt.Errorf("duration %q is out of range", orig)
			}
			total += time.Duration(v)
		default:
			rest.WriteString(s[:j])
		}
		s = s[j:]
	}
	if rest.Len() > 0 {
		d, err := time.ParseDuration(rest.String())
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", orig)
		}
		if d > math.MaxInt64-total {
			return 0, fmt.Errorf("duration %q is out of range", orig)
		}
		total += d
	}
	if neg {
		total = -total
	}
	return total, nil
}

// Value is a pflag value (for cobra flags) holding a duration that may use
// days and weeks.
type Value struct{ D *time.Duration }

func (v Value) String() string {
	if v.D == nil {
		return "0s"
	}
	return v.D.String()
}

func (v Value) Set(s string) error {
	d, err := Parse(s)
	if err != nil {
		return err
	}
	*v.D = d
	return nil
}

func (Value) Type() string { return "duration" }
