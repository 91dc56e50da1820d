package engine

import (
	"context"
	"slices"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// The reconciler
//
// Every component drives the runs it owns: the dispatcher its claimed
// runs, sessions what their workers hold, the promoter pending runs, the
// cron loop and the unblocker blocked ones. The error policy (committer.go)
// makes each of their writes land eventually. The reconciler is the safety
// net under both: every ReconcileInterval it compares the store with what
// the components hold and repairs what nobody drives —
//
//	active runs this server holds in the store that no session, no waiting
//	claim and no pending write of this server knows (a claim whose commit
//	answer was lost, an op dropped by a bug): after two passes in a row
//	they go back to the queue at their attempt (fenced, so a run that moved
//	on meanwhile is not touched);
//	runs recovered at start or orphaned by an uncommitted result that no
//	worker reclaimed within the dead timeout: back to the queue;
//	groups with idle workers: woken, so queued runs a lost wake-up left
//	behind are claimed;
//	on the leader, jobs with blocked runs: unblocked if nothing of theirs
//	is unfinished (a crash between a run's end and its unblock); and the
//	promoter, cron and feedback timers re-read from the store.
//
// Each pass that repairs something logs one line with the counts.

// defaultReconcileInterval is how often the reconciler looks.
const defaultReconcileInterval = 30 * time.Second

// reconciler is a component: its loop makes a pass every
// ReconcileInterval.
type reconciler struct {
	e *Engine
	life
	// suspects are the undriven active runs of the last pass, by id, at
	// their attempt: repaired if the next pass finds them so again.
	// Guarded by the dispatcher's lock (the runs it compares are the
	// dispatcher's).
	suspects map[string]int
}

// Start begins the reconciler's loop.
func (r *reconciler) Start(ctx context.Context) error { return r.start(ctx, r.run) }

func (r *reconciler) run(ctx context.Context) {
	e := r.e
	for e.sleep(ctx, e.cfg.ReconcileInterval) {
		pass, cancel := context.WithTimeout(ctx, e.cfg.ReconcileInterval)
		e.reconcile(pass)
		cancel()
	}
}

// reconcileStats counts one pass's repairs.
type reconcileStats struct {
	requeued, orphans, unblocked, woken int
}

// reconcile makes one pass.
func (e *Engine) reconcile(ctx context.Context) {
	var st reconcileStats
	held := store.RunListActiveParams{ServerID: e.cfg.ServerID}
	if e.cfg.ExclusiveStore {
		held.ServerID = ""
	}
	active, err := e.st.RunListActive(ctx, held)
	if err != nil {
		e.log.Warn("reconciler: read active runs", "err", err)
		return
	}
	e.disp.mu.Lock()
	if !e.running() {
		e.disp.mu.Unlock()
		return
	}
	st.requeued = e.requeueUndriven(active)
	st.orphans = e.expireOrphans()
	for _, g := range e.disp.groups {
		idle := slices.ContainsFunc(g.sessions, func(s *Session) bool { return s.free() > 0 })
		if idle && !g.claiming {
			e.wakeGroup(g)
			st.woken++
		}
	}
	leading := e.lead.term.Load() != 0
	if leading {
		e.relistenTimers()
	}
	e.disp.mu.Unlock()
	if leading {
		st.unblocked = e.unblockStranded(ctx)
		e.alerts.sweepAsync(e.cfg.ReconcileInterval)
		e.joinStranded(ctx)
	}
	e.cfg.Observer.Reconciled(st.requeued + st.orphans + st.unblocked)
	if st.requeued+st.orphans+st.unblocked > 0 {
		e.log.Warn("reconciler repaired runs no component was driving",
			"requeued", st.requeued, "orphans", st.orphans, "jobs_unblocked", st.unblocked, "groups_woken", st.woken)
	}
}

// requeueUndriven hands back active runs of this server that nothing here
// drives, once they were found so on two passes in a row. Called with e.disp.mu
// held.
func (e *Engine) requeueUndriven(active []*store.Run) int {
	r := e.recon
	next := make(map[string]int)
	var lost []*flight
	for _, run := range active {
		if e.disp.flights[run.ID] != nil || e.disp.orphans[run.ID] != nil || e.disp.settling[run.ID] > 0 {
			continue
		}
		if att, ok := r.suspects[run.ID]; ok && att == run.Attempt {
			lost = append(lost, newFlight(run))
			continue
		}
		next[run.ID] = run.Attempt
	}
	r.suspects = next
	if len(lost) > 0 {
		e.handBack(lost, "no component of the server held it", false)
	}
	return len(lost)
}

// expireOrphans hands back orphans older than the dead timeout: no worker
// came back for them. Called with e.disp.mu held.
func (e *Engine) expireOrphans() int {
	cutoff := e.now().Add(-e.live().DeadAfter)
	var lost []*flight
	for id, f := range e.disp.orphans {
		if !f.orphanedAt.IsZero() && f.orphanedAt.Before(cutoff) {
			lost = append(lost, f)
			delete(e.disp.orphans, id)
		}
	}
	if len(lost) > 0 {
		e.handBack(lost, "not reclaimed by its worker", true)
	}
	return len(lost)
}

// unblockStranded releases the next blocked run of every job that has
// blocked runs (the release is conditional: it happens only if nothing of
// the job is unfinished). It returns how many jobs it asked for.
func (e *Engine) unblockStranded(ctx context.Context) int {
	page, err := e.st.RunList(ctx, store.RunListParams{Statuses: []store.RunStatus{store.StatusBlocked}, Limit: 1000})
	if err != nil {
		e.log.Warn("reconciler: read blocked runs", "err", err)
		return 0
	}
	jobs := map[string]bool{}
	var notes []gateNote
	for _, r := range page.Runs {
		if r.Job != "" {
			jobs[r.Job] = true
		}
		if r.Job != "" && !r.LogicalTime.IsZero() {
			// A run waiting on its upstream runs whose decision a crash
			// lost (the gate ignores jobs without dependencies).
			notes = append(notes, gateNote{job: r.Job, at: r.LogicalTime, run: r.ID})
		}
	}
	e.gate.note(notes...)
	e.backfill.wake()
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	for j := range jobs {
		e.jobRunEnded(j)
	}
	return 0 // counted by the unblock itself if it released anything
}

// settling counts an op that will settle run id (+1) or did (-1): the
// reconciler leaves a run alone while one is queued. Called with
// e.disp.mu held.
func (e *Engine) settling(id string, d int) {
	if e.disp.settling[id] += d; e.disp.settling[id] <= 0 {
		delete(e.disp.settling, id)
	}
}

// pushFinishes queues an op of finishes, remembering its runs as settling
// until it is done, so that the reconciler leaves them alone. Called with
// e.disp.mu held.
func (e *Engine) pushFinishes(o *finishOp) {
	for _, p := range o.params {
		e.settling(p.ID, 1)
	}
	done := o.done
	o.done = func() {
		e.disp.mu.Lock()
		for _, p := range o.params {
			e.settling(p.ID, -1)
		}
		e.disp.mu.Unlock()
		if done != nil {
			done()
		}
	}
	// Lines the worker sent before its result are written first, so a
	// follower that sees the run ended has them (logwriter.go).
	ids := make([]string, len(o.params))
	for i, p := range o.params {
		ids[i] = p.ID
	}
	if e.logw.after(ids, func() { e.ops.push(o) }) {
		return
	}
	e.ops.push(o)
}

// joinStranded hands the joiner the parents whose children have all ended
// (or too many failed) but that still run: a crash lost their join.
func (e *Engine) joinStranded(ctx context.Context) {
	fos, err := e.st.FanoutListJoinable(ctx, 1000)
	if err != nil {
		e.log.Warn("reconciler: read joinable fan-outs", "err", err)
		return
	}
	ids := make([]string, len(fos))
	for i, fo := range fos {
		ids[i] = fo.ParentID
	}
	e.joins.note(ids...)
}
