package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// The client side: random submits (immediate, delayed, keyed, retried,
// with timeouts, priorities, several types and groups, some with a
// deadline so short the client gives up), cancels, retries, waits, and
// jobs with every overlap and misfire policy, paused, resumed, deleted
// and triggered. Each call runs on its own goroutine, as concurrent
// clients do; what it returned is recorded for the checks.

// simJob is the client's record of one job.
type simJob struct {
	name     string
	group    string
	busy     bool // an operation on it is in flight
	exists   bool
	inactive []interval // paused or deleted: no slot in between may fire
}

// interval is a span in which a job must not fire (to zero: still open).
type interval struct {
	from, to time.Time
	why      string
}

func (j *simJob) open(at time.Time, why string) {
	if n := len(j.inactive); n > 0 && j.inactive[n-1].to.IsZero() {
		return
	}
	j.inactive = append(j.inactive, interval{from: at, why: why})
}

func (j *simJob) close(at time.Time) {
	if n := len(j.inactive); n > 0 && j.inactive[n-1].to.IsZero() {
		j.inactive[n-1].to = at
	}
}

// async runs a client call on its own goroutine.
func (w *world) async(f func(eng *engine.Engine)) {
	eng := w.engine()
	w.inflight.Add(1)
	go func() {
		defer w.inflight.Done()
		f(eng)
	}()
}

var errNoServer = errors.New("sim: no server (restarting)")

// clientAction does one random client thing.
func (w *world) clientAction(now time.Time) {
	r := w.rng
	switch x := r.IntN(100); {
	case x < 60:
		w.submit(r, false)
	case x < 66:
		w.submit(r, w.on("hasty")) // a client that gives up quickly
	case x < 68:
		if w.on("burst") {
			w.burst(r)
		}
	case x < 77:
		w.cancelRandom(r)
	case x < 82:
		w.retryRandom(r)
	case x < 85:
		w.waitRandom(r)
	case x < 97:
		w.jobOp(r, now)
	default:
		if w.on("invented") {
			w.submitInvented(r)
		}
	}
}

// burst submits 10 to 30 high-priority runs of one type of a group whose
// workers do not all serve every type: a backlog one worker serves while
// another, idle, could take the group's other types.
func (w *world) burst(r *rand.Rand) {
	g := w.groups[r.IntN(len(w.groups))]
	typ := g.types[r.IntN(len(g.types))]
	n := 10 + r.IntN(21)
	specs := make([]engine.SubmitSpec, n)
	for i := range specs {
		w.keySeq++
		p, _ := json.Marshal(payload{MS: 1000 + r.IntN(3000)})
		specs[i] = engine.SubmitSpec{Type: typ, Group: g.name, Priority: 10, Payload: p, Key: fmt.Sprintf("k%d", w.keySeq)}
	}
	w.tr.add("client burst of %d runs of %s/%s at priority 10", n, g.name, typ)
	w.async(func(eng *engine.Engine) {
		var res []engine.SubmitResult
		err := errNoServer
		if eng != nil {
			res, err = eng.Submit(context.Background(), specs)
		}
		w.submitted(specs, res, err)
	})
}

// randomSpec makes one submission and the payload that drives the worker.
func (w *world) randomSpec(r *rand.Rand) engine.SubmitSpec {
	g := w.groups[r.IntN(len(w.groups))]
	spec := engine.SubmitSpec{Type: g.types[r.IntN(len(g.types))], Group: g.name}
	p := payload{MS: 50 + r.IntN(1950)}
	switch x := r.IntN(100); {
	case x < 20:
		p.MS = 2000 + r.IntN(6000)
	case x < 24:
		p.MS = 8000 + r.IntN(12000)
	}
	switch x := r.IntN(100); {
	case x < 20:
		p.Fail = 30
	case x < 28:
		p.Fail = 70
	case x < 32:
		p.Fail = 100
	}
	p.Logs = r.IntN(3)
	if r.IntN(4) == 0 {
		spec.Timeout = time.Duration(1000+r.IntN(9000)) * time.Millisecond
	}
	if r.IntN(25) == 0 && w.on("hang") {
		p.Hang = true // hangs until cancelled: only with a timeout, which ends it
		spec.Timeout = time.Duration(2000+r.IntN(6000)) * time.Millisecond
	}
	if w.poison && r.IntN(30) == 0 {
		p = payload{MS: 100, Poison: true}
		spec.Timeout = 0
	}
	spec.Retries = r.IntN(4)
	if r.IntN(10) < 4 {
		spec.Priority = r.IntN(14) - 3
	}
	if r.IntN(4) == 0 {
		spec.Delay = time.Duration(500+r.IntN(19500)) * time.Millisecond
	}
	if r.IntN(5) == 0 {
		// Not random: the engine draws it from the runtime's unseeded
		// source, which would make seeds diverge.
		routings := []string{engine.RoutingLeastLoaded, engine.RoutingRoundRobin, engine.RoutingFailover, engine.RoutingHash, engine.RoutingLeastRecent}
		spec.Routing = routings[r.IntN(len(routings))]
		if spec.Routing == engine.RoutingHash {
			spec.RoutingKey = fmt.Sprintf("rk%d", r.IntN(3))
		}
	}
	spec.Payload, _ = json.Marshal(p)
	return spec
}

