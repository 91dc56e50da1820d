package engine

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// The ops
//
// An op is one queued state change. Each kind has its own input and
// output and embeds opBase, what every kind shares: its stage in the
// committer's queue, its error and its callback. The committer applies a
// batch kind by kind (committer.go, apply): the kinds that batch — adopt,
// insert, start, finish, log — with one store call for every op of that
// kind in the batch (a message of 200 results from a worker is one op, and
// a busy batch one statement); the others op by op.

// op is an op of any kind, as the committer's queue holds it.
type op interface {
	base() *opBase
	// reset forgets the outputs of a failed try before the op is applied
	// again.
	reset()
}

// opBase is what every kind of op shares.
type opBase struct {
	err error
	// done runs on the committer goroutine after the op's batch committed
	// (or failed, with err set). It must not block.
	done func()

	stage atomic.Int32 // opQueued, opCommitting or opWithdrawn
	tries int          // failed tries so far (committer only)
	// abandoned: the owner stopped waiting (its context ended); a failed
	// try is then not retried.
	abandoned atomic.Bool
}

func (b *opBase) base() *opBase { return b }

// complete runs the op's callback, if it has one.
func (b *opBase) complete() {
	if b.done != nil {
		b.done()
	}
}

// withdraw takes o back before a committer takes it: true if it will never
// be applied.
func (b *opBase) withdraw() bool { return b.stage.CompareAndSwap(opQueued, opWithdrawn) }

// noOutput is embedded by the kinds that have no output to reset.
type noOutput struct{}

func (noOutput) reset() {}

// insertOp creates runs (a submit).
type insertOp struct {
	opBase
	params []store.RunInsertParams
	res    []store.RunInsertResult
}

// startOp records that workers started attempts.
type startOp struct {
	opBase
	params []store.RunStartParams
	res    []bool
}

// finishOp moves attempts to their next state: results, timeouts, runs
// handed back to the queue.
type finishOp struct {
	opBase
	params []store.RunFinishParams
	groups []string // groups[i] is the group of params[i] (for notifications)
	res    []store.RunFinishResult
}

// adoptOp makes this server the holder of runs another server handed out.
type adoptOp struct {
	opBase
	params []store.RunAdoptParams
	res    []bool
}

// notifyOp publishes notifications as they are (a shared store).
type notifyOp struct {
	opBase
	noOutput
	notes []store.Notification
}

// cancelOp cancels one run.
type cancelOp struct {
	opBase
	params store.RunCancelParams
	res    store.RunCancelResult
}

// retryOp puts one ended run back in the queue.
type retryOp struct {
	opBase
	params store.RunRetryParams
	run    *store.Run
}

// promoteOp moves pending runs whose time came to queued.
type promoteOp struct {
	opBase
	params store.RunPromoteParams
	runs   []*store.Run
}

// requeueLostOp requeues the runs of servers that are gone.
type requeueLostOp struct {
	opBase
	params store.RunRequeueLostParams
	runs   []*store.Run
}

// claimOp claims queued runs of one group for its workers.
type claimOp struct {
	opBase
	// prepare computes the claims when the transaction applies them (nil:
	// nothing to claim), so they take every credit freed up to that
	// moment, not just those free when the op was queued. It sets gen.
	prepare func() []store.RunClaimParams
	gen     uint64                 // the group's wakeGen when prepared
	claims  []store.RunClaimParams // the claims applied (one per kind of worker)
	short   []bool                 // short[i]: claims[i] came back with fewer runs than asked
	runs    []*store.Run           // the runs claimed
}

// txOp applies writes of its own in the batch's transaction (job changes,
// cron ticks, unblocking, feedback), after cancels and retries and before
// claims, so that the runs it queues are claimable in the same commit.
// fn returns a caller error (not found, conflict, a *FieldError) only
// before it has written anything: that fails the op, not the batch. It
// may run again if the batch is retried, so it sets its outputs rather
// than appending to them.
type txOp struct {
	opBase
	fn func(ctx context.Context, tx store.Tx) error
	// made are runs fn created or moved to queued or pending; cancels are
	// runs it cancelled. Both are handled like inserts and cancels.
	made    []*store.Run
	cancels []store.RunCancelResult
	// ended are runs of jobs fn created ended (skipped slots): their
	// dependents are decided (deps.go).
	ended []*store.Run
	// callbackAt is the earliest callback delivery fn made due
	// (noteCallbackRun; zero: none).
	callbackAt time.Time
	// skipped are runs fn created or moved skipped (noteSkipped): the
	// alerter looks at them.
	skipped []*store.Run
}

