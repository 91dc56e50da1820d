package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pluto-sched/pluto/internal/store"
)

// Feedback (LTS): a run may carry a callback URL; when it ends, its final
// state and result are POSTed there, retried with back-off until an
// answer in 2xx or expiry.
//
// # Durability
//
// The store makes a run's delivery pending in the same statement that
// makes the run terminal (store/callbacks.go), so a delivery is owed the
// moment the outcome is committed and survives any crash. The engine
// only has to find it: the leader's deliverer keeps one timer, armed for
// the earliest pending delivery, like the promoter (promote.go) — from the
// store when it takes the lease and after every round, and earlier when a
// commit makes a delivery due (the committer tells it; on a shared store
// other servers publish TopicCallback and the leader hears it). Nothing
// polls.
//
// # A round
//
//  1. Claim: a committer op (a txOp) runs CallbackListDue for as many
//     deliveries as there are free slots (CallbackConcurrency): each gets
//     one more attempt and a lease (next_at moves to now + lease), in one
//     transaction that then commits. No transaction stays open while a
//     POST is in flight.
//  2. Deliver: one goroutine per claimed run POSTs the run's JSON (the API
//     shape, as Config.CallbackBody encodes it) with Content-Type application/json, X-Pluto-Run-Id
//     and X-Pluto-Delivery-Attempt, bounded by CallbackTimeout.
//  3. Record: outcomes are collected and written by one op at a time
//     (CallbackRecord, fenced by the claim's attempt and lease): 2xx is
//     delivered; anything else is retried after a jittered exponential
//     back-off (1 s doubling to 10 min) unless that would fall after the
//     run's finish time + CallbackExpiry (default 24 h): then it failed. A
//     destination the allow-list refuses fails at once.
//
// # Guarantees
//
// At least once: a delivery is repeated when the server stops or crashes
// between a POST and its record (the lease lapses and the next leader
// claims it again), or when a POST outlives its timeout but still reaches
// the receiver. Receivers dedupe on X-Pluto-Run-Id; the attempt header
// and the body's callback.attempts tell repeats apart. At least one POST
// is made however late the first claim comes (expiry is checked only
// before scheduling a retry). A run retried by a user delivers its next
// outcome; an undelivered earlier one is dropped.

// Defaults of the Config.Callback* settings.
const (
	defaultCallbackExpiry      = 24 * time.Hour
	defaultCallbackTimeout     = 10 * time.Second
	defaultCallbackConcurrency = 16
	callbackRetryBase          = time.Second
	callbackRetryMax           = 10 * time.Minute
	// callbackRecheck delays the next claim after a round that left due
	// deliveries it could not claim (held by another server's claim), so
	// the deliverer does not spin.
	callbackRecheck = 250 * time.Millisecond
	// maxCallbackError caps the error text kept on a run.
	maxCallbackError = 500
)

// deliverer is the leader's feedback deliverer, a component with its own
// state and lock like the promoter: activated when a term is won and
// deactivated when it is lost or the engine stops. The goroutines it
// starts (reads of the next delivery time, POSTs) are counted in running,
// which the engine's Stop waits for.
//
// Lock order: the dispatcher's lock may be held when calling note or
// rearm, the lease's when calling activate or deactivate; the deliverer
// takes neither.
type deliverer struct {
	e      *Engine
	policy *callbackPolicy // set in New, then read only
	client CallbackDoer    // set in New, then read only

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

// initFeedback checks the callback settings and builds the deliverer and
// its HTTP client.
func (e *Engine) initFeedback() error {
	c := &e.cfg
	if c.CallbackExpiry <= 0 {
		c.CallbackExpiry = defaultCallbackExpiry
	}
	if c.CallbackTimeout <= 0 {
		c.CallbackTimeout = defaultCallbackTimeout
	}
	if c.CallbackConcurrency <= 0 {
		c.CallbackConcurrency = defaultCallbackConcurrency
	}
	p, err := parseCallbackAllow(c.CallbackAllow)
	if err != nil {
		return err
	}
	e.feedback = &deliverer{e: e, policy: p, client: c.CallbackClient}
	if e.feedback.client == nil {
		e.feedback.client = newCallbackClient(p)
	}
	return nil
}

// activate readies the deliverer for a new term; arm then reads the first
// time from the store.
func (d *deliverer) activate() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active = true
	d.ctx, d.cancel = context.WithCancel(context.Background())
}

