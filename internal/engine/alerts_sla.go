package engine

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// SLAs: a rule "sla": "HH:MM" says that the run for logical time T must
// have succeeded by the first HH:MM after T, in the job's time zone
// (Mars' output-time check). So the deadline D covers the slots T in
// [D', D), D' being the deadline of the day before.
//
// The leader keeps, per job with an SLA, its next deadline, and one timer
// for the earliest. At D an op reads the job's runs for the slots of
// [D', D) — for a job with a schedule every slot its schedule has there
// since the job was created, for one without the slots that have runs —
// and alerts for each slot without a run that succeeded by D (a run that
// succeeded later than D, when the check comes late, still alerts). A
// new leader checks each job's last deadline again (the alert key makes
// a repeat a no-op), so a deadline that fell while no server led is not
// missed, if it is within the day.

// maxSLASlots bounds the slots one deadline checks (a schedule of one a
// second has more in a day; its SLA covers the first 10,000).
const maxSLASlots = 10 * store.MaxSlotRuns

// slaWatch is the alerter's SLA timer state (leader only), guarded by the
// alerter's lock.
type slaWatch struct {
	active bool
	ctx    context.Context // the term's
	cancel context.CancelFunc
	wake   wakeTimer
	next   map[string]time.Time // job -> its next deadline
	// gen counts the recomputations asked for: one applies only if no
	// later one was asked for meanwhile. checkLast: the next to apply
	// also checks each job's latest past deadline (a new term, a failed
	// check).
	gen       uint64
	checkLast bool
}

// slaCheck is one deadline of one job to check.
type slaCheck struct {
	job string
	at  time.Time
}

// slaActivate starts the SLA timer for a new term: the jobs' last
// deadlines are checked again and the next ones armed.
func (a *alerter) slaActivate() {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := &a.sla
	w.active = true
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.next = nil
	a.slaRearmLocked(true)
}

// slaDeactivate stops the SLA timer.
func (a *alerter) slaDeactivate() {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := &a.sla
	w.active = false
	w.wake.stop()
	if w.cancel != nil {
		w.cancel()
	}
}

// slaRulesChanged recomputes the next deadlines after a change of rules
// (and on each reconciler pass, in case a change was not heard).
func (a *alerter) slaRulesChanged() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.slaRearmLocked(false)
}

// slaRearmLocked recomputes the deadlines in the background (the rules
// may need a read); checkLast also checks each job's latest past one.
// Called with a.mu held.
func (a *alerter) slaRearmLocked(checkLast bool) {
	w := &a.sla
	if !w.active || !a.e.running() {
		return
	}
	w.gen++
	w.checkLast = w.checkLast || checkLast
	ctx, gen := w.ctx, w.gen
	a.draining.Add(1)
	go func() {
		defer a.draining.Done()
		a.slaRearm(ctx, gen)
	}()
}

