package store

import (
	"context"
	"time"
)

// Feedback: a run may carry a callback URL (Run.CallbackURL). When it
// reaches a terminal status its outcome is POSTed there by the leader's
// deliverer (internal/engine/feedback.go), retried with back-off until a
// 2xx answer or expiry. The store keeps the delivery state on the run
// (Run.Callback) and lists the deliveries that are due.
//
// The invariant that makes a delivery survive any crash: the statement
// that makes a run with a callback URL terminal — RunFinish to a terminal
// status, RunCancel, RunInsert of a skipped run — also makes its delivery
// pending, due at once (State pending, NextAt = the finish time). There
// is no moment at which a run is terminal in the store and its delivery
// is not recorded as owed.
//
// A delivery is claimed with CallbackListDue, which counts the attempt and
// moves NextAt to a lease (so a claim made by a server that dies is
// claimed again when the lease runs out), and its outcome is recorded with
// CallbackRecord, fenced by the attempt and the lease the claim set. The
// POST itself happens between the two, outside any transaction; a crash
// between the POST and the record repeats the POST: delivery is at least
// once.

// CallbackState is the state of a run's result delivery.
type CallbackState string

const (
	// CallbackNone: nothing to deliver (yet): the run has no callback URL
	// or has not ended. Stored as the empty string.
	CallbackNone      CallbackState = ""
	CallbackPending   CallbackState = "pending"   // owed: due at NextAt
	CallbackDelivered CallbackState = "delivered" // a POST was answered 2xx
	CallbackFailed    CallbackState = "failed"    // given up: expired, or refused for good
)

// MaxCallbackURL is the longest callback URL accepted, in bytes.
const MaxCallbackURL = 2048

// Callback is the delivery state of a run's result. It is the zero value
// for a run without a callback URL.
type Callback struct {
	State CallbackState
	// Attempts counts the deliveries claimed so far (each claim counts one,
	// before its POST is made).
	Attempts int
	// NextAt is when a pending delivery is due (or, while one is being
	// made, when its claim lapses); zero unless pending.
	NextAt time.Time
	// LastError says why the last attempt failed; "" after a success.
	LastError   string
	DeliveredAt time.Time // when a POST was answered 2xx; zero otherwise
}

// CallbackListDueParams claims up to Limit pending deliveries whose NextAt
// <= Now, earliest first: each one's Attempts+1, and NextAt = LeaseUntil,
// the time after which it is due again if no outcome is recorded. On a
// store shared by several servers deliveries another transaction is
// claiming are skipped, not waited for.
type CallbackListDueParams struct {
	Now        time.Time
	LeaseUntil time.Time
	Limit      int
}

// CallbackRecordParams records the outcome of one claimed delivery. It
// applies only while the run's delivery is still the one claimed: pending,
// at Attempt (the Attempts the claim returned) and Lease (the NextAt the
// claim set); otherwise — the run was retried, or the lease ran out and the
// delivery was claimed again — it is rejected.
type CallbackRecordParams struct {
	ID      string
	Attempt int
	Lease   time.Time
	// State is the delivery's next state: delivered; pending (retry at
	// NextAt); or failed.
	State  CallbackState
	NextAt time.Time // for pending
	Error  string    // the attempt's error ("" for delivered)
	Now    time.Time // DeliveredAt for delivered
}

// CallbackStore is the read side of deliveries; part of Store.
type CallbackStore interface {
	// CallbackNextAt is the earliest NextAt of a pending delivery (a
	// claimed one's lease included), or the zero time when none is pending.
	CallbackNextAt(ctx context.Context) (time.Time, error)
}

// CallbackTx is the write side of deliveries; part of Tx.
type CallbackTx interface {
	// CallbackListDue claims due deliveries and returns their runs (with
	// the claim applied: Callback.Attempts and Callback.NextAt as set), in
	// insertion (Seq) order.
	CallbackListDue(ctx context.Context, p CallbackListDueParams) ([]*Run, error)
	// CallbackRecord records outcomes; it returns which were applied.
	CallbackRecord(ctx context.Context, p []CallbackRecordParams) ([]bool, error)
}
