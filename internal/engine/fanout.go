package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Fan-out (docs/fanout.md)
//
// A run submitted with shards: N (every child gets the payload) or parts
// (child i gets part i) is a parent: it is stored running, held by no
// worker, beside its N children, which run anywhere in its group like
// any run. The store counts the children that ended, and those that did
// not succeed, in the statements that end them (store/fanout.go), so the
// join's state survives any crash.
//
// The joiner decides a parent after the commits that end its children,
// in an op of its own that reads the counts (like the dependency gate):
//
//   - every child ended and at least MinSuccess succeeded: the parent
//     succeeds with the children's results in shard order — or, with a
//     merge type, a merge run of that type is created (once: its key is
//     the parent's) with the results as its payload, and the parent ends
//     as the merge run ends, with its result;
//   - more children failed than MinSuccess allows: the parent fails, its
//     error naming the first failed child, and the children still going
//     are cancelled;
//   - otherwise it waits.
//
// Ending the parent is conditional (running → ended), so two servers
// deciding the same parent end it once; what a crash loses between a
// child's commit and the join, the reconciler finds again
// (FanoutListJoinable).

// mergeKeyPrefix starts the idempotency key of a parent's merge run.
const mergeKeyPrefix = "merge:"

// maxJoinResults bounds the children's results read per statement.
const maxJoinResults = 1000

// fanoutParams builds the parent and children of a fan-out spec.
func (e *Engine) fanoutParams(s *SubmitSpec, now time.Time) (store.FanoutCreateParams, error) {
	fe := func(field, msg string) error { return &FieldError{Field: field, Message: msg} }
	n := s.Shards
	switch {
	case s.Shards < 0:
		return store.FanoutCreateParams{}, fe("shards", "must not be negative")
	case s.Shards > 0 && s.Parts != nil:
		return store.FanoutCreateParams{}, fe("parts", "give shards or parts, not both")
	case s.Parts != nil:
		n = len(s.Parts)
		if n == 0 {
			return store.FanoutCreateParams{}, fe("parts", "must hold at least one part")
		}
	}
	if n > store.MaxFanout {
		return store.FanoutCreateParams{}, fe(map[bool]string{true: "parts", false: "shards"}[s.Parts != nil],
			fmt.Sprintf("at most %d children", store.MaxFanout))
	}
	min, err := minSuccess(s.MinSuccess, n)
	if err != nil {
		return store.FanoutCreateParams{}, err
	}
	if err := checkMerge(s.Merge); err != nil {
		return store.FanoutCreateParams{}, err
	}
	parent, err := e.insertParams(s, now)
	if err != nil {
		return store.FanoutCreateParams{}, err
	}
	children := make([]store.RunInsertParams, n)
	for i := range children {
		c := parent
		c.ID, c.Key, c.Job, c.CallbackURL = e.cfg.NewID(), "", "", ""
		if s.Parts != nil {
			part, err := e.compactPart(i, s.Parts[i])
			if err != nil {
				return store.FanoutCreateParams{}, err
			}
			c.Payload = part
		}
		children[i] = c
	}
	parent.Status = store.StatusRunning
	return store.FanoutCreateParams{Parent: parent, Children: children, MinSuccess: min, Merge: s.Merge}, nil
}

// compactPart checks part i of a parts fan-out.
func (e *Engine) compactPart(i int, raw json.RawMessage) (json.RawMessage, error) {
	field := fmt.Sprintf("parts[%d]", i)
	if int64(len(raw)) > e.live().MaxPayload {
		return nil, fmt.Errorf("%w: %s has %d bytes, the limit is %d", ErrPayloadTooLarge, field, len(raw), e.live().MaxPayload)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, &FieldError{Field: field, Message: "is not valid JSON"}
	}
	if b.String() == "null" {
		return nil, nil
	}
	return b.Bytes(), nil
}