// slaRearm reads the rules (again each second while that fails) and
// installs the next deadline of every job with an SLA, unless a later
// recomputation was asked for meanwhile. Deadlines that came and were not
// checked yet are checked now.
func (a *alerter) slaRearm(ctx context.Context, gen uint64) {
	set, err := a.ruleSet(ctx)
	for err != nil {
		if ctx.Err() != nil {
			return
		}
		a.e.log.Error("alerts: read SLA rules; retrying", "err", err)
		if !a.e.sleep(ctx, time.Second) {
			return
		}
		set, err = a.ruleSet(ctx)
	}
	now := a.e.now()
	next := map[string]time.Time{}
	var last []slaCheck
	for name, j := range set.jobs {
		rules := set.rulesFor(name, j.Group)
		if rules == nil || rules.SLA == "" || j.Paused {
			continue
		}
		h, m, err := parseSLA(rules.SLA)
		loc, lerr := jobLocation(j)
		if err != nil || lerr != nil {
			continue
		}
		next[name] = slaNext(now, h, m, loc)
		if at := slaPrev(next[name], h, m, loc); at.After(j.CreatedAt) {
			last = append(last, slaCheck{job: name, at: at})
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	w := &a.sla
	if !w.active || ctx.Err() != nil || w.gen != gen {
		return
	}
	var due []slaCheck
	if w.checkLast {
		due, w.checkLast = last, false
	}
	for job, at := range w.next {
		if !at.After(now) {
			due = append(due, slaCheck{job: job, at: at})
		}
	}
	w.next = next
	w.wake.stop()
	for _, at := range next {
		a.slaArmLocked(at)
	}
	if len(due) > 0 {
		a.slaCheckAsyncLocked(due)
	}
}

func (a *alerter) slaArmLocked(at time.Time) {
	if a.sla.active && a.e.running() {
		a.sla.wake.arm(a.e.clk, at, a.slaDue)
	}
}

// slaDue checks the deadlines that came and arms the next ones.
func (a *alerter) slaDue() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sla.wake.fired()
	if !a.sla.active {
		return
	}
	now := a.e.now()
	var due []slaCheck
	for job, at := range a.sla.next {
		if !at.After(now) {
			due = append(due, slaCheck{job: job, at: at})
			delete(a.sla.next, job) // armed again, exactly, after the check
		}
	}
	for _, at := range a.sla.next {
		a.slaArmLocked(at)
	}
	if len(due) > 0 {
		a.slaCheckAsyncLocked(due)
	}
}

// slaCheckAsyncLocked runs the checks in the background, then recomputes
// the deadlines (exact in each job's zone); a check that fails is made
// again a second later, with every job's last deadline. Called with a.mu
// held.
func (a *alerter) slaCheckAsyncLocked(due []slaCheck) {
	ctx := a.sla.ctx
	a.draining.Add(1)
	go func() {
		defer a.draining.Done()
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := a.insertWith(cctx, func(ctx context.Context, tx store.Tx) ([]*store.Alert, error) {
			return a.slaAlerts(ctx, tx, due)
		})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.e.log.Error("alerts: check SLAs; retrying", "jobs", len(due), "err", err)
			if !a.e.sleep(ctx, time.Second) {
				return
			}
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.slaRearmLocked(err != nil)
	}()
}

// slaAlerts reads, in tx, the slots of each check and returns the alerts
// of those that missed it. A check no longer due under the job's rules
// (paused, or its SLA or zone changed since it was armed) is dropped.
func (a *alerter) slaAlerts(ctx context.Context, tx store.Tx, due []slaCheck) ([]*store.Alert, error) {
	set, err := a.ruleSet(ctx)
	if err != nil {
		return nil, err
	}
	var out []*store.Alert
	for _, c := range due {
		j := set.jobs[c.job]
		if j == nil || j.Paused {
			continue
		}
		rules := set.rulesFor(j.Name, j.Group)
		if rules == nil || rules.SLA == "" {
			continue
		}
		h, m, err := parseSLA(rules.SLA)
		loc, lerr := jobLocation(j)
		if err != nil || lerr != nil || !slaAt(c.at, 0, h, m, loc).Equal(c.at) {
			continue
		}
		as, err := a.e.slaMissed(ctx, tx, j, rules, c.at, h, m, loc)
		if err != nil {
			return nil, err
		}
		out = append(out, as...)
	}
	return out, nil
}

// slaMissed returns the alerts of j's slots due by deadline d — those in
// [d', d), d' the deadline the day before — that had no run succeeded by
// then.
func (e *Engine) slaMissed(ctx context.Context, tx store.Tx, j *store.Job, rules *store.AlertRules, d time.Time, h, m int, loc *time.Location) ([]*store.Alert, error) {
	from, to := slaPrev(d, h, m, loc), d.Add(-time.Microsecond)
	runs, err := slaRuns(ctx, tx, j.Name, from, to)
	if err != nil {
		return nil, fmt.Errorf("SLA of job %s: %w", j.Name, err)
	}
	var slots []time.Time
	if sched, err := jobSchedule(j); err == nil && !sched.IsZero() {
		// The slots since d' that the job fired or should have: those after
		// it was created (its first fire is the slot after its creation).
		for t := sched.Next(maxTime(from.Add(-time.Microsecond), j.CreatedAt)); !t.IsZero() && t.Before(d) && len(slots) < maxSLASlots; t = sched.Next(t) {
			slots = append(slots, t.UTC())
		}
	} else {
		for t := range runs {
			slots = append(slots, t)
		}
		slices.SortFunc(slots, func(a, b time.Time) int { return a.Compare(b) })
	}
	var out []*store.Alert
	for _, t := range slots {
		r := runs[t]
		if r != nil && r.Status == store.StatusSucceeded && !r.FinishedAt.After(d) {
			continue
		}
		reason := fmt.Sprintf("job %s's run for %s had not succeeded by %s (SLA %s %s): %s", j.Name,
			t.UTC().Format(time.RFC3339), d.In(loc).Format(time.RFC3339), rules.SLA, loc, slaState(r))
		a := e.newAlert("slot:"+j.Name+"@"+strconv.FormatInt(t.UnixMicro(), 10)+":"+store.AlertSLA, store.AlertSLA, reason, rules)
		a.Job, a.Group, a.LogicalTime = j.Name, j.Group, t
		if r != nil {
			a.RunID = r.ID
		}
		out = append(out, a)
	}
	return out, nil
}

// slaRuns reads job's runs with a logical time in [from, to], by logical
// time, page by page (at most maxSLASlots).
func slaRuns(ctx context.Context, tx store.Tx, job string, from, to time.Time) (map[time.Time]*store.Run, error) {
	out := map[time.Time]*store.Run{}
	for len(out) < maxSLASlots && !to.Before(from) {
		rs, err := jobSlots(ctx, tx, job, from, to, store.MaxSlotRuns)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			out[r.LogicalTime] = r
		}
		if len(rs) < store.MaxSlotRuns {
			break
		}
		to = rs[len(rs)-1].LogicalTime.Add(-time.Microsecond) // latest first
	}
	return out, nil
}

