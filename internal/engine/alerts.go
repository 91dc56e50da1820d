package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Alerts (docs/workflows.md)
//
// A job's alert rules (or, for a job without its own, its group's default
// rules) say when something is worth telling a person: a run ended in a
// status of On, the run for a logical time had not succeeded by the SLA's
// time of day, or an attempt ran longer than MaxDuration. Each alert is
// stored once per subject and rule — the store's key is unique — so every
// server that notices the same thing may insert it: one alert results.
//
// Who notices:
//
//   - A run that ends: the server that committed its end (terminal, and
//     txOps for runs skipped inside them) notes it after the commit; the
//     alerter reads the run and inserts the alert in an op of its own.
//   - An attempt that runs too long: the server holding it arms a timer
//     when it starts (like its timeout).
//   - An SLA: the leader arms one timer for the next deadline of every job
//     with an SLA (alerts_sla.go).
//
// What a crash loses between a commit and the alert's insert the leader's
// sweep finds again: on taking the lease and on each reconciler pass it
// reads the runs that ended in an alerting status since its last sweep,
// and the attempts running past their longest duration, and inserts what
// is missing (alerts_sweep.go).
//
// An alert with a webhook is delivered by the leader like a callback
// (delivery.go), under the same network policy, back-off and expiry.

// alertRulesTTL bounds how long the alert rules read from the store are
// trusted without a change being heard (as the dependency graph's).
const alertRulesTTL = 5 * time.Second

// maxAlertReason caps an alert's reason text.
const maxAlertReason = 1000

// alertRuleSet is the jobs and the groups' default rules, read together.
type alertRuleSet struct {
	jobs   map[string]*store.Job
	groups map[string]*store.AlertRules
}

// rulesFor returns the rules of a run of job ("" for a one-off) in group:
// the job's own, else the group's default; nil when neither alerts.
func (s *alertRuleSet) rulesFor(job, group string) *store.AlertRules {
	r := s.groups[group]
	if j := s.jobs[job]; j != nil && j.Alerts != nil {
		r = j.Alerts
	}
	if r.Empty() {
		return nil
	}
	return r
}

// some reports whether the rules of some group or job satisfy pred.
func (s *alertRuleSet) some(pred func(*store.AlertRules) bool) bool {
	for _, r := range s.groups {
		if r != nil && pred(r) {
			return true
		}
	}
	for _, j := range s.jobs {
		if j.Alerts != nil && pred(j.Alerts) {
			return true
		}
	}
	return false
}

// any reports whether some job or group has rules.
func (s *alertRuleSet) any() bool {
	return s.some(func(r *store.AlertRules) bool { return !r.Empty() })
}

// alertNote is something that may alert: a run that ended (by id, or r
// when known in full), or an attempt past its longest duration.
type alertNote struct {
	id     string
	job    string
	group  string
	status store.RunStatus
	run    *store.Run // the run as it ended, if the noter has it
	// long: the attempt ran past the rules' MaxDuration.
	long    bool
	attempt int
	started time.Time
}

// alerter creates alerts and owns the alert deliverer. It owns its notes,
// its cached rules and its lock; one insert is in flight at a time. Lock
// order: e.disp.mu may be held calling note or cachedRules.
type alerter struct {
	e     *Engine
	deliv *deliverer[*store.Alert]
	// life ends when the engine stops: what waits on the store gives up.
	life context.Context
	stop context.CancelFunc

	mu       sync.Mutex
	notes    []alertNote
	working  bool   // a goroutine drains the notes
	rulesGen uint64 // bumped when jobs or group rules change
	rules    *alertRuleSet
	rulesAt  uint64
	readAt   time.Time
	sla      slaWatch  // the leader's SLA timer (alerts_sla.go)
	swept    time.Time // the leader's sweep covered ends up to here
	sweeping bool      // a reconciler's sweep is under way
	draining sync.WaitGroup
}

