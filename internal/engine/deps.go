package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Dependencies between jobs (docs/workflows.md)
//
// A job may list upstream jobs (depends_on) and a trigger rule. Its run
// for logical time T is created blocked — by its own schedule's slot T,
// or, for a job with no schedule, with the first upstream run for T — and
// the gate (below) decides it from the upstream runs that match T: the
// run of the same logical time, or with a window W the upstream's latest
// run in (T-W, T]. The rule holds: the run is queued. The rule can no
// longer hold: it ends skipped, its error naming the upstream run that
// decided (prefix depsSkipped). Otherwise it waits.
//
// The gate runs after commits, never inside the transactions that end
// upstream runs: each upstream run that ends is noted (terminal), and an
// op of its own re-reads, in one transaction, the upstream runs of every
// blocked run it may release and moves them with RunGate, which applies
// only to a run still blocked. Since every ending upstream run is noted
// after its commit, the op noted last sees all of them: a join of any
// number of parents is decided once they have all ended, by whichever
// op comes last, and moved once whichever server decides it. What a
// crash loses between a commit and its op, the reconciler finds again
// (every blocked run of a job with dependencies is checked on its pass).
//
// A retried upstream run reopens its downstream: the runs for T it had
// skipped (depsSkipped) go back to blocked, theirs in turn, and wait for
// the retry's outcome.

// depsSkipped starts the error of a run skipped by its trigger rule.
const depsSkipped = "dependencies: "

// maxDepWindow bounds a dependency's window.
const maxDepWindow = 366 * 24 * time.Hour

// depGraph is the jobs and their dependencies, read from the store.
type depGraph struct {
	jobs map[string]*store.Job
	deps map[string][]store.Dependency // job -> its upstreams
	down map[string][]downEdge         // upstream -> the jobs that depend on it
}

// downEdge is a job depending on an upstream with a window.
type downEdge struct {
	job    string
	window time.Duration
}

// newDepGraph builds the graph of jobs; stored dependencies that no
// longer parse are left out (logged by the caller's validation when the
// job is saved again).
func newDepGraph(jobs []*store.Job) *depGraph {
	g := &depGraph{jobs: make(map[string]*store.Job, len(jobs)), deps: map[string][]store.Dependency{},
		down: map[string][]downEdge{}}
	for _, j := range jobs {
		g.jobs[j.Name] = j
		for _, s := range j.DependsOn {
			d, err := store.ParseDependency(s)
			if err != nil {
				continue
			}
			g.deps[j.Name] = append(g.deps[j.Name], d)
			g.down[d.Job] = append(g.down[d.Job], downEdge{job: j.Name, window: d.Window})
		}
	}
	for _, es := range g.down {
		slices.SortFunc(es, func(a, b downEdge) int { return strings.Compare(a.job, b.job) })
	}
	return g
}

// cycle returns a cycle through start ("a → b → a"), or "".
func (g *depGraph) cycle(start string) string {
	var path []string
	onPath := map[string]bool{}
	done := map[string]bool{}
	var visit func(j string) string
	visit = func(j string) string {
		if onPath[j] {
			i := slices.Index(path, j)
			return strings.Join(append(slices.Clone(path[i:]), j), " → ")
		}
		if done[j] {
			return ""
		}
		onPath[j] = true
		path = append(path, j)
		for _, d := range g.deps[j] {
			if c := visit(d.Job); c != "" {
				return c
			}
		}
		path = path[:len(path)-1]
		onPath[j] = false
		done[j] = true
		return ""
	}
	return visit(start)
}

