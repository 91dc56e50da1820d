package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"slices"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Feedback deliveries (store/callbacks.go; migration 00004_callbacks).
//
// The delivery state lives in the runs row (callback_* columns), and the
// pending deliveries are the partial index runs_callback_due
// (callback_next_at, seq) WHERE callback_next_at IS NOT NULL. A run has
// callback_next_at set exactly while its delivery is pending.
//
// The finish of the hot path (wFinish) applies only to runs without a
// callback URL, and names no callback column, so SQLite neither evaluates
// the partial index's predicate nor computes anything for it. A finish it
// does not apply — a rejected report, or a run with a callback URL — is
// retried with wFinishCallback, which also makes the delivery pending,
// due at the finish time, when the run becomes terminal: in the same
// statement, so a terminal run never lacks the delivery it owes.

const (
	// finishCallbackSQL is finishSQL for a run with a callback URL. Its
	// arguments are finishSQL's, in order; ?2 (finished_at) is set exactly
	// when the run becomes terminal.
	finishCallbackSQL = `UPDATE runs SET status = ?1, prev_status = status,
			finished_at = coalesce(?2, finished_at),
			run_at = coalesce(?3, run_at),
			worker_id = coalesce(?4, worker_id),
			server_id = NULL,
			failures = failures + ?5,
			lost = lost + ?6,
			started_at = coalesce(started_at, ?7),
			result = coalesce(?8, result),
			error = coalesce(?9, error),
			callback_state = CASE WHEN ?2 IS NULL THEN callback_state ELSE 'pending' END,
			callback_next_at = coalesce(?2, callback_next_at)
		WHERE id = ?10 AND attempt = ?11 AND status IN ('dispatched', 'running') AND callback_url IS NOT NULL`

	// callbackListDueSQL claims the first due deliveries (from
	// runs_callback_due): one more attempt, and next_at moved to the lease.
	// Arguments: now, lease, limit.
	callbackListDueSQL = `UPDATE runs SET callback_attempts = callback_attempts + 1, callback_next_at = ?2
		WHERE seq IN (
			SELECT c.seq FROM runs AS c INDEXED BY runs_callback_due
			WHERE c.callback_next_at IS NOT NULL AND c.callback_next_at <= ?1
			ORDER BY c.callback_next_at, c.seq
			LIMIT ?3)
			AND callback_state = 'pending'
		RETURNING ` + runCols

	// callbackRecordSQL records one delivery's outcome, fenced by the
	// attempt and the lease of its claim. Arguments: state, next_at (NULL
	// unless pending), error, delivered_at (NULL: keep), id, attempt,
	// lease.
	callbackRecordSQL = `UPDATE runs SET callback_state = ?1, callback_next_at = ?2, callback_error = ?3,
			callback_delivered_at = coalesce(?4, callback_delivered_at)
		WHERE id = ?5 AND callback_state = 'pending' AND callback_attempts = ?6 AND callback_next_at = ?7`

	callbackNextAtSQL = `SELECT min(callback_next_at) FROM runs WHERE callback_next_at IS NOT NULL`
)

func init() {
	wSQL[wFinishCallback] = finishCallbackSQL
	wSQL[wFinishCallbackFenced] = finishCallbackSQL + ` AND server_id = ?12`
	wSQL[wCallbackListDue] = callbackListDueSQL
	wSQL[wCallbackRecord] = callbackRecordSQL
	rSQL[rCallbackNextAt] = callbackNextAtSQL
}

// CallbackListDue implements store.Tx.
func (t *tx) CallbackListDue(ctx context.Context, p store.CallbackListDueParams) ([]*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	t.bind()
	t.arg(micro(p.Now))
	t.arg(micro(p.LeaseUntil))
	t.arg(int64(p.Limit))
	runs, err := t.queryRuns("CallbackListDue", wCallbackListDue)
	if err != nil {
		return nil, err
	}
	// RETURNING has no defined order; the claim order is the due order,
	// and every claimed run now has the same next_at (the lease).
	slices.SortFunc(runs, func(a, b *Run) int { return cmp.Compare(a.Seq, b.Seq) })
	return runs, nil
}

// CallbackRecord implements store.Tx.
func (t *tx) CallbackRecord(ctx context.Context, ps []store.CallbackRecordParams) ([]bool, error) {
	return t.recordDeliveries(ctx, "CallbackRecord", wCallbackRecord, ps)
}

// recordDeliveries records delivery outcomes (of runs' callbacks, of
// alerts) with stmt, whose arguments are callbackRecordSQL's.
func (t *tx) recordDeliveries(ctx context.Context, op string, stmt wStmt, ps []store.CallbackRecordParams) ([]bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	for i := range ps {
		switch ps[i].State {
		case store.CallbackDelivered, store.CallbackPending, store.CallbackFailed:
		default:
			return nil, fmt.Errorf("sqlite: %s: %q: state %q is not delivered, pending or failed", op, ps[i].ID, ps[i].State)
		}
	}
	out := make([]bool, len(ps))
	for i := range ps {
		p := &ps[i]
		var next, delivered driver.Value
		switch p.State {
		case store.CallbackPending:
			next = micro(p.NextAt)
		case store.CallbackDelivered:
			delivered = micro(p.Now)
		}
		t.bind()
		t.arg(string(p.State))
		t.arg(next)
		t.arg(p.Error)
		t.arg(delivered)
		t.arg(p.ID)
		t.arg(int64(p.Attempt))
		t.arg(micro(p.Lease))
		n, _, err := t.exec(op, stmt)
		if err != nil {
			return nil, err
		}
		out[i] = n > 0
	}
	return out, nil
}

// CallbackNextAt implements store.Store.
func (s *Store) CallbackNextAt(ctx context.Context) (time.Time, error) {
	if s.closed.Load() {
		return time.Time{}, errClosed
	}
	var at sql.NullInt64
	if err := s.rs[rCallbackNextAt].QueryRowContext(ctx).Scan(&at); err != nil {
		return time.Time{}, s.wrap("CallbackNextAt", err)
	}
	return fromNullMicro(at), nil
}
