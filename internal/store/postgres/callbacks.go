package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pluto-sched/pluto/internal/store"
)

// Feedback deliveries (store/callbacks.go; migration 00003_callbacks).
//
// The delivery state is in runs (callback_* columns, indexed nowhere, so
// every change stays a HOT update) and the pending deliveries are the side
// table callbacks (next_at, seq), kept like queue and pending: a row is
// inserted by the statement that makes a run with a callback URL terminal
// (sqlFinish, sqlCancel, sqlInsertFull for a skipped run), in a writable
// CTE of that statement, so a terminal run never lacks the delivery it
// owes. Runs without a callback URL — the hot path — insert nothing.
//
// A claim locks the first due rows with FOR UPDATE SKIP LOCKED (two
// leaders for a moment claim disjoint deliveries), deletes them, counts an
// attempt on each run that still owes its delivery and inserts a row at the
// lease for it. A row whose run owes nothing any more (retried meanwhile)
// is just deleted. A record applies to a run still at the attempt and
// lease of its claim, then, in a second statement (the snapshot rule of
// runs.go), deletes its rows — skipping rows another transaction holds —
// and inserts the retry's row. A row left behind that way is at worst a
// wake-up, or an early attempt, never a lost delivery.

const (
	// sqlCallbackListDue: arguments now, lease, limit.
	sqlCallbackListDue = `WITH c AS MATERIALIZED (
			SELECT ctid AS cid, seq FROM callbacks
			WHERE next_at <= $1
			ORDER BY next_at, seq
			LIMIT $3
			FOR UPDATE SKIP LOCKED),
		d AS (DELETE FROM callbacks WHERE ctid = ANY (ARRAY(SELECT cid FROM c))),
		u AS (UPDATE runs SET callback_attempts = runs.callback_attempts + 1, callback_next_at = $2
			WHERE runs.seq = ANY (ARRAY(SELECT seq FROM c)) AND runs.callback_state = 'pending'
			RETURNING ` + runCols + `),
		i AS (INSERT INTO callbacks (next_at, seq) SELECT $2::timestamptz, seq FROM u)
		SELECT * FROM u`

	// sqlCallbackRecord: arrays of id, attempt, lease, state, next_at
	// (NULL unless pending), error, delivered_at (NULL: keep).
	sqlCallbackRecord = `UPDATE runs SET callback_state = u.state, callback_next_at = u.next_at,
			callback_error = u.error, callback_delivered_at = coalesce(u.delivered, runs.callback_delivered_at)
		FROM unnest($1::text[], $2::int4[], $3::timestamptz[], $4::text[], $5::timestamptz[], $6::text[],
				$7::timestamptz[]) AS u(id, attempt, lease, state, next_at, error, delivered)
		WHERE runs.id = u.id AND runs.callback_state = 'pending' AND runs.callback_attempts = u.attempt
			AND runs.callback_next_at = u.lease
		RETURNING runs.id, runs.seq, u.next_at`

	// sqlCallbackRows, sent after sqlCallbackRecord, replaces the recorded
	// runs' callbacks rows: deletes those of the seqs in $1 (rows another
	// transaction holds are skipped) and inserts the retries' (next_at $2,
	// seq $3).
	sqlCallbackRows = `WITH d AS (DELETE FROM callbacks WHERE ctid = ANY (ARRAY(
			SELECT ctid FROM callbacks WHERE seq = ANY ($1::int8[]) FOR UPDATE SKIP LOCKED)))
		INSERT INTO callbacks (next_at, seq) SELECT * FROM unnest($2::timestamptz[], $3::int8[])`

	sqlCallbackNextAt = `SELECT min(next_at) FROM callbacks`
)

