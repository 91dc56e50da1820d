package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// The cron loop (leader only)
//
// It keeps one timer, armed for the earliest next fire time of the
// unpaused jobs as the store has it (JobNextFire); like the promoter it
// holds nothing per job in memory. When the timer fires, one tick is
// applied inside a committer transaction, before that transaction's
// claims, so fired runs are claimable in the same commit:
//
//	JobListDue(now) → per job: the due slots from NextFire up to now →
//	JobAdvance(NextFire → first slot after now) → misfire policy →
//	overlap policy → RunInsert (fired, blocked or skipped runs)
//
// One fire per slot: the advance is a compare-and-set on NextFire and
// comes first (a job whose advance fails fires nothing), JobListDue locks
// the job rows against another leader's tick (SKIP LOCKED on PostgreSQL),
// and (job, logical time) is unique in the store, so a slot has at most
// one run whatever crashes, restarts or two leaders do. A crash before
// the commit loses nothing: NextFire was not advanced, so the next leader
// fires the same slots.

// cronBatch caps the jobs one tick fires; a full batch ticks again at once.
const cronBatch = 1000

// missCountCap bounds how many missed slots a tick walks one by one; past
// it, it skips ahead to the newest slots (see dueSlots).
const missCountCap = 20000

// cronLoop is the leader's cron timer, a component with its own state and
// lock, activated by a won term and deactivated when it is lost or the
// engine stops. Lock order: the dispatcher's lock may be held when calling
// note or rearm; the loop never takes the dispatcher's lock while holding its
// own.
type cronLoop struct {
	e *Engine

	mu       sync.Mutex
	active   bool
	wake     wakeTimer
	inflight bool
	again    bool
	// notBefore holds the next tick back after a tick found nothing due
	// although a next fire time had passed: another server's transaction
	// holds that job's row (SKIP LOCKED), and ticking again at once would
	// spin until it commits.
	notBefore time.Time
	arming    sync.WaitGroup // arm goroutines in flight
}

// lockedJobBackoff is how long a tick that found nothing due waits.
const lockedJobBackoff = 50 * time.Millisecond

// activate starts the loop (a won term); arm then reads the first time.
func (c *cronLoop) activate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active = true
}

// deactivate stops it (a lost term, the engine stopping).
func (c *cronLoop) deactivate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active = false
	c.wake.stop()
}

// arm arms the cron timer from the store (on taking the lease, after a
// tick, when a job changed on another server).
func (c *cronLoop) arm(ctx context.Context) {
	at, err := c.e.st.JobNextFire(ctx)
	if err != nil {
		c.e.log.Error("read next cron fire time", "err", err)
		at = c.e.now().Add(time.Second) // try again rather than stall
	}
	if !at.IsZero() {
		c.note(at)
	}
}

// rearm re-reads the next fire time in the background.
func (c *cronLoop) rearm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rearmLocked()
}

func (c *cronLoop) rearmLocked() {
	if !c.active {
		return
	}
	c.arming.Add(1)
	go func() {
		defer c.arming.Done()
		c.arm(context.Background())
	}()
}

// note makes sure a tick happens by at.
func (c *cronLoop) note(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.noteLocked(at)
}

func (c *cronLoop) noteLocked(at time.Time) {
	if !c.active {
		return
	}
	if at.Before(c.notBefore) {
		at = c.notBefore
	}
	c.wake.arm(c.e.clk, at, c.due)
}

func (c *cronLoop) due() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.startLocked(c.wake.fired())
}

// startLocked queues one tick unless one is in flight; due is the fire
// time the timer was armed for (zero: none). Called with c.mu held.
func (c *cronLoop) startLocked(due time.Time) {
	if !c.active {
		return
	}
	if c.inflight {
		c.again = true
		return
	}
	c.inflight = true
	e := c.e
	var fired int
	o := &txOp{}
	o.fn = func(ctx context.Context, tx store.Tx) error {
		var err error
		fired, err = e.tick(ctx, tx, o, due)
		return err
	}
	o.done = func() { c.ticked(o, fired) }
	if !e.ops.push(o) {
		c.inflight = false
	}
}

