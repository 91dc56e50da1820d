package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store/faultstore"
	"github.com/pluto-sched/pluto/internal/store/sqlite"
)

// Config is one seed's simulation.
type Config struct {
	Seed uint64
	// Dir is a directory for the seed's SQLite database.
	Dir string
	// Short halves the fault phase (for runs under the race detector).
	Short bool
	// Off turns features of the model off, to tell which one a failure
	// needs (Features lists them). The seed's other draws do not change.
	Off map[string]bool
}

// Features are the parts of the model Config.Off can turn off.
var Features = []string{
	"crash", "freeze", "garbage", "refuse", "nodeadline", "window0", "badoutput", "dup", // worker quirks
	"poison", "hang", "hasty", "burst", "invented", "jobs", "restarts", // workload and server
	"errors", "commiterr", "latency", "outage", // store faults
}

func (w *world) on(feature string) bool { return !w.cfg.Off[feature] }

// Invariants (docs/simulation.md).
const (
	invOnce   = "once"   // 1: no attempt completed twice; a run ends once per user retry
	invFenced = "fenced" // 2: no stale or foreign report changes the store
	invLive   = "live"   // 3: every acknowledged run ends within the bound after the last fault
	invSlots  = "slots"  // 4: no slot leak; every live worker and group still gets work
	invMemory = "memory" // 5: engine memory does not grow with invented group names
	invCron   = "cron"   // 6: one run per cron slot; none while the job is paused or deleted
	invSubmit = "submit" // 7: a Submit that failed on its context committed nothing; one key, one run
	invStarve = "starve" // 8: no worker idles while runs it serves are queued (fault-free spans)
	invLogs   = "logs"   // 9: a run's log lines come from workers that held that attempt
	invStable = "stable" // 10: the server does not keep closing a healthy worker's stream (quiet phase)
)

// Violation is one broken invariant.
type Violation struct {
	Invariant string
	Subject   string // a run or worker id, or ""
	Message   string
	At        time.Duration // simulated time since the start
}

func (v Violation) String() string {
	s := fmt.Sprintf("[%s] at %.1fs", v.Invariant, v.At.Seconds())
	if v.Subject != "" {
		s += " " + v.Subject
	}
	return s + ": " + v.Message
}

// Result is what one seed did and found.
type Result struct {
	Seed       uint64
	Violations []Violation
	Stats      Stats
	tr         *trace
}

// Stats describe a seed's run.
type Stats struct {
	SimTime  time.Duration
	Runs     int
	Commits  int
	Restarts int
	Workers  string
	Faults   faultstore.Stats
}

// Excerpt is the part of the trace that concerns the violations, and its
// last lines.
func (r *Result) Excerpt(max int) []string {
	var words []string
	for _, v := range r.Violations {
		if v.Subject != "" {
			words = append(words, v.Subject)
		}
	}
	return r.tr.excerpt(words, 40, max)
}

// WriteTrace writes the whole trace.
func (r *Result) WriteTrace(w io.Writer) { r.tr.write(w) }

type groupDef struct {
	name  string
	types []string
}

type gaveUp struct {
	key string
	err string
	at  time.Time
}

// streak is how long a worker has been idle with work it serves queued.
type streak struct {
	gen      int
	since    time.Time
	reported bool
}

// Phases.
const (
	phaseFault = iota
	phaseQuiet
	phaseDone
)

// world is one seed's simulation. Its fields are owned by the driver
// goroutine unless noted.
type world struct {
	cfg     Config
	rng     *rand.Rand
	tr      *trace
	start   time.Time
	tick    time.Duration
	hbEvery time.Duration
	bound   time.Duration

	inner *sqlite.Store
	fs    *faultstore.Store
	hist  *history
	ids   atomic.Int64

	groups  []groupDef
	workers []*worker
	jobs    []*simJob
	poison  bool
	keySeq  int

	phase       int
	faultEnd    time.Time
	nextWindow  time.Time
	profile     faultstore.Faults
	storeDown   bool
	noLatency   bool      // latency off (for a graceful stop, see beginRestart)
	calmUntil   time.Time // no client activity and no faults until then (after a claims window)
	calmNext    bool      // the next fault window is a calm one
	latencyOff  time.Time // since when no call can be delayed
	faultsOff   time.Time // since when the store has been fault-free (zero: faults on)
	lastFault   time.Time
	actionRate  float64
	restarts    []restartPlan
	restarting  *restartPlan
	engineStart time.Time
	starve      map[string]*streak
	nextSample  time.Time
	engGen      int
	pending     *engine.Engine // started, not yet running (Start failed)
	inflight    sync.WaitGroup
	usedKeys    []string

	mu         sync.Mutex // guards what client goroutines and engine callbacks touch
	eng        *engine.Engine
	violations []Violation
	seen       map[string]bool
	acked      map[string]bool // runs a Submit (or JobTrigger) returned
	ackedOrder []string
	keys       map[string]string
	gaveUp     []gaveUp
}

