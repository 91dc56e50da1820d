package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
	prepareClaim func() *store.RunClaimParams
	claim        *store.RunClaimParams // the claim applied
	claimGen     uint64                // the group's wakeGen when it was prepared
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
}

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
			batch := make([]*op, n)
			copy(batch, q.ops)
			rest := copy(q.ops, q.ops[n:])
			clear(q.ops[rest:])
			q.ops = q.ops[:rest]
			q.mu.Unlock()
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

// submitOp queues o, or fails it with ErrStopped when the engine stops.
func (e *Engine) submitOp(o *op) {
	if !e.ops.push(o) {
		o.err = ErrStopped
		if o.done != nil {
			o.done(o)
		}
	}
}

// commitLoop is the engine's only writer: it applies queued ops in batches,
// one transaction per batch, and runs their callbacks after the commit.
func (e *Engine) commitLoop() {
	defer e.wg.Done()
	for {
		batch := e.ops.take(e.cfg.MaxBatch)
		if batch == nil {
			return
		}
		e.commit(batch)
	}
}

func (e *Engine) commit(batch []*op) {
	ctx := context.Background()
	err := e.st.Tx(ctx, func(tx store.Tx) error { return e.apply(ctx, tx, batch) })
	if err != nil && len(batch) > 1 {
		// Isolate the op that failed so one bad op cannot fail the others.
		e.log.Warn("batch commit failed; applying ops one by one", "ops", len(batch), "err", err)
		for _, o := range batch {
			e.commit([]*op{o})
		}
		return
	}
	if err != nil {
		err = e.retryCommit(ctx, batch, err)
	}
	for _, o := range batch {
		if err != nil {
			o.err = err
		}
		if o.done != nil {
			o.done(o)
		}
	}
	if err == nil {
		e.callbacksCommitted(batch)
	}
	e.noteDrain()
}

// retryCommit retries a single failed op a few times with backoff: store
// errors are usually transient (a busy database, a reconnect).
func (e *Engine) retryCommit(ctx context.Context, batch []*op, err error) error {
	for i, d := 0, 50*time.Millisecond; i < 3 && !errors.Is(err, store.ErrClosed); i, d = i+1, d*4 {
		timer := make(chan struct{})
		t := e.clk.AfterFunc(d, func() { close(timer) })
		<-timer
		t.Stop()
		for _, o := range batch {
			resetOutputs(o)
		}
		if err = e.st.Tx(ctx, func(tx store.Tx) error { return e.apply(ctx, tx, batch) }); err == nil {
			return nil
		}
	}
	e.log.Error("commit failed", "err", err)
	return fmt.Errorf("engine: commit: %w", err)
}

func resetOutputs(o *op) {
	o.insertRes, o.started, o.finishRes, o.claimed, o.promoted, o.retried = nil, nil, nil, nil, nil, nil
	o.requeued, o.adopted, o.claim, o.made, o.cancels = nil, nil, nil, nil, nil
	o.cancelRes = store.RunCancelResult{}
	o.callbackAt = time.Time{}
}

// apply writes a batch inside one transaction. Order matters: inserts
// first and claims last, so a claim sees the runs submitted and the slots
// freed in the same batch. On a shared store it also publishes what other
// servers must hear about, in the same transaction.
func (e *Engine) apply(ctx context.Context, tx store.Tx, batch []*op) error {
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
		if o.claim = o.prepareClaim(); o.claim != nil {
			var err error
			if o.claimed, err = tx.RunClaim(ctx, *o.claim); err != nil {
				return fmt.Errorf("claim: %w", err)
			}
		}
	}
	if len(logs) > 0 {
		if err := tx.LogAppend(ctx, logs); err != nil {
			return fmt.Errorf("logs: %w", err)
		}
	}
	if e.cfg.ExclusiveStore {
		return nil
	}
	return e.publish(ctx, tx, batch)
}