func (c *cronLoop) ticked(o *txOp, jobs int) {
	e := c.e
	if o.err == nil {
		e.disp.mu.Lock()
		e.applyMade(o, "replaced by a newer slot")
		e.disp.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight = false
	if o.err != nil {
		// Only when the engine stops (failed writes are retried).
		e.log.Error("cron tick", "err", o.err)
		c.noteLocked(e.now().Add(time.Second))
		return
	}
	c.notBefore = time.Time{}
	if jobs == 0 {
		c.notBefore = e.clk.Now().Add(lockedJobBackoff)
	}
	if jobs == cronBatch || c.again {
		c.again = false
		c.startLocked(time.Time{})
		return
	}
	c.rearmLocked()
}

// noteFire makes sure a tick happens by at (leader only; a no-op
// elsewhere). Called with or without e.disp.mu held.
func (e *Engine) noteFire(at time.Time) { e.cron.note(at) }

// rearmCron re-reads the next fire time in the background.
func (e *Engine) rearmCron() { e.cron.rearm() }

// applyMade reacts to the runs a committed txOp created, queued or
// cancelled. Called with e.disp.mu held.
func (e *Engine) applyMade(o *txOp, cancelReason string) {
	for _, r := range o.made {
		e.created(r)
	}
	for _, r := range o.ended {
		e.gate.note(gateNote{job: r.Job, at: r.LogicalTime})
	}
	e.alerts.endedRuns(o.skipped)
	for _, c := range o.cancels {
		e.cancelled(c, cancelReason)
	}
}

// tick fires the due jobs; it returns how many jobs it looked at.
func (e *Engine) tick(ctx context.Context, tx store.Tx, o *txOp, due time.Time) (int, error) {
	o.made, o.cancels = nil, nil
	// The timer ran on the monotonic clock; the wall clock may read a few
	// microseconds earlier than the time it was armed for. The slot is due.
	now := e.now()
	if now.Before(due) {
		now = due
	}
	jobs, err := tx.JobListDue(ctx, store.JobListDueParams{Now: now, Limit: cronBatch})
	if err != nil {
		return 0, fmt.Errorf("cron: list due jobs: %w", err)
	}
	// Every job's advance goes into one call and every job's runs into
	// one insert: with hundreds of jobs due in the same second, statements
	// per job made the last ones fire late.
	plans := make([]jobPlan, len(jobs))
	advances := make([]store.JobAdvanceParams, len(jobs))
	for i, j := range jobs {
		plans[i] = e.planJob(j, now)
		advances[i] = store.JobAdvanceParams{Name: j.Name, From: j.NextFire, To: plans[i].next, Now: now}
	}
	advanced, err := tx.JobAdvance(ctx, advances)
	if err != nil {
		return 0, fmt.Errorf("cron: advance due jobs: %w", err)
	}
	var runs []store.RunInsertParams
	for i, pl := range plans {
		if !advanced[i] || len(pl.slots) == 0 {
			continue // !advanced: another tick fired these slots
		}
		e.misfire(pl.job, pl.slots)
		if runs, err = e.overlap(ctx, tx, o, pl.job, pl.slots, now, runs); err != nil {
			return 0, fmt.Errorf("cron: job %s: %w", pl.job.Name, err)
		}
	}
	if len(runs) == 0 {
		return len(jobs), nil
	}
	graph, err := e.gate.depGraph(ctx)
	if err != nil {
		return 0, fmt.Errorf("cron: read the jobs' dependencies: %w", err)
	}
	runs = withDependents(graph, runs, false, func(j *store.Job, at time.Time) store.RunInsertParams { return e.slotRun(j, at, now) })
	res, err := tx.RunInsert(ctx, runs)
	if err != nil {
		return 0, fmt.Errorf("cron: insert runs: %w", err)
	}
	for _, r := range res {
		if !r.Existing && !r.Run.Status.Terminal() {
			o.made = append(o.made, r.Run)
			// Counted as the transaction is written (a failed try that is
			// retried counts twice: metrics only).
			e.cfg.Observer.Submitted(r.Run.Group, 1)
			if !r.Run.LogicalTime.IsZero() {
				e.cfg.Observer.CronFired(max(0, now.Sub(r.Run.LogicalTime)))
			}
		}
		if !r.Existing {
			o.noteCallbackRun(r.Run) // a skipped slot's delivery is due at once
			o.noteSkipped(r.Run)
			if r.Run.Status == store.StatusSkipped && r.Run.Job != "" {
				o.ended = append(o.ended, r.Run) // its dependents are decided
			}
		}
	}
	return len(jobs), nil
}

// slot is one due slot of a job and what becomes of it.
type slot struct {
	at     time.Time
	fire   bool   // a run is created for it (queued or blocked by overlap)
	reason string // why it is skipped, when not fired
}

// jobPlan is what a tick will do with one due job once its advance
// applies.
type jobPlan struct {
	job   *store.Job
	next  time.Time // the first slot after now (zero: none)
	slots []slot
}

// planJob computes a due job's slots up to now and its next fire time.
func (e *Engine) planJob(j *store.Job, now time.Time) jobPlan {
	sched, err := jobSchedule(j)
	if err != nil {
		// The stored schedule no longer parses (a time zone gone from the
		// tz database): stop firing it rather than spin on it.
		e.log.Error("cron: job schedule unusable; not firing it until it is saved again", "job", j.Name, "err", err)
		return jobPlan{job: j}
	}
	slots, earlier := dueSlots(sched, j.NextFire, now, e.live().MisfireGrace, 2*j.MisfireMax)
	if earlier > 0 {
		e.log.Warn("cron: missed slots not recorded", "job", j.Name, "slots", earlier, "before", slots[0].at)
	}
	return jobPlan{job: j, next: utc(sched.Next(now)), slots: slots}
}

// dueSlots returns the slots of sched from first up to now, oldest first.
// Slots more than grace before now were missed; of those only the newest
// keep are returned and earlier counts the others (a month-long outage of
// an every-second job must not create millions of records).
func dueSlots(sched interface{ Next(time.Time) time.Time }, first, now time.Time, grace time.Duration, keep int) (slots []slot, earlier int) {
	ring := make([]time.Time, 0, keep)
	n := 0 // missed slots seen
	t := first
	for ; !t.IsZero() && now.Sub(t) > grace; n++ {
		if n == missCountCap {
			// Far behind: jump to about 2·keep periods before the grace
			// window rather than walk every missed slot.
			period := t.Sub(first) / time.Duration(n)
			if from := now.Add(-grace - period*time.Duration(2*keep)); period > 0 && from.After(t) {
				next := sched.Next(from)
				earlier += int(next.Sub(t) / period) // an estimate: the schedule may be irregular
				t = next
				n--
				continue
			}
		}
		if len(ring) < keep {
			ring = append(ring, t)
		} else {
			ring[n%keep] = t
		}
		t = sched.Next(t)
	}
	if n > len(ring) {
		earlier += n - len(ring)
		start := n % len(ring) // the oldest slot kept
		ring = append(ring[start:], ring[:start]...)
	}
	for _, m := range ring {
		slots = append(slots, slot{at: m.UTC()})
	}
	for ; !t.IsZero() && !t.After(now); t = sched.Next(t) {
		slots = append(slots, slot{at: t.UTC(), fire: true})
	}
	return slots, earlier
}

// misfire decides which missed slots fire (those on time, within
// MisfireGrace, already do). A slot later than MisfireGrace was missed:
// the scheduler was down or far behind.
//
//	skip  missed slots are recorded as skipped
//	once  the newest missed slot fires, the others are skipped
//	all   the newest MisfireMax missed slots fire, older ones are skipped
//
// Skipped records are bounded by MisfireMax too (dueSlots).
func (e *Engine) misfire(j *store.Job, slots []slot) {
	missed := 0
	for missed < len(slots) && !slots[missed].fire {
		missed++
	}
	fire := 0 // how many of the newest missed slots fire
	switch j.Misfire {
	case store.MisfireOnce:
		fire = min(missed, 1)
	case store.MisfireAll:
		fire = min(missed, j.MisfireMax)
	}
	for i := range slots[:missed] {
		switch {
		case i >= missed-fire:
			slots[i].fire = true
		case j.Misfire == store.MisfireOnce:
			slots[i].reason = fmt.Sprintf("missed (misfire policy once: the run for %s covers it)", slots[missed-1].at.Format(time.RFC3339))
		case j.Misfire == store.MisfireAll:
			slots[i].reason = fmt.Sprintf("missed (misfire policy all: more than %d slots missed)", j.MisfireMax)
		default:
			slots[i].reason = "missed (misfire policy skip)"
		}
	}
}

// overlap applies the job's overlap policy to the slots that fire and
// appends every slot's run to runs (the tick inserts them all at once).
//
//	allow    every slot runs
//	forbid   a slot is skipped while a run of the job is not finished
//	queue    a slot's run is blocked until the earlier runs end
//	replace  earlier unfinished runs are cancelled; of several slots
//	         firing at once only the newest runs
func (e *Engine) overlap(ctx context.Context, tx store.Tx, o *txOp, j *store.Job, slots []slot, now time.Time, runs []store.RunInsertParams) ([]store.RunInsertParams, error) {
	var active []*store.Run
	if j.Overlap != store.OverlapAllow {
		var err error
		if active, err = tx.RunListActiveForJob(ctx, j.Name, 1000); err != nil {
			return runs, err
		}
	}
	busy := len(active) > 0
	lastFire := -1
	for i := range slots {
		if slots[i].fire {
			lastFire = i
		}
	}
	params := make([]store.RunInsertParams, 0, len(slots)) // this job's runs
	for i, s := range slots {
		p := e.slotRun(j, s.at, now)
		switch {
		case !s.fire:
			p.Status, p.Error = store.StatusSkipped, s.reason
		case j.Overlap == store.OverlapForbid && busy:
			p.Status, p.Error = store.StatusSkipped, overlapReason(active, params)
		case j.Overlap == store.OverlapQueue && busy:
			p.Status = store.StatusBlocked
		case j.Overlap == store.OverlapReplace && i != lastFire:
			p.Status, p.Error = store.StatusSkipped, "replaced by a newer slot (overlap policy replace)"
		case j.Overlap == store.OverlapReplace:
			for _, r := range active {
				res, err := tx.RunCancel(ctx, store.RunCancelParams{
					ID: r.ID, Reason: "replaced by the run for " + s.at.Format(time.RFC3339) + " (overlap policy replace)", Now: now,
				})
				if err != nil {
					return runs, fmt.Errorf("replace run %s: %w", r.ID, err)
				}
				o.cancels = append(o.cancels, res)
			}
		}
		if p.Status != store.StatusSkipped {
			busy = true
		}
		params = append(params, p)
	}
	return append(runs, params...), nil
}

func overlapReason(active []*store.Run, firing []store.RunInsertParams) string {
	for _, r := range active {
		return fmt.Sprintf("overlap policy forbid: run %s of the job is %s", r.ID, r.Status)
	}
	for i := len(firing) - 1; i >= 0; i-- {
		if firing[i].Status != store.StatusSkipped {
			return fmt.Sprintf("overlap policy forbid: run %s of the job is %s", firing[i].ID, firing[i].Status)
		}
	}
	return "overlap policy forbid"
}

// slotRun is the run a job's slot creates (queued; the caller changes the
// status when the slot is blocked or skipped).
func (e *Engine) slotRun(j *store.Job, at, now time.Time) store.RunInsertParams {
	payload := j.Payload
	if len(payload) == 0 {
		payload = nil
	}
	// The job was checked when saved: its split is valid.
	split, _ := splitOf(ptr(jobSubmitSpec(j)))
	return store.RunInsertParams{
		ID: e.cfg.NewID(), Job: j.Name, Type: j.Type, Group: j.Group, Payload: payload,
		Priority: j.Priority, Status: store.StatusQueued, MaxAttempts: j.Retries + 1,
		LogicalTime: at, RunAt: at, Timeout: j.Timeout, Routing: j.Routing, CallbackURL: j.CallbackURL,
		Split: split, Now: now,
	}
}

// jobRunEnded releases the next blocked run of a job (overlap policy
// queue) once a run of it reached a terminal status. Called with e.disp.mu
// held.
func (e *Engine) jobRunEnded(job string) {
	if e.running() {
		e.unblock.note(job)
	}
}

// unblocker releases blocked runs: the jobs whose runs ended are collected
// and unblocked in one op at a time. It owns its state and lock. Lock
// order: the dispatcher's lock may be held when calling note; the unblocker
// takes the dispatcher's lock only while not holding its own.
type unblocker struct {
	e *Engine

	mu       sync.Mutex
	jobs     map[string]bool // jobs whose next blocked run may be released
	inflight bool            // an unblock op is in flight
}

// note collects a job whose run ended and starts an op unless one is in
// flight (its completion takes what was collected meanwhile).
func (u *unblocker) note(job string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.jobs == nil {
		u.jobs = make(map[string]bool)
	}
	first := len(u.jobs) == 0
	u.jobs[job] = true
	if !first || u.inflight {
		return
	}
	u.startLocked()
}

// startLocked queues one op that unblocks the collected jobs. Called with
// u.mu held.
func (u *unblocker) startLocked() {
	e := u.e
	jobs := make([]string, 0, len(u.jobs))
	for j := range u.jobs {
		jobs = append(jobs, j)
	}
	clear(u.jobs)
	u.inflight = true
	o := &txOp{}
	o.fn = func(ctx context.Context, tx store.Tx) error {
		var made []*store.Run
		for _, j := range jobs {
			r, err := tx.RunUnblockNext(ctx, j, e.now())
			if err != nil {
				return fmt.Errorf("unblock job %s: %w", j, err)
			}
			if r != nil {
				made = append(made, r)
			}
		}
		o.made = made
		return nil
	}
	o.done = func() { u.unblocked(o, jobs) }
	if !e.ops.push(o) {
		u.inflight = false
	}
}

func (u *unblocker) unblocked(o *txOp, jobs []string) {
	e := u.e
	running := false
	if o.err == nil {
		e.disp.mu.Lock()
		e.applyMade(o, "")
		running = e.running()
		e.disp.mu.Unlock()
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inflight = false
	if o.err != nil {
		e.log.Error("unblock queued job runs", "jobs", jobs, "err", o.err)
		for _, j := range jobs {
			u.jobs[j] = true // the next ended run retries them
		}
		return
	}
	if len(u.jobs) > 0 && running {
		u.startLocked()
	}
}