// submit sends a batch of one to four runs. Most carry a fresh key; now
// and then one repeats an earlier key (the same run must come back). A
// hasty client's context ends within 50 ms: if Submit then says it failed,
// nothing may have been committed.
func (w *world) submit(r *rand.Rand, hasty bool) {
	n := 1 + r.IntN(4)
	specs := make([]engine.SubmitSpec, n)
	for i := range specs {
		specs[i] = w.randomSpec(r)
		w.keySeq++
		specs[i].Key = fmt.Sprintf("k%d", w.keySeq)
		if hasty {
			specs[i].Key = fmt.Sprintf("hasty%d", w.keySeq)
		} else if r.IntN(20) == 0 && len(w.usedKeys) > 0 {
			specs[i].Key = w.usedKeys[r.IntN(len(w.usedKeys))]
		}
	}
	var timeout time.Duration
	if hasty {
		timeout = time.Duration(r.IntN(50)+1) * time.Millisecond
	}
	for _, s := range specs {
		if !hasty {
			w.usedKeys = append(w.usedKeys, s.Key)
		}
	}
	w.async(func(eng *engine.Engine) {
		ctx := context.Background()
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		var res []engine.SubmitResult
		err := errNoServer
		if eng != nil {
			res, err = eng.Submit(ctx, specs)
		}
		w.submitted(specs, res, err)
	})
}

// submitted records what Submit answered.
func (w *world) submitted(specs []engine.SubmitSpec, res []engine.SubmitResult, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		ctxErr := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
		w.tr.add("client submit of %d failed: %v", len(specs), err)
		if ctxErr {
			for _, s := range specs {
				w.gaveUp = append(w.gaveUp, gaveUp{key: s.Key, err: err.Error(), at: time.Now()})
			}
		}
		return
	}
	for i, sr := range res {
		id, key := sr.Run.ID, specs[i].Key
		if prev, ok := w.keys[key]; ok && prev != id {
			w.violateLocked(invSubmit, id, "key %s named run %s, now Submit returned %s for it", key, prev, id)
		}
		w.keys[key] = id
		if !w.acked[id] {
			w.acked[id] = true
			w.ackedOrder = append(w.ackedOrder, id)
		}
		w.tr.add("client submitted %s (key %s, %s/%s, existing %v, status %s)", id, key, sr.Run.Group, sr.Run.Type, sr.Existing, sr.Run.Status)
	}
}

// submitInvented submits to a group name nobody uses (the engine must not
// keep state for it forever) and cancels it again.
func (w *world) submitInvented(r *rand.Rand) {
	w.keySeq++
	spec := engine.SubmitSpec{Type: "t0", Group: fmt.Sprintf("invented-%d", w.keySeq), Key: fmt.Sprintf("inv%d", w.keySeq)}
	w.async(func(eng *engine.Engine) {
		if eng == nil {
			return
		}
		res, err := eng.Submit(context.Background(), []engine.SubmitSpec{spec})
		w.submitted([]engine.SubmitSpec{spec}, res, err)
		if err == nil {
			_, err = eng.Cancel(context.Background(), res[0].Run.ID, "invented group")
			w.tr.add("client cancel %s (invented group): %v", res[0].Run.ID, err)
		}
	})
}

func (w *world) randomAcked(r *rand.Rand) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.ackedOrder) == 0 {
		return ""
	}
	// Mostly recent runs: they are the ones still going.
	n := len(w.ackedOrder)
	if r.IntN(3) > 0 {
		k := min(n, 20)
		return w.ackedOrder[n-k+r.IntN(k)]
	}
	return w.ackedOrder[r.IntN(n)]
}

func (w *world) cancelRandom(r *rand.Rand) {
	id := w.randomAcked(r)
	if id == "" {
		return
	}
	w.async(func(eng *engine.Engine) {
		if eng == nil {
			return
		}
		run, err := eng.Cancel(context.Background(), id, "sim client")
		if err == nil {
			w.tr.add("client cancel %s: now %s", id, run.Status)
		} else {
			w.tr.add("client cancel %s: %v", id, err)
		}
	})
}

func (w *world) retryRandom(r *rand.Rand) {
	id := w.randomAcked(r)
	if id == "" {
		return
	}
	w.async(func(eng *engine.Engine) {
		if eng == nil {
			return
		}
		run, err := eng.Retry(context.Background(), id)
		if err == nil {
			w.tr.add("client retry %s: now %s", id, run.Status)
		} else if !errors.Is(err, store.ErrConflict) {
			w.tr.add("client retry %s: %v", id, err)
		}
	})
}

