package cron

import (
	"testing"
	"time"
)

func BenchmarkNext(b *testing.B) {
	for _, c := range []struct {
		name, expr, zone string
	}{
		{"every-minute/UTC", "0 0/1 * * * ?", "UTC"},
		{"every-minute/NewYork", "0 0/1 * * * ?", "America/New_York"},
		{"weekdays-0930/Berlin", "30 9 * * MON-FRI", "Europe/Berlin"},
		{"last-friday/NewYork", "0 15 10 ? * 6L", "America/New_York"},
		{"nearest-weekday/UTC", "0 0 12 15W * ?", "UTC"},
		{"third-friday/UTC", "0 0 0 ? * 6#3", "UTC"},
		{"leap-day/UTC", "0 0 0 29 2 ?", "UTC"},
		{"daily/Berlin", "@daily", "Europe/Berlin"},
		{"every-90m", "@every 90m", "UTC"},
		{"never/UTC", "0 0 0 30 2 ?", "UTC"},
		{"never/Berlin", "0 0 0 30 2 ?", "Europe/Berlin"},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := ParseIn(c.expr, mustLoad(b, c.zone))
			if err != nil {
				b.Fatal(err)
			}
			// Instants spread over 2026-2027, seconds and fractions included.
			var ats [1024]time.Time
			for i := range ats {
				ats[i] = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i)*17*time.Hour + time.Duration(i*7919)*time.Millisecond)
			}
			i := 0
			for b.Loop() {
				s.Next(ats[i%len(ats)])
				i++
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		if _, err := Parse("0 0/5 9-17 ? JAN-MAR,OCT MON-FRI#2,6L 2026-2030"); err == nil {
			b.Fatal("want an error: # with a range")
		}
		if _, err := Parse("0 0/5 9-17 ? JAN-MAR,OCT 2-6 2026-2030"); err != nil {
			b.Fatal(err)
		}
	}
}
