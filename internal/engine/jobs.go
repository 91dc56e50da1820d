package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/cron"
	"github.com/pluto-sched/pluto/internal/store"
)

// Job limits and defaults.
const (
	defaultMisfireMax = 100
	maxMisfireMax     = 10000
	defaultJobGroup   = "default"
)

var (
	misfirePolicies = []string{store.MisfireSkip, store.MisfireOnce, store.MisfireAll}
	overlapPolicies = []string{store.OverlapAllow, store.OverlapForbid, store.OverlapQueue, store.OverlapReplace}
)

// JobPut validates a job definition and saves it (create or replace);
// created says which. Runs already created are not changed: they copied
// the spec they were made with. The next fire time is kept when the
// schedule, time zone and pause state are unchanged, and otherwise
// computed from now.
func (e *Engine) JobPut(ctx context.Context, j store.Job) (*store.Job, bool, error) {
	sched, err := e.validateJob(&j)
	if err != nil {
		return nil, false, err
	}
	if err := e.validateDeps(ctx, &j); err != nil {
		return nil, false, err
	}
	if err := e.validateAlertRules("alerts", j.Alerts); err != nil {
		return nil, false, err
	}
	now := e.now()
	old, err := e.st.JobGet(ctx, j.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		old = nil
	case err != nil:
		return nil, false, err
	}
	j.NextFire = time.Time{}
	if !j.Paused && !sched.IsZero() {
		if old != nil && !old.Paused && old.Schedule == j.Schedule && old.Timezone == j.Timezone && !old.NextFire.IsZero() {
			// An edit of anything else keeps the slot in progress. If a
			// tick advanced it meanwhile, the slot this re-arms has a run
			// already and (job, logical time) is unique: nothing fires twice.
			j.NextFire = old.NextFire
		} else {
			j.NextFire = utc(sched.Next(now))
		}
	}
	var (
		saved   *store.Job
		created bool
	)
	o := &txOp{fn: func(ctx context.Context, tx store.Tx) error {
		var err error
		if saved, created, err = tx.JobPut(ctx, store.JobPutParams{Job: j, Now: now}); err != nil {
			return err
		}
		return e.jobsChanged(ctx, tx, j.Name)
	}}
	if err := e.do(ctx, o, func() { e.jobSaved(saved.NextFire) }); err != nil {
		return nil, false, err
	}
	// Blocked runs of the job are decided again under its new rule.
	e.gate.note(gateNote{job: j.Name, recheck: true})
	return saved, created, nil
}

// JobGet returns a job.
func (e *Engine) JobGet(ctx context.Context, name string) (*store.Job, error) {
	return e.st.JobGet(ctx, name)
}

// JobList returns every job by name.
func (e *Engine) JobList(ctx context.Context) ([]*store.Job, error) {
	return e.st.JobList(ctx)
}

// JobDelete removes a job; its runs stay, and runs still going finish. A
// job other jobs depend on is not deleted (409 naming them).
func (e *Engine) JobDelete(ctx context.Context, name string) error {
	deps, err := e.dependents(ctx, name)
	if err != nil {
		return err
	}
	if len(deps) > 0 {
		return fmt.Errorf("job %s is an upstream of %s; remove it from their depends_on first: %w", name, strings.Join(deps, ", "), store.ErrConflict)
	}
	return e.do(ctx, &txOp{fn: func(ctx context.Context, tx store.Tx) error {
		return tx.JobDelete(ctx, name)
	}}, func() { e.gate.jobsChanged(); e.alerts.rulesChanged() })
}

// JobPause pauses a job (no slots fire; runs already created go on) or
// resumes it. A resumed job fires from the next slot after now: the slots
// of the pause are not misfires.
func (e *Engine) JobPause(ctx context.Context, name string, paused bool) (*store.Job, error) {
	j, err := e.st.JobGet(ctx, name)
	if err != nil {
		return nil, err
	}
	now := e.now()
	var next time.Time // a paused job has no next fire, however it was paused
	if !paused {
		sched, err := jobSchedule(j)
		if err != nil {
			return nil, &FieldError{Field: "schedule", Message: err.Error()}
		}
		next = utc(sched.Next(now))
	}
	var saved *store.Job
	o := &txOp{fn: func(ctx context.Context, tx store.Tx) error {
		var err error
		if saved, err = tx.JobPause(ctx, store.JobPauseParams{Name: name, Paused: paused, NextFire: next, Now: now}); err != nil {
			return err
		}
		return e.jobsChanged(ctx, tx, name)
	}}
	if err := e.do(ctx, o, func() { e.jobSaved(saved.NextFire) }); err != nil {
		return nil, err
	}
	return saved, nil
}

