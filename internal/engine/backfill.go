package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Backfills (docs/workflows.md#backfill)
//
// A backfill runs a job over the past slots of [from, to], at most
// `parallel` slots at once, in order, with (cascade) the runs for each slot
// of every job downstream, which wait for that slot's upstream runs like
// any dependent run. The store keeps the backfill; the leader drives it: a
// step, one transaction, counts the job's unfinished runs in the range,
// starts slots until `parallel` are going (a new run, a retry under the
// rerun policy, or the run already there kept), and moves the backfill's
// cursor by compare-and-set on its version. A step that loses the
// compare-and-set (another leader stepped first) rolls back whole, so a
// slot is started once, and a slot has one run per job anyway (unique on
// job and logical time). Steps follow the ends of the job's runs, a
// create or a resume, a new leader, and each reconciler pass; the step
// that finds every slot started and none going marks it done.

// backfiller drives the running backfills on the leader. It owns its
// state and lock; e.disp.mu may be held calling note.
type backfiller struct {
	e *Engine

	mu       sync.Mutex
	jobs     map[string]bool // the jobs of running backfills (terminal notes)
	watched  map[string]bool // their unfinished runs, announced for TopicFinished
	pending  bool            // a step of every running backfill is wanted
	inflight bool
}

// finished wakes the backfills if one of ids is a run they wait for
// (ended on another server: TopicFinished).
func (b *backfiller) finished(ids []string) {
	b.mu.Lock()
	hit := false
	for _, id := range ids {
		if b.watched[id] {
			delete(b.watched, id)
			hit = true
		}
	}
	b.mu.Unlock()
	if hit {
		b.wake()
	}
}

// watch remembers runs a step announced.
func (b *backfiller) watch(ids []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.watched == nil || len(b.watched) > 100000 {
		b.watched = map[string]bool{}
	}
	for _, id := range ids {
		b.watched[id] = true
	}
}

// noteJob asks for a step if a running backfill is of job.
func (b *backfiller) noteJob(job string) {
	b.mu.Lock()
	hit := b.jobs[job]
	b.mu.Unlock()
	if hit {
		b.wake()
	}
}

// wake asks for a step of every running backfill (on the leader only).
func (b *backfiller) wake() {
	if !b.e.running() || !b.e.Leading() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending = true
	if !b.inflight {
		b.startLocked()
	}
}

func (b *backfiller) startLocked() {
	b.pending, b.inflight = false, true
	e := b.e
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		roots, err := b.stepAll(context.Background())
		b.mu.Lock()
		defer b.mu.Unlock()
		b.inflight = false
		if err == nil {
			b.jobs = roots
		} else if e.running() {
			e.log.Error("backfill: step", "err", err)
		}
		if b.pending && e.running() && e.Leading() {
			b.startLocked()
		}
	}()
}

// stepAll steps every running backfill, each in an op of its own, and
// returns the jobs (with cascade, the downstream ones too) of those
// running.
func (b *backfiller) stepAll(ctx context.Context) (map[string]bool, error) {
	e := b.e
	list, err := e.st.BackfillList(ctx, 1000)
	if err != nil {
		return nil, err
	}
	graph, err := e.gate.depGraph(ctx)
	if err != nil {
		return nil, err
	}
	roots := map[string]bool{}
	for _, bf := range list {
		if bf.State != store.BackfillRunning {
			continue
		}
		for _, j := range scopeJobs(graph, bf.Job, bf.Cascade) {
			roots[j] = true // the end of any of its runs may end the backfill
		}
		if err := e.stepBackfill(ctx, bf.ID); err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, err
		}
	}
	return roots, nil
}

// stepBackfill runs one step of backfill id (see above).
func (e *Engine) stepBackfill(ctx context.Context, id string) error {
	bf, err := e.st.BackfillGet(ctx, id)
	if err != nil || bf.State != store.BackfillRunning {
		return err
	}
	j, err := e.st.JobGet(ctx, bf.Job)
	if err != nil {
		return err
	}
	slots, err := backfillSlots(j, bf.From, bf.To)
	if err != nil {
		return err
	}
	if bf.Desc {
		slices.Reverse(slots)
	}
	graph, err := e.gate.depGraph(ctx)
	if err != nil {
		return err
	}
	o := &txOp{}
	var reopened []*store.Run
	var watch []string
	o.fn = func(ctx context.Context, tx store.Tx) error {
		o.made, reopened, watch = nil, nil, nil
		if err := e.step(ctx, tx, o, bf, j, slots, graph, &reopened, &watch); err != nil {
			return err
		}
		return e.announce(ctx, tx, watch)
	}
	return e.do(ctx, o, func() {
		e.backfill.watch(watch)
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		e.applyMade(o, "")
		for _, r := range reopened {
			e.gate.note(gateNote{job: r.Job, at: r.LogicalTime, reopen: true})
		}
	})
}

// announce asks, in tx, the servers that will end runs ids to say so
// (TopicWatch, as a Wait does), so that a backfill's next step follows the
// end of its runs wherever their workers are.
func (e *Engine) announce(ctx context.Context, tx store.Tx, ids []string) error {
	if e.cfg.ExclusiveStore {
		return nil
	}
	for _, id := range ids {
		if err := tx.Notify(ctx, store.Notification{Topic: store.TopicWatch, Payload: id}); err != nil {
			return err
		}
	}
	return nil
}