// rulesChanged drops the cached rules.
func (a *alerter) rulesChanged() {
	a.mu.Lock()
	a.rulesGen++
	a.mu.Unlock()
	a.slaRulesChanged()
}

// ruleSet returns the rules, read again after a change or once
// alertRulesTTL old.
func (a *alerter) ruleSet(ctx context.Context) (*alertRuleSet, error) {
	now := a.e.now()
	a.mu.Lock()
	gen, cached := a.rulesGen, a.rules
	if cached != nil && a.rulesAt == gen && now.Sub(a.readAt) < alertRulesTTL {
		a.mu.Unlock()
		return cached, nil
	}
	a.mu.Unlock()
	jobs, err := a.e.st.JobList(ctx)
	if err != nil {
		return nil, fmt.Errorf("alerts: read jobs: %w", err)
	}
	groups, err := a.e.st.GroupAlertsList(ctx)
	if err != nil {
		return nil, fmt.Errorf("alerts: read group rules: %w", err)
	}
	set := &alertRuleSet{jobs: make(map[string]*store.Job, len(jobs)), groups: groups}
	for _, j := range jobs {
		set.jobs[j.Name] = j
	}
	a.mu.Lock()
	if a.rulesGen == gen {
		a.rules, a.rulesAt, a.readAt = set, gen, now
	}
	a.mu.Unlock()
	return set, nil
}

// cachedRules returns the rules of a run of job in group from the cache,
// however old, without I/O; ok is false when nothing was read yet (the
// caller notes anyway, and the alerter decides).
func (a *alerter) cachedRules(job, group string) (r *store.AlertRules, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rules == nil {
		return nil, false
	}
	fresh := a.rulesAt == a.rulesGen && a.e.now().Sub(a.readAt) < alertRulesTTL
	return a.rules.rulesFor(job, group), fresh
}

// ended notes a run that reached a terminal status. Called with e.disp.mu
// possibly held: no I/O. A run whose rules (cached and fresh) do not
// alert on st costs nothing more.
func (a *alerter) ended(id, job, group string, st store.RunStatus, r *store.Run) {
	if !oneOf(string(st), store.AlertOnStatuses) {
		return
	}
	if rules, fresh := a.cachedRules(job, group); fresh && (rules == nil || !oneOf(string(st), rules.On)) {
		return
	}
	a.note(alertNote{id: id, job: job, group: group, status: st, run: r})
}

// endedRuns notes runs a txOp ended (skipped slots).
func (a *alerter) endedRuns(rs []*store.Run) {
	for _, r := range rs {
		a.ended(r.ID, r.Job, r.Group, r.Status, r)
	}
}

// maxAlertNotes bounds the notes kept while the store fails; past it the
// oldest are left to the leader's sweep.
const maxAlertNotes = 10000

// note queues notes and starts draining them unless that is under way.
func (a *alerter) note(ns ...alertNote) {
	if len(ns) == 0 || !a.e.serving() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.notes = append(a.notes, ns...)
	if n := len(a.notes) - maxAlertNotes; n > 0 {
		a.notes = a.notes[n:]
	}
	if a.working {
		return
	}
	a.working = true
	a.draining.Add(1)
	go a.drain()
}

