package apijson

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// Stats.AppendJSON writes what encoding/json writes, byte for byte, for
// any content: names that need escaping, nil and empty maps and slices,
// floats of every size.
func TestStatsAppendJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	names := []string{"", "default", "etl-nightly", `quo"te`, "back\\slash", "<tag>&", "ünï", "tab\t", "a\u2028b"}
	floats := []float64{0, 1, 0.5, 1e-7, 3.25e-9, 123456.789, 1e21, 2.5e22, 0.000001, 86399.99}
	counts := func() Counts {
		switch rng.IntN(5) {
		case 0:
			return nil
		case 1:
			return Counts{}
		}
		c := Counts{}
		for range rng.IntN(10) {
			c[names[rng.IntN(len(names))]] = rng.Int64N(1<<40) - 5
		}
		return c
	}
	tp := func() Throughput { return Throughput{LastMinute: counts(), LastHour: counts(), LastDay: counts()} }
	for range 2000 {
		var s Stats
		if rng.IntN(4) > 0 {
			s.Groups = []GroupStats{}
		}
		for range rng.IntN(4) {
			g := GroupStats{Group: names[rng.IntN(len(names))], Counts: counts(), QueueDepth: rng.Int64N(100),
				OldestQueuedAgeSeconds: floats[rng.IntN(len(floats))], Workers: rng.IntN(9), Slots: rng.IntN(900),
				Throughput: tp(), DispatchLatencySeconds: DispatchLatency{P50: floats[rng.IntN(len(floats))],
					P99: floats[rng.IntN(len(floats))], Samples: rng.Int64N(1000)}}
			for range rng.IntN(3) {
				g.Jobs = append(g.Jobs, JobStats{Job: names[rng.IntN(len(names))], Counts: counts(), Throughput: tp()})
			}
			s.Groups = append(s.Groups, g)
		}
		s.Totals = StatsTotals{Counts: counts(), QueueDepth: rng.Int64N(9), Workers: rng.IntN(9), Slots: -rng.IntN(9), Throughput: tp()}
		s.CallbacksOwed = rng.Int64N(100001)
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.AppendJSON(nil); string(got) != string(want) {
			t.Fatalf("AppendJSON:\n%s\nencoding/json:\n%s", got, want)
		}
	}
}