// validateDeps checks j's dependencies and trigger rule against the jobs
// stored (j replacing its stored self): known, distinct, not itself, no
// cycle, windows in range; an overlap policy of queue is refused beside
// them. It fills the default rule.
func (e *Engine) validateDeps(ctx context.Context, j *store.Job) error {
	if len(j.DependsOn) == 0 {
		if j.TriggerRule != "" && !oneOf(j.TriggerRule, store.TriggerRules) {
			return &FieldError{Field: "trigger_rule", Message: fmt.Sprintf("unknown rule %q (known: %v)", j.TriggerRule, store.TriggerRules)}
		}
		return nil
	}
	if j.TriggerRule == "" {
		j.TriggerRule = store.RuleAllSuccess
	}
	if !oneOf(j.TriggerRule, store.TriggerRules) {
		return &FieldError{Field: "trigger_rule", Message: fmt.Sprintf("unknown rule %q (known: %v)", j.TriggerRule, store.TriggerRules)}
	}
	if j.Overlap == store.OverlapQueue {
		return &FieldError{Field: "overlap", Message: "queue cannot be combined with depends_on: a run waiting for its upstream runs is already blocked; use forbid, replace or allow"}
	}
	jobs, err := e.st.JobList(ctx)
	if err != nil {
		return err
	}
	known := make(map[string]bool, len(jobs))
	for i, o := range jobs {
		known[o.Name] = true
		if o.Name == j.Name {
			jobs[i] = j
		}
	}
	if !known[j.Name] {
		jobs = append(jobs, j)
	}
	seen := map[string]bool{}
	for _, s := range j.DependsOn {
		d, err := store.ParseDependency(s)
		switch {
		case err != nil:
			return &FieldError{Field: "depends_on", Message: err.Error()}
		case validName("depends_on", d.Job) != nil:
			return validName("depends_on", d.Job)
		case d.Job == j.Name:
			return &FieldError{Field: "depends_on", Message: fmt.Sprintf("job %q cannot depend on itself", j.Name)}
		case !known[d.Job]:
			return &FieldError{Field: "depends_on", Message: fmt.Sprintf("no job named %q (create the upstream job first)", d.Job)}
		case seen[d.Job]:
			return &FieldError{Field: "depends_on", Message: fmt.Sprintf("job %q is listed twice", d.Job)}
		case d.Window > maxDepWindow:
			return &FieldError{Field: "depends_on", Message: fmt.Sprintf("the window of %q is over %s", d.Job, maxDepWindow)}
		}
		seen[d.Job] = true
	}
	if c := newDepGraph(jobs).cycle(j.Name); c != "" {
		return &FieldError{Field: "depends_on", Message: "a cycle: " + c}
	}
	return nil
}

