package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// The deliverer POSTs what the store says is owed — a run's outcome to
// its callback URL (feedback.go), an alert to its webhook (alerts.go) —
// with one design for both. A deliveryKind says where the items are and
// how one is sent; the deliverer claims, posts and records them.

// deliveryKind is one kind of delivery: T is the stored item.
type deliveryKind[T any] interface {
	// name names the kind in logs ("callback", "alert").
	name() string
	// nextAt is the earliest NextAt of a pending delivery, or zero.
	nextAt(ctx context.Context) (time.Time, error)
	// claim claims due deliveries (attempt counted, NextAt = the lease).
	claim(ctx context.Context, tx store.Tx, p store.CallbackListDueParams) ([]T, error)
	// record records outcomes, fenced by each claim's attempt and lease.
	record(ctx context.Context, tx store.Tx, p []store.CallbackRecordParams) ([]bool, error)
	// post makes one delivery: nil for an answer in 2xx.
	post(ctx context.Context, item T) error
	// state is the item's id, its delivery state as claimed, and the time
	// from which it expires.
	state(item T) (id string, d store.Callback, since time.Time)
}

// deliverer is a component of the leader with its own state and lock like
// the promoter: activated when a term is won and deactivated when it is
// lost or the engine stops. The goroutines it starts (reads of the next
// delivery time, POSTs) are counted in running, which the engine's Stop
// waits for.
//
// Lock order: the dispatcher's lock may be held when calling note or
// rearm, the lease's when calling activate or deactivate; the deliverer
// takes neither.
type deliverer[T any] struct {
	e      *Engine
	kind   deliveryKind[T]
	client CallbackDoer // set in New, then read only

	mu        sync.Mutex
	active    bool // leading: a term is won and not yet lost
	wake      wakeTimer
	claiming  bool            // a claim op is in flight
	again     bool            // a wake-up came while it was
	full      bool            // every slot is taken: claim again when one frees
	inflight  int             // POSTs in flight
	ctx       context.Context // the term's; cancelled when it ends
	cancel    context.CancelFunc
	records   []store.CallbackRecordParams // outcomes to write
	recording bool                         // a record op is in flight
	running   sync.WaitGroup               // arm and POST goroutines
}

// activate readies the deliverer for a new term; arm then reads the first
// time from the store.
func (d *deliverer[T]) activate() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active = true
	d.ctx, d.cancel = context.WithCancel(context.Background())
}

// deactivate ends the term's deliveries: the timer stops and POSTs in
// flight are cancelled (their leases lapse; the next leader claims them
// again).
func (d *deliverer[T]) deactivate() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active = false
	d.wake.stop()
	if d.cancel != nil {
		d.cancel()
	}
	d.closeIdle()
}

// takingWork says whether the deliverer may start anything new: it leads,
// and the engine runs (a graceful stop takes no new work even in the
// moment before it gives the lease up). Called with d.mu held.
func (d *deliverer[T]) takingWork() bool { return d.active && d.e.running() }

// closeIdle closes the HTTP client's idle connections (and their
// goroutines) once the deliverer stopped.
func (d *deliverer[T]) closeIdle() {
	if c, ok := d.client.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// arm arms the deliverer from the store (on taking the lease, and after a
// round that claimed fewer deliveries than it could, at claimedAt: a
// delivery due by then that it did not get is held by another server's
// claim, so the next look is a little later rather than at once).
func (d *deliverer[T]) arm(ctx context.Context, claimedAt time.Time) {
	e := d.e
	at, err := d.kind.nextAt(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("read next "+d.kind.name()+" delivery", "err", err)
			d.noteLocked(e.now().Add(time.Second)) // try again rather than stall
		}
		return
	}
	if at.IsZero() {
		return
	}
	if !claimedAt.IsZero() && !at.After(claimedAt) {
		at = e.now().Add(callbackRecheck)
	}
	d.noteLocked(at)
}

// rearm re-reads the next delivery in the background (notifications were
// lost, or the reconciler looks).
func (d *deliverer[T]) rearm() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rearmLocked(time.Time{})
}

// rearmLocked re-reads the next delivery in the background, after a round
// that claimed at claimedAt. Called with d.mu held.
func (d *deliverer[T]) rearmLocked(claimedAt time.Time) {
	if !d.takingWork() {
		return
	}
	ctx := d.ctx
	d.running.Add(1)
	go func() {
		defer d.running.Done()
		d.arm(ctx, claimedAt)
	}()
}

// note makes sure a round starts by at. Only the leader delivers; other
// servers publish the time (TopicCallback, TopicAlert).
func (d *deliverer[T]) note(at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.noteLocked(at)
}

func (d *deliverer[T]) noteLocked(at time.Time) {
	if d.takingWork() {
		d.wake.arm(d.e.clk, at, d.due)
	}
}

func (d *deliverer[T]) due() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.wake.fired()
	d.startClaimLocked()
}

