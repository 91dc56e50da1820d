package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/faultstore"
)

// This file is the quiet phase and the checks made at the end of a seed.
// The invariants that concern single transitions (once, fenced, cron
// slots, logs) are checked as each transaction commits (history.go); the
// idle-worker invariant (starve) is sampled every second.

// nonTerminal lists the statuses a run may leave.
var nonTerminal = []store.RunStatus{store.StatusPending, store.StatusBlocked, store.StatusQueued, store.StatusDispatched, store.StatusRunning}

// listRuns reads every run with one of the statuses (all if none) from
// the store itself, without faults.
func (w *world) listRuns(statuses ...store.RunStatus) []*store.Run {
	var out []*store.Run
	p := store.RunListParams{Statuses: statuses, Limit: store.ListMaxLimit}
	for {
		page, err := w.inner.RunList(context.Background(), p)
		if err != nil {
			panic(fmt.Sprintf("sim: list runs: %v", err))
		}
		out = append(out, page.Runs...)
		if page.NextCursor == "" {
			return out
		}
		p.Cursor = page.NextCursor
	}
}

// servable reports whether some worker of the quiet phase serves runs of
// this group and type (the spares serve every real group's types).
func (w *world) servable(group, typ string) bool {
	for _, g := range w.groups {
		if g.name == group {
			return slices.Contains(g.types, typ)
		}
	}
	return false
}

