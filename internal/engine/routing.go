package engine

import (
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Routing strategies: how a run picks one of the workers of its group that
// serve its type. Most choose among the workers with a free slot; the two
// that take turns in a fixed order (round-robin, failover) wait for the
// worker whose turn it is instead of skipping it while it is busy — that
// is what makes their spread exact (round-robin) and their standby idle
// (failover).
const (
	RoutingLeastRecent   = "least-recent" // free slot, dispatched to longest ago (Pluto)
	RoutingLeastLoaded   = "least-loaded" // lowest held/capacity, then CPU
	RoutingRoundRobin    = "round-robin"  // each worker in turn, in id order; waits for the one in turn
	RoutingRandom        = "random"
	RoutingHash          = "hash"           // same routing key → same worker while it lives
	RoutingFailover      = "failover"       // the first healthy worker in id order; the next when it dies
	RoutingBusyOver      = "busy-over"      // the first worker in id order with a free slot
	RoutingLeastFrequent = "least-frequent" // fewest runs dispatched in the last frequencyWindow
)

// routings are the strategies a run or job may name: route's, and the
// broadcasts, which split a run at dispatch (fanout_split.go).
var routings = []string{RoutingLeastRecent, RoutingLeastLoaded, RoutingRoundRobin, RoutingRandom, RoutingHash,
	RoutingFailover, RoutingBusyOver, RoutingLeastFrequent, store.RoutingBroadcast, store.RoutingShardBroadcast}

func knownRouting(s string) bool {
	for _, r := range routings {
		if r == s {
			return true
		}
	}
	return false
}

// candidate is a routing snapshot of one healthy worker (alive, not
// draining) that serves the run's type and can receive its message.
type candidate struct {
	ID           string
	Free         bool    // it has a free credit now
	Held         int     // runs the worker holds (dispatched or running)
	Capacity     int     // slots that run at once
	CPU          float64 // from the last heartbeat, 0..1 per core
	LastDispatch uint64  // engine dispatch counter at its last dispatch; 0 never
	Recent       int     // runs dispatched to it in the last frequencyWindow
}

// route picks the index of the worker in cands that gets a run, or -1 when
// the run must wait: no candidate is free or, for the turn-taking
// strategies, the one whose turn it is is busy. It is a pure function of
// its inputs: turn is the id of the worker that got the group's last
// round-robin run, and rnd is used only by random.
func route(strategy, key string, cands []candidate, turn string, rnd *rand.Rand) int {
	switch strategy {
	case RoutingRoundRobin:
		// The first id after the last one served, wrapping around.
		next, first := -1, -1
		for i := range cands {
			id := cands[i].ID
			if first < 0 || id < cands[first].ID {
				first = i
			}
			if id > turn && (next < 0 || id < cands[next].ID) {
				next = i
			}
		}
		if next < 0 {
			next = first
		}
		return freeOrWait(cands, next)
	case RoutingFailover:
		return freeOrWait(cands, argBest(cands, func(a, b *candidate) bool { return a.ID < b.ID }))
	case RoutingRandom:
		n := 0
		for i := range cands {
			if cands[i].Free {
				n++
			}
		}
		if n == 0 {
			return -1
		}
		k := 0
		if rnd == nil {
			k = rand.IntN(n)
		} else {
			k = rnd.IntN(n)
		}
		for i := range cands {
			if cands[i].Free {
				if k == 0 {
					return i
				}
				k--
			}
		}
	}
	return argBestFree(cands, better(strategy, key))
}

// better is the order in which strategy prefers free workers.
func better(strategy, key string) func(a, b *candidate) bool {
	switch strategy {
	case RoutingLeastLoaded:
		return func(a, b *candidate) bool {
			la, lb := load(a), load(b)
			if la != lb {
				return la < lb
			}
			if a.CPU != b.CPU {
				return a.CPU < b.CPU
			}
			return a.LastDispatch < b.LastDispatch
		}
	case RoutingHash:
		// Rendezvous hashing: each (key, worker) pair gets a score and the
		// highest wins, so a key moves only when its worker goes away (or
		// is full).
		return func(a, b *candidate) bool {
			sa, sb := score(key, a.ID), score(key, b.ID)
			if sa != sb {
				return sa > sb
			}
			return a.ID < b.ID
		}
	case RoutingBusyOver:
		return func(a, b *candidate) bool { return a.ID < b.ID }
	case RoutingLeastFrequent:
		return func(a, b *candidate) bool {
			if a.Recent != b.Recent {
				return a.Recent < b.Recent
			}
			if a.LastDispatch != b.LastDispatch {
				return a.LastDispatch < b.LastDispatch
			}
			return a.ID < b.ID
		}
	default: // least-recent
		return func(a, b *candidate) bool {
			if a.LastDispatch != b.LastDispatch {
				return a.LastDispatch < b.LastDispatch
			}
			return a.ID < b.ID
		}
	}
}

func freeOrWait(cands []candidate, i int) int {
	if i < 0 || !cands[i].Free {
		return -1
	}
	return i
}

func load(c *candidate) float64 {
	if c.Capacity <= 0 {
		return float64(c.Held)
	}
	return float64(c.Held) / float64(c.Capacity)
}

// argBest is the index of the best of cands, -1 for none.
func argBest(cands []candidate, better func(a, b *candidate) bool) int {
	best := -1
	for i := range cands {
		if best < 0 || better(&cands[i], &cands[best]) {
			best = i
		}
	}
	return best
}

// argBestFree is the index of the best free candidate, -1 for none.
func argBestFree(cands []candidate, better func(a, b *candidate) bool) int {
	best := -1
	for i := range cands {
		if cands[i].Free && (best < 0 || better(&cands[i], &cands[best])) {
			best = i
		}
	}
	return best
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

// frequencyWindow is how far back least-frequent counts a worker's
// dispatches, in frequencyBuckets slices.
const (
	frequencyWindow  = time.Minute
	frequencyBuckets = 60
)

// dispatchRate counts a worker's dispatches over the last frequencyWindow
// in one-slice buckets: a ring indexed by slice number, each bucket
// remembering which slice it counts so stale ones read as empty.
type dispatchRate struct {
	slice [frequencyBuckets]int64 // the slice number each bucket counts
	n     [frequencyBuckets]int
}

func rateSlice(now time.Time) int64 {
	return now.UnixNano() / int64(frequencyWindow/frequencyBuckets)
}

func (r *dispatchRate) add(now time.Time) {
	s := rateSlice(now)
	i := int(s % frequencyBuckets)
	if r.slice[i] != s {
		r.slice[i], r.n[i] = s, 0
	}
	r.n[i]++
}

// count is the dispatches in the frequencyWindow up to now.
func (r *dispatchRate) count(now time.Time) int {
	s, total := rateSlice(now), 0
	for i := range r.n {
		if s-r.slice[i] < frequencyBuckets {
			total += r.n[i]
		}
	}
	return total
}