// drain turns notes into alerts until none are left: it reads the rules
// and the runs it does not have, and inserts the alerts in one op per
// round. A round that fails puts its notes back and is tried again a
// second later, until the engine stops.
func (a *alerter) drain() {
	defer a.draining.Done()
	for {
		a.mu.Lock()
		ns := a.notes
		a.notes = nil
		if len(ns) == 0 || !a.e.serving() {
			a.working = false
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		ctx, cancel := context.WithTimeout(a.life, 30*time.Second)
		alerts, err := a.build(ctx, ns)
		if err == nil {
			err = a.insert(ctx, alerts)
		}
		cancel()
		if err == nil {
			continue
		}
		a.e.log.Warn("alerts: not stored yet; retrying", "notes", len(ns), "err", err)
		a.mu.Lock()
		a.notes = append(ns, a.notes...)
		if n := len(a.notes) - maxAlertNotes; n > 0 {
			a.notes = a.notes[n:]
		}
		a.mu.Unlock()
		if !a.e.sleep(a.life, time.Second) {
			a.mu.Lock()
			a.working = false
			a.mu.Unlock()
			return
		}
	}
}

// build makes the alerts notes call for.
func (a *alerter) build(ctx context.Context, ns []alertNote) ([]*store.Alert, error) {
	set, err := a.ruleSet(ctx)
	if err != nil {
		return nil, err
	}
	now := a.e.now()
	var out []*store.Alert
	for _, n := range ns {
		rules := set.rulesFor(n.job, n.group)
		if rules == nil || (!n.long && !oneOf(string(n.status), rules.On)) || (n.long && rules.MaxDuration <= 0) {
			continue
		}
		r := n.run
		if r == nil {
			if r, err = a.e.st.RunGet(ctx, n.id); errors.Is(err, store.ErrNotFound) {
				continue // deleted meanwhile
			} else if err != nil {
				return nil, fmt.Errorf("alerts: read run %s: %w", n.id, err)
			}
		}
		switch {
		case n.long:
			// Still that attempt, running, and past the rules as they are now.
			if r.Status == store.StatusRunning && r.Attempt == n.attempt && now.Sub(n.started) >= rules.MaxDuration {
				out = append(out, a.e.longRunAlert(r, rules, n.attempt, n.started))
			}
		case r.Status.Terminal():
			out = append(out, a.e.endAlert(r, rules, r.Status))
		}
	}
	return out, nil
}

// insert stores alerts in one op and waits for it; the deliverer is told
// of those with a webhook (here, and on a shared store the leader by
// TopicAlert).
func (a *alerter) insert(ctx context.Context, alerts []*store.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	return a.insertWith(ctx, func(context.Context, store.Tx) ([]*store.Alert, error) { return alerts, nil })
}

// insertWith stores, in one op, the alerts build returns in its
// transaction, and waits for it (or for ctx: the op may still commit, and
// a repeat stores nothing more).
func (a *alerter) insertWith(ctx context.Context, build func(ctx context.Context, tx store.Tx) ([]*store.Alert, error)) error {
	var (
		alerts []*store.Alert
		stored []bool
	)
	o := &txOp{}
	o.fn = func(ctx context.Context, tx store.Tx) error {
		var err error
		if alerts, stored, err = insertBuilt(ctx, tx, build); err != nil || len(alerts) == 0 {
			return err
		}
		if at := firstDue(alerts, stored); !at.IsZero() {
			return tx.Notify(ctx, store.Notification{Topic: store.TopicAlert, Payload: strconv.FormatInt(at.UnixMicro(), 10)})
		}
		return nil
	}
	if err := a.e.do(ctx, o, nil); err != nil {
		return err
	}
	for i, ok := range stored {
		if ok {
			al := alerts[i]
			a.e.log.Warn("alert", "rule", al.Rule, "job", al.Job, "run", al.RunID, "reason", al.Reason)
			a.e.cfg.Observer.Alerted(al.Rule)
		}
	}
	if at := firstDue(alerts, stored); !at.IsZero() {
		a.deliv.note(at)
	}
	return nil
}

// insertBuilt runs build and inserts what it returns.
func insertBuilt(ctx context.Context, tx store.Tx, build func(ctx context.Context, tx store.Tx) ([]*store.Alert, error)) ([]*store.Alert, []bool, error) {
	alerts, err := build(ctx, tx)
	if err != nil || len(alerts) == 0 {
		return nil, nil, err
	}
	stored, err := tx.AlertInsert(ctx, alerts)
	return alerts, stored, err
}

// firstDue is the earliest delivery among the stored alerts (zero: none).
func firstDue(alerts []*store.Alert, stored []bool) time.Time {
	var at time.Time
	for i, al := range alerts {
		if i < len(stored) && stored[i] && al.Delivery.State == store.CallbackPending &&
			(at.IsZero() || al.Delivery.NextAt.Before(at)) {
			at = al.Delivery.NextAt
		}
	}
	return at
}

// newAlert fills what every alert has.
func (e *Engine) newAlert(key, rule, reason string, rules *store.AlertRules) *store.Alert {
	now := e.now()
	a := &store.Alert{
		ID: "al_" + strings.TrimPrefix(e.cfg.NewID(), "r_"), Key: key, Rule: rule,
		Reason: truncate(reason, maxAlertReason), Webhook: rules.Webhook, Format: rules.Format, CreatedAt: now,
	}
	if a.Webhook != "" {
		a.Delivery = store.Callback{State: store.CallbackPending, NextAt: now}
	}
	return a
}

// endAlert is the alert of run r that ended in status st.
func (e *Engine) endAlert(r *store.Run, rules *store.AlertRules, st store.RunStatus) *store.Alert {
	reason := fmt.Sprintf("run %s %s", r.ID, strings.ReplaceAll(string(st), "_", " "))
	if r.Job != "" {
		reason = fmt.Sprintf("run %s of job %s %s", r.ID, r.Job, strings.ReplaceAll(string(st), "_", " "))
	}
	if r.Error != "" {
		reason += ": " + r.Error
	}
	a := e.newAlert("run:"+r.ID+":"+string(st), string(st), reason, rules)
	a.Job, a.Group, a.RunID, a.LogicalTime = r.Job, r.Group, r.ID, r.LogicalTime
	return a
}

// longRunAlert is the alert of run r's attempt that started at started and
// ran past rules.MaxDuration.
func (e *Engine) longRunAlert(r *store.Run, rules *store.AlertRules, attempt int, started time.Time) *store.Alert {
	reason := fmt.Sprintf("run %s attempt %d has run longer than %s (started %s)",
		r.ID, attempt, formatDuration(rules.MaxDuration), started.UTC().Format(time.RFC3339))
	a := e.newAlert("run:"+r.ID+":"+store.AlertMaxDuration, store.AlertMaxDuration, reason, rules)
	a.Job, a.Group, a.RunID, a.LogicalTime = r.Job, r.Group, r.ID, r.LogicalTime
	return a
}

// Alerts lists stored alerts, newest first.
func (e *Engine) Alerts(ctx context.Context, p store.AlertListParams) ([]*store.Alert, error) {
	if p.Limit == 0 {
		p.Limit = 100
	}
	if p.Limit < 1 || p.Limit > 1000 {
		return nil, &FieldError{Field: "limit", Message: "must be between 1 and 1000"}
	}
	return e.st.AlertList(ctx, p)
}

// activate starts the leader's part for a new term: the deliverer and
// the SLA timer.
func (a *alerter) activate() {
	a.deliv.activate()
	a.slaActivate()
	a.mu.Lock()
	ctx := a.sla.ctx
	a.mu.Unlock()
	a.draining.Add(1)
	go func() { // the term's first sweep, beside the other leader loops
		defer a.draining.Done()
		a.sweep(ctx)
	}()
}

// deactivate stops the leader's part.
func (a *alerter) deactivate() {
	a.deliv.deactivate()
	a.slaDeactivate()
}

// warm reads the rules in the background at start, so that the first
// attempts find them cached (armLongRun).
func (a *alerter) warm() {
	a.draining.Add(1)
	go func() {
		defer a.draining.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := a.ruleSet(ctx); err != nil {
			a.e.log.Warn("alerts: read rules", "err", err)
		}
	}()
}

// wait ends the alerter's work and waits for its goroutines (the
// engine's Stop).
func (a *alerter) wait() {
	a.stop()
	a.deliv.running.Wait()
	a.draining.Wait()
}
