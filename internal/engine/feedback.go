package engine

import (
	"context"
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
	client := c.CallbackClient
	if client == nil {
		client = newCallbackClient(p)
	}
	e.feedback = &deliverer[*store.Run]{e: e, kind: callbackKind{e: e}, client: client}
	e.netPolicy = p
	return nil
}

// callbackKind is the deliveries of runs' outcomes (deliverer, delivery.go).
type callbackKind struct{ e *Engine }

func (callbackKind) name() string { return "callback" }

func (k callbackKind) nextAt(ctx context.Context) (time.Time, error) {
	return k.e.st.CallbackNextAt(ctx)
}

func (callbackKind) claim(ctx context.Context, tx store.Tx, p store.CallbackListDueParams) ([]*store.Run, error) {
	return tx.CallbackListDue(ctx, p)
}

func (callbackKind) record(ctx context.Context, tx store.Tx, p []store.CallbackRecordParams) ([]bool, error) {
	return tx.CallbackRecord(ctx, p)
}

func (k callbackKind) post(ctx context.Context, r *store.Run) error { return k.e.postCallback(ctx, r) }

// state: a delivery expires CallbackExpiry after its run ended.
func (callbackKind) state(r *store.Run) (string, store.Callback, time.Time) {
	since := r.FinishedAt
	if since.IsZero() {
		since = r.CreatedAt
	}
	return r.ID, r.Callback, since
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
