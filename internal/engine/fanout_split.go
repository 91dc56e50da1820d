package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/pluto-sched/pluto/internal/store"
)

// Splitting at dispatch. A run with a Split — a sharded job's run, or a
// broadcast — is an ordinary run until a server claims it: it waits for
// its slot, its upstream runs and its job's overlap policy like any other.
// The server that claims it makes it a fan-out's parent there and then
// (store.FanoutExpand, fenced by the claim's attempt): a sharded job's run
// gets its N children; a broadcast one child per healthy worker of its
// group connected to this server and serving its type, each pinned to its
// worker (routing broadcast or shard-broadcast, routing key the worker's
// id), so that workers that join later get none. From there the join is a
// created fan-out's (fanout.go): downstream jobs see the parent, once.

// isBroadcast reports the broadcast routings.
func isBroadcast(routing string) bool {
	return routing == store.RoutingBroadcast || routing == store.RoutingShardBroadcast
}

// expandSplits makes each claimed run with a Split a fan-out's parent, in
// one op. Called with e.disp.mu held.
func (e *Engine) expandSplits(g *group, runs []*store.Run) {
	var params []store.FanoutExpandParams
	var none []*flight // broadcasts with no worker to go to: back to the queue
	for _, r := range runs {
		p, ok := e.splitParams(g, r)
		if !ok {
			none = append(none, newFlight(r))
			continue
		}
		params = append(params, p)
	}
	if len(none) > 0 {
		e.handBack(none, "no worker of the group to broadcast to", false)
	}
	if len(params) == 0 {
		return
	}
	o := &txOp{}
	o.fn = func(ctx context.Context, tx store.Tx) error {
		o.made = nil
		for _, p := range params {
			parent, children, err := tx.FanoutExpand(ctx, p)
			if err != nil {
				return fmt.Errorf("split run %s: %w", p.ID, err)
			}
			if parent == nil {
				continue // adopted or cancelled meanwhile
			}
			for _, c := range children {
				o.made = append(o.made, c)
				o.noteSkipped(c)
			}
		}
		return nil
	}
	o.done = func() {
		if o.err != nil {
			e.log.Error("fan-out: split claimed runs", "runs", len(params), "err", o.err)
			return // stopping: the claims are recovered at the next start
		}
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		e.applyMade(o, "") // the children are queued: nothing to join yet
	}
	e.submitOp(o)
}

// splitParams builds the children of claimed run r; false for a broadcast
// with no worker here. Called with e.disp.mu held.
func (e *Engine) splitParams(g *group, r *store.Run) (store.FanoutExpandParams, bool) {
	sp := r.Split
	now := e.now()
	child := store.RunInsertParams{
		Type: r.Type, Group: r.Group, Payload: r.Payload, Priority: r.Priority, Status: store.StatusQueued,
		MaxAttempts: r.MaxAttempts, RunAt: now, Timeout: r.Timeout, Routing: r.Routing, RoutingKey: r.RoutingKey, Now: now,
	}
	var children []store.RunInsertParams
	if sp.Broadcast == "" {
		children = make([]store.RunInsertParams, sp.Shards)
		for i := range children {
			children[i] = child
			children[i].ID = e.cfg.NewID()
		}
	} else {
		child.Routing = sp.Broadcast
		for _, w := range e.broadcastTargets(g, r.Type) {
			c := child
			c.ID, c.RoutingKey = e.cfg.NewID(), w
			children = append(children, c)
		}
		if len(children) == 0 {
			return store.FanoutExpandParams{}, false
		}
	}
	n := len(children)
	k, err := minSuccess(sp.MinSuccess, n)
	if err != nil { // a count over the workers there are: all of them
		k = n
	}
	return store.FanoutExpandParams{ID: r.ID, Attempt: r.Attempt, ServerID: e.cfg.ServerID, Children: children,
		MinSuccess: k, Merge: sp.Merge, Now: now}, true
}

// broadcastTargets are the ids of the healthy workers of g serving typ,
// in id order. Called with e.disp.mu held.
func (e *Engine) broadcastTargets(g *group, typ string) []string {
	var ids []string
	for _, s := range g.sessions {
		if s.healthy() && s.serves(typ) {
			ids = append(ids, s.hello.WorkerID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// pinnedTo returns the candidate index of a broadcast child's worker, -1
// if it is not among cands (busy workers included), and whether the
// worker is connected here at all. Called with e.disp.mu held.
func pinnedTo(g *group, worker string) (i int, here bool) {
	for _, s := range g.sessions {
		if s.hello.WorkerID == worker {
			here = true
		}
	}
	for i := range g.cands {
		if g.cands[i].ID == worker {
			return i, here
		}
	}
	return -1, here
}

// failStrays fails broadcast children whose worker is not connected to
// this server: a broadcast run goes to its worker only. Called with
// e.disp.mu held.
func (e *Engine) failStrays(fs []*flight) {
	e.failNow(fs, func(f *flight) string {
		return fmt.Sprintf("broadcast to worker %q, which is not connected to this server any more (a broadcast run is not moved to another worker)", f.routingKey)
	})
}
