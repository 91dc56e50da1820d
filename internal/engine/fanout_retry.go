package engine

import (
	"context"
	"strconv"

	"github.com/pluto-sched/pluto/internal/store"
)

// retryFanout runs an ended parent again: its children that did not
// succeed are retried with fresh attempts, the ones that succeeded keep
// their results, and the parent joins again when they have all ended — a
// merge runs anew (under its attempt's key, mergeKey). One transaction, so
// a crash leaves the parent either as it was or reopened with every
// failed child queued.
func (e *Engine) retryFanout(ctx context.Context, id string) (*store.Run, error) {
	o := &txOp{}
	var parent *store.Run
	o.fn = func(ctx context.Context, tx store.Tx) error {
		o.made, parent = nil, nil
		now := e.now()
		p, err := tx.FanoutReopen(ctx, store.FanoutReopenParams{ParentID: id, Now: now})
		if err != nil {
			return err
		}
		fo, err := tx.FanoutGet(ctx, id)
		if err != nil {
			return err
		}
		results, err := childResults(ctx, tx, fo)
		if err != nil {
			return err
		}
		for _, r := range results {
			if !r.Status.Terminal() || r.Status == store.StatusSucceeded {
				continue
			}
			c, err := tx.RunRetry(ctx, store.RunRetryParams{ID: r.ID, Now: now})
			if err != nil {
				return err
			}
			o.made = append(o.made, c)
		}
		parent = p
		return nil
	}
	err := e.do(ctx, o, func() {
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		e.applyMade(o, "")
		if parent.Job != "" && !parent.LogicalTime.IsZero() {
			// The runs its end skipped for their dependencies wait again.
			e.gate.note(gateNote{job: parent.Job, at: parent.LogicalTime, reopen: true})
		}
		// With nothing to rerun (its merge failed, or it was cancelled
		// after its children ended) the join decides at once.
		e.joins.note(id)
	})
	if err != nil {
		return nil, err
	}
	return parent, nil
}

// mergeKey is the idempotency key of a parent's merge run: one per
// attempt of the parent, so that a retried parent merges again, once.
func mergeKey(parent *store.Run) string {
	if parent.Attempt == 0 {
		return mergeKeyPrefix + parent.ID
	}
	return mergeKeyPrefix + parent.ID + "#" + strconv.Itoa(parent.Attempt)
}