// JobTrigger runs a job now, outside its schedule (a manual or debug run),
// with payload instead of the job's when payload is not nil. The run has
// no logical time and ignores the overlap policy; a paused job can be
// triggered.
func (e *Engine) JobTrigger(ctx context.Context, name string, payload json.RawMessage) (*store.Run, error) {
	j, err := e.st.JobGet(ctx, name)
	if err != nil {
		return nil, err
	}
	spec := jobSubmitSpec(j)
	if payload != nil {
		spec.Payload = payload
	}
	res, err := e.Submit(ctx, []SubmitSpec{spec})
	if err != nil {
		return nil, err
	}
	return res[0].Run, nil
}

// JobTriggerSlot creates the run of a job for logical time at (a manual
// run of a slot: it runs now, and waits for its upstream runs for at if
// the job has dependencies), with payload instead of the job's when not
// nil, and the runs for at of the jobs depending on it that have no
// schedule — with cascade, of every job downstream. Runs that exist
// already are kept (one run per job and logical time): the job's run for
// at is returned, created says whether this call made it.
func (e *Engine) JobTriggerSlot(ctx context.Context, name string, payload json.RawMessage, at time.Time, cascade bool) (run *store.Run, created bool, err error) {
	if at.IsZero() {
		return nil, false, &FieldError{Field: "logical_time", Message: "is required"}
	}
	j, err := e.st.JobGet(ctx, name)
	if err != nil {
		return nil, false, err
	}
	graph, err := e.gate.depGraph(ctx)
	if err != nil {
		return nil, false, err
	}
	now := e.now()
	at = utc(at)
	mk := func(j *store.Job, at time.Time) store.RunInsertParams { return e.manualSlotRun(j, at, now) }
	first := mk(j, at)
	if payload != nil {
		first.Payload = payload
	}
	runs := withDependents(graph, []store.RunInsertParams{first}, cascade, mk)
	o := &txOp{}
	o.fn = func(ctx context.Context, tx store.Tx) error {
		o.made = nil
		res, err := tx.RunInsert(ctx, runs)
		if err != nil {
			return err
		}
		run, created = res[0].Run, !res[0].Existing
		for _, r := range res {
			if !r.Existing {
				o.made = append(o.made, r.Run)
				e.cfg.Observer.Submitted(r.Run.Group, 1)
			}
		}
		return nil
	}
	err = e.do(ctx, o, func() {
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		e.applyMade(o, "")
	})
	if err != nil {
		return nil, false, err
	}
	return run, created, nil
}

// manualSlotRun is the run of j for slot at made by hand (a trigger with a
// logical time, a backfill): it runs now, whatever the slot's time.
func (e *Engine) manualSlotRun(j *store.Job, at, now time.Time) store.RunInsertParams {
	p := e.slotRun(j, at, now)
	p.RunAt = now
	return p
}

// jobSubmitSpec is the spec a job's runs copy.
func jobSubmitSpec(j *store.Job) SubmitSpec {
	return SubmitSpec{
		Type: j.Type, Group: j.Group, Payload: j.Payload, Priority: j.Priority,
		Timeout: j.Timeout, Retries: j.Retries, Routing: j.Routing, Job: j.Name, CallbackURL: j.CallbackURL,
		jobShards: j.Shards, MinSuccess: j.MinSuccess, Merge: j.Merge,
	}
}

// jobsChanged tells the leader (on any server) to re-read the next fire.
func (e *Engine) jobsChanged(ctx context.Context, tx store.Tx, name string) error {
	if e.cfg.ExclusiveStore {
		return nil
	}
	return tx.Notify(ctx, store.Notification{Topic: store.TopicJobs, Payload: name})
}

// jobSaved re-arms the cron timer after a committed save.
func (e *Engine) jobSaved(next time.Time) {
	e.gate.jobsChanged()
	e.alerts.rulesChanged()
	if next.IsZero() {
		return
	}
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	e.noteFire(next)
}