// noteSkipped records, in fn, a run it made skipped.
func (o *txOp) noteSkipped(r *store.Run) {
	if r != nil && r.Status == store.StatusSkipped {
		o.skipped = append(o.skipped, r)
	}
}

func (o *insertOp) reset()      { o.res = nil }
func (o *startOp) reset()       { o.res = nil }
func (o *finishOp) reset()      { o.res = nil }
func (o *adoptOp) reset()       { o.res = nil }
func (o *cancelOp) reset()      { o.res = store.RunCancelResult{} }
func (o *retryOp) reset()       { o.run = nil }
func (o *promoteOp) reset()     { o.runs = nil }
func (o *requeueLostOp) reset() { o.runs = nil }
func (o *claimOp) reset()       { o.claims, o.short, o.runs = nil, nil, nil }
func (o *txOp) reset() {
	o.made, o.cancels, o.ended, o.callbackAt, o.skipped = nil, nil, nil, time.Time{}, nil
}

// The kinds that batch: their inputs are concatenated into one store call
// and its results handed back in order (batched).
func (o *insertOp) inputs() []store.RunInsertParams   { return o.params }
func (o *insertOp) results(r []store.RunInsertResult) { o.res = r }
func (o *startOp) inputs() []store.RunStartParams     { return o.params }
func (o *startOp) results(r []bool)                   { o.res = r }
func (o *finishOp) inputs() []store.RunFinishParams   { return o.params }
func (o *finishOp) results(r []store.RunFinishResult) { o.res = r }
func (o *adoptOp) inputs() []store.RunAdoptParams     { return o.params }
func (o *adoptOp) results(r []bool)                   { o.res = r }

func (o *cancelOp) applyIn(ctx context.Context, tx store.Tx) (err error) {
	o.res, err = tx.RunCancel(ctx, o.params)
	return err
}

func (o *retryOp) applyIn(ctx context.Context, tx store.Tx) (err error) {
	o.run, err = tx.RunRetry(ctx, o.params)
	return err
}

func (o *promoteOp) applyIn(ctx context.Context, tx store.Tx) (err error) {
	o.runs, err = tx.RunPromote(ctx, o.params)
	return err
}

func (o *requeueLostOp) applyIn(ctx context.Context, tx store.Tx) (err error) {
	o.runs, err = tx.RunRequeueLost(ctx, o.params)
	return err
}

// singleOp is a kind applied op by op, in batch order: a cancel, a retry,
// a promotion, a requeue of lost servers' runs. A not-found or conflict
// error is its caller's answer, not a failed batch.
type singleOp interface {
	op
	applyIn(ctx context.Context, tx store.Tx) error
}

// batchedOp is a kind whose ops in a batch share one store call.
type batchedOp[P, R any] interface {
	inputs() []P
	results([]R)
}

// batched applies ops of one batching kind with one call: their inputs
// concatenated, the results handed back to each op in order. Nothing is
// called when they have no inputs.
func batched[O batchedOp[P, R], P, R any](ctx context.Context, ops []O, call func(context.Context, []P) ([]R, error)) error {
	n := 0
	for _, o := range ops {
		n += len(o.inputs())
	}
	if n == 0 {
		return nil
	}
	in := make([]P, 0, n)
	for _, o := range ops {
		in = append(in, o.inputs()...)
	}
	res, err := call(ctx, in)
	if err != nil {
		return err
	}
	for _, o := range ops {
		k := len(o.inputs())
		o.results(res[:k:k])
		res = res[k:]
	}
	return nil
}

// opsByKind is a batch sorted by how its ops are applied, each kind in
// batch order.
type opsByKind struct {
	adopts   []*adoptOp
	inserts  []*insertOp
	starts   []*startOp
	finishes []*finishOp
	singles  []singleOp
	txs      []*txOp
	claims   []*claimOp
}

func sortOps(batch []op) opsByKind {
	var k opsByKind
	for _, o := range batch {
		switch o := o.(type) {
		case *adoptOp:
			k.adopts = append(k.adopts, o)
		case *insertOp:
			k.inserts = append(k.inserts, o)
		case *startOp:
			k.starts = append(k.starts, o)
		case *finishOp:
			k.finishes = append(k.finishes, o)
		case singleOp:
			k.singles = append(k.singles, o)
		case *txOp:
			k.txs = append(k.txs, o)
		case *claimOp:
			k.claims = append(k.claims, o)
		case *notifyOp:
			// Nothing to write: publish sends its notes.
		}
	}
	return k
}
