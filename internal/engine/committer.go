package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/clock"
	"github.com/pluto-sched/pluto/internal/store"
)

// opQueue is an unbounded queue of ops with a wake-up signal. Unbounded
// because callbacks running on the committer push follow-up ops (a claim
// after a finish) and must never block; producers are bounded elsewhere
// (worker windows, client concurrency).
type opQueue struct {
	mu     sync.Mutex
	ops    []op
	wake   chan struct{}
	closed bool
}

func newOpQueue() *opQueue { return &opQueue{wake: make(chan struct{}, 1)} }

// push queues o; false once the queue is closed.
func (q *opQueue) push(o op) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.ops = append(q.ops, o)
	select { // under the lock, so it cannot race close
	case q.wake <- struct{}{}:
	default:
	}
	q.mu.Unlock()
	return true
}

// take waits for ops and returns up to max of them; nil once closed and
// empty.
func (q *opQueue) take(max int) []op {
	for {
		q.mu.Lock()
		if n := len(q.ops); n > 0 {
			if n > max {
				n = max
			}
			batch := make([]op, 0, n)
			for _, o := range q.ops[:n] {
				if o.base().stage.CompareAndSwap(opQueued, opCommitting) {
					batch = append(batch, o)
				}
			}
			rest := copy(q.ops, q.ops[n:])
			clear(q.ops[rest:])
			q.ops = q.ops[:rest]
			q.mu.Unlock()
			if len(batch) == 0 {
				continue // every op taken was withdrawn
			}
			return batch
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil
		}
		<-q.wake
	}
}

// close wakes every taker; they drain what is left and return.
func (q *opQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.wake)
	}
}

// await waits for o's commit (done is closed by o.done). If ctx ends first
// and o is still queued, it is withdrawn: nothing was written, so ctx's
// error is the truth. If a committer has it, its try is waited out — it
// either commits (and the caller gets the result) or fails and is not
// retried.
//
// An op withdrawn between tries may still have been written by a try
// whose answer was an error; new runs are looked up, and found ones are
// the answer after all.
func (e *Engine) await(ctx context.Context, o op, done <-chan struct{}) error {
	b := o.base()
	select {
	case <-done:
		return b.err
	case <-ctx.Done():
	}
	b.abandoned.Store(true)
	if b.withdraw() {
		if ins, ok := o.(*insertOp); ok && b.tries > 0 && len(ins.params) > 0 {
			if res, ok := e.commits.lookupInsertedSurely(ins); ok {
				ins.res = res
				b.complete()
				return nil
			}
		}
		return ctx.Err()
	}
	<-done
	return b.err
}

// committer is the engine's only writer, a component of its own: it owns
// the op queue and the goroutines that apply it, one transaction per batch
// (two on a shared store), with the error policy below. The other
// components talk to the store through it: they push ops and get their
// results in the ops' callbacks.
type committer struct {
	st       store.Store
	clk      clock.Clock
	log      *slog.Logger
	ops      *opQueue
	obs      Observer
	maxBatch int
	n        int // transactions in flight at once
	// publish adds a batch's notifications to its transaction (nil on an
	// exclusive store); committed runs after each batch's callbacks.
	publish   func(ctx context.Context, tx store.Tx, batch []op) error
	committed func(batch []op, err error)
	life
}

func newCommitter(e *Engine) *committer {
	c := &committer{
		st: e.st, clk: e.clk, log: e.log, ops: newOpQueue(), obs: e.cfg.Observer, maxBatch: e.cfg.MaxBatch, n: e.cfg.Committers,
		committed: func(batch []op, err error) {
			if err == nil {
				e.callbacksCommitted(batch)
				observeInserts(e.cfg.Observer, batch)
			}
			e.noteDrain()
		},
	}
	if !e.cfg.ExclusiveStore {
		c.publish = e.publish
	}
	c.beforeWait = c.ops.close // the goroutines drain what is queued, then exit
	return c
}

// Start begins the committer's goroutines.
func (c *committer) Start(ctx context.Context) error {
	fns := make([]func(context.Context), c.n)
	for i := range fns {
		fns[i] = c.run
	}
	return c.start(ctx, fns...)
}

// run applies queued ops in batches until the queue is closed and empty.
func (c *committer) run(context.Context) {
	for {
		batch := c.ops.take(c.maxBatch)
		if batch == nil {
			return
		}
		c.commit(batch)
	}
}

// submitOp queues o, or fails it with ErrStopped when the engine stops.
func (e *Engine) submitOp(o op) {
	if !e.ops.push(o) {
		b := o.base()
		b.err = ErrStopped
		b.complete()
	}
}