// minSuccess turns a spec's min_success into a count of n: 0 is all of
// them, a fraction in (0, 1) that share (rounded up), a whole number that
// many.
func minSuccess(v float64, n int) (int, error) {
	fe := func(msg string) error { return &FieldError{Field: "min_success", Message: msg} }
	switch {
	case v == 0:
		return n, nil
	case v < 0 || math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fe("must be a count from 1 to the children's number, or a fraction in (0, 1)")
	case v < 1:
		return max(1, int(math.Ceil(v*float64(n)))), nil
	case v != math.Trunc(v) || v > float64(n):
		return 0, fe(fmt.Sprintf("must be a whole number of children up to %d, or a fraction in (0, 1)", n))
	}
	return int(v), nil
}

// submitFanout creates a fan-out and returns its parent.
func (e *Engine) submitFanout(ctx context.Context, s *SubmitSpec) (SubmitResult, error) {
	p, err := e.fanoutParams(s, e.now())
	if err != nil {
		return SubmitResult{}, err
	}
	var res store.RunInsertResult
	o := &txOp{}
	o.fn = func(ctx context.Context, tx store.Tx) error {
		var err error
		res, err = tx.FanoutCreate(ctx, p)
		return err
	}
	err = e.do(ctx, o, func() {
		if res.Existing {
			return
		}
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		// The children share the parent's group and due time.
		switch c := p.Children[0]; c.Status {
		case store.StatusQueued:
			e.wake(c.Group)
		case store.StatusPending:
			e.notePending(c.RunAt)
		}
	})
	if err != nil {
		return SubmitResult{}, err
	}
	return SubmitResult{Run: res.Run, Existing: res.Existing}, nil
}

// joiner decides fan-out parents after their children end. It owns its
// notes and lock; one op is in flight at a time and its completion takes
// what was noted meanwhile. Lock order: e.disp.mu may be held calling
// note.
type joiner struct {
	e *Engine

	mu       sync.Mutex
	notes    map[string]bool // parents to decide
	inflight bool
}