// validateJob checks a definition, fills defaults, and returns its parsed
// schedule (zero when it has none).
func (e *Engine) validateJob(j *store.Job) (cron.Schedule, error) {
	if err := validName("name", j.Name); err != nil {
		return cron.Schedule{}, err
	}
	if j.Group == "" {
		j.Group = defaultJobGroup
	}
	if j.Misfire == "" {
		j.Misfire = store.MisfireSkip
	}
	if j.Overlap == "" {
		j.Overlap = store.OverlapAllow
	}
	if j.MisfireMax == 0 {
		j.MisfireMax = defaultMisfireMax
	}
	if len(j.Payload) == 0 {
		j.Payload = nil
	}
	// The fields a run copies are checked exactly as a submission's.
	if _, err := e.insertParams(ptr(jobSubmitSpec(j)), e.now()); err != nil {
		return cron.Schedule{}, err
	}
	switch {
	case !oneOf(j.Misfire, misfirePolicies):
		return cron.Schedule{}, &FieldError{Field: "misfire", Message: fmt.Sprintf("unknown policy %q (known: %v)", j.Misfire, misfirePolicies)}
	case j.MisfireMax < 1 || j.MisfireMax > maxMisfireMax:
		return cron.Schedule{}, &FieldError{Field: "misfire_max", Message: fmt.Sprintf("must be between 1 and %d", maxMisfireMax)}
	case !oneOf(j.Overlap, overlapPolicies):
		return cron.Schedule{}, &FieldError{Field: "overlap", Message: fmt.Sprintf("unknown policy %q (known: %v)", j.Overlap, overlapPolicies)}
	case j.Shards < 0 || j.Shards > store.MaxFanout:
		return cron.Schedule{}, &FieldError{Field: "shards", Message: fmt.Sprintf("must be between 0 and %d", store.MaxFanout)}
	case j.Shards > 0 && isBroadcast(j.Routing):
		return cron.Schedule{}, &FieldError{Field: "routing", Message: "a broadcast makes one child per worker; give shards or a broadcast, not both"}
	case j.Shards == 0 && !isBroadcast(j.Routing) && (j.MinSuccess != 0 || j.Merge != ""):
		field := map[bool]string{true: "merge", false: "min_success"}[j.Merge != ""]
		return cron.Schedule{}, &FieldError{Field: field, Message: "applies to a sharded or broadcast job only: give shards or routing broadcast"}
	case j.Keep < 0:
		return cron.Schedule{}, &FieldError{Field: "keep", Message: fmt.Sprintf("must not be negative, not %s", j.Keep)}
	case j.KeepLast < 0:
		return cron.Schedule{}, &FieldError{Field: "keep_last", Message: fmt.Sprintf("must not be negative, not %d", j.KeepLast)}
	case j.Timezone == "Local":
		return cron.Schedule{}, &FieldError{Field: "timezone", Message: `"Local" depends on the server; name an IANA zone such as "Europe/Berlin" or "UTC"`}
	}
	if j.Timezone != "" {
		if _, err := time.LoadLocation(j.Timezone); err != nil {
			return cron.Schedule{}, &FieldError{Field: "timezone", Message: fmt.Sprintf("unknown time zone %q (want an IANA name such as \"Asia/Shanghai\" or \"UTC\")", j.Timezone)}
		}
	}
	if j.Schedule == "" {
		return cron.Schedule{}, nil
	}
	sched, err := parseSchedule(j, cron.ParseIn) // a new schedule: Quartz's rules in full
	if err != nil {
		return cron.Schedule{}, &FieldError{Field: "schedule", Message: err.Error()}
	}
	if a := sched.Next(e.now()); !a.IsZero() {
		if b := sched.Next(a); !b.IsZero() && b.Sub(a) < time.Second {
			return cron.Schedule{}, &FieldError{Field: "schedule", Message: fmt.Sprintf("fires every %s; a job fires at most once a second", b.Sub(a))}
		}
	}
	return sched, nil
}

// jobSchedule parses a stored job's schedule in its time zone (zero
// Schedule for none), as it was accepted when saved (cron.ParseStored).
func jobSchedule(j *store.Job) (cron.Schedule, error) {
	return parseSchedule(j, cron.ParseStored)
}

// parseSchedule parses j's schedule in its time zone with parse.
func parseSchedule(j *store.Job, parse func(string, *time.Location) (cron.Schedule, error)) (cron.Schedule, error) {
	if j.Schedule == "" {
		return cron.Schedule{}, nil
	}
	loc := time.UTC
	if j.Timezone != "" {
		var err error
		if loc, err = time.LoadLocation(j.Timezone); err != nil {
			return cron.Schedule{}, err
		}
	}
	return parse(j.Schedule, loc)
}

// validName checks a name used in URLs: 1–200 bytes of letters, digits,
// '.', '_' and '-', not starting with '.'.
func validName(field, s string) error {
	if s == "" {
		return &FieldError{Field: field, Message: "is required"}
	}
	if len(s) > maxNameLen {
		return &FieldError{Field: field, Message: fmt.Sprintf("is longer than %d bytes", maxNameLen)}
	}
	if s[0] == '.' {
		return &FieldError{Field: field, Message: "must not start with '.'"}
	}
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return &FieldError{Field: field, Message: fmt.Sprintf("has %q at byte %d; use letters, digits, '.', '_' and '-'", c, i)}
		}
	}
	return nil
}

func oneOf(s string, set []string) bool {
	for _, v := range set {
		if s == v {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }

// utc is t in UTC, or the zero time.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}
