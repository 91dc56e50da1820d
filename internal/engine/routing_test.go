package engine

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestRoute(t *testing.T) {
	three := []candidate{
		{ID: "w-b", Free: true, Held: 2, Capacity: 4, CPU: 0.5, LastDispatch: 7, Recent: 4},
		{ID: "w-a", Free: true, Held: 1, Capacity: 4, CPU: 0.9, LastDispatch: 9, Recent: 9},
		{ID: "w-c", Free: true, Held: 1, Capacity: 2, CPU: 0.1, LastDispatch: 3, Recent: 5},
	}
	// busy marks the workers with the given ids as having no free slot.
	busy := func(ids ...string) []candidate {
		out := slices.Clone(three)
		for i := range out {
			if slices.Contains(ids, out[i].ID) {
				out[i].Free = false
			}
		}
		return out
	}
	tests := []struct {
		name     string
		strategy string
		key      string
		cands    []candidate
		turn     string
		want     string // "" means -1: the run waits
	}{
		{"empty", RoutingLeastRecent, "", nil, "", ""},
		{"all busy", RoutingLeastRecent, "", busy("w-a", "w-b", "w-c"), "", ""},
		{"least-recent picks the oldest dispatch", RoutingLeastRecent, "", three, "", "w-c"},
		{"least-recent skips a busy worker", RoutingLeastRecent, "", busy("w-c"), "", "w-b"},
		{"least-recent prefers never dispatched", RoutingLeastRecent, "", append([]candidate{{ID: "w-z", Free: true}}, three...), "", "w-z"},
		{"least-recent ties break by id", RoutingLeastRecent, "", []candidate{{ID: "w-2", Free: true, LastDispatch: 1}, {ID: "w-1", Free: true, LastDispatch: 1}}, "", "w-1"},
		{"default is least-recent", "", "", three, "", "w-c"},
		// loads: b 0.5, a 0.25, c 0.5
		{"least-loaded picks lowest held/capacity", RoutingLeastLoaded, "", three, "", "w-a"},
		{"least-loaded skips a busy worker", RoutingLeastLoaded, "", busy("w-a"), "", "w-c"},
		{"least-loaded ties break by cpu", RoutingLeastLoaded, "", []candidate{{ID: "w-1", Free: true, Held: 1, Capacity: 2, CPU: 0.8}, {ID: "w-2", Free: true, Held: 2, Capacity: 4, CPU: 0.2}}, "", "w-2"},
		{"round-robin starts at the first id", RoutingRoundRobin, "", three, "", "w-a"},
		{"round-robin takes the id after the last", RoutingRoundRobin, "", three, "w-a", "w-b"},
		{"round-robin wraps", RoutingRoundRobin, "", three, "w-c", "w-a"},
		{"round-robin after a worker that left", RoutingRoundRobin, "", three, "w-bb", "w-c"},
		{"round-robin waits for the busy worker in turn", RoutingRoundRobin, "", busy("w-b"), "w-a", ""},
		{"failover takes the first id", RoutingFailover, "", three, "", "w-a"},
		{"failover waits for the first while it is busy", RoutingFailover, "", busy("w-a"), "", ""},
		{"failover moves on when the first is gone", RoutingFailover, "", three[:1], "", "w-b"},
		{"busy-over takes the first id", RoutingBusyOver, "", three, "", "w-a"},
		{"busy-over skips busy workers in order", RoutingBusyOver, "", busy("w-a"), "", "w-b"},
		{"least-frequent picks the fewest recent", RoutingLeastFrequent, "", three, "", "w-b"},
		{"least-frequent skips a busy worker", RoutingLeastFrequent, "", busy("w-b"), "", "w-c"},
		{"least-frequent ties break by last dispatch", RoutingLeastFrequent, "", []candidate{{ID: "w-1", Free: true, Recent: 2, LastDispatch: 8}, {ID: "w-2", Free: true, Recent: 2, LastDispatch: 5}}, "", "w-2"},
		{"hash is stable for a key", RoutingHash, "order-42", three, "", hashWinner("order-42", three)},
		{"random with one free", RoutingRandom, "", busy("w-a", "w-b"), "", "w-c"},
		{"random with none free", RoutingRandom, "", busy("w-a", "w-b", "w-c"), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := route(tt.strategy, tt.key, tt.cands, tt.turn, nil)
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

// Round-robin's spread is exact however the workers' slots come free: the
// k-th run goes to the k-th worker in turn, waiting for it if it is busy.
func TestRouteRoundRobinSpread(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	cands := []candidate{{ID: "w-2"}, {ID: "w-3"}, {ID: "w-1"}}
	got := map[string]int{}
	turn := ""
	for sent := 0; sent < 3000; {
		for i := range cands {
			cands[i].Free = rnd.IntN(3) > 0
		}
		i := route(RoutingRoundRobin, "", cands, turn, nil)
		if i < 0 {
			continue
		}
		turn = cands[i].ID
		got[turn]++
		sent++
	}
	for _, c := range cands {
		if got[c.ID] != 1000 {
			t.Fatalf("round-robin spread %v, want 1000 each", got)
		}
	}
}

func TestDispatchRateWindow(t *testing.T) {
	var r dispatchRate
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 30 {
		r.add(t0.Add(time.Duration(i) * time.Second))
	}
	if n := r.count(t0.Add(29 * time.Second)); n != 30 {
		t.Fatalf("count = %d, want 30", n)
	}
	// A minute after the 10th dispatch, the first ten are out of the window.
	if n := r.count(t0.Add(69 * time.Second)); n != 20 {
		t.Fatalf("count a minute on = %d, want 20", n)
	}
	if n := r.count(t0.Add(time.Hour)); n != 0 {
		t.Fatalf("count an hour on = %d, want 0", n)
	}
	r.add(t0.Add(time.Hour))
	if n := r.count(t0.Add(time.Hour)); n != 1 {
		t.Fatalf("count after a late dispatch = %d, want 1", n)
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
	all := []candidate{{ID: "w-1", Free: true}, {ID: "w-2", Free: true}, {ID: "w-3", Free: true}, {ID: "w-4", Free: true}}
	without3 := []candidate{{ID: "w-1", Free: true}, {ID: "w-2", Free: true}, {ID: "w-4", Free: true}}
	moved := 0
	for i := range 1000 {
		key := "k" + string(rune('a'+i%26)) + string(rune('0'+i%10)) + string(rune(i))
		before := all[route(RoutingHash, key, all, "", nil)].ID
		after := without3[route(RoutingHash, key, without3, "", nil)].ID
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
		i := route(RoutingRandom, "", []candidate{{Free: true}, {Free: true}, {Free: true}}, "", rnd)
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