// waitRandom waits a few seconds for a run (the engine keeps waiters).
func (w *world) waitRandom(r *rand.Rand) {
	id := w.randomAcked(r)
	if id == "" {
		return
	}
	d := time.Duration(1+r.IntN(5)) * time.Second
	w.async(func(eng *engine.Engine) {
		if eng == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, _ = eng.Wait(ctx, id)
	})
}

var (
	schedules = []string{"@every 2s", "@every 3s", "@every 5s", "@every 7s", "0/4 * * * * ?", "*/6 * * * * *", "0/10 * * * * ?"}
	overlaps  = []string{store.OverlapAllow, store.OverlapForbid, store.OverlapQueue, store.OverlapReplace}
	misfires  = []string{store.MisfireSkip, store.MisfireOnce, store.MisfireAll}
)

// jobDef makes a random definition of job j.
func (w *world) jobDef(r *rand.Rand, j *simJob) store.Job {
	var g groupDef
	for _, x := range w.groups {
		if x.name == j.group {
			g = x
		}
	}
	p := payload{MS: 100 + r.IntN(900)}
	if r.IntN(4) == 0 {
		p.MS = 3000 + r.IntN(6000) // longer than its period: overlaps
	}
	if r.IntN(5) == 0 {
		p.Fail = 50
	}
	job := store.Job{
		Name: j.name, Type: g.types[r.IntN(len(g.types))], Group: g.name,
		Schedule: schedules[r.IntN(len(schedules))],
		Overlap:  overlaps[r.IntN(len(overlaps))], Misfire: misfires[r.IntN(len(misfires))],
		MisfireMax: 1 + r.IntN(3), Retries: r.IntN(3), Priority: r.IntN(5) - 2,
	}
	if r.IntN(4) == 0 {
		job.Timeout = time.Duration(2000+r.IntN(6000)) * time.Millisecond
	}
	if job.Overlap == store.OverlapQueue {
		// Blocked runs drain one after the other: keep the pile a fault
		// phase can leave short enough to drain within the bound.
		p.MS = min(p.MS, 1000)
		job.Schedule = []string{"@every 3s", "@every 5s", "0/4 * * * * ?", "0/10 * * * * ?"}[r.IntN(4)]
	}
	job.Payload, _ = json.Marshal(p)
	return job
}

// jobOp does one random thing to a job (one operation per job at a time,
// so the client knows when it was paused or gone).
func (w *world) jobOp(r *rand.Rand, now time.Time) {
	if len(w.jobs) == 0 {
		return
	}
	j := w.jobs[r.IntN(len(w.jobs))]
	w.mu.Lock()
	if j.busy {
		w.mu.Unlock()
		return
	}
	j.busy = true
	w.mu.Unlock()
	done := func(what string, err error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		j.busy = false
		w.tr.add("client job %s %s: %v", j.name, what, err)
	}
	switch x := r.IntN(100); {
	case x < 35 || !j.exists:
		def := w.jobDef(r, j)
		w.mu.Lock()
		j.close(now) // a put resumes a paused job
		w.mu.Unlock()
		w.async(func(eng *engine.Engine) {
			err := errNoServer
			if eng != nil {
				_, _, err = eng.JobPut(context.Background(), def)
			}
			if err == nil {
				w.mu.Lock()
				j.exists = true
				w.mu.Unlock()
			}
			done(fmt.Sprintf("put (%s, overlap %s, misfire %s)", def.Schedule, def.Overlap, def.Misfire), err)
		})
	case x < 60:
		w.async(func(eng *engine.Engine) {
			err := errNoServer
			if eng != nil {
				_, err = eng.JobPause(context.Background(), j.name, true)
			}
			if err == nil {
				w.mu.Lock()
				j.open(time.Now(), "paused")
				w.mu.Unlock()
			}
			done("pause", err)
		})
	case x < 80:
		w.mu.Lock()
		j.close(now)
		w.mu.Unlock()
		w.async(func(eng *engine.Engine) {
			err := errNoServer
			if eng != nil {
				_, err = eng.JobPause(context.Background(), j.name, false)
			}
			done("resume", err)
		})
	case x < 88:
		w.async(func(eng *engine.Engine) {
			err := errNoServer
			if eng != nil {
				err = eng.JobDelete(context.Background(), j.name)
			}
			if err == nil {
				w.mu.Lock()
				j.exists = false
				j.open(time.Now(), "deleted")
				w.mu.Unlock()
			}
			done("delete", err)
		})
	default:
		w.async(func(eng *engine.Engine) {
			err := errNoServer
			var run *store.Run
			if eng != nil {
				run, err = eng.JobTrigger(context.Background(), j.name, nil)
			}
			if err == nil {
				w.mu.Lock()
				if !w.acked[run.ID] {
					w.acked[run.ID] = true
					w.ackedOrder = append(w.ackedOrder, run.ID)
				}
				w.mu.Unlock()
			}
			done("trigger", err)
		})
	}
}
