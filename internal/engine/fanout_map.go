package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pluto-sched/pluto/internal/store"
)

// Map-reduce (docs/fanout.md)
//
// A handler may make children from inside its run: the worker sends a Map
// with one part per child, and the session commits them (FanoutMap)
// before it answers; the run stays its worker's. When its handler then
// succeeds, the run becomes their parent instead of ending (FanoutRelease)
// and the joiner decides it as any fan-out — its result is their results,
// or the result of a merge run, the reduce step. A run maps once: a Map
// sent again (a reconnect) or sent by the next attempt (its worker died,
// or its handler failed and was retried) makes nothing and is answered
// with the children made the first time, so a worker that dies after Map
// does not make them twice. If the run ends other than by succeeding
// (failed for good, timed out, cancelled), its children still going are
// cancelled.

// MaxMapParts bounds the children one Map makes.
const MaxMapParts = 10000

// MapRequest is a worker's Map: make the children of the run it holds at
// Attempt, one per part.
type MapRequest struct {
	RunID      string
	Attempt    int
	Parts      []json.RawMessage
	MinSuccess float64
	Merge      string
}

// MapAck answers a MapRequest: Children were made (by this Map, or by an
// earlier one: Existing), or Error says why none were.
type MapAck struct {
	RunID    string
	Attempt  int
	Children int
	Existing bool
	Error    string
}

// Map makes the children of a run the worker holds and answers with a
// MapAck once they are committed. A Map the store could not commit is not
// answered: the worker asks again.
func (s *Session) Map(m MapRequest) {
	e := s.e
	e.disp.mu.Lock()
	s.touch()
	f := e.disp.flights[m.RunID]
	held := f != nil && f.attempt == m.Attempt && f.session == s
	e.disp.mu.Unlock()
	refuse := func(msg string) {
		s.conn.MapAck(MapAck{RunID: m.RunID, Attempt: m.Attempt, Error: msg})
	}
	if !held {
		refuse(fmt.Sprintf("run %s attempt %d is not held by this worker", m.RunID, m.Attempt))
		return
	}
	if f.parent != "" {
		refuse(fmt.Sprintf("run %s is a fan-out's child or merge run: it cannot map", m.RunID))
		return
	}
	p, err := e.mapParams(f, m)
	if err != nil {
		refuse(err.Error())
		return
	}
	var (
		res     store.FanoutMapResult
		refused string
	)
	o := &txOp{}
	o.fn = func(ctx context.Context, tx store.Tx) error {
		o.made, refused = nil, ""
		var err error
		res, err = tx.FanoutMap(ctx, p)
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			refused = err.Error() // the attempt ended meanwhile: an answer, not a failure
			return nil
		}
		o.made = res.Children
		return err
	}
	o.done = func() {
		if o.err != nil {
			e.log.Error("map: children not committed", "run", m.RunID, "attempt", m.Attempt, "err", o.err)
			return
		}
		if refused != "" {
			refuse(refused)
			return
		}
		e.disp.mu.Lock()
		if e.disp.flights[m.RunID] == f {
			f.mapped = true
		}
		e.applyMade(o, "")
		if res.Existing {
			// Made by an earlier try whose commit's answer was lost, or an
			// earlier Map: any of them still queued may wait for a wake.
			e.wake(f.group)
		}
		e.disp.mu.Unlock()
		s.conn.MapAck(MapAck{RunID: m.RunID, Attempt: m.Attempt, Children: res.Total, Existing: res.Existing})
	}
	e.submitOp(o)
}

// mapParams builds the children of f's Map: runs of f's type, group,
// priority, timeout, attempts and routing, one per part.
func (e *Engine) mapParams(f *flight, m MapRequest) (store.FanoutMapParams, error) {
	n := len(m.Parts)
	if n < 1 || n > MaxMapParts {
		return store.FanoutMapParams{}, &FieldError{Field: "parts", Message: fmt.Sprintf("%d parts (1 to %d)", n, MaxMapParts)}
	}
	min, err := minSuccess(m.MinSuccess, n)
	if err != nil {
		return store.FanoutMapParams{}, err
	}
	if err := checkMerge(m.Merge); err != nil {
		return store.FanoutMapParams{}, err
	}
	now := e.now()
	children := make([]store.RunInsertParams, n)
	for i, raw := range m.Parts {
		part, err := e.compactPart(i, raw)
		if err != nil {
			return store.FanoutMapParams{}, err
		}
		children[i] = store.RunInsertParams{
			ID: e.cfg.NewID(), Type: f.typ, Group: f.group, Payload: part, Priority: f.priority,
			Status: store.StatusQueued, MaxAttempts: f.maxAttempts, RunAt: now, Timeout: f.timeout,
			Routing: f.routing, RoutingKey: f.routingKey, Now: now,
		}
	}
	return store.FanoutMapParams{ID: f.id, Attempt: f.attempt, ServerID: e.fence(), Children: children,
		MinSuccess: min, Merge: m.Merge, Now: now}, nil
}

// release makes a mapped run whose handler succeeded its children's
// parent, then acknowledges the result; the joiner decides the parent at
// once (its children may all have ended). Called with e.disp.mu held.
func (e *Engine) release(s *Session, f *flight) {
	var parent *store.Run
	p := store.FanoutReleaseParams{ID: f.id, Attempt: f.attempt, ServerID: e.fence(), Now: e.now()}
	if !f.started {
		// A result implies the start; the release needs it committed
		// (starts are applied before the batch's other ops, and batches in
		// order).
		f.started, f.startedAt = true, p.Now
		e.pushStarts([]store.RunStartParams{{ID: f.id, Attempt: f.attempt, WorkerID: s.hello.WorkerID, ServerID: p.ServerID, Now: p.Now}})
	}
	o := &txOp{}
	o.fn = func(ctx context.Context, tx store.Tx) error {
		var err error
		parent, err = tx.FanoutRelease(ctx, p)
		return err
	}
	o.done = func() {
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		e.settling(f.id, -1)
		if o.err != nil {
			e.notCommitted(s, []*flight{f}, o.err)
			return
		}
		s.conn.ResultAcks([]ResultAck{{RunID: f.id, Attempt: f.attempt, Accepted: parent != nil}})
		// Noted even when nothing was released: a try whose commit's answer
		// was lost released it, and its children may all have ended.
		e.joins.note(f.id)
	}
	e.settling(f.id, 1)
	e.submitOp(o)
}
