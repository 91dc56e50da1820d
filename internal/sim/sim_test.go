package sim_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/sim"
)

var (
	flagSeeds = flag.Int("seeds", 0, "how many seeds to run, from -from (env SIM_SEEDS; default 300 under make sim, "+
		"a handful under go test)")
	flagSeed  = flag.Uint64("seed", 0, "run only this seed and print its whole trace (env SIM_SEED)")
	flagFrom  = flag.Uint64("from", 1, "the first seed (env SIM_FROM)")
	flagAll   = flag.Bool("all", false, "keep going after a failing seed; print a summary by invariant (env SIM_ALL=1)")
	flagTrace = flag.Bool("trace", false, "print the whole trace of a failing seed, not an excerpt (env SIM_TRACE=1)")
	flagOff   = flag.String("off", "", "comma-separated features of the model to turn off, to tell which one a failure needs (env SIM_OFF; "+
		strings.Join(sim.Features, ",")+")")
)

// off parses -off / SIM_OFF.
func off(t *testing.T) map[string]bool {
	list := *flagOff
	if list == "" {
		list = os.Getenv("SIM_OFF")
	}
	m := map[string]bool{}
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !slices.Contains(sim.Features, f) {
			t.Fatalf("-off: unknown feature %q (known: %s)", f, strings.Join(sim.Features, ","))
		}
		m[f] = true
	}
	return m
}

func envUint(name string, def uint64) uint64 {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			panic(fmt.Sprintf("%s=%q: %v", name, v, err))
		}
		return n
	}
	return def
}

// seeds returns the seeds to run.
func seeds() (list []uint64, single bool) {
	if s := *flagSeed; s != 0 {
		return []uint64{s}, true
	}
	if s := envUint("SIM_SEED", 0); s != 0 {
		return []uint64{s}, true
	}
	n := uint64(*flagSeeds)
	if n == 0 {
		// go test ./... (make test runs it with -race): a handful, so the
		// package stays well under a minute.
		n = envUint("SIM_SEEDS", map[bool]uint64{true: 5, false: 12}[raceEnabled])
	}
	from := *flagFrom
	if from == 1 {
		from = envUint("SIM_FROM", 1)
	}
	for i := range n {
		list = append(list, from+i)
	}
	return list, false
}

// TestSim runs the simulation for each seed, in parallel (-parallel,
// default GOMAXPROCS), each in its own synctest bubble and SQLite file.
// The first failing seed prints its violations, a trace excerpt and the
// command that replays it; the run then stops unless -all.
func TestSim(t *testing.T) {
	list, single := seeds()
	offs := off(t)
	all := *flagAll || os.Getenv("SIM_ALL") == "1"
	fullTrace := single || *flagTrace || os.Getenv("SIM_TRACE") == "1"
	var (
		stop     atomic.Bool
		mu       sync.Mutex
		failed   []*sim.Result
		ran      int
		simTime  time.Duration
		reported bool
	)
	start := time.Now()
	t.Run("seeds", func(t *testing.T) {
		for _, seed := range list {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				t.Parallel()
				if stop.Load() {
					t.Skip("an earlier seed failed (-all to go on)")
				}
				dir := t.TempDir()
				var res *sim.Result
				synctest.Test(t, func(t *testing.T) {
					var err error
					res, err = sim.Run(sim.Config{Seed: seed, Dir: dir, Short: raceEnabled, Off: offs})
					if err != nil {
						t.Fatalf("seed %d: %v", seed, err)
					}
				})
				mu.Lock()
				ran++
				simTime += res.Stats.SimTime
				mu.Unlock()
				if single {
					t.Logf("seed %d: %s", seed, describe(res))
				}
				if len(res.Violations) == 0 {
					return
				}
				if !all {
					stop.Store(true)
				}
				mu.Lock()
				failed = append(failed, res)
				first := !reported
				reported = true
				mu.Unlock()
				t.Error(report(res, first, fullTrace))
			})
		}
	})
	wall := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	fmt.Printf("sim: %d seeds in %v (%.1f seeds/s, %v simulated, %.0fx real time), %d failed\n",
		ran, wall.Round(time.Millisecond), float64(ran)/wall.Seconds(), simTime.Round(time.Second), simTime.Seconds()/wall.Seconds(), len(failed))
	if len(failed) > 0 {
		fmt.Print(summary(failed))
		slices.SortFunc(failed, func(a, b *sim.Result) int { return int(a.Seed) - int(b.Seed) })
		fmt.Printf("sim: replay the first failing seed: %s\n", replay(failed[0].Seed))
	}
}

func describe(r *sim.Result) string {
	s := r.Stats
	return fmt.Sprintf("%v simulated, %d runs, %d commits, %d restarts, faults %+v; workers %s", s.SimTime.Round(time.Second), s.Runs, s.Commits, s.Restarts, s.Faults, s.Workers)
}

func replay(seed uint64) string {
	return fmt.Sprintf("make sim SEED=%d   (or: go test ./internal/sim -run '^TestSim$' -count=1 -v -args -seed=%d)", seed, seed)
}

// report is a failing seed's message: every violation, the replay
// command, and (for the first failing seed) a trace excerpt, or the whole
// trace.
func report(r *sim.Result, first, full bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nsim: seed %d FAILED: %d invariant violations\n", r.Seed, len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "  seed %d: %s\n", r.Seed, v)
	}
	fmt.Fprintf(&b, "  replay: %s\n", replay(r.Seed))
	fmt.Fprintf(&b, "  world: %s\n", describe(r))
	path := filepath.Join(os.TempDir(), fmt.Sprintf("pluto-sim-seed-%d.trace", r.Seed))
	if f, err := os.Create(path); err == nil {
		r.WriteTrace(f)
		f.Close()
		fmt.Fprintf(&b, "  whole trace: %s\n", path)
	}
	if !first && !full {
		return b.String()
	}
	if full {
		b.WriteString("trace:\n")
		var tb strings.Builder
		r.WriteTrace(&tb)
		b.WriteString(tb.String())
		return b.String()
	}
	b.WriteString("trace excerpt (lines about the violations, and the last ones):\n")
	for _, l := range r.Excerpt(250) {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// summary counts the failing seeds by invariant, each with its first seed.
func summary(failed []*sim.Result) string {
	slices.SortFunc(failed, func(a, b *sim.Result) int { return int(a.Seed) - int(b.Seed) })
	type agg struct {
		seeds []uint64
		first string
	}
	by := map[string]*agg{}
	for _, r := range failed {
		seen := map[string]bool{}
		for _, v := range r.Violations {
			if seen[v.Invariant] {
				continue
			}
			seen[v.Invariant] = true
			a := by[v.Invariant]
			if a == nil {
				a = &agg{first: v.String()}
				by[v.Invariant] = a
			}
			a.seeds = append(a.seeds, r.Seed)
		}
	}
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("sim: failing seeds by invariant:\n")
	for _, n := range names {
		a := by[n]
		shown := a.seeds
		if len(shown) > 12 {
			shown = shown[:12]
		}
		fmt.Fprintf(&b, "  %-7s %4d seeds, first %d: %v\n          e.g. %s\n", n, len(a.seeds), a.seeds[0], shown, clip(a.first, 300))
	}
	return b.String()
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