type restartPlan struct {
	at       time.Time
	mode     string // plain, graceful, crash
	down     time.Duration
	done     chan struct{}
	upAt     time.Time
	stopped  bool
	finished bool
}

func (w *world) engine() *engine.Engine {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.eng
}

func (w *world) violate(inv, subject, format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violateLocked(inv, subject, format, args...)
}

func (w *world) violateLocked(inv, subject, format string, args ...any) {
	k := inv + "|" + subject
	if w.seen[k] {
		return
	}
	w.seen[k] = true
	v := Violation{Invariant: inv, Subject: subject, Message: fmt.Sprintf(format, args...), At: time.Since(w.start)}
	w.violations = append(w.violations, v)
	w.tr.add("VIOLATION %s", v)
}

// chaos reports whether workers misbehave now.
func (w *world) chaos() bool { return w.phase == phaseFault }

func (w *world) newID() string { return fmt.Sprintf("r_%06d", w.ids.Add(1)) }

// Run simulates one seed. It must be called inside a testing/synctest
// bubble: every timer and sleep is on the bubble's fake clock.
func Run(cfg Config) (*Result, error) {
	start := time.Now()
	w := &world{
		cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)), tr: newTrace(start), start: start,
		tick: 100 * time.Millisecond, hbEvery: 500 * time.Millisecond, bound: 2 * time.Minute,
		starve: make(map[string]*streak), seen: make(map[string]bool), acked: make(map[string]bool),
		keys: make(map[string]string),
	}
	w.hist = newHistory(w)
	inner, err := sqlite.Open(context.Background(), filepath.Join(cfg.Dir, "pluto.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		return nil, err
	}
	w.inner = inner
	w.fs = faultstore.New(inner, faultstore.Options{Seed: cfg.Seed, OnCommit: w.hist.observe})
	defer inner.Close()

	w.setup()
	w.startEngine(start)
	synctest.Wait()
	for w.engine() == nil {
		w.step()
	}
	w.faultPhase()
	w.quietPhase()
	w.shutdown()

	res := &Result{Seed: cfg.Seed, tr: w.tr}
	w.mu.Lock()
	res.Violations = slices.Clone(w.violations)
	w.mu.Unlock()
	res.Stats = Stats{
		SimTime: time.Since(start), Runs: int(w.ids.Load()), Commits: w.hist.commits,
		Restarts: w.engGen - 1, Faults: w.fs.Stats(), Workers: w.describeWorkers(),
	}
	return res, nil
}