// slaState says where a slot's run stood at its check.
func slaState(r *store.Run) string {
	switch {
	case r == nil:
		return "no run"
	case r.Status == store.StatusSucceeded:
		return fmt.Sprintf("run %s succeeded late, at %s", r.ID, r.FinishedAt.UTC().Format(time.RFC3339))
	case r.Error != "":
		return fmt.Sprintf("run %s is %s: %s", r.ID, r.Status, r.Error)
	}
	return fmt.Sprintf("run %s is %s", r.ID, r.Status)
}

// slaAt is h:m on the day of t in loc.
func slaAt(t time.Time, days, h, m int, loc *time.Location) time.Time {
	t = t.In(loc)
	return time.Date(t.Year(), t.Month(), t.Day()+days, h, m, 0, 0, loc).UTC()
}

// slaNext is the first deadline strictly after t.
func slaNext(t time.Time, h, m int, loc *time.Location) time.Time {
	if d := slaAt(t, 0, h, m, loc); d.After(t) {
		return d
	}
	return slaAt(t, 1, h, m, loc)
}

// slaPrev is the deadline the day before deadline d.
func slaPrev(d time.Time, h, m int, loc *time.Location) time.Time { return slaAt(d, -1, h, m, loc) }

// locations caches time zones by name: LoadLocation reads the zone
// database each time.
var locations sync.Map

// jobLocation is j's time zone.
func jobLocation(j *store.Job) (*time.Location, error) {
	if j.Timezone == "" {
		return time.UTC, nil
	}
	if l, ok := locations.Load(j.Timezone); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(j.Timezone)
	if err == nil {
		locations.Store(j.Timezone, l)
	}
	return l, err
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
