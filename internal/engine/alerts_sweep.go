package engine

import (
	"context"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// The alerter's safety net and its timers of long attempts.

const (
	// alertSweepFirst is how far back a new leader's first sweep looks:
	// as long as a webhook delivery is retried.
	alertSweepFirst = defaultCallbackExpiry
	// alertSweepOverlap re-reads this much before the last sweep's end:
	// a run's end committed just before a sweep's read may be listed by
	// the next one only.
	alertSweepOverlap = time.Minute
	// alertSweepPages bounds the pages (of 1,000 runs) one sweep reads; a
	// sweep that stops there does not move its window, so the next goes
	// over it again.
	alertSweepPages = 5
)

// sweepAsync starts a sweep in the background unless one is under way:
// the reconciler's pass, which wakes idle groups, never waits for it.
func (a *alerter) sweepAsync(timeout time.Duration) {
	a.mu.Lock()
	if a.sweeping {
		a.mu.Unlock()
		return
	}
	a.sweeping = true
	a.draining.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.draining.Done()
		ctx, cancel := context.WithTimeout(a.life, timeout)
		a.sweep(ctx)
		cancel()
		a.mu.Lock()
		a.sweeping = false
		a.mu.Unlock()
	}()
}

// sweep inserts the alerts of runs that ended in an alerting status since
// the last sweep, and of running attempts past their longest duration,
// that nobody stored (a crash between a commit and its alert). The leader
// calls it on taking the lease and on each reconciler pass.
func (a *alerter) sweep(ctx context.Context) {
	e := a.e
	set, err := a.ruleSet(ctx)
	if err != nil {
		e.log.Warn("alerts: sweep", "err", err)
		return
	}
	now := e.now()
	a.mu.Lock()
	from := a.swept
	a.mu.Unlock()
	if from.IsZero() {
		from = now.Add(-alertSweepFirst)
	} else {
		from = from.Add(-alertSweepOverlap)
	}
	if !set.any() {
		a.setSwept(now)
		return
	}
	alerts, complete, err := a.sweepEnded(ctx, set, from)
	if err == nil {
		var long []*store.Alert
		long, err = a.sweepLong(ctx, set, now)
		alerts = append(alerts, long...)
	}
	if err == nil {
		err = a.insert(ctx, alerts)
	}
	if err != nil {
		e.log.Warn("alerts: sweep", "err", err)
		return
	}
	if complete {
		a.setSwept(now)
	} else {
		e.log.Warn("alerts: sweep read its most runs; the next goes over the same window", "since", from)
	}
}

func (a *alerter) setSwept(t time.Time) {
	a.mu.Lock()
	a.swept = t
	a.mu.Unlock()
}

// sweepEnded returns the alerts of runs that ended after from in a status
// their rules alert on; complete is false when it stopped at
// alertSweepPages.
func (a *alerter) sweepEnded(ctx context.Context, set *alertRuleSet, from time.Time) (out []*store.Alert, complete bool, err error) {
	p := store.RunListParams{Statuses: alertStatuses(), FinishedAfter: from, Limit: 1000}
	for range alertSweepPages {
		page, err := a.e.st.RunList(ctx, p)
		if err != nil {
			return nil, false, err
		}
		for _, r := range page.Runs {
			if rules := set.rulesFor(r.Job, r.Group); rules != nil && oneOf(string(r.Status), rules.On) {
				out = append(out, a.e.endAlert(r, rules, r.Status))
			}
		}
		if page.NextCursor == "" {
			return out, true, nil
		}
		p.Cursor = page.NextCursor
	}
	return out, false, nil
}

// sweepLong returns the alerts of running attempts past their rules'
// MaxDuration.
func (a *alerter) sweepLong(ctx context.Context, set *alertRuleSet, now time.Time) ([]*store.Alert, error) {
	if !set.anyLong() {
		return nil, nil
	}
	active, err := a.e.st.RunListActive(ctx, store.RunListActiveParams{})
	if err != nil {
		return nil, err
	}
	var out []*store.Alert
	for _, r := range active {
		rules := set.rulesFor(r.Job, r.Group)
		if r.Status != store.StatusRunning || rules == nil || rules.MaxDuration <= 0 || r.StartedAt.IsZero() {
			continue
		}
		if now.Sub(r.StartedAt) > rules.MaxDuration {
			out = append(out, a.e.longRunAlert(r, rules, r.Attempt, r.StartedAt))
		}
	}
	return out, nil
}

// alertStatuses are the run statuses rules may alert on.
func alertStatuses() []store.RunStatus {
	out := make([]store.RunStatus, len(store.AlertOnStatuses))
	for i, s := range store.AlertOnStatuses {
		out[i] = store.RunStatus(s)
	}
	return out
}

// anyLong reports whether some rules have a MaxDuration.
func (s *alertRuleSet) anyLong() bool {
	return s.some(func(r *store.AlertRules) bool { return r.MaxDuration > 0 })
}

// armLongRun arms the timer that alerts when f's attempt runs past its
// rules' MaxDuration, counted from its recorded start. The rules come
// from the cache (no I/O): an attempt started before they were read is
// left to the sweep. Called with e.disp.mu held.
func (e *Engine) armLongRun(f *flight, now time.Time) {
	if !f.started || f.longTimer != nil {
		return
	}
	rules, _ := e.alerts.cachedRules(f.job, f.group)
	if rules == nil || rules.MaxDuration <= 0 {
		return
	}
	start := f.startedAt
	if start.IsZero() {
		start = now
	}
	f.longTimer = e.clk.AfterFunc(max(0, start.Add(rules.MaxDuration).Sub(now)), func() { e.ranLong(f) })
}

// ranLong notes an attempt still running at its longest duration.
func (e *Engine) ranLong(f *flight) {
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	if e.disp.flights[f.id] != f || !e.running() {
		return
	}
	e.alerts.note(alertNote{id: f.id, job: f.job, group: f.group, long: true, attempt: f.attempt, started: f.startedAt})
}
