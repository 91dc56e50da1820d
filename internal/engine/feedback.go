package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
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
//  1. Claim: a committer op (txfn) runs CallbackListDue for as many
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

// feedback is the leader's deliverer. All fields are guarded by e.mu.
type feedback struct {
	wake      wakeTimer
	claiming  bool // a claim op is in flight
	again     bool // a wake-up came while it was
	full      bool // every slot is taken: claim again when one frees
	inflight  int  // POSTs in flight
	stopped   bool
	ctx       context.Context // the term's; cancelled when it ends
	cancel    context.CancelFunc
	records   []store.CallbackRecordParams // outcomes to write
	recording bool                         // a record op is in flight
	policy    *callbackPolicy
	client    CallbackDoer
}

// initFeedback checks the callback settings and builds the HTTP client.
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
	e.feedback.policy = p
	e.feedback.client = c.CallbackClient
	if e.feedback.client == nil {
		e.feedback.client = newCallbackClient(p)
	}
	return nil
}

// start readies the deliverer for a new term. Called with e.mu held.
func (f *feedback) start() {
	f.stopped = false
	f.ctx, f.cancel = context.WithCancel(context.Background())
}

// stop ends the term's deliveries: the timer stops and POSTs in flight are
// cancelled (their leases lapse; the next leader claims them again).
// Called with e.mu held.
func (f *feedback) stop() {
	f.stopped = true
	f.wake.stop()
	if f.cancel != nil {
		f.cancel()
	}
	f.closeIdle()
}

// closeIdle closes the HTTP client's idle connections (and their
// goroutines) once the deliverer stopped.
func (f *feedback) closeIdle() {
	if c, ok := f.client.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// armFeedback arms the deliverer from the store (on taking the lease, and
// after a round that claimed fewer deliveries than it could, at
// claimedAt: a delivery due by then that it did not get is held by
// another server's claim, so the next look is a little later rather than
// at once).
func (e *Engine) armFeedback(ctx context.Context, claimedAt time.Time) {
	at, err := e.st.CallbackNextAt(ctx)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("read next callback delivery", "err", err)
			e.noteCallback(e.now().Add(time.Second)) // try again rather than stall
		}
		return
	}
	if at.IsZero() {
		return
	}
	if !claimedAt.IsZero() && !at.After(claimedAt) {
		at = e.now().Add(callbackRecheck)
	}
	e.noteCallback(at)
}

// rearmFeedback re-reads the next delivery in the background, after a
// round that claimed at claimedAt. Called with e.mu held.
func (e *Engine) rearmFeedback(claimedAt time.Time) {
	if e.feedback.stopped || !e.running() || e.lead.term == 0 {
		return
	}
	ctx := e.feedback.ctx
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.armFeedback(ctx, claimedAt)
	}()
}

// noteCallback makes sure a round starts by at. Only the leader delivers;
// other servers publish the time (TopicCallback). Called with e.mu held.
func (e *Engine) noteCallback(at time.Time) {
	f := &e.feedback
	if f.stopped || !e.running() || e.lead.term == 0 {
		return
	}
	f.wake.arm(e.clk, at, e.callbackDue)
}

func (e *Engine) callbackDue() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.feedback.wake.fired()
	e.startCallbackClaim()
}

// startCallbackClaim claims as many due deliveries as there are free
// slots. Called with e.mu held.
func (e *Engine) startCallbackClaim() {
	f := &e.feedback
	if f.stopped || !e.running() || e.lead.term == 0 {
		return
	}
	if f.claiming {
		f.again = true
		return
	}
	free := e.cfg.CallbackConcurrency - f.inflight
	if free <= 0 {
		f.full = true
		return
	}
	f.claiming = true
	now := e.now()
	lease := now.Add(e.callbackLease())
	var claimed []*store.Run
	o := &op{}
	o.txfn = func(ctx context.Context, tx store.Tx) error {
		runs, err := tx.CallbackListDue(ctx, store.CallbackListDueParams{Now: now, LeaseUntil: lease, Limit: free})
		claimed = runs
		return err
	}
	o.done = func(o *op) { e.callbacksClaimed(o.err, claimed, free, now, lease) }
	if !e.ops.push(o) {
		f.claiming = false
	}
}

// callbackLease is how long a claimed delivery is left to its deliverer:
// longer than a POST may take plus the time to record its outcome.
func (e *Engine) callbackLease() time.Duration { return 2*e.cfg.CallbackTimeout + 30*time.Second }

