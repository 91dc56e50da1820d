package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pluto-sched/pluto/internal/clock"
	"github.com/pluto-sched/pluto/internal/store"
)

// op is one unit of queued state change. An op carries slices so that a
// whole message from a worker (say, 200 results) is one op; the committer
// concatenates the slices of every op in a batch into one call per kind.
type op struct {
	inserts  []store.RunInsertParams
	starts   []store.RunStartParams
	finishes []store.RunFinishParams
	// finishGroups[i] is the group of finishes[i] (for notifications).
	finishGroups []string
	adopts       []store.RunAdoptParams
	logs         []store.LogLine
	notes        []store.Notification // published as they are
	cancel       *store.RunCancelParams
	retry        *store.RunRetryParams
	promote      *store.RunPromoteParams
	requeueLost  *store.RunRequeueLostParams
	// prepareClaim, if set, computes the claim when the transaction applies
	// it (nil: nothing to claim), so the claim takes every credit freed up
	// to that moment, not just those free when it was queued.
	prepareClaim func() []store.RunClaimParams
	claims       []store.RunClaimParams // the claims applied (one per kind of worker)
	short        []bool                 // short[i]: claims[i] came back with fewer runs than asked
	claimGen     uint64                 // the group's wakeGen when it was prepared
	// txfn, if set, applies writes of its own in the batch's transaction
	// (job changes, cron ticks, unblocking), after cancels and retries and
	// before claims, so that the runs it queues are claimable in the same
	// commit. It returns a caller error (not found, conflict, a
	// *FieldError) only before it has written anything: that fails the op,
	// not the batch. It may run again if the batch is retried, so it sets
	// its outputs rather than appending to them.
	txfn func(ctx context.Context, tx store.Tx) error

	// Outputs, filled before done runs.
	insertRes []store.RunInsertResult
	started   []bool
	finishRes []store.RunFinishResult
	cancelRes store.RunCancelResult
	retried   *store.Run
	claimed   []*store.Run
	promoted  []*store.Run
	requeued  []*store.Run
	adopted   []bool
	// made are runs a txfn created or moved to queued or pending; cancels
	// are runs it cancelled. Both are handled like inserts and cancels.
	made    []*store.Run
	cancels []store.RunCancelResult
	// callbackAt is the earliest callback delivery a txfn made due
	// (noteCallbackRun; zero: none).
	callbackAt time.Time
	err        error

	// done runs on the committer goroutine after the op's batch committed
	// (or failed, with err set). It must not block.
	done func(*op)

	stage atomic.Int32 // opQueued, opCommitting or opWithdrawn
	tries int          // failed tries so far (committer only)
	// abandoned: the owner stopped waiting (its context ended); a failed
	// try is then not retried.
	abandoned atomic.Bool
}

// withdraw takes o back before a committer takes it: true if it will never
// be applied.
func (o *op) withdraw() bool { return o.stage.CompareAndSwap(opQueued, opWithdrawn) }

// opQueue is an unbounded queue of ops with a wake-up signal. Unbounded
// because callbacks running on the committer push follow-up ops (a claim
// after a finish) and must never block; producers are bounded elsewhere
// (worker windows, client concurrency).
type opQueue struct {
	mu     sync.Mutex
	ops    []*op
	wake   chan struct{}
	closed bool
}

func newOpQueue() *opQueue { return &opQueue{wake: make(chan struct{}, 1)} }

