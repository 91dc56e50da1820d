package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/dur"
	"github.com/pluto-sched/pluto/internal/store"
)

// Retention
//
// The leader deletes finished runs once they are older than the retention
// of their status (Live.Retention) or of their job (store.Job.Keep,
// KeepLast). It is maintenance, not a hot path: a sweep walks the runs in
// batches of retentionBatch deletions (store.RunDeleteFinished walks a
// bounded number of rows per call), each one op of the committer, so each
// transaction stays short and a failed one is retried like any other
// write; a batch that came back full is followed by the next after a
// pause four times as long as it took, so that a backlog of expired runs
// never takes more than a fifth of the writer from dispatch.
// After a sweep the loop sleeps for retentionInterval, or less when the
// shortest retention is shorter (never below a second): no busy polling.
// A live reload wakes it at once.
//
// A sweep is one global pass over every run but those of jobs with a
// retention of their own, then one pass per such job. Deleting twice, or
// on two servers that both believe they lead, is harmless: a delete
// re-checks each run it deletes.

const (
	// retentionBatch is the most runs one op deletes. Dispatch ops queued
	// behind a delete wait for all of it. A steady 500 runs/s of five log
	// lines each on SQLite (2 cores), median of the per-minute
	// submit→start p99: 5.8 ms with no retention (15 min), 8.2 ms deleting
	// 100 a batch (30 min), 6.9-7.6 ms at 25 (6 and 15 min); 500 a batch
	// had tripled it. 25 a batch, with the yield below, still deletes a few
	// thousand runs a second.
	retentionBatch    = 25
	retentionInterval = time.Minute
	// retentionYield: after a full batch the pass waits this many times as
	// long as the batch took before the next, so that a large backlog of
	// expired runs (the first sweep after an upgrade, a retention cut
	// from 30 to 7 days) takes at most a fifth of the store's writer,
	// never all of it.
	retentionYield = 4
	// retentionReclaim caps the pages given back to the file system after
	// a sweep (SQLite: 4 KiB each), so the writer is held a few ms only.
	retentionReclaim = 2048
)

// Retention is how long finished runs are kept, per terminal status; 0
// keeps them for ever. It is comparable (Live compares its snapshots).
type Retention struct {
	Succeeded, Failed, Cancelled, TimedOut, Skipped time.Duration
}

// DefaultRetention is `pluto server`'s default: a day for the runs that
// went as planned, a week for those someone may look into.
var DefaultRetention = Retention{
	Succeeded: 24 * time.Hour, Skipped: 24 * time.Hour,
	Failed: 7 * 24 * time.Hour, Cancelled: 7 * 24 * time.Hour, TimedOut: 7 * 24 * time.Hour,
}

// field returns the setting of a terminal status (nil for another).
func (r *Retention) field(s store.RunStatus) *time.Duration {
	switch s {
	case store.StatusSucceeded:
		return &r.Succeeded
	case store.StatusFailed:
		return &r.Failed
	case store.StatusCancelled:
		return &r.Cancelled
	case store.StatusTimedOut:
		return &r.TimedOut
	case store.StatusSkipped:
		return &r.Skipped
	}
	return nil
}

// For is the retention of status s (0: kept for ever).
func (r Retention) For(s store.RunStatus) time.Duration {
	if p := r.field(s); p != nil {
		return *p
	}
	return 0
}

// shortest is the shortest retention set (0 when none is).
func (r Retention) shortest() time.Duration {
	var m time.Duration
	for _, s := range store.AllStatuses {
		if d := r.For(s); d > 0 && (m == 0 || d < m) {
			m = d
		}
	}
	return m
}

// longest is the longest retention of the terminal statuses, or 0 when
// one of them keeps its runs for ever.
func (r Retention) longest() time.Duration {
	var m time.Duration
	for _, s := range store.AllStatuses {
		if !s.Terminal() {
			continue
		}
		d := r.For(s)
		if d == 0 {
			return 0
		}
		m = max(m, d)
	}
	return m
}

// String is the setting as ParseRetention reads it.
func (r Retention) String() string {
	var parts []string
	for _, s := range store.AllStatuses {
		if !s.Terminal() {
			continue
		}
		v := "off"
		switch d := r.For(s); {
		case d > 0 && d%(24*time.Hour) == 0:
			v = fmt.Sprintf("%dd", d/(24*time.Hour))
		case d > 0:
			v = d.String()
		}
		parts = append(parts, string(s)+"="+v)
	}
	return strings.Join(parts, ",")
}

// ParseRetention reads "succeeded=24h,failed=7d,…" over base: each status
// named gets its duration (Go units plus d and w), 0 or off keeps its
// runs for ever; statuses not named keep base's value. An unknown status,
// a repeated one or a bad value is an error naming it.
func ParseRetention(s string, base Retention) (Retention, error) {
	r := base
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok {
			return base, fmt.Errorf("%q: want STATUS=DURATION", part)
		}
		p := r.field(store.RunStatus(k))
		if p == nil {
			return base, fmt.Errorf("unknown status %q: want succeeded, failed, cancelled, timed_out or skipped", k)
		}
		if seen[k] {
			return base, fmt.Errorf("status %q given twice", k)
		}
		seen[k] = true
		if v == "off" || v == "0" {
			*p = 0
			continue
		}
		d, err := dur.Parse(v)
		if err != nil || d < 0 {
			return base, fmt.Errorf("%s: want a duration such as 30s, 24h or 7d, or off, not %q", k, v)
		}
		*p = d
	}
	return r, nil
}

// retentionOp deletes one batch of expired runs.
type retentionOp struct {
	opBase
	params store.RunDeleteParams
	res    store.RunDeleteResult
}

func (o *retentionOp) reset() { o.res = store.RunDeleteResult{} }

