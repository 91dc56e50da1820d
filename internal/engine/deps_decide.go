package engine

import (
	"context"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// jobSlots lists job's runs with a logical time in [from, to].
func jobSlots(ctx context.Context, tx store.Tx, job string, from, to time.Time, limit int) ([]*store.Run, error) {
	return tx.RunListSlots(ctx, store.RunSlotsParams{Job: job, From: from, To: to, Limit: limit})
}

// downstreamSlots are the runs of edge's job whose logical time matches an
// upstream run at t: T in [t, t+window) (t itself with no window).
func downstreamSlots(ctx context.Context, tx store.Tx, e downEdge, t time.Time) ([]*store.Run, error) {
	to := t
	if e.window > 0 {
		to = t.Add(e.window - time.Microsecond)
	}
	return jobSlots(ctx, tx, e.job, t, to, store.MaxSlotRuns)
}

// upstreamOf returns the run of d that a run at t waits for: the one of
// the same logical time, or with a window the latest in (t-window, t].
func upstreamOf(ctx context.Context, tx store.Tx, d store.Dependency, t time.Time) (*store.Run, error) {
	from := t
	if d.Window > 0 {
		from = t.Add(-d.Window + time.Microsecond)
	}
	runs, err := jobSlots(ctx, tx, d.Job, from, t, 1)
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	return runs[0], nil
}

// decideNotes decides, in tx, the blocked runs the notes point at; the
// runs it queues go to o.made. It returns the notes its moves make: a run
// it skipped or reopened, whose own dependents are looked at next.
func (e *Engine) decideNotes(ctx context.Context, tx store.Tx, g *depGraph, notes []gateNote, o *txOp) ([]gateNote, error) {
	now := e.now()
	c := gateCands{g: g, seen: map[string]bool{}}
	for _, n := range notes {
		if err := c.gather(ctx, tx, n, now); err != nil {
			return nil, err
		}
	}
	moves := c.free
	for _, r := range c.runs {
		ups := make([]upstreamRun, 0, len(g.deps[r.Job]))
		for _, d := range g.deps[r.Job] {
			u, err := upstreamOf(ctx, tx, d, r.LogicalTime)
			if err != nil {
				return nil, err
			}
			ups = append(ups, upstreamRun{dep: d, run: u})
		}
		rule := store.RuleAllSuccess
		if j := g.jobs[r.Job]; j != nil && j.TriggerRule != "" {
			rule = j.TriggerRule
		}
		if to, why := decide(rule, ups); to != "" {
			moves = append(moves, store.RunGateParams{ID: r.ID, From: store.StatusBlocked, To: to, Error: why, Now: now})
		}
	}
	follow := c.follow
	if len(moves) == 0 {
		return follow, nil
	}
	moved, err := tx.RunGate(ctx, moves)
	if err != nil {
		return nil, err
	}
	for _, r := range moved {
		switch {
		case r == nil:
		case r.Status == store.StatusQueued:
			o.made = append(o.made, r)
		case r.Status == store.StatusSkipped:
			o.noteCallbackRun(r)
			o.noteSkipped(r)
			follow = append(follow, gateNote{job: r.Job, at: r.LogicalTime})
		}
	}
	return follow, nil
}

// gateCands collects the blocked runs a gate op decides.
type gateCands struct {
	g      *depGraph
	seen   map[string]bool
	runs   []*store.Run          // blocked runs of jobs with dependencies
	free   []store.RunGateParams // blocked runs of a job that no longer has dependencies
	follow []gateNote            // runs reopened: their dependents next
}

func (c *gateCands) add(rs []*store.Run) {
	for _, r := range rs {
		if r.Status == store.StatusBlocked && !c.seen[r.ID] && len(c.g.deps[r.Job]) > 0 {
			c.seen[r.ID] = true
			c.runs = append(c.runs, r)
		}
	}
}

// gather adds the runs note n points at.
func (c *gateCands) gather(ctx context.Context, tx store.Tx, n gateNote, now time.Time) error {
	switch {
	case n.recheck:
		rs, err := jobSlots(ctx, tx, n.job, time.Unix(0, 0), time.Unix(1<<40, 0), store.MaxSlotRuns)
		if err != nil {
			return err
		}
		if j := c.g.jobs[n.job]; j != nil && len(c.g.deps[n.job]) == 0 && j.Overlap != store.OverlapQueue {
			for _, r := range rs {
				if r.Status == store.StatusBlocked {
					c.free = append(c.free, store.RunGateParams{ID: r.ID, From: store.StatusBlocked, To: store.StatusQueued, Now: now})
				}
			}
		}
		c.add(rs)
		return nil
	case n.run != "":
		rs, err := jobSlots(ctx, tx, n.job, n.at, n.at, 1)
		c.add(rs)
		return err
	}
	for _, edge := range c.g.down[n.job] {
		rs, err := downstreamSlots(ctx, tx, edge, n.at)
		if err != nil {
			return err
		}
		if n.reopen {
			opened, err := reopen(ctx, tx, rs, now)
			if err != nil {
				return err
			}
			for _, r := range opened {
				c.follow = append(c.follow, gateNote{job: r.Job, at: r.LogicalTime, reopen: true})
			}
			rs = append(rs, opened...)
		}
		c.add(rs)
	}
	return nil
}

// reopen moves the runs of rs that their trigger rule skipped back to
// blocked, and returns them.
func reopen(ctx context.Context, tx store.Tx, rs []*store.Run, now time.Time) ([]*store.Run, error) {
	var ps []store.RunGateParams
	for _, r := range rs {
		if r.Status == store.StatusSkipped && strings.HasPrefix(r.Error, depsSkipped) {
			ps = append(ps, store.RunGateParams{ID: r.ID, From: store.StatusSkipped, To: store.StatusBlocked, Now: now})
		}
	}
	if len(ps) == 0 {
		return nil, nil
	}
	moved, err := tx.RunGate(ctx, ps)
	if err != nil {
		return nil, err
	}
	var out []*store.Run
	for _, r := range moved {
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// withDependents completes runs being created for logical times: a run of
// a job with dependencies is created blocked, and each run of a job for a
// logical time T brings the blocked runs for T of the jobs depending on it
// that have no schedule (all of them with cascade), and theirs, once each.
// Skipped runs bring nothing.
func withDependents(g *depGraph, runs []store.RunInsertParams, cascade bool, mk func(j *store.Job, at time.Time) store.RunInsertParams) []store.RunInsertParams {
	type slotKey struct {
		job string
		at  time.Time
	}
	have := map[slotKey]bool{}
	for i := range runs {
		p := &runs[i]
		if p.Job != "" && !p.LogicalTime.IsZero() {
			have[slotKey{p.Job, p.LogicalTime}] = true
		}
	}
	for i := 0; i < len(runs); i++ {
		p := &runs[i]
		if p.Job == "" || p.LogicalTime.IsZero() || p.Status == store.StatusSkipped {
			continue
		}
		if len(g.deps[p.Job]) > 0 && (p.Status == store.StatusQueued || p.Status == store.StatusPending) {
			p.Status = store.StatusBlocked
		}
		job, at := p.Job, p.LogicalTime
		for _, edge := range g.down[job] {
			d := g.jobs[edge.job]
			if d == nil || d.Paused || (d.Schedule != "" && !cascade) || have[slotKey{d.Name, at}] {
				continue
			}
			have[slotKey{d.Name, at}] = true
			q := mk(d, at)
			q.Status = store.StatusBlocked
			runs = append(runs, q)
		}
	}
	return runs
}