// setup draws the seed's world: groups and types, workers and their
// quirks, jobs, fault intensity, restarts.
func (w *world) setup() {
	r := w.rng
	allTypes := []string{"t0", "t1", "t2"}
	for g := range 1 + r.IntN(3) {
		types := slices.Clone(allTypes[:1+r.IntN(3)])
		w.groups = append(w.groups, groupDef{name: fmt.Sprintf("g%d", g), types: types})
	}
	n := 2 + r.IntN(6)
	for i := range n {
		g := w.groups[i%len(w.groups)]
		if i >= len(w.groups) {
			g = w.groups[r.IntN(len(w.groups))]
		}
		var q quirks
		if r.IntN(100) < 30 && w.on("crash") {
			q.crash = 0.01 + 0.04*r.Float64()
		}
		if r.IntN(100) < 25 && w.on("freeze") {
			q.freeze = 0.01 + 0.03*r.Float64()
		}
		if r.IntN(100) < 20 && w.on("garbage") {
			q.garbage = 0.05 + 0.25*r.Float64()
		}
		q.refuseCancel = r.IntN(100) < 15 && w.on("refuse")
		q.noDeadline = r.IntN(100) < 15 && w.on("nodeadline")
		q.window0 = r.IntN(100) < 7 && w.on("window0")
		q.resultDir = r.IntN(100) < 40
		q.badOutput = r.IntN(100) < 15 && w.on("badoutput")
		w.addWorker(fmt.Sprintf("w%d", i), g, r.IntN(3) == 0, q)
	}
	if r.IntN(10) == 0 && w.on("dup") {
		// A second process under the first worker's id.
		first := w.workers[0]
		g := groupDef{name: first.group}
		for _, x := range w.groups {
			if x.name == first.group {
				g = x
			}
		}
		w.addWorker(first.id, g, false, quirks{})
	}
	for i := range r.IntN(4) {
		if !w.on("jobs") {
			break
		}
		w.jobs = append(w.jobs, &simJob{name: fmt.Sprintf("j%d", i), group: w.groups[r.IntN(len(w.groups))].name})
	}
	w.poison = r.IntN(4) == 0 && w.on("poison")
	w.actionRate = 1 + 2*r.Float64()
	fault := 60*time.Second + time.Duration(r.Int64N(int64(60*time.Second)))
	if w.cfg.Short {
		fault /= 2
	}
	w.faultEnd = w.start.Add(fault)
	for range r.IntN(3) {
		modes := []string{"plain", "graceful", "crash"}
		w.restarts = append(w.restarts, restartPlan{
			at:   w.start.Add(5*time.Second + time.Duration(r.Int64N(int64(fault-10*time.Second)))),
			mode: modes[r.IntN(3)], down: time.Duration(r.Int64N(int64(12 * time.Second))),
		})
	}
	if !w.on("restarts") {
		w.restarts = nil
	}
	slices.SortFunc(w.restarts, func(a, b restartPlan) int { return a.at.Compare(b.at) })
	w.tr.add("seed %d: fault phase %v, groups %v, %d jobs, poison %v, %d restarts, client %.1f/s", w.cfg.Seed, fault, w.groups, len(w.jobs), w.poison, len(w.restarts), w.actionRate)
	for _, wk := range w.workers {
		w.tr.add("  %s (id %s) group %s types %v capacity %d window %d: %s", wk.name, wk.id, wk.group, wk.types, wk.capacity, wk.window, wk.q)
	}
}

// addWorker adds a worker serving some of g's types (all of them if all)
// and its own probe type.
func (w *world) addWorker(id string, g groupDef, all bool, q quirks) *worker {
	r := w.rng
	types := slices.Clone(g.types)
	if !all && len(types) > 1 {
		r.Shuffle(len(types), func(i, j int) { types[i], types[j] = types[j], types[i] })
		types = types[:1+r.IntN(len(types))]
		sort.Strings(types)
	}
	idx := len(w.workers)
	name := id
	for _, o := range w.workers {
		if o.id == id {
			name = fmt.Sprintf("%s#%d", id, idx)
		}
	}
	capacity := 1 + r.IntN(4)
	wk := &worker{
		w: w, idx: idx, id: id, name: name, group: g.name, types: append(types, "probe."+id),
		capacity: capacity, window: capacity + r.IntN(3), q: q,
		rng:   rand.New(rand.NewPCG(w.cfg.Seed, uint64(idx)+1)),
		tasks: make(map[attemptRef]*task), unacked: make(map[attemptRef]engine.Result),
	}
	wk.nextTry = time.Now().Add(time.Duration(r.IntN(1000)) * time.Millisecond)
	w.workers = append(w.workers, wk)
	return wk
}

func (w *world) describeWorkers() string {
	var b strings.Builder
	for i, wk := range w.workers {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s[%s]", wk.name, wk.q)
	}
	return b.String()
}