func (o *retentionOp) applyIn(ctx context.Context, tx store.Tx) (err error) {
	o.res, err = tx.RunDeleteFinished(ctx, o.params)
	return err
}

// retentionLoop sweeps until ctx ends (the term is lost, or the engine
// stops).
func (e *Engine) retentionLoop(ctx context.Context) {
	for {
		wait := e.sweep(ctx)
		t := e.clk.AfterFunc(wait, func() { e.pokeRetention() })
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-e.retentionWake:
			t.Stop()
		}
	}
}

// pokeRetention starts a sweep now (a reload changed the retention).
func (e *Engine) pokeRetention() {
	select {
	case e.retentionWake <- struct{}{}:
	default:
	}
}

// sweep runs one sweep and returns how long to sleep before the next.
func (e *Engine) sweep(ctx context.Context) time.Duration {
	ret := e.live().Retention
	wait := retentionInterval
	if m := ret.shortest(); m > 0 {
		wait = min(wait, max(time.Second, m/4))
	}
	jobs, err := e.st.JobList(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("retention: list jobs", "err", err)
		}
		return wait
	}
	now := e.now()
	global := store.RunDeleteParams{FinishedBefore: cutoffs(now, ret.For), Limit: retentionBatch}
	var own []*store.Job
	for _, j := range jobs {
		if j.Keep > 0 || j.KeepLast > 0 {
			own = append(own, j)
			global.ExcludeJobs = append(global.ExcludeJobs, j.Name)
		}
		if j.Keep > 0 {
			wait = min(wait, max(time.Second, j.Keep/4))
		}
	}
	deleted := 0
	passes := []store.RunDeleteParams{global}
	for _, j := range own {
		age := ret.For
		if j.Keep > 0 {
			age = func(store.RunStatus) time.Duration { return j.Keep }
		}
		passes = append(passes, store.RunDeleteParams{
			FinishedBefore: cutoffs(now, age), Job: j.Name, KeepLast: j.KeepLast, Limit: retentionBatch,
		})
	}
	for _, p := range passes {
		n, err := e.retentionPass(ctx, p)
		deleted += n
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, ErrStopped) {
				e.log.Error("retention: delete finished runs", "job", p.Job, "err", err)
			}
			return wait
		}
	}
	if n, err := e.alertRetention(ctx, now, ret); err != nil {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, ErrStopped) {
			e.log.Error("retention: delete alerts", "err", err)
		}
	} else {
		deleted += n
	}
	if deleted > 0 {
		e.log.Debug("retention: deleted finished runs and alerts", "deleted", deleted)
		e.reclaimSpace(ctx)
	}
	return wait
}

// alertRetention deletes alerts older than the longest retention of the
// runs (none while some status keeps its runs for ever), in batches like
// runs. An alert whose delivery is still pending stays.
func (e *Engine) alertRetention(ctx context.Context, now time.Time, ret Retention) (int, error) {
	keep := ret.longest()
	if keep == 0 {
		return 0, nil
	}
	total := 0
	for {
		n := 0
		o := &txOp{fn: func(ctx context.Context, tx store.Tx) error {
			var err error
			n, err = tx.AlertDeleteBefore(ctx, now.Add(-keep), retentionBatch)
			return err
		}}
		began := e.clk.Now()
		if err := e.do(ctx, o, nil); err != nil {
			return total, err
		}
		total += n
		if n < retentionBatch {
			return total, nil
		}
		if err := e.yieldWriter(ctx, e.clk.Now().Sub(began)*retentionYield); err != nil {
			return total, err
		}
	}
}

// cutoffs are the FinishedBefore of a pass at now with ages age (0: kept).
func cutoffs(now time.Time, age func(store.RunStatus) time.Duration) map[store.RunStatus]time.Time {
	m := make(map[store.RunStatus]time.Time)
	for _, s := range store.AllStatuses {
		if d := age(s); s.Terminal() && d > 0 {
			m[s] = now.Add(-d)
		}
	}
	return m
}

// retentionPass walks one pass to its end, batch by batch, and returns
// the runs it deleted.
func (e *Engine) retentionPass(ctx context.Context, p store.RunDeleteParams) (int, error) {
	if len(p.FinishedBefore) == 0 {
		return 0, nil
	}
	total := 0
	for {
		o := &retentionOp{params: p}
		began := e.clk.Now()
		if err := e.do(ctx, o, nil); err != nil {
			return total, err
		}
		took := e.clk.Now().Sub(began)
		total += len(o.res.Deleted)
		counts := o.res.Counts()
		statuses := make([]string, 0, len(counts))
		for s := range counts {
			statuses = append(statuses, string(s))
		}
		sort.Strings(statuses)
		for _, s := range statuses {
			e.cfg.Observer.RetentionDeleted(store.RunStatus(s), counts[store.RunStatus(s)])
		}
		if o.res.Next == 0 {
			return total, nil
		}
		p.After = o.res.Next
		if err := e.yieldWriter(ctx, took*retentionYield); err != nil {
			return total, err
		}
	}
}

// yieldWriter waits d (on the engine's clock), or until ctx ends.
func (e *Engine) yieldWriter(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	done := make(chan struct{})
	t := e.clk.AfterFunc(d, func() { close(done) })
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reclaimSpace gives freed pages back to the file system, a step at a
// time, on a store that can (SQLite with incremental auto_vacuum).
func (e *Engine) reclaimSpace(ctx context.Context) {
	r, ok := e.st.(store.SpaceReclaimer)
	if !ok {
		return
	}
	for range 16 { // bounded: the rest waits for the next sweep
		n, err := r.ReclaimSpace(ctx, retentionReclaim)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error("retention: reclaim space", "err", err)
			}
			return
		}
		if n < retentionReclaim {
			return
		}
	}
}