// The error policy of every engine write
//
// A batch that fails is applied again op by op, so one bad op cannot fail
// the others. An op that fails on its own is not dropped: it goes back to
// the queue after a jittered, capped backoff (retryDelay) and is applied
// again until it commits. Nothing is lost to a store outage: the run
// changes the engine has already acted on in memory (a result, a requeue,
// a timeout, a claim) land once the store answers again. Every change is
// conditional in the store, so an op retried after its transaction did
// commit (the commit's answer was lost) is rejected the second time; the
// engine then re-reads the run to learn what happened (rederive).
//
// Only two things end an op without a commit: the engine stopping (the
// next start re-derives everything from the store), and the op's owner
// withdrawing it before the committer took it (a client whose request
// ended: nothing was written, so the client's error is the truth).
//
// Failures are logged with the number of tries; the periodic reconciler
// (reconcile.go) repairs whatever a lost answer still leaves undriven.

// Op stages: queued (in the queue or waiting to be retried), committing
// (taken by a committer) and withdrawn (its owner gave up before it was
// taken: it is never applied).
const (
	opQueued int32 = iota
	opCommitting
	opWithdrawn
)

func (c *committer) commit(batch []op) {
	ctx := context.Background()
	began := c.clk.Now()
	err := c.st.Tx(ctx, func(tx store.Tx) error { return c.apply(ctx, tx, batch) })
	c.obs.Committed(len(batch), c.clk.Now().Sub(began), err)
	if err != nil && len(batch) > 1 {
		c.log.Warn("batch commit failed; applying ops one by one", "ops", len(batch), "err", err)
		for _, o := range batch {
			o.reset()
			c.commit([]op{o})
		}
		return
	}
	if err != nil && !errors.Is(err, store.ErrClosed) && c.retryLater(batch[0], err) {
		return
	}
	if ins, ok := batch[0].(*insertOp); ok && err != nil && len(batch) == 1 && len(ins.params) > 0 {
		// Not retried (its caller gave up, or the store closed): the error
		// is the caller's answer only if the runs were really not written.
		if res, ok := c.lookupInserted(ins); ok {
			ins.res, err = res, nil
		}
	}
	for _, o := range batch {
		b := o.base()
		if err != nil {
			b.err = fmt.Errorf("engine: commit: %w", err)
		} else if fin, ok := o.(*finishOp); ok && b.tries > 0 {
			c.rederive(ctx, fin)
		}
		b.complete()
	}
	c.committed(batch, err)
}

// retryLater queues o again after a backoff; false when the engine is
// stopping (the op then fails with the error).
func (c *committer) retryLater(o op, err error) bool {
	b := o.base()
	if b.abandoned.Load() {
		return false
	}
	b.tries++
	o.reset()
	level := slog.LevelWarn
	if b.tries%20 == 0 {
		level = slog.LevelError
	}
	d := retryDelay(b.tries)
	c.log.Log(context.Background(), level, "store write failed; retrying", "tries", b.tries, "in", d, "err", err)
	b.stage.Store(opQueued)
	c.clk.AfterFunc(d, func() {
		if ins, ok := o.(*insertOp); ok && c.insertedAlready(ins) {
			return
		}
		if !c.ops.push(o) && b.stage.CompareAndSwap(opQueued, opCommitting) {
			b.err = ErrStopped
			b.complete()
		}
	})
	return true
}

// retryDelay is the wait before try n+1 of a failed write: 50 ms doubling
// up to 5 s, with equal jitter so that many servers do not retry in step.
func retryDelay(n int) time.Duration {
	d := 50 * time.Millisecond
	for i := 1; i < n && d < 5*time.Second; i++ {
		d *= 2
	}
	d = min(d, 5*time.Second)
	return d/2 + rand.N(d/2+1)
}

// insertedAlready completes an op of new runs whose earlier try did commit
// (its answer was lost): the runs of one op commit together, so if the
// first exists they all do, and inserting them again would fail on their
// IDs forever. True if o was completed here.
func (c *committer) insertedAlready(o *insertOp) bool {
	if len(o.params) == 0 || o.stage.Load() != opQueued {
		return false
	}
	res, ok := c.lookupInserted(o)
	if !ok {
		return false
	}
	if !o.stage.CompareAndSwap(opQueued, opCommitting) {
		return true // withdrawn meanwhile: nobody waits for it
	}
	o.res = res
	o.complete()
	return true
}