// push queues o; false once the queue is closed.
func (q *opQueue) push(o *op) bool {
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
func (q *opQueue) take(max int) []*op {
	for {
		q.mu.Lock()
		if n := len(q.ops); n > 0 {
			if n > max {
				n = max
			}
			batch := make([]*op, 0, n)
			for _, o := range q.ops[:n] {
				if o.stage.CompareAndSwap(opQueued, opCommitting) {
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
func (e *Engine) await(ctx context.Context, o *op, done <-chan struct{}) error {
	select {
	case <-done:
		return o.err
	case <-ctx.Done():
	}
	o.abandoned.Store(true)
	if o.withdraw() {
		if o.tries > 0 && len(o.inserts) > 0 {
			if res, ok := e.commits.lookupInserted(o); ok {
				o.insertRes = res
				if o.done != nil {
					o.done(o)
				}
				return nil
			}
		}
		return ctx.Err()
	}
	<-done
	return o.err
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
	maxBatch int
	n        int // transactions in flight at once
	// publish adds a batch's notifications to its transaction (nil on an
	// exclusive store); committed runs after each batch's callbacks.
	publish   func(ctx context.Context, tx store.Tx, batch []*op) error
	committed func(batch []*op, err error)
	life
}

func newCommitter(e *Engine) *committer {
	c := &committer{
		st: e.st, clk: e.clk, log: e.log, ops: newOpQueue(), maxBatch: e.cfg.MaxBatch, n: e.cfg.Committers,
		committed: func(batch []*op, err error) {
			if err == nil {
				e.callbacksCommitted(batch)
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
func (e *Engine) submitOp(o *op) {
	if !e.ops.push(o) {
		o.err = ErrStopped
		if o.done != nil {
			o.done(o)
		}
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

func (c *committer) commit(batch []*op) {
	ctx := context.Background()
	err := c.st.Tx(ctx, func(tx store.Tx) error { return c.apply(ctx, tx, batch) })
	if err != nil && len(batch) > 1 {
		c.log.Warn("batch commit failed; applying ops one by one", "ops", len(batch), "err", err)
		for _, o := range batch {
			resetOutputs(o)
			c.commit([]*op{o})
		}
		return
	}
	if err != nil && !errors.Is(err, store.ErrClosed) && c.retryLater(batch[0], err) {
		return
	}
	if o := batch[0]; err != nil && len(batch) == 1 && len(o.inserts) > 0 {
		// Not retried (its caller gave up, or the store closed): the error
		// is the caller's answer only if the runs were really not written.
		if res, ok := c.lookupInserted(o); ok {
			o.insertRes, err = res, nil
		}
	}
	for _, o := range batch {
		if err != nil {
			o.err = fmt.Errorf("engine: commit: %w", err)
		} else if o.tries > 0 {
			c.rederive(ctx, o)
		}
		if o.done != nil {
			o.done(o)
		}
	}
	c.committed(batch, err)
}

// retryLater queues o again after a backoff; false when the engine is
// stopping (the op then fails with the error).
func (c *committer) retryLater(o *op, err error) bool {
	if o.abandoned.Load() {
		return false
	}
	o.tries++
	resetOutputs(o)
	level := slog.LevelWarn
	if o.tries%20 == 0 {
		level = slog.LevelError
	}
	d := retryDelay(o.tries)
	c.log.Log(context.Background(), level, "store write failed; retrying", "tries", o.tries, "in", d, "err", err)
	o.stage.Store(opQueued)
	c.clk.AfterFunc(d, func() {
		if c.insertedAlready(o) {
			return
		}
		if !c.ops.push(o) && o.stage.CompareAndSwap(opQueued, opCommitting) {
			o.err = ErrStopped
			if o.done != nil {
				o.done(o)
			}
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
func (c *committer) insertedAlready(o *op) bool {
	if len(o.inserts) == 0 || o.stage.Load() != opQueued {
		return false
	}
	res, ok := c.lookupInserted(o)
	if !ok {
		return false
	}
	if !o.stage.CompareAndSwap(opQueued, opCommitting) {
		return true // withdrawn meanwhile: nobody waits for it
	}
	o.insertRes = res
	if o.done != nil {
		o.done(o)
	}
	return true
}

// lookupInserted reads the runs of an op of new runs from the store: ok if
// they were all committed (by an earlier try whose answer was an error).
func (c *committer) lookupInserted(o *op) ([]store.RunInsertResult, bool) {
	ctx := context.Background()
	res := make([]store.RunInsertResult, len(o.inserts))
	for i, p := range o.inserts {
		r, err := c.st.RunGet(ctx, p.ID)
		if err != nil {
			return nil, false
		}
		res[i] = store.RunInsertResult{Run: r}
	}
	return res, true
}

// rederive fixes up the outputs of an op that committed after earlier
// tries failed: an earlier try may have committed although its answer was
// an error, so a change this try saw rejected may in fact be the op's
// own. The run as stored says: if it is at the op's attempt in the op's
// status, the change was applied.
func (c *committer) rederive(ctx context.Context, o *op) {
	for i, res := range o.finishRes {
		if res.Accepted {
			continue
		}
		p := o.finishes[i]
		r, err := c.st.RunGet(ctx, p.ID)
		if err == nil && r.Attempt == p.Attempt && r.Status == p.Status {
			o.finishRes[i].Accepted = true
		}
	}
}

func resetOutputs(o *op) {
	o.insertRes, o.started, o.finishRes, o.claimed, o.promoted, o.retried = nil, nil, nil, nil, nil, nil
	o.requeued, o.adopted, o.claims, o.made, o.cancels = nil, nil, nil, nil, nil
	o.cancelRes = store.RunCancelResult{}
	o.callbackAt = time.Time{}
}

// apply writes a batch inside one transaction. Order matters: inserts
// first and claims last, so a claim sees the runs submitted and the slots
// freed in the same batch. On a shared store it also publishes what other
// servers must hear about, in the same transaction.
func (c *committer) apply(ctx context.Context, tx store.Tx, batch []*op) error {
	var (
		inserts  []store.RunInsertParams
		starts   []store.RunStartParams
		finishes []store.RunFinishParams
		adopts   []store.RunAdoptParams
		logs     []store.LogLine
	)
	for _, o := range batch {
		inserts = append(inserts, o.inserts...)
		starts = append(starts, o.starts...)
		finishes = append(finishes, o.finishes...)
		adopts = append(adopts, o.adopts...)
		logs = append(logs, o.logs...)
	}
	if len(adopts) > 0 {
		res, err := tx.RunAdopt(ctx, adopts)
		if err != nil {
			return fmt.Errorf("adopt: %w", err)
		}
		for _, o := range batch {
			o.adopted, res = res[:len(o.adopts):len(o.adopts)], res[len(o.adopts):]
		}
	}
	if len(inserts) > 0 {
		res, err := tx.RunInsert(ctx, inserts)
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		for _, o := range batch {
			o.insertRes, res = res[:len(o.inserts):len(o.inserts)], res[len(o.inserts):]
		}
	}
	if len(starts) > 0 {
		res, err := tx.RunStart(ctx, starts)
		if err != nil {
			return fmt.Errorf("start: %w", err)
		}
		for _, o := range batch {
			o.started, res = res[:len(o.starts):len(o.starts)], res[len(o.starts):]
		}
	}
	if len(finishes) > 0 {
		res, err := tx.RunFinish(ctx, finishes)
		if err != nil {
			return fmt.Errorf("finish: %w", err)
		}
		for _, o := range batch {
			o.finishRes, res = res[:len(o.finishes):len(o.finishes)], res[len(o.finishes):]
		}
	}
	for _, o := range batch {
		var err error
		switch {
		case o.cancel != nil:
			o.cancelRes, err = tx.RunCancel(ctx, *o.cancel)
		case o.retry != nil:
			o.retried, err = tx.RunRetry(ctx, *o.retry)
		case o.promote != nil:
			o.promoted, err = tx.RunPromote(ctx, *o.promote)
		case o.requeueLost != nil:
			o.requeued, err = tx.RunRequeueLost(ctx, *o.requeueLost)
		}
		if err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
				// The caller's answer, not a failed batch.
				o.err = err
				continue
			}
			return err
		}
	}
	for _, o := range batch {
		if o.txfn == nil {
			continue
		}
		if err := o.txfn(ctx, tx); err != nil {
			var fe *FieldError
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.As(err, &fe) {
				o.err = err
				continue
			}
			return err
		}
	}
	for _, o := range batch {
		if o.prepareClaim == nil {
			continue
		}
		o.claims = o.prepareClaim()
		o.short = make([]bool, len(o.claims))
		for i, c := range o.claims {
			got, err := tx.RunClaim(ctx, c)
			if err != nil {
				return fmt.Errorf("claim: %w", err)
			}
			o.claimed = append(o.claimed, got...)
			o.short[i] = len(got) < c.Limit
		}
	}
	if len(logs) > 0 {
		if err := tx.LogAppend(ctx, logs); err != nil {
			return fmt.Errorf("logs: %w", err)
		}
	}
	if c.publish == nil {
		return nil
	}
	return c.publish(ctx, tx, batch)
}