// dependents returns the jobs that depend on name, sorted.
func (e *Engine) dependents(ctx context.Context, name string) ([]string, error) {
	jobs, err := e.st.JobList(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range newDepGraph(jobs).down[name] {
		out = append(out, d.job)
	}
	return out, nil
}

// upstreamRun is an upstream of a blocked run and the run of it that
// matches the blocked run's logical time (nil: none yet).
type upstreamRun struct {
	dep store.Dependency
	run *store.Run
}

// decide applies rule to the upstream runs of a blocked run: queued,
// skipped with the reason, or "" to wait.
func decide(rule string, ups []upstreamRun) (store.RunStatus, string) {
	var (
		ended, succeeded int
		failed           *upstreamRun // the first upstream that ended without success
	)
	for i := range ups {
		u := &ups[i]
		if u.run == nil || !u.run.Status.Terminal() {
			continue
		}
		ended++
		if u.run.Status == store.StatusSucceeded {
			succeeded++
		} else if failed == nil || (rule == store.RuleNoneFailed && !isFailure(failed.run.Status) && isFailure(u.run.Status)) {
			failed = u
		}
	}
	all := ended == len(ups)
	why := func(u *upstreamRun) string {
		return fmt.Sprintf("%supstream run %s of job %s ended %s (trigger rule %s)", depsSkipped, u.run.ID, u.dep.Job, u.run.Status, rule)
	}
	switch rule {
	case store.RuleAllDone:
		if all {
			return store.StatusQueued, ""
		}
	case store.RuleOneSuccess:
		switch {
		case succeeded > 0:
			return store.StatusQueued, ""
		case all:
			return store.StatusSkipped, fmt.Sprintf("%sno upstream run succeeded (trigger rule %s)", depsSkipped, rule)
		}
	case store.RuleNoneFailed:
		switch {
		case failed != nil && isFailure(failed.run.Status):
			return store.StatusSkipped, why(failed)
		case all:
			return store.StatusQueued, ""
		}
	default: // all_success
		switch {
		case failed != nil:
			return store.StatusSkipped, why(failed)
		case all:
			return store.StatusQueued, ""
		}
	}
	return "", ""
}

// isFailure reports the statuses none_failed refuses.
func isFailure(s store.RunStatus) bool { return s == store.StatusFailed || s == store.StatusTimedOut }

// gateNote is a reason to look at blocked runs: a run of job for logical
// time at ended (or was reopened), a blocked run was made (run set), or
// job was saved (recheck).
type gateNote struct {
	job     string
	at      time.Time
	run     string // a blocked run to decide
	reopen  bool   // the run of job at was retried: reopen its skipped dependents
	recheck bool   // job was saved: decide its blocked runs under its new definition
}

// gate decides blocked runs of jobs with dependencies. It owns its notes
// and lock; one op is in flight at a time and its completion takes what
// was noted meanwhile. Lock order: e.disp.mu may be held calling note.
type gate struct {
	e *Engine

	mu       sync.Mutex
	notes    []gateNote
	inflight bool
	graphGen uint64 // bumped when jobs change
	graph    *depGraph
	graphAt  uint64    // graphGen the graph was read at
	readAt   time.Time // when it was read
}

// graphTTL bounds how long the graph of jobs is trusted without a change
// being heard: a change on another server comes as a notification, which
// a dropped connection to the store can lose.
const graphTTL = 5 * time.Second

// jobsChanged drops the cached graph.
func (g *gate) jobsChanged() {
	g.mu.Lock()
	g.graphGen++
	g.mu.Unlock()
}

// depGraph returns the graph of jobs, read again after a change or once
// graphTTL old.
func (g *gate) depGraph(ctx context.Context) (*depGraph, error) {
	now := g.e.now()
	g.mu.Lock()
	gen, cached := g.graphGen, g.graph
	if cached != nil && g.graphAt == gen && now.Sub(g.readAt) < graphTTL {
		g.mu.Unlock()
		return cached, nil
	}
	g.mu.Unlock()
	jobs, err := g.e.st.JobList(ctx)
	if err != nil {
		return nil, err
	}
	graph := newDepGraph(jobs)
	g.mu.Lock()
	if g.graphGen == gen {
		g.graph, g.graphAt, g.readAt = graph, gen, now
	}
	g.mu.Unlock()
	return graph, nil
}

// mayHaveDependents reports whether job may have dependent jobs: false
// only when the graph read less than graphTTL ago says it has none, so
// that the ends of runs of jobs nothing depends on (nearly all) cost no
// op. Called with e.disp.mu possibly held: no I/O.
func (g *gate) mayHaveDependents(job string) bool {
	now := g.e.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.graph == nil || g.graphAt != g.graphGen || now.Sub(g.readAt) >= graphTTL {
		return true
	}
	return len(g.graph.down[job]) > 0
}

// note queues notes and starts an op unless one is in flight.
func (g *gate) note(ns ...gateNote) {
	if len(ns) == 0 || !g.e.running() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.notes = append(g.notes, ns...)
	if !g.inflight {
		g.startLocked()
	}
}

// startLocked pushes an op deciding what was noted. Called with g.mu held.
func (g *gate) startLocked() {
	notes := g.notes
	g.notes = nil
	g.inflight = true
	o := &txOp{}
	var follow []gateNote
	o.fn = func(ctx context.Context, tx store.Tx) error {
		graph, err := g.depGraph(ctx)
		if err != nil {
			return err
		}
		o.made, follow = nil, nil
		follow, err = g.e.decideNotes(ctx, tx, graph, notes, o)
		return err
	}
	o.done = func() { g.decided(o, notes, follow) }
	if !g.e.ops.push(o) {
		g.inflight = false
	}
}

// decided applies a committed op: queued runs wake their groups, skipped
// and reopened runs are noted in turn (their own dependents).
func (g *gate) decided(o *txOp, notes, follow []gateNote) {
	e := g.e
	if o.err == nil {
		e.disp.mu.Lock()
		e.applyMade(o, "")
		e.disp.mu.Unlock()
	} else {
		e.log.Error("dependencies: deciding blocked runs", "notes", len(notes), "err", o.err)
	}
	g.mu.Lock()
	g.inflight = false
	if o.err != nil {
		g.notes = append(notes, g.notes...) // tried again with the next note or reconciler pass
	} else {
		g.notes = append(g.notes, follow...)
	}
	if len(g.notes) > 0 && e.running() && o.err == nil {
		g.startLocked()
	}
	g.mu.Unlock()
}
