package dur

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30s":      30 * time.Second,
		"1h30m":    90 * time.Minute,
		"3d":       72 * time.Hour,
		"1w":       168 * time.Hour,
		"1w2d12h":  (7*24 + 2*24 + 12) * time.Hour,
		"1.5d":     36 * time.Hour,
		"2d30m":    48*time.Hour + 30*time.Minute,
		"-1d":      -24 * time.Hour,
		"500ms":    500 * time.Millisecond,
		"1d1h1m1s": 25*time.Hour + time.Minute + time.Second,
		"0d":       0,
		"10m2d":    48*time.Hour + 10*time.Minute,
		"1us":      time.Microsecond,
		"0.5w":     84 * time.Hour,
		"+2h":      2 * time.Hour,
		"100000d":  100000 * 24 * time.Hour,
		"1h1d":     25 * time.Hour,
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "3", "3x", "1d-2h", "3dd", "..d", "1e9w", "99999999999999d", "1d 2h", "-"} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"3d", "1w2d12h", "1.5d", "x", "1e9w", "-0.5d30m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			return
		}
		if d2, err := Parse(d.String()); err != nil || d2 != d {
			t.Fatalf("Parse(%q) = %v; reparsing %q gives %v, %v", s, d, d.String(), d2, err)
		}
	})
}