// deactivate ends the term's deliveries: the timer stops and POSTs in
// flight are cancelled (their leases lapse; the next leader claims them
// again).
func (d *deliverer) deactivate() {
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
func (d *deliverer) takingWork() bool { return d.active && d.e.running() }

// closeIdle closes the HTTP client's idle connections (and their
// goroutines) once the deliverer stopped.
func (d *deliverer) closeIdle() {
	if c, ok := d.client.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// arm arms the deliverer from the store (on taking the lease, and after a
// round that claimed fewer deliveries than it could, at claimedAt: a
// delivery due by then that it did not get is held by another server's
// claim, so the next look is a little later rather than at once).
func (d *deliverer) arm(ctx context.Context, claimedAt time.Time) {
	e := d.e
	at, err := e.st.CallbackNextAt(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("read next callback delivery", "err", err)
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
func (d *deliverer) rearm() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rearmLocked(time.Time{})
}

// rearmLocked re-reads the next delivery in the background, after a round
// that claimed at claimedAt. Called with d.mu held.
func (d *deliverer) rearmLocked(claimedAt time.Time) {
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
// servers publish the time (TopicCallback).
func (d *deliverer) note(at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.noteLocked(at)
}

func (d *deliverer) noteLocked(at time.Time) {
	if d.takingWork() {
		d.wake.arm(d.e.clk, at, d.due)
	}
}

func (d *deliverer) due() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.wake.fired()
	d.startClaimLocked()
}

// startClaimLocked claims as many due deliveries as there are free slots.
// Called with d.mu held.
func (d *deliverer) startClaimLocked() {
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
	var claimed []*store.Run
	o := &txOp{}
	o.fn = func(ctx context.Context, tx store.Tx) error {
		runs, err := tx.CallbackListDue(ctx, store.CallbackListDueParams{Now: now, LeaseUntil: lease, Limit: free})
		claimed = runs
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

func (d *deliverer) claimed(err error, runs []*store.Run, limit int, now, lease time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.claiming = false
	if err != nil {
		d.e.log.Error("claim callback deliveries", "err", err)
		d.noteLocked(d.e.now().Add(time.Second))
		return
	}
	if !d.active {
		return // no longer leading: the leases lapse and the next leader claims them
	}
	for _, r := range runs {
		d.inflight++
		d.running.Add(1)
		go d.deliver(d.ctx, r, lease)
	}
	switch {
	case d.again:
		d.again = false
		d.startClaimLocked()
	case len(runs) >= limit:
		d.full = true // more may be due: claim when a slot frees
	default:
		d.rearmLocked(now)
	}
}

// deliver makes one delivery and queues its outcome.
func (d *deliverer) deliver(ctx context.Context, r *store.Run, lease time.Time) {
	defer d.running.Done()
	e := d.e
	rctx, cancel := context.WithTimeout(ctx, e.cfg.CallbackTimeout)
	err := e.postCallback(rctx, r)
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
	p := e.callbackOutcome(r, lease, err, e.now())
	switch p.State {
	case store.CallbackDelivered:
		e.log.Debug("callback delivered", "run", r.ID, "attempt", p.Attempt)
	case store.CallbackFailed:
		e.log.Warn("callback failed for good", "run", r.ID, "attempts", p.Attempt, "err", p.Error)
	default:
		e.log.Debug("callback attempt failed", "run", r.ID, "attempt", p.Attempt, "retry_at", p.NextAt, "err", p.Error)
	}
	d.records = append(d.records, p)
	d.flushLocked()
}

// callbackOutcome decides what a delivery's result means.
func (e *Engine) callbackOutcome(r *store.Run, lease time.Time, err error, now time.Time) store.CallbackRecordParams {
	n := r.Callback.Attempts
	p := store.CallbackRecordParams{ID: r.ID, Attempt: n, Lease: lease, Now: now}
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
	ended := r.FinishedAt
	if ended.IsZero() {
		ended = r.CreatedAt
	}
	next := now.Add(callbackBackoff(n))
	if deadline := ended.Add(e.cfg.CallbackExpiry); next.After(deadline) {
		p.State = store.CallbackFailed
		p.Error = truncate(fmt.Sprintf("expired after %d attempts: %s", n, msg), maxCallbackError)
		return p
	}
	p.State, p.NextAt, p.Error = store.CallbackPending, next, truncate(msg, maxCallbackError)
	return p
}

// callbackBackoff is the delay after failed attempt n (1-based): 1 s
// doubling up to 10 min, with equal jitter.
func callbackBackoff(n int) time.Duration {
	d := callbackRetryBase
	for i := 1; i < n && d < callbackRetryMax; i++ {
		d *= 2
	}
	d = min(d, callbackRetryMax)
	half := d / 2
	return (half + time.Duration(rand.Int64N(int64(half)+1))).Truncate(time.Microsecond)
}

// flushLocked writes the collected outcomes, one op at a time (outcomes
// that arrive meanwhile go in the next one). Called with d.mu held.
func (d *deliverer) flushLocked() {
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
		res, err := tx.CallbackRecord(ctx, batch)
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
			e.log.Error("record callback deliveries", "deliveries", len(batch), "err", o.err)
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

// callbacksDue is the earliest delivery the batch's committed changes made
// due (zero: none): finishes and cancels of runs with a callback URL,
// skipped inserts of such runs, and what txOps noted (callbackAt).
func callbacksDue(batch []op) time.Time {
	var at time.Time
	note := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	pendingRun := func(r *store.Run) {
		if r != nil && r.Callback.State == store.CallbackPending {
			note(r.Callback.NextAt)
		}
	}
	for _, o := range batch {
		if o.base().err != nil {
			continue
		}
		switch o := o.(type) {
		case *finishOp:
			for i, res := range o.res {
				if res.Callback && i < len(o.params) {
					note(o.params[i].Now)
				}
			}
		case *cancelOp:
			if o.res.Changed {
				pendingRun(o.res.Run)
			}
		case *txOp:
			for _, c := range o.cancels {
				if c.Changed {
					pendingRun(c.Run)
				}
			}
			note(o.callbackAt)
		case *insertOp:
			for _, r := range o.res {
				if !r.Existing {
					pendingRun(r.Run)
				}
			}
		}
	}
	return at
}

// callbacksCommitted wakes the deliverer for the deliveries a committed
// batch made due.
func (e *Engine) callbacksCommitted(batch []op) {
	if at := callbacksDue(batch); !at.IsZero() {
		e.feedback.note(at)
	}
}

// callbackNotification is what a batch publishes for the leader when it
// made deliveries due (a shared store).
func callbackNotification(batch []op) (store.Notification, bool) {
	at := callbacksDue(batch)
	if at.IsZero() {
		return store.Notification{}, false
	}
	return store.Notification{Topic: store.TopicCallback, Payload: strconv.FormatInt(at.UnixMicro(), 10)}, true
}

// heardCallback acts on TopicCallback.
func (e *Engine) heardCallback(payload string) {
	if us, err := strconv.ParseInt(payload, 10, 64); err == nil {
		e.feedback.note(time.UnixMicro(us).UTC())
	}
}

// noteCallbackRun records, in a txOp's fn, that r's delivery became due.
func (o *txOp) noteCallbackRun(r *store.Run) {
	if r == nil || r.Callback.State != store.CallbackPending {
		return
	}
	if at := r.Callback.NextAt; o.callbackAt.IsZero() || at.Before(o.callbackAt) {
		o.callbackAt = at
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