// step is stepBackfill's transaction. It first takes the backfill at the
// version it read (a compare-and-set that changes nothing else): another
// step that got there first makes it ErrConflict before it writes
// anything, as it shares its transaction with other ops.
func (e *Engine) step(ctx context.Context, tx store.Tx, o *txOp, read *store.Backfill, j *store.Job, slots []time.Time, g *depGraph, reopened *[]*store.Run, watch *[]string) error {
	now := e.now()
	bf, ok, err := tx.BackfillUpdate(ctx, read)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("backfill %s moved meanwhile: %w", read.ID, store.ErrConflict)
	}
	active, err := tx.RunListActiveForJob(ctx, j.Name, 1000)
	if err != nil {
		return err
	}
	lo, hi := span(slots)
	going := 0
	for _, r := range active {
		if !r.LogicalTime.IsZero() && !r.LogicalTime.Before(lo) && !r.LogicalTime.After(hi) {
			going++
			*watch = append(*watch, r.ID)
		}
	}
	pos := len(slots)
	if !bf.Next.IsZero() {
		if pos = slices.IndexFunc(slots, func(t time.Time) bool { return t.Equal(bf.Next) }); pos < 0 {
			pos = len(slots) // the job's schedule changed: nothing more to start
		}
	}
	next := *bf
	for ; pos < len(slots) && going < bf.Parallel; pos++ {
		started, err := e.startSlot(ctx, tx, o, bf, j, slots[pos], g, now, reopened)
		if err != nil {
			return err
		}
		if started {
			next.Started++
			going++
		} else {
			next.Kept++
		}
	}
	for _, r := range o.made {
		*watch = append(*watch, r.ID)
	}
	next.Next = time.Time{}
	if pos < len(slots) {
		next.Next = slots[pos]
	}
	if next.Next.IsZero() && going == 0 {
		// Done once the downstream runs of its range ended too.
		busy, err := rangeBusy(ctx, tx, scopeJobs(g, j.Name, bf.Cascade)[1:], lo, hi)
		if err != nil {
			return err
		}
		*watch = append(*watch, busy...)
		if len(busy) == 0 {
			next.State, next.FinishedAt = store.BackfillDone, now
		}
	}
	if next == *bf {
		return nil
	}
	next.UpdatedAt = now
	if _, ok, err := tx.BackfillUpdate(ctx, &next); err != nil || !ok {
		return errors.Join(err, fmt.Errorf("backfill %s: the update after taking it did not apply", bf.ID))
	}
	return nil
}

// rangeBusy returns the unfinished runs of jobs with a logical time in
// [lo, hi].
func rangeBusy(ctx context.Context, tx store.Tx, jobs []string, lo, hi time.Time) ([]string, error) {
	var busy []string
	for _, j := range jobs {
		active, err := tx.RunListActiveForJob(ctx, j, 1000)
		if err != nil {
			return nil, err
		}
		for _, r := range active {
			if !r.LogicalTime.IsZero() && !r.LogicalTime.Before(lo) && !r.LogicalTime.After(hi) {
				busy = append(busy, r.ID)
			}
		}
	}
	return busy, nil
}

// startSlot gives slot at of the backfill its run: a new one (with its
// dependents), a retry of the ended one under the rerun policy, or the
// one there (false: kept).
func (e *Engine) startSlot(ctx context.Context, tx store.Tx, o *txOp, bf *store.Backfill, j *store.Job, at time.Time, g *depGraph, now time.Time, reopened *[]*store.Run) (bool, error) {
	rs, err := jobSlots(ctx, tx, j.Name, at, at, 1)
	if err != nil {
		return false, err
	}
	var cur *store.Run
	if len(rs) > 0 {
		cur = rs[0]
	}
	mk := func(j *store.Job, at time.Time) store.RunInsertParams { return e.manualSlotRun(j, at, now) }
	// The slot's runs, downstream ones included: the store keeps those
	// that exist, and creates the rest.
	res, err := tx.RunInsert(ctx, withDependents(g, []store.RunInsertParams{mk(j, at)}, bf.Cascade, mk))
	if err != nil {
		return false, err
	}
	for _, r := range res {
		if !r.Existing {
			o.made = append(o.made, r.Run)
		}
	}
	switch slotAction(cur, bf.Rerun) {
	case "create":
	case "rerun":
		// A job with dependencies waits for its upstream runs again.
		r, err := tx.RunRetry(ctx, store.RunRetryParams{ID: cur.ID, Now: now, Succeeded: true, Blocked: len(g.deps[j.Name]) > 0})
		if err != nil {
			return false, err
		}
		o.made = append(o.made, r)
		*reopened = append(*reopened, r)
	default:
		return false, nil
	}
	if bf.Cascade && bf.Rerun != store.RerunNone {
		return true, e.rerunDownstream(ctx, tx, o, bf, g, j.Name, at, now)
	}
	return true, nil
}

// rerunDownstream applies the rerun policy to the ended runs for slot at
// of the jobs downstream of job (a cascade backfill's slot that started):
// each is retried blocked, so it runs again after its upstream runs for
// the slot, in dependency order. Runs just created, and runs not ended,
// are left as they are.
func (e *Engine) rerunDownstream(ctx context.Context, tx store.Tx, o *txOp, bf *store.Backfill, g *depGraph, job string, at, now time.Time) error {
	for _, d := range scopeJobs(g, job, true)[1:] {
		rs, err := jobSlots(ctx, tx, d, at, at, 1)
		if err != nil {
			return err
		}
		if len(rs) == 0 || slotAction(rs[0], bf.Rerun) != "rerun" {
			continue
		}
		r, err := tx.RunRetry(ctx, store.RunRetryParams{ID: rs[0].ID, Now: now, Succeeded: true, Blocked: true})
		if err != nil {
			return err
		}
		o.made = append(o.made, r)
	}
	return nil
}