// CallbackListDue implements store.Tx.
func (t *tx) CallbackListDue(ctx context.Context, p store.CallbackListDueParams) ([]*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	rows, err := t.q.Query(ctx, sqlCallbackListDue, p.Now, p.LeaseUntil, int64(p.Limit))
	if err != nil {
		return nil, t.s.wrap("CallbackListDue", err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, t.s.wrap("CallbackListDue", err)
	}
	slices.SortFunc(runs, func(a, b *Run) int { return cmp.Compare(a.Seq, b.Seq) })
	return runs, nil
}

// CallbackRecord implements store.Tx.
func (t *tx) CallbackRecord(ctx context.Context, ps []store.CallbackRecordParams) ([]bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if err := checkRecords("CallbackRecord", ps); err != nil {
		return nil, err
	}
	out := make([]bool, len(ps))
	for _, idx := range rounds(len(ps), func(i int) string { return ps[i].ID }) {
		rows, err := t.q.Query(ctx, sqlCallbackRecord, recordArgs(ps, idx)...)
		if err != nil {
			return nil, t.s.wrap("CallbackRecord", err)
		}
		applied := map[string]bool{}
		var (
			seqs, retrySeqs []int64
			retryAts        []time.Time
		)
		for rows.Next() {
			var (
				id   string
				seq  int64
				next pgtype.Timestamptz
			)
			if err := rows.Scan(&id, &seq, &next); err != nil {
				rows.Close()
				return nil, t.s.wrap("CallbackRecord", err)
			}
			applied[id] = true
			seqs = append(seqs, seq)
			if next.Valid {
				retrySeqs, retryAts = append(retrySeqs, seq), append(retryAts, next.Time)
			}
		}
		if err := rows.Err(); err != nil {
			return nil, t.s.wrap("CallbackRecord", err)
		}
		if len(seqs) > 0 {
			if retrySeqs == nil {
				retrySeqs, retryAts = []int64{}, []time.Time{}
			}
			if _, err := t.q.Exec(ctx, sqlCallbackRows, seqs, retryAts, retrySeqs); err != nil {
				return nil, t.s.wrap("CallbackRecord", err)
			}
		}
		for _, i := range idx {
			out[i] = applied[ps[i].ID]
		}
	}
	return out, nil
}

// CallbackNextAt implements store.Store.
func (s *Store) CallbackNextAt(ctx context.Context) (time.Time, error) {
	if s.closed.Load() {
		return time.Time{}, errClosed
	}
	var at pgtype.Timestamptz
	if err := s.pool.QueryRow(ctx, sqlCallbackNextAt).Scan(&at); err != nil {
		return time.Time{}, s.wrap("CallbackNextAt", err)
	}
	return tsTime(at), nil
}

// checkRecords refuses delivery outcomes in no known state.
func checkRecords(op string, ps []store.CallbackRecordParams) error {
	for i := range ps {
		switch ps[i].State {
		case store.CallbackDelivered, store.CallbackPending, store.CallbackFailed:
		default:
			return fmt.Errorf("postgres: %s: %q: state %q is not delivered, pending or failed", op, ps[i].ID, ps[i].State)
		}
	}
	return nil
}

// recordArgs are the array arguments of a delivery record statement
// (sqlCallbackRecord, sqlAlertRecord) for the outcomes ps[idx...]: ids,
// attempts, leases, states, next_at, errors, delivered_at.
func recordArgs(ps []store.CallbackRecordParams, idx []int) []any {
	n := len(idx)
	var (
		ids, states, errs   = make([]string, n), make([]string, n), make([]string, n)
		attempts            = make([]int32, n)
		leases              = make([]time.Time, n)
		nextAts, deliveries = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	)
	for j, i := range idx {
		p := &ps[i]
		ids[j], attempts[j], leases[j], states[j], errs[j] = p.ID, int32(p.Attempt), p.Lease, string(p.State), cleanText(p.Error)
		switch p.State {
		case store.CallbackPending:
			nextAts[j] = pgtype.Timestamptz{Time: p.NextAt, Valid: true}
		case store.CallbackDelivered:
			deliveries[j] = pgtype.Timestamptz{Time: p.Now, Valid: true}
		}
	}
	return []any{ids, attempts, leases, states, nextAts, errs, deliveries}
}