// quietPhase: faults off, workers healthy (no more crashes, freezes or
// garbage; a frozen worker resumes), enough capacity for every group and
// type (spare workers join after 15 s), jobs paused. Then every acknowledged run must end within the
// bound, no worker may keep a slot, and every live worker and every group
// must still get work.
func (w *world) quietPhase() {
	now := time.Now()
	w.phase = phaseQuiet
	w.profile = faultstore.Faults{}
	w.storeDown = false
	w.applyFaults(now)
	w.lastFault = now
	w.tr.add("QUIET: faults off, workers healthy")
	for _, wk := range w.workers {
		wk.frozenUntil = time.Time{}
	}
	for _, g := range w.groups {
		wk := w.addWorker("spare-"+g.name, g, true, quirks{})
		wk.spare = true
		wk.capacity, wk.window = 24, 24 // enough for any backlog to drain well within the bound
		// The spares come 15 s into the quiet phase: a connecting worker
		// wakes its group, which would hide a lost wake-up from the idle-
		// worker check (starve) and from the probes.
		wk.nextTry = now.Add(15 * time.Second)
		w.tr.add("  %s group %s types %v capacity %d window %d", wk.name, wk.group, wk.types, wk.capacity, wk.window)
	}
	// Pause every job (again until it works: the client insists), once
	// no operation of the fault phase on it is in flight (a late put would
	// resume it).
	for _, j := range w.jobs {
		w.async(func(*engine.Engine) {
			for {
				w.mu.Lock()
				busy := j.busy
				j.busy = true
				w.mu.Unlock()
				if !busy {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			for {
				eng := w.engine()
				if eng != nil {
					_, err := eng.JobPause(context.Background(), j.name, true)
					if err == nil || errors.Is(err, store.ErrNotFound) {
						w.mu.Lock()
						j.open(time.Now(), "paused for the quiet phase")
						w.mu.Unlock()
						return
					}
				}
				time.Sleep(time.Second)
			}
		})
	}

	// The bound: every run ends within w.bound of the last fault — or,
	// while the backlog is still draining (some run left changed status or
	// attempt within the last progressWindow), a little later, up to
	// 4 × w.bound. A seed whose backlog of hung handlers (which only their
	// timeouts end) and retries needs longer than the bound is slow, not
	// wedged; a run that nobody moves for progressWindow past the bound is.
	const progressWindow = 30 * time.Second
	deadline, hardCap := now.Add(w.bound), now.Add(4*w.bound)
	var left []*store.Run
	seen := map[string]string{}
	lastChange, extended := now, false
	for i := 1; ; i++ {
		t := w.step()
		if t.Before(deadline) && (i < 50 || i%20 != 0) {
			continue // look every 2 s, from 5 s on
		}
		left = left[:0]
		for _, r := range w.listRuns(nonTerminal...) {
			if w.servable(r.Group, r.Type) {
				left = append(left, r)
				if sig := fmt.Sprintf("%s/%d", r.Status, r.Attempt); seen[r.ID] != sig {
					seen[r.ID], lastChange = sig, t
				}
			}
		}
		if len(left) == 0 {
			break
		}
		if !t.Before(deadline) {
			if t.Sub(lastChange) >= progressWindow || !t.Before(hardCap) {
				break
			}
			if !extended {
				extended = true
				w.tr.add("QUIET: %d runs left at the bound, still draining: waiting while they move", len(left))
			}
			deadline = t.Add(2 * time.Second)
		}
	}
	w.checkLive(left)
	w.checkAcked()
	// Let late reports (a cancelled attempt's result) arrive, then look
	// at the slots and probe every worker and group.
	for range 50 {
		w.step()
	}
	w.checkSlots()
	w.probe()
	w.checkStable()
	w.phase = phaseDone
}

// checkStable: invariant stable. In the quiet phase nothing gives the
// server a reason to close a healthy worker's stream again and again (two
// processes under one worker id must not knock each other off in a loop).
func (w *world) checkStable() {
	byID := map[string][]string{}
	var ids []string
	for _, wk := range w.workers {
		if len(byID[wk.id]) == 0 && len(wk.closes) > 0 {
			ids = append(ids, wk.id)
		}
		byID[wk.id] = append(byID[wk.id], wk.closes...)
	}
	for _, id := range ids {
		if n := len(byID[id]); n >= 5 {
			w.violate(invStable, id, "the server closed the streams of worker id %s %d times in the quiet phase (%d processes use the id), last because %q",
				id, n, w.instances(id), byID[id][n-1])
		}
	}
}

func (w *world) instances(id string) int {
	n := 0
	for _, wk := range w.workers {
		if wk.id == id {
			n++
		}
	}
	return n
}

// checkLive: invariant live.
func (w *world) checkLive(left []*store.Run) {
	since := time.Since(w.lastFault).Round(time.Second)
	ahead := map[string][]string{} // job → its runs that are not blocked and not terminal
	for _, r := range w.listRuns(nonTerminal...) {
		if r.Job != "" && r.Status != store.StatusBlocked {
			ahead[r.Job] = append(ahead[r.Job], r.ID+" "+string(r.Status))
		}
	}
	for i, r := range left {
		if i == 10 {
			w.violate(invLive, "", "%d more runs are not terminal %v after the last fault", len(left)-10, since)
			break
		}
		where := ""
		if r.WorkerID != "" {
			where = " on worker " + r.WorkerID
		}
		job := ""
		if r.Job != "" {
			job = " of job " + r.Job
		}
		var p payload
		_ = json.Unmarshal(r.Payload, &p)
		why := ""
		switch {
		case p.Poison:
			why = "; a poison run: every attempt crashes its worker, and lost attempts are not counted"
		case p.Hang:
			why = fmt.Sprintf("; its handler hangs until cancelled: only its timeout (%v) ends it", r.Timeout)
		case r.Status == store.StatusBlocked && len(ahead[r.Job]) == 0:
			why = "; none of the job's runs is ahead of it: nothing will unblock it"
		case r.Status == store.StatusBlocked:
			why = fmt.Sprintf("; behind %v", ahead[r.Job])
		}
		w.violate(invLive, r.ID, "run%s (group %s, type %s) is %s at attempt %d%s (failures %d, max attempts %d) %v after the last fault; error %q%s",
			job, r.Group, r.Type, r.Status, r.Attempt, where, r.Failures, r.MaxAttempts, since, clip(r.Error, 80), why)
	}
}

// checkAcked: every run a Submit acknowledged is in the store; every run
// a Submit that gave up on its context reported as failed is not; every
// result the engine told a worker it accepted is committed, and a
// succeeded run keeps the result that was accepted.
func (w *world) checkAcked() {
	ctx := context.Background()
	w.mu.Lock()
	acked := slices.Clone(w.ackedOrder)
	gave := slices.Clone(w.gaveUp)
	w.mu.Unlock()
	for _, id := range acked {
		if _, err := w.inner.RunGet(ctx, id); err != nil {
			w.violate(invLive, id, "Submit acknowledged the run but the store has none: %v", err)
		}
	}
	for _, g := range gave {
		r, err := w.inner.RunGetByKey(ctx, g.key)
		if err == nil {
			w.violate(invSubmit, r.ID, "Submit returned %q at %.1fs, yet run %s (key %s, now %s) was committed", g.err, g.at.Sub(w.start).Seconds(), r.ID, g.key, r.Status)
		}
	}
	h := w.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	for ref, n := range h.accepted {
		r := h.runs[ref.run]
		if n > 0 && (r == nil || !r.finished[ref.attempt]) {
			w.violate(invOnce, ref.run, "the engine told a worker its result for %s was accepted, but no such finish was committed", ref)
		}
	}
	for id, rh := range h.runs {
		if rh.lastStatus != store.StatusSucceeded || rh.lastResult == nil {
			continue
		}
		r, err := w.inner.RunGet(ctx, id)
		if err != nil || r.Status != store.StatusSucceeded {
			continue
		}
		if !bytes.Equal(r.Result, rh.lastResult) && !(json.Valid(r.Result) && json.Valid(rh.lastResult) && jsonEqual(r.Result, rh.lastResult)) {
			w.violate(invOnce, id, "stores result %q, but the accepted finish wrote %q", clip(string(r.Result), 60), clip(string(rh.lastResult), 60))
		}
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// checkSlots: invariant slots, first half: a worker holds no slot for a
// run that is not active on it.
func (w *world) checkSlots() {
	eng := w.engine()
	if eng == nil {
		return
	}
	// Active runs, by the worker id they were last sent to.
	activeOn := map[string]int{}
	var last map[string]string
	w.hist.mu.Lock()
	last = make(map[string]string)
	for _, s := range w.hist.sentLog {
		last[s.ref.run] = s.worker
	}
	w.hist.mu.Unlock()
	for _, r := range w.listRuns(store.StatusDispatched, store.StatusRunning) {
		activeOn[last[r.ID]]++
	}
	for _, info := range eng.Workers() {
		if info.State != engine.WorkerAlive {
			continue // its stream is gone: what it holds goes back when it is declared dead
		}
		if info.Running > activeOn[info.ID] {
			var hung []string
			for _, wk := range w.workers {
				if wk.id != info.ID {
					continue
				}
				for _, ref := range sortedRefs(wk.tasks) {
					hung = append(hung, ref.String())
				}
			}
			w.violate(invSlots, info.ID, "worker %s (%s, window %d) holds %d slots %v after the quiet phase, but only %d of its runs are active (it still runs %v)",
				info.ID, info.State, info.Window, info.Running, time.Since(w.lastFault).Round(time.Second), activeOn[info.ID], hung)
		}
	}
}

// probe: invariant slots, second half: a probe run per live worker (of a
// type only it serves) and per group completes within 30 s.
func (w *world) probe() {
	eng := w.engine()
	if eng == nil {
		return
	}
	var specs []engine.SubmitSpec
	var what []string
	seen := map[string]bool{}
	for _, wk := range w.workers {
		if wk.state == gone || seen[wk.id] {
			continue
		}
		seen[wk.id] = true
		specs = append(specs, engine.SubmitSpec{Type: "probe." + wk.id, Group: wk.group, Payload: json.RawMessage(`{"ms":100,"probe":true}`)})
		what = append(what, fmt.Sprintf("worker %s (window %d, %s)", wk.id, wk.window, wk.q))
	}
	for _, g := range w.groups {
		specs = append(specs, engine.SubmitSpec{Type: g.types[0], Group: g.name, Payload: json.RawMessage(`{"ms":100,"probe":true}`)})
		what = append(what, fmt.Sprintf("group %s type %s", g.name, g.types[0]))
	}
	w.tr.add("PROBES: %d", len(specs))
	res, err := eng.Submit(context.Background(), specs)
	if err != nil {
		w.violate(invSlots, "", "probe submit failed without faults: %v", err)
		return
	}
	until := time.Now().Add(30 * time.Second)
	for t := w.step(); t.Before(until); t = w.step() {
		done := true
		for _, r := range res {
			if x, err := w.inner.RunGet(context.Background(), r.Run.ID); err != nil || x.Status != store.StatusSucceeded {
				done = false
				break
			}
		}
		if done {
			return
		}
	}
	for i, r := range res {
		x, err := w.inner.RunGet(context.Background(), r.Run.ID)
		if err != nil {
			continue
		}
		if x.Status != store.StatusSucceeded {
			subject := specs[i].Group
			if strings.HasPrefix(specs[i].Type, "probe.") {
				subject = strings.TrimPrefix(specs[i].Type, "probe.")
			}
			w.violate(invSlots, subject, "probe run %s for %s is %s (attempt %d) 30s after it was submitted: dispatch to it has stopped", x.ID, what[i], x.Status, x.Attempt)
		}
	}
}

// sampleStarvation: invariant starve. A worker the engine shows alive,
// not draining, with a free credit, that serves a type of which runs are
// queued in its group (routed by anything but hash), must not stay so for
// ten seconds while the store is fault-free and the server up — unless the
// server holds as many runs waiting for a busy worker's turn (round-robin,
// failover) as its workers have free credits, and so claims no more.
func (w *world) sampleStarvation(now time.Time) {
	const after = 10 * time.Second
	eng := w.engine()
	if eng == nil || w.restarting != nil || w.faultsOff.IsZero() || w.phase == phaseDone {
		clear(w.starve)
		return
	}
	queued := map[string]map[string]*store.Run{} // group → type → a queued run
	for _, r := range w.listRuns(store.StatusQueued) {
		if r.Routing == engine.RoutingHash {
			continue
		}
		m := queued[r.Group]
		if m == nil {
			m = map[string]*store.Run{}
			queued[r.Group] = m
		}
		if m[r.Type] == nil || r.Priority > m[r.Type].Priority {
			m[r.Type] = r
		}
	}
	instances := map[string][]*worker{}
	for _, wk := range w.workers {
		instances[wk.id] = append(instances[wk.id], wk)
	}
	active := map[string]bool{}
	for _, info := range eng.Workers() {
		wks := instances[info.ID]
		if len(wks) != 1 || info.State != engine.WorkerAlive || info.Draining || info.Window <= info.Running || eng.WaitingForTurn(info.Group) {
			continue
		}
		wk := wks[0]
		if wk.state != connected || now.Before(wk.frozenUntil) {
			continue
		}
		var example *store.Run
		for _, t := range wk.types {
			if r := queued[info.Group][t]; r != nil {
				example = r
				break
			}
		}
		if example == nil {
			continue
		}
		active[info.ID] = true
		st := w.starve[info.ID]
		start := latest(w.faultsOff, w.engineStart, wk.since)
		if st == nil || st.gen != wk.gen {
			st = &streak{gen: wk.gen, since: latest(now, start)}
			w.starve[info.ID] = st
		}
		if !st.reported && now.Sub(st.since) >= after {
			st.reported = true
			w.violate(invStarve, info.ID, "worker %s (group %s, %d of window %d held) has idled for %v while runs it serves were queued, e.g. %s (type %s, priority %d, queued since %.1fs); no store fault, no restart meanwhile",
				info.ID, info.Group, info.Running, info.Window, now.Sub(st.since).Round(time.Second), example.ID, example.Type, example.Priority, example.RunAt.Sub(w.start).Seconds())
		}
	}
	for id := range w.starve {
		if !active[id] {
			delete(w.starve, id)
		}
	}
}

// randomAttempt picks an attempt some worker was sent (for garbage), the
// attempt shifted by one now and then.
func (w *world) randomAttempt(r *rand.Rand) (run string, attempt int, holder string) {
	s, ok := w.hist.randomSent(r)
	if !ok {
		return "", 0, ""
	}
	attempt = s.ref.attempt
	switch r.IntN(4) {
	case 0:
		attempt++
	case 1:
		attempt = max(1, attempt-1)
	}
	return s.ref.run, attempt, s.worker
}

// shutdown waits for the clients and stops the engine.
func (w *world) shutdown() {
	done := make(chan struct{})
	go func() { w.inflight.Wait(); close(done) }()
	for {
		select {
		case <-done:
		default:
			w.step()
			continue
		}
		break
	}
	if eng := w.engine(); eng != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = eng.Stop(ctx)
	}
	if w.pending != nil {
		_ = w.pending.Stop(context.Background())
	}
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}