func (e *Engine) callbacksClaimed(err error, runs []*store.Run, limit int, now, lease time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := &e.feedback
	f.claiming = false
	if err != nil {
		e.log.Error("claim callback deliveries", "err", err)
		e.noteCallback(e.now().Add(time.Second))
		return
	}
	if f.stopped || e.lead.term == 0 {
		return // no longer leading: the leases lapse and the next leader claims them
	}
	for _, r := range runs {
		f.inflight++
		e.wg.Add(1)
		go e.deliverCallback(f.ctx, r, lease)
	}
	switch {
	case f.again:
		f.again = false
		e.startCallbackClaim()
	case len(runs) >= limit:
		f.full = true // more may be due: claim when a slot frees
	default:
		e.rearmFeedback(now)
	}
}

// deliverCallback makes one delivery and queues its outcome.
func (e *Engine) deliverCallback(ctx context.Context, r *store.Run, lease time.Time) {
	defer e.wg.Done()
	rctx, cancel := context.WithTimeout(ctx, e.cfg.CallbackTimeout)
	err := e.postCallback(rctx, r)
	cancel()
	e.mu.Lock()
	defer e.mu.Unlock()
	f := &e.feedback
	f.inflight--
	if f.stopped && f.inflight == 0 {
		f.closeIdle()
	}
	if f.full {
		f.full = false
		e.startCallbackClaim()
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
	f.records = append(f.records, p)
	e.flushCallbackRecords()
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

// flushCallbackRecords writes the collected outcomes, one op at a time
// (outcomes that arrive meanwhile go in the next one). Called with e.mu
// held.
func (e *Engine) flushCallbackRecords() {
	f := &e.feedback
	if f.recording || len(f.records) == 0 {
		return
	}
	batch := f.records
	f.records = nil
	f.recording = true
	var applied []bool
	o := &op{}
	o.txfn = func(ctx context.Context, tx store.Tx) error {
		res, err := tx.CallbackRecord(ctx, batch)
		applied = res
		return err
	}
	o.done = func(o *op) {
		e.mu.Lock()
		defer e.mu.Unlock()
		f.recording = false
		if o.err != nil {
			// Not written: the claims' leases lapse and the deliveries are
			// made again.
			e.log.Error("record callback deliveries", "deliveries", len(batch), "err", o.err)
		} else {
			for i, ok := range applied {
				if ok && batch[i].State == store.CallbackPending {
					e.noteCallback(batch[i].NextAt)
				}
			}
		}
		e.flushCallbackRecords()
	}
	if !e.ops.push(o) {
		f.recording = false
	}
}

// callbacksDue is the earliest delivery the batch's committed changes made
// due (zero: none): finishes and cancels of runs with a callback URL,
// skipped inserts of such runs, and what txfns noted (o.callbackAt).
func callbacksDue(batch []*op) time.Time {
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
		if o.err != nil {
			continue
		}
		for i, res := range o.finishRes {
			if res.Callback && i < len(o.finishes) {
				note(o.finishes[i].Now)
			}
		}
		if o.cancelRes.Changed {
			pendingRun(o.cancelRes.Run)
		}
		for _, c := range o.cancels {
			if c.Changed {
				pendingRun(c.Run)
			}
		}
		for _, r := range o.insertRes {
			if !r.Existing {
				pendingRun(r.Run)
			}
		}
		note(o.callbackAt)
	}
	return at
}

// callbacksCommitted wakes the deliverer for the deliveries a committed
// batch made due.
func (e *Engine) callbacksCommitted(batch []*op) {
	at := callbacksDue(batch)
	if at.IsZero() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.noteCallback(at)
}

// callbackNotification is what a batch publishes for the leader when it
// made deliveries due (a shared store).
func callbackNotification(batch []*op) (store.Notification, bool) {
	at := callbacksDue(batch)
	if at.IsZero() {
		return store.Notification{}, false
	}
	return store.Notification{Topic: store.TopicCallback, Payload: strconv.FormatInt(at.UnixMicro(), 10)}, true
}

// heardCallback acts on TopicCallback. Called with e.mu held.
func (e *Engine) heardCallback(payload string) {
	if us, err := strconv.ParseInt(payload, 10, 64); err == nil {
		e.noteCallback(time.UnixMicro(us).UTC())
	}
}

// noteCallbackRun records, in a txfn, that r's delivery became due.
func (o *op) noteCallbackRun(r *store.Run) {
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