// startEngine starts a new engine (a restart or a leader change: the next
// server on the same store); if its Start fails, the next tick tries again.
func (w *world) startEngine(now time.Time) {
	if w.pending == nil {
		w.engGen++
		cfg := engine.Config{
			Store: w.fs, ServerID: fmt.Sprintf("s%d", w.engGen), Logger: slog.New(&logHandler{t: w.tr}),
			// The engine jitters retry delays with the runtime's unseeded
			// random source; a delay of 2µs leaves at most a microsecond of
			// it, so retries replay. (Delayed submits exercise pending runs
			// and the promoter.)
			HeartbeatInterval: time.Second, RetryBase: 2 * time.Microsecond, RetryMax: 2 * time.Microsecond,
			ExclusiveStore: true, NewID: w.newID, MisfireGrace: 2 * time.Second,
		}
		e, err := engine.New(cfg)
		if err != nil {
			panic(err) // a configuration error: the simulation's fault
		}
		w.pending = e
	}
	if err := w.pending.Start(context.Background()); err != nil {
		w.tr.add("server s%d: start failed: %v", w.engGen, err)
		return
	}
	w.tr.add("server s%d started", w.engGen)
	w.mu.Lock()
	w.eng = w.pending
	w.mu.Unlock()
	w.pending = nil
	w.engineStart = now
}

// step advances the simulation by one tick.
func (w *world) step() time.Time {
	time.Sleep(w.tick)
	synctest.Wait()
	now := time.Now()
	w.restartProgress(now)
	synctest.Wait()
	// One worker at a time, each one's messages handled by the engine
	// before the next acts: batches, and so the store calls that faults
	// are decided for, follow from the seed rather than from the
	// goroutine scheduler.
	for _, wk := range w.workers {
		wk.tick(now)
		synctest.Wait()
	}
	if !now.Before(w.nextSample) {
		w.nextSample = now.Add(time.Second)
		w.sampleStarvation(now)
	}
	return now
}

// faultPhase: faults on and off in windows, misbehaving workers, random
// clients, restarts.
func (w *world) faultPhase() {
	w.phase = phaseFault
	w.jobsSetup()
	for now := time.Now(); now.Before(w.faultEnd); now = w.step() {
		w.faultSchedule(now)
		if w.rng.Float64() < w.actionRate*w.tick.Seconds() && !now.Before(w.calmUntil) {
			w.clientAction(now)
			synctest.Wait()
		}
		if len(w.restarts) > 0 && w.restarting == nil && !now.Before(w.restarts[0].at) && w.readyToStop(now, w.restarts[0]) {
			p := w.restarts[0]
			w.restarts = w.restarts[1:]
			w.beginRestart(now, p)
		}
	}
}

// jobsSetup creates the seed's jobs.
func (w *world) jobsSetup() {
	for _, j := range w.jobs {
		def := w.jobDef(w.rng, j)
		j.busy = true
		w.async(func(eng *engine.Engine) {
			_, _, err := eng.JobPut(context.Background(), def)
			w.mu.Lock()
			j.busy = false
			j.exists = err == nil
			w.mu.Unlock()
			w.tr.add("client job %s put (%s, overlap %s, misfire %s): %v", j.name, def.Schedule, def.Overlap, def.Misfire, err)
		})
	}
}

// faultSchedule switches the store's fault profile between windows: off,
// light (errors, closed connections, commit-then-error, latency), and
// outage (almost every call fails).
func (w *world) faultSchedule(now time.Time) {
	if now.Before(w.nextWindow) {
		return
	}
	r := w.rng
	d := time.Duration(3000+r.IntN(12000)) * time.Millisecond
	var f faultstore.Faults
	name := "off"
	x := r.IntN(100)
	if w.calmNext {
		// After a claims window: no faults and no clients for 15 s, so a
		// wake-up the failed claims lost shows as an idle worker (starve).
		w.calmNext = false
		x, d, name = 0, 15*time.Second, "calm"
		w.calmUntil = now.Add(d)
	}
	switch {
	case x < 0:
	case x < 35:
	case x < 80:
		name = "light"
		f = faultstore.Faults{
			Error: 0.02 + 0.13*r.Float64(), Closed: 0.03 * r.Float64(), CommitError: 0.03 * r.Float64(),
			Latency: 0.1 + 0.4*r.Float64(), MaxLatency: time.Duration(50+r.IntN(1950)) * time.Millisecond,
			Slow: slow,
		}
	case x < 92:
		name = "claims"
		d = time.Duration(2000+r.IntN(2000)) * time.Millisecond
		f = faultstore.Faults{Error: 1, Methods: func(m string) bool { return m == "Tx.RunClaim" }}
		w.calmNext = w.on("errors")
		if !w.on("errors") {
			f = faultstore.Faults{}
		}
	default:
		name = "outage"
		d = time.Duration(1000+r.IntN(5000)) * time.Millisecond
		f = faultstore.Faults{Error: 0.9 + 0.1*r.Float64(), Closed: 0.05}
		if !w.on("outage") {
			f = faultstore.Faults{}
		}
	}
	if !w.on("errors") {
		f.Error, f.Closed = 0, 0
	}
	if !w.on("commiterr") {
		f.CommitError = 0
	}
	if !w.on("latency") {
		f.Latency = 0
	}
	w.nextWindow = now.Add(d)
	w.profile = f
	w.applyFaults(now)
	w.tr.add("faults %s for %v (%+v)", name, d, f)
}

