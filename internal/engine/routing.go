package engine

import (
	"hash/fnv"
	"math/rand/v2"
)

// Routing strategies: how a run picks one of the workers that can take it.
const (
	RoutingLeastRecent = "least-recent" // free slot, dispatched to longest ago (Pluto)
	RoutingLeastLoaded = "least-loaded" // lowest held/capacity, then CPU
	RoutingRoundRobin  = "round-robin"
	RoutingRandom      = "random"
	RoutingHash        = "hash"     // same routing key → same worker while it lives
	RoutingFailover    = "failover" // first healthy worker in stable (id) order
)

var routings = []string{RoutingLeastRecent, RoutingLeastLoaded, RoutingRoundRobin, RoutingRandom, RoutingHash, RoutingFailover}

func knownRouting(s string) bool {
	for _, r := range routings {
		if r == s {
			return true
		}
	}
	return false
}

// candidate is a routing snapshot of one worker that can take the run now
// (it serves the run's type and has a free credit).
type candidate struct {
	ID           string
	Held         int     // runs the worker holds (dispatched or running)
	Capacity     int     // slots that run at once
	CPU          float64 // from the last heartbeat, 0..1 per core
	LastDispatch uint64  // engine dispatch counter at its last dispatch; 0 never
}

// route picks the index of the worker in cands that gets a run, or -1 when
// cands is empty. It is a pure function of its inputs: seq is a counter the
// caller advances for round-robin and rnd is used only by random.
func route(strategy, key string, cands []candidate, seq uint64, rnd *rand.Rand) int {
	if len(cands) == 0 {
		return -1
	}
	switch strategy {
	case RoutingLeastLoaded:
		return argBest(cands, func(a, b *candidate) bool {
			la, lb := load(a), load(b)
			if la != lb {
				return la < lb
			}
			if a.CPU != b.CPU {
				return a.CPU < b.CPU
			}
			return a.LastDispatch < b.LastDispatch
		})
	case RoutingRoundRobin:
		// Stable order by id, then the seq-th one.
		order := sortedIdx(cands)
		return order[int(seq%uint64(len(order)))]
	case RoutingRandom:
		if rnd == nil {
			return rand.IntN(len(cands))
		}
		return rnd.IntN(len(cands))
	case RoutingHash:
		// Rendezvous hashing: each (key, worker) pair gets a score and the
		// highest wins, so a key moves only when its worker goes away.
		return argBest(cands, func(a, b *candidate) bool {
			sa, sb := score(key, a.ID), score(key, b.ID)
			if sa != sb {
				return sa > sb
			}
			return a.ID < b.ID
		})
	case RoutingFailover:
		return argBest(cands, func(a, b *candidate) bool { return a.ID < b.ID })
	default: // least-recent
		return argBest(cands, func(a, b *candidate) bool {
			if a.LastDispatch != b.LastDispatch {
				return a.LastDispatch < b.LastDispatch
			}
			return a.ID < b.ID
		})
	}
}

func load(c *candidate) float64 {
	if c.Capacity <= 0 {
		return float64(c.Held)
	}
	return float64(c.Held) / float64(c.Capacity)
}

func argBest(cands []candidate, better func(a, b *candidate) bool) int {
	best := 0
	for i := 1; i < len(cands); i++ {
		if better(&cands[i], &cands[best]) {
			best = i
		}
	}
	return best
}

func sortedIdx(cands []candidate) []int {
	idx := make([]int, len(cands))
	for i := range idx {
		idx[i] = i
	}
	for i := 1; i < len(idx); i++ { // insertion sort: candidate lists are short
		for j := i; j > 0 && cands[idx[j]].ID < cands[idx[j-1]].ID; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	return idx
}

func score(key, worker string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(worker))
	// FNV barely mixes the last bytes, and worker ids often differ only
	// there; a splitmix64 finalizer spreads them.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