// note queues parents and starts an op unless one is in flight.
func (j *joiner) note(parents ...string) {
	if len(parents) == 0 || !j.e.serving() {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.notes == nil {
		j.notes = map[string]bool{}
	}
	for _, p := range parents {
		if p != "" {
			j.notes[p] = true
		}
	}
	if !j.inflight && len(j.notes) > 0 {
		j.startLocked()
	}
}

// startLocked pushes an op deciding what was noted. Called with j.mu held.
func (j *joiner) startLocked() {
	parents := make([]string, 0, len(j.notes))
	for p := range j.notes {
		parents = append(parents, p)
	}
	j.notes = nil
	j.inflight = true
	e := j.e
	var ended []*store.Run
	o := &txOp{}
	o.fn = func(ctx context.Context, tx store.Tx) error {
		o.made, o.cancels, ended = nil, nil, nil
		for _, id := range parents {
			r, err := e.join(ctx, tx, o, id)
			if err != nil {
				return err
			}
			if r != nil {
				ended = append(ended, r)
			}
		}
		return nil
	}
	o.done = func() { j.decided(o, parents, ended) }
	if !e.ops.push(o) {
		j.inflight = false
	}
}

// decided applies a committed op: merge runs are dispatched, cancelled
// children told, ended parents reported.
func (j *joiner) decided(o *txOp, parents []string, ended []*store.Run) {
	e := j.e
	if o.err == nil {
		e.disp.mu.Lock()
		e.applyMade(o, "its fan-out failed")
		for _, r := range ended {
			e.cfg.Observer.Finished(r.Group, r.Type, r.Status, max(0, r.FinishedAt.Sub(r.StartedAt)))
			e.terminal(r.ID, r.Job, r.LogicalTime, r.Status)
			e.alerts.ended(r.ID, r.Job, r.Group, r.Status, r)
		}
		e.disp.mu.Unlock()
	} else {
		e.log.Error("fan-out: deciding parents", "parents", len(parents), "err", o.err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.inflight = false
	if o.err != nil {
		for _, p := range parents { // tried again with the next note or reconciler pass
			if j.notes == nil {
				j.notes = map[string]bool{}
			}
			j.notes[p] = true
		}
		return
	}
	if len(j.notes) > 0 && e.serving() {
		j.startLocked()
	}
}

// join decides parent id in tx; it returns the parent if it ended.
func (e *Engine) join(ctx context.Context, tx store.Tx, o *txOp, id string) (*store.Run, error) {
	fo, err := tx.FanoutGet(ctx, id)
	if err != nil {
		return nil, ignoreNotFound(err)
	}
	now := e.now()
	if fo.MergeID != "" {
		return e.joinMerged(ctx, tx, fo, now)
	}
	switch {
	case fo.Failed > fo.Total-fo.MinSuccess:
		return e.failFanout(ctx, tx, o, fo, now)
	case fo.Ended < fo.Total:
		return nil, nil
	}
	results, err := childResults(ctx, tx, fo)
	if err != nil {
		return nil, err
	}
	list := resultList(results)
	if fo.Merge == "" {
		return tx.FanoutFinish(ctx, store.FanoutFinishParams{ParentID: id, Status: store.StatusSucceeded, Result: list, Now: now})
	}
	return nil, e.startMerge(ctx, tx, o, fo, list, now)
}

// childResults reads every child's outcome, in shard order.
func childResults(ctx context.Context, tx store.Tx, fo *store.Fanout) ([]store.ChildResult, error) {
	out := make([]store.ChildResult, 0, fo.Total)
	for from := 0; from < fo.Total; from += maxJoinResults {
		rs, err := tx.FanoutResults(ctx, fo.ParentID, from, maxJoinResults)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
		if len(rs) < maxJoinResults {
			break
		}
	}
	return out, nil
}

// resultList is the children's results as one JSON array, in shard order
// (null for a child without one, or one that did not succeed).
func resultList(rs []store.ChildResult) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		if r.Status == store.StatusSucceeded && len(r.Result) > 0 {
			b.Write(r.Result)
		} else {
			b.WriteString("null")
		}
	}
	b.WriteByte(']')
	return b.Bytes()
}

// failFanout ends a parent whose failed children are more than it
// allows, naming the first, and cancels the children still going.
func (e *Engine) failFanout(ctx context.Context, tx store.Tx, o *txOp, fo *store.Fanout, now time.Time) (*store.Run, error) {
	results, err := childResults(ctx, tx, fo)
	if err != nil {
		return nil, err
	}
	first := ""
	for _, r := range results {
		if r.Status.Terminal() && r.Status != store.StatusSucceeded && first == "" {
			first = fmt.Sprintf("shard %d (run %s) %s", r.Shard, r.ID, strings.ReplaceAll(string(r.Status), "_", " "))
			if r.Error != "" {
				first += ": " + r.Error
			}
		}
	}
	msg := fmt.Sprintf("%d of %d children did not succeed, at most %d may (min_success %d); first: %s",
		fo.Failed, fo.Total, fo.Total-fo.MinSuccess, fo.MinSuccess, first)
	parent, err := tx.FanoutFinish(ctx, store.FanoutFinishParams{ParentID: fo.ParentID, Status: store.StatusFailed,
		Error: truncate(msg, 2000), Now: now})
	if err != nil || parent == nil {
		return parent, err
	}
	for _, r := range results {
		if r.Status.Terminal() {
			continue
		}
		c, err := tx.RunCancel(ctx, store.RunCancelParams{ID: r.ID, Reason: "its fan-out failed", Now: now})
		if err != nil {
			return nil, err
		}
		o.cancels = append(o.cancels, c)
	}
	return parent, nil
}

// startMerge creates a parent's merge run (once) with the children's
// results as its payload.
func (e *Engine) startMerge(ctx context.Context, tx store.Tx, o *txOp, fo *store.Fanout, results json.RawMessage, now time.Time) error {
	parent, err := e.st.RunGet(ctx, fo.ParentID)
	if err != nil {
		return err
	}
	if !isParent(parent) {
		return nil // a run that mapped, its handler still running: its release decides it
	}
	payload, _ := json.Marshal(map[string]any{"parent": fo.ParentID, "results": results})
	if int64(len(payload)) > e.live().MaxPayload {
		_, err := tx.FanoutFinish(ctx, store.FanoutFinishParams{ParentID: fo.ParentID, Status: store.StatusFailed, Now: now,
			Error: fmt.Sprintf("the children's results (%d bytes) are more than a merge run's payload may hold (%d)", len(payload), e.live().MaxPayload)})
		return err
	}
	routing := parent.Routing
	if isBroadcast(routing) {
		routing = "" // the merge runs once, anywhere
	}
	m := store.RunInsertParams{
		ID: e.cfg.NewID(), ParentID: fo.ParentID, Type: fo.Merge, Group: parent.Group, Payload: payload,
		Priority: parent.Priority, Status: store.StatusQueued, MaxAttempts: parent.MaxAttempts,
		Key: mergeKey(parent), RunAt: now, Timeout: parent.Timeout, Routing: routing, Now: now,
	}
	res, err := tx.RunInsert(ctx, []store.RunInsertParams{m})
	if err != nil {
		return err
	}
	if err := tx.FanoutSetMerge(ctx, fo.ParentID, res[0].Run.ID); err != nil {
		return err
	}
	if !res[0].Existing {
		o.made = append(o.made, res[0].Run)
	}
	return nil
}

// joinMerged ends a parent whose merge run ended, as it ended.
func (e *Engine) joinMerged(ctx context.Context, tx store.Tx, fo *store.Fanout, now time.Time) (*store.Run, error) {
	m, err := e.st.RunGet(ctx, fo.MergeID)
	if err != nil || !m.Status.Terminal() {
		return nil, ignoreNotFound(err)
	}
	p := store.FanoutFinishParams{ParentID: fo.ParentID, Status: store.StatusSucceeded, Result: m.Result, Now: now}
	if m.Status != store.StatusSucceeded {
		p.Status, p.Error = store.StatusFailed, fmt.Sprintf("merge run %s %s: %s", m.ID, strings.ReplaceAll(string(m.Status), "_", " "), m.Error)
	}
	return tx.FanoutFinish(ctx, p)
}

// ignoreNotFound: a parent gone (retention) has nothing to decide.
func ignoreNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// isParent reports a fan-out's parent.
func isParent(r *store.Run) bool { return r != nil && r.ShardCount > 0 && r.ParentID == "" }

// cancelChildren cancels the children of a cancelled parent that are
// still going (and its merge run), in an op of its own.
func (e *Engine) cancelChildren(parent *store.Run, reason string) {
	o := &txOp{}
	o.fn = func(ctx context.Context, tx store.Tx) error {
		o.cancels = nil
		fo, err := tx.FanoutGet(ctx, parent.ID)
		if err != nil {
			return ignoreNotFound(err)
		}
		results, err := childResults(ctx, tx, fo)
		if err != nil {
			return err
		}
		ids := make([]string, 0, len(results)+1)
		for _, r := range results {
			if !r.Status.Terminal() {
				ids = append(ids, r.ID)
			}
		}
		if fo.MergeID != "" {
			ids = append(ids, fo.MergeID)
		}
		for _, id := range ids {
			c, err := tx.RunCancel(ctx, store.RunCancelParams{ID: id, Reason: reason, Now: e.now()})
			if err != nil {
				return err
			}
			o.cancels = append(o.cancels, c)
		}
		return nil
	}
	o.done = func() {
		if o.err != nil {
			e.log.Error("fan-out: cancel the children of a cancelled parent", "parent", parent.ID, "err", o.err)
			return
		}
		e.disp.mu.Lock()
		defer e.disp.mu.Unlock()
		e.applyMade(o, reason)
	}
	e.submitOp(o)
}