// slow says which store calls may be delayed: not the leader lease's,
// which the engine makes holding a sync.Mutex (lead.elect) that another
// goroutine may wait for — in a synctest bubble that wait is not durable,
// so fake time would stop and the delay never end.
func slow(method string) bool { return method != "LeaderElect" && method != "LeaderResign" }

func (w *world) applyFaults(now time.Time) {
	f := w.profile
	if w.storeDown {
		f = faultstore.Faults{Error: 1}
	}
	if w.noLatency {
		f.Latency = 0
	}
	if f.Latency > 0 {
		w.latencyOff = time.Time{}
	} else if w.latencyOff.IsZero() {
		w.latencyOff = now
	}
	w.fs.SetFaults(f)
	on := f.Error > 0 || f.Closed > 0 || f.CommitError > 0 || f.Latency > 0
	switch {
	case on:
		w.faultsOff = time.Time{}
		w.lastFault = now
	case w.faultsOff.IsZero():
		w.faultsOff = now
	}
}

// readyToStop holds a graceful stop back until no store call can be
// delayed. Quiesce gives the leader lease up holding a sync.Mutex that a
// lease renewal in flight also holds; waiting for a sync.Mutex is not
// durable blocking in a synctest bubble, so while it waits fake time stands
// still, and a renewal stuck behind a delayed transaction would never
// finish. So latency is turned off for a graceful stop, and the stop waits
// until every delay already drawn (at most 2 s) is over.
func (w *world) readyToStop(now time.Time, p restartPlan) bool {
	if p.mode != "graceful" {
		return true
	}
	if !w.noLatency {
		w.noLatency = true
		w.applyFaults(now)
	}
	return !w.latencyOff.IsZero() && now.Sub(w.latencyOff) > 2500*time.Millisecond
}

// beginRestart stops the engine: plain (Stop), graceful (Quiesce for up
// to 3 s, then Stop) or crash (the store fails every call while it stops,
// so what it had not written is lost, as in a crash). The next engine
// starts after the downtime.
func (w *world) beginRestart(now time.Time, p restartPlan) {
	w.mu.Lock()
	eng := w.eng
	w.eng = nil
	w.mu.Unlock()
	p.done = make(chan struct{})
	w.restarting = &p
	w.tr.add("server s%d: %s stop, down for %v", w.engGen, p.mode, p.down)
	if p.mode == "crash" {
		w.storeDown = true
		w.applyFaults(now)
	}
	if p.mode != "graceful" {
		for _, wk := range w.workers {
			wk.streamLost(now)
		}
	}
	go func() {
		defer close(p.done)
		if p.mode == "graceful" {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			res, err := eng.Quiesce(ctx, engine.QuiesceOptions{})
			cancel()
			w.tr.add("server quiesced: %+v %v", res, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = eng.Stop(ctx)
	}()
}

// restartProgress finishes a restart: streams end once the old engine
// stopped, and the new one starts after the downtime.
func (w *world) restartProgress(now time.Time) {
	p := w.restarting
	if p == nil {
		if w.engine() == nil && w.pending != nil {
			w.startEngine(now)
		}
		return
	}
	if !p.stopped {
		select {
		case <-p.done:
		default:
			return
		}
		p.stopped = true
		p.upAt = now.Add(p.down)
		w.tr.add("server s%d stopped", w.engGen)
		for _, wk := range w.workers {
			wk.streamLost(now)
		}
		if w.storeDown || w.noLatency {
			w.storeDown, w.noLatency = false, false
			w.applyFaults(now)
		}
	}
	if now.Before(p.upAt) && w.phase == phaseFault {
		return
	}
	w.startEngine(now)
	if w.engine() != nil {
		w.restarting = nil
	}
}
