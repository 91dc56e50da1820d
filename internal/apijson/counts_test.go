package apijson

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/pluto-sched/pluto/internal/store"
)

// Counts must marshal exactly as the map it replaced.
func TestCountsMarshalLikeAMap(t *testing.T) {
	for _, m := range []map[string]int64{
		nil, {}, {"queued": 0}, {"succeeded": 12, "failed": -3, "queued": 1 << 62},
		{"a\"b": 1, "<x>": 2, "é": 3, "\n": 4, "&": 5, "\\": 6},
		{"succeeded": 1, "failed": 2, "skipped": 3, "timed_out": 4, "cancelled": 5, "queued": 6, "pending": 7, "blocked": 8, "dispatched": 9, "running": 10},
		{"succeeded": 1, "zzz": 2}, {"zzz": 1},
	} {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(Counts(m))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("Counts(%v) = %s, map marshals to %s", m, got, want)
		}
	}
}

func FuzzCountsMarshal(f *testing.F) {
	f.Add("queued", "b\x00", int64(7))
	f.Fuzz(func(t *testing.T, k1, k2 string, n int64) {
		m := map[string]int64{k1: n, k2: -n}
		want, _ := json.Marshal(m)
		got, err := json.Marshal(Counts(m))
		if err != nil || string(got) != string(want) {
			t.Fatalf("%v: got %s (%v), want %s", m, got, err, want)
		}
	})
}

// statusKeys are every run status, sorted: appendKnown's order is the
// map encoder's.
func TestStatusKeysAreTheStatusesSorted(t *testing.T) {
	var want []string
	for _, s := range store.AllStatuses {
		want = append(want, string(s))
	}
	slices.Sort(want)
	if !slices.Equal(statusKeys, want) {
		t.Fatalf("statusKeys %v, want %v", statusKeys, want)
	}
}