// lookupInserted reads the runs of an op of new runs from the store: ok if
// they were all committed (by an earlier try whose answer was an error).
func (c *committer) lookupInserted(o *insertOp) ([]store.RunInsertResult, bool) {
	res, err := c.readInserted(o)
	return res, err == nil
}

// readInserted reads the runs of an op of new runs: nil error if all are
// stored, store.ErrNotFound if one is not (an op's runs commit together,
// so none is), another error if the store could not tell.
func (c *committer) readInserted(o *insertOp) ([]store.RunInsertResult, error) {
	ctx := context.Background()
	res := make([]store.RunInsertResult, len(o.params))
	for i, p := range o.params {
		r, err := c.st.RunGet(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		res[i] = store.RunInsertResult{Run: r}
	}
	return res, nil
}

// lookupInsertedSurely is lookupInserted for a caller about to answer
// "not written": a read that fails is tried again (with backoff, for up
// to about ten seconds) rather than taken for "not written" — a caller
// told its submit failed must not find the runs afterwards.
func (c *committer) lookupInsertedSurely(o *insertOp) ([]store.RunInsertResult, bool) {
	wait := 10 * time.Millisecond
	for try := 0; ; try++ {
		res, err := c.readInserted(o)
		switch {
		case err == nil:
			return res, true
		case errors.Is(err, store.ErrNotFound) || try == 10:
			return nil, false
		}
		slept := make(chan struct{})
		c.clk.AfterFunc(wait, func() { close(slept) })
		<-slept
		wait = min(2*wait, 2*time.Second)
	}
}

// rederive fixes up the outputs of an op that committed after earlier
// tries failed: an earlier try may have committed although its answer was
// an error, so a change this try saw rejected may in fact be the op's
// own. The run as stored says: if it is at the op's attempt in the op's
// status, the change was applied.
func (c *committer) rederive(ctx context.Context, o *finishOp) {
	for i, res := range o.res {
		if res.Accepted {
			continue
		}
		p := o.params[i]
		r, err := c.st.RunGet(ctx, p.ID)
		if err == nil && r.Attempt == p.Attempt && r.Status == p.Status {
			o.res[i].Accepted = true
		}
	}
}

// apply writes a batch inside one transaction. Order matters: inserts
// first and claims last, so a claim sees the runs submitted and the slots
// freed in the same batch. On a shared store it also publishes what other
// servers must hear about, in the same transaction.
func (c *committer) apply(ctx context.Context, tx store.Tx, batch []op) error {
	k := sortOps(batch)
	if err := batched(ctx, k.adopts, tx.RunAdopt); err != nil {
		return fmt.Errorf("adopt: %w", err)
	}
	if err := batched(ctx, k.inserts, tx.RunInsert); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	if err := batched(ctx, k.starts, tx.RunStart); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := batched(ctx, k.finishes, tx.RunFinish); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	for _, o := range k.singles {
		if err := o.applyIn(ctx, tx); err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
				o.base().err = err // the caller's answer, not a failed batch
				continue
			}
			return err
		}
	}
	for _, o := range k.txs {
		if err := o.fn(ctx, tx); err != nil {
			var fe *FieldError
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.As(err, &fe) {
				o.err = err
				continue
			}
			return err
		}
	}
	for _, o := range k.claims {
		if err := o.claim(ctx, tx); err != nil {
			return fmt.Errorf("claim: %w", err)
		}
	}
	if c.publish == nil {
		return nil
	}
	return c.publish(ctx, tx, batch)
}

// claim applies the claims prepare computes now.
func (o *claimOp) claim(ctx context.Context, tx store.Tx) error {
	if o.prepare == nil {
		return nil
	}
	o.claims = o.prepare()
	o.short = make([]bool, len(o.claims))
	for i, c := range o.claims {
		got, err := tx.RunClaim(ctx, c)
		if err != nil {
			return err
		}
		o.runs = append(o.runs, got...)
		o.short[i] = len(got) < c.Limit
	}
	return nil
}

// observeInserts counts the new runs of a committed batch by group: one
// call per group, not per run (a batch holds thousands under load).
func observeInserts(obs Observer, batch []op) {
	var n map[string]int
	for _, o := range batch {
		ins, ok := o.(*insertOp)
		if !ok || ins.err != nil {
			continue
		}
		for _, r := range ins.res {
			if r.Run != nil && !r.Existing {
				if n == nil {
					n = make(map[string]int)
				}
				n[r.Run.Group]++
			}
		}
	}
	for g, k := range n {
		obs.Submitted(g, k)
	}
}