// startClaimLocked claims as many due deliveries as there are free slots.
// Called with d.mu held.
func (d *deliverer[T]) startClaimLocked() {
	if !d.takingWork() {
		return
	}
	if d.claiming {
		d.again = true
		return
	}
	e := d.e
	free := e.cfg.CallbackConcurrency - d.inflight
	if free <= 0 {
		d.full = true
		return
	}
	d.claiming = true
	now := e.now()
	lease := now.Add(e.callbackLease())
	var claimed []T
	o := &txOp{}
	o.fn = func(ctx context.Context, tx store.Tx) error {
		items, err := d.kind.claim(ctx, tx, store.CallbackListDueParams{Now: now, LeaseUntil: lease, Limit: free})
		claimed = items
		return err
	}
	o.done = func() { d.claimed(o.err, claimed, free, now, lease) }
	if !e.ops.push(o) {
		d.claiming = false
	}
}

// callbackLease is how long a claimed delivery is left to its deliverer:
// longer than a POST may take plus the time to record its outcome.
func (e *Engine) callbackLease() time.Duration { return 2*e.cfg.CallbackTimeout + 30*time.Second }

func (d *deliverer[T]) claimed(err error, items []T, limit int, now, lease time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.claiming = false
	if err != nil {
		d.e.log.Error("claim "+d.kind.name()+" deliveries", "err", err)
		d.noteLocked(d.e.now().Add(time.Second))
		return
	}
	if !d.active {
		return // no longer leading: the leases lapse and the next leader claims them
	}
	for _, it := range items {
		d.inflight++
		d.running.Add(1)
		go d.deliver(d.ctx, it, lease)
	}
	switch {
	case d.again:
		d.again = false
		d.startClaimLocked()
	case len(items) >= limit:
		d.full = true // more may be due: claim when a slot frees
	default:
		d.rearmLocked(now)
	}
}

// deliver makes one delivery and queues its outcome.
func (d *deliverer[T]) deliver(ctx context.Context, it T, lease time.Time) {
	defer d.running.Done()
	e := d.e
	rctx, cancel := context.WithTimeout(ctx, e.cfg.CallbackTimeout)
	err := d.kind.post(rctx, it)
	cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inflight--
	if !d.active && d.inflight == 0 {
		d.closeIdle()
	}
	if d.full {
		d.full = false
		d.startClaimLocked()
	}
	if err != nil && ctx.Err() != nil {
		return // the term ended: not recorded, the lease lapses and the next leader retries
	}
	id, st, since := d.kind.state(it)
	p := e.deliveryOutcome(id, st.Attempts, since, lease, err, e.now())
	name := d.kind.name()
	switch p.State {
	case store.CallbackDelivered:
		e.log.Debug(name+" delivered", "id", id, "attempt", p.Attempt)
	case store.CallbackFailed:
		e.log.Warn(name+" failed for good", "id", id, "attempts", p.Attempt, "err", p.Error)
	default:
		e.log.Debug(name+" attempt failed", "id", id, "attempt", p.Attempt, "retry_at", p.NextAt, "err", p.Error)
	}
	d.records = append(d.records, p)
	d.flushLocked()
}

// deliveryOutcome decides what the result of attempt n of delivery id
// means; the delivery expires CallbackExpiry after since.
func (e *Engine) deliveryOutcome(id string, n int, since, lease time.Time, err error, now time.Time) store.CallbackRecordParams {
	p := store.CallbackRecordParams{ID: id, Attempt: n, Lease: lease, Now: now}
	if err == nil {
		p.State = store.CallbackDelivered
		return p
	}
	msg := err.Error()
	var refused *CallbackRefusedError
	if errors.As(err, &refused) {
		p.State, p.Error = store.CallbackFailed, truncate(msg, maxCallbackError)
		return p
	}
	next := now.Add(callbackBackoff(n))
	if deadline := since.Add(e.cfg.CallbackExpiry); next.After(deadline) {
		p.State = store.CallbackFailed
		p.Error = truncate(fmt.Sprintf("expired after %d attempts: %s", n, msg), maxCallbackError)
		return p
	}
	p.State, p.NextAt, p.Error = store.CallbackPending, next, truncate(msg, maxCallbackError)
	return p
}

// flushLocked writes the collected outcomes, one op at a time (outcomes
// that arrive meanwhile go in the next one). Called with d.mu held.
func (d *deliverer[T]) flushLocked() {
	if d.recording || len(d.records) == 0 {
		return
	}
	e := d.e
	batch := d.records
	d.records = nil
	d.recording = true
	var applied []bool
	o := &txOp{}
	o.fn = func(ctx context.Context, tx store.Tx) error {
		res, err := d.kind.record(ctx, tx, batch)
		applied = res
		return err
	}
	o.done = func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.recording = false
		if o.err != nil {
			// Not written: the claims' leases lapse and the deliveries are
			// made again.
			e.log.Error("record "+d.kind.name()+" deliveries", "deliveries", len(batch), "err", o.err)
		} else {
			for i, ok := range applied {
				if ok && batch[i].State == store.CallbackPending {
					d.noteLocked(batch[i].NextAt)
				}
			}
		}
		d.flushLocked()
	}
	if !e.ops.push(o) {
		d.recording = false
	}
}
