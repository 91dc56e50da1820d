package engine

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestRoute(t *testing.T) {
	three := []candidate{
		{ID: "w-b", Held: 2, Capacity: 4, CPU: 0.5, LastDispatch: 7},
		{ID: "w-a", Held: 1, Capacity: 4, CPU: 0.9, LastDispatch: 9},
		{ID: "w-c", Held: 1, Capacity: 2, CPU: 0.1, LastDispatch: 3},
	}
	tests := []struct {
		name     string
		strategy string
		key      string
		cands    []candidate
		seq      uint64
		want     string // "" means -1
	}{
		{"empty", RoutingLeastRecent, "", nil, 0, ""},
		{"least-recent picks the oldest dispatch", RoutingLeastRecent, "", three, 0, "w-c"},
		{"least-recent prefers never dispatched", RoutingLeastRecent, "", append([]candidate{{ID: "w-z"}}, three...), 0, "w-z"},
		{"least-recent ties break by id", RoutingLeastRecent, "", []candidate{{ID: "w-2", LastDispatch: 1}, {ID: "w-1", LastDispatch: 1}}, 0, "w-1"},
		{"default is least-recent", "", "", three, 0, "w-c"},
		// loads: b 0.5, a 0.25, c 0.5
		{"least-loaded picks lowest held/capacity", RoutingLeastLoaded, "", three, 0, "w-a"},
		{"least-loaded ties break by cpu", RoutingLeastLoaded, "", []candidate{{ID: "w-1", Held: 1, Capacity: 2, CPU: 0.8}, {ID: "w-2", Held: 2, Capacity: 4, CPU: 0.2}}, 0, "w-2"},
		{"round-robin seq 0 is first by id", RoutingRoundRobin, "", three, 0, "w-a"},
		{"round-robin seq 1", RoutingRoundRobin, "", three, 1, "w-b"},
		{"round-robin seq 5 wraps", RoutingRoundRobin, "", three, 5, "w-c"},
		{"failover takes the first id", RoutingFailover, "", three, 0, "w-a"},
		{"hash is stable for a key", RoutingHash, "order-42", three, 0, hashWinner("order-42", three)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := route(tt.strategy, tt.key, tt.cands, tt.seq, nil)
			got := ""
			if i >= 0 {
				got = tt.cands[i].ID
			}
			if got != tt.want {
				t.Fatalf("route(%q) = %q, want %q", tt.strategy, got, tt.want)
			}
		})
	}
}

func hashWinner(key string, cands []candidate) string {
	best, bestScore := "", uint64(0)
	for _, c := range cands {
		if s := score(key, c.ID); best == "" || s > bestScore {
			best, bestScore = c.ID, s
		}
	}
	return best
}

// A key keeps its worker when another worker leaves, unless it was on the
// one that left (rendezvous hashing).
func TestRouteHashMovesOnlyLostKeys(t *testing.T) {
	all := []candidate{{ID: "w-1"}, {ID: "w-2"}, {ID: "w-3"}, {ID: "w-4"}}
	without3 := []candidate{{ID: "w-1"}, {ID: "w-2"}, {ID: "w-4"}}
	moved := 0
	for i := range 1000 {
		key := "k" + string(rune('a'+i%26)) + string(rune('0'+i%10)) + string(rune(i))
		before := all[route(RoutingHash, key, all, 0, nil)].ID
		after := without3[route(RoutingHash, key, without3, 0, nil)].ID
		if before != "w-3" && before != after {
			t.Fatalf("key %q moved from %s to %s though %s is still there", key, before, after, before)
		}
		if before == "w-3" {
			moved++
		}
	}
	if moved < 150 || moved > 350 {
		t.Fatalf("w-3 held %d of 1000 keys; want about a quarter", moved)
	}
}

func TestRouteRandomStaysInRange(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	seen := map[int]bool{}
	for range 200 {
		i := route(RoutingRandom, "", make([]candidate, 3), 0, rnd)
		if i < 0 || i > 2 {
			t.Fatalf("index %d out of range", i)
		}
		seen[i] = true
	}
	if len(seen) != 3 {
		t.Fatalf("random used %d of 3 workers", len(seen))
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	e := &Engine{cfg: Config{RetryBase: time.Second, RetryMax: 10 * time.Second}}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 50: 10 * time.Second} {
		for range 50 {
			d := e.backoff(n)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
}
