package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/internal/store"
)

// beginSQL starts a write transaction. Every statement of the write path
// finds its rows through an index: by run ID, by seq, or in the order of
// a partial index. The planner does not always know it — its estimates
// come from statistics that lag a queue's churn (a table that was small at
// the last ANALYZE looks cheap to scan in full, and a full scan under a
// hash join is a disaster for a batch of 500 updates in a table of a
// million runs) — so the write transactions tell it: no sequential scans,
// no hash or merge joins. Sent in the one round trip that begins the
// transaction.
const beginSQL = `BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE;
	SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off`

// Tx implements store.Store: fn runs inside one transaction (READ
// COMMITTED) on a pooled connection, which commits before Tx returns.
// Notifications fn published are sent with the COMMIT, in the same round
// trip, so PostgreSQL delivers them when (and only if) the transaction
// commits.
func (s *Store) Tx(ctx context.Context, fn func(tx store.Tx) error) (err error) {
	if s.closed.Load() {
		return errClosed
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.wrap("begin", err)
	}
	// A connection released inside a transaction (a failed commit, a
	// statement cut by ctx) is closed by the pool, not reused.
	defer conn.Release()
	if _, err := conn.Exec(ctx, beginSQL); err != nil {
		return s.wrap("begin", err)
	}
	t := &tx{s: s, q: conn.Conn()}
	rollback := func() error {
		_, err := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		return err
	}
	defer func() {
		t.done = true
		if p := recover(); p != nil {
			_ = rollback()
			panic(p)
		}
	}()
	if fnErr := fn(t); fnErr != nil {
		t.done = true
		if rbErr := rollback(); rbErr != nil {
			return errors.Join(fnErr, s.wrap("rollback", rbErr))
		}
		return fnErr
	}
	t.done = true
	if _, err := conn.Exec(ctx, t.countsSQL()+t.notifySQL()+"COMMIT"); err != nil {
		_ = rollback() // after a failed statement COMMIT is not reached
		return s.wrap("commit", err)
	}
	return nil
}

// LogTx implements store.Store: log lines go in an ordinary transaction
// (PostgreSQL has many writers; the runs' rows a LogAppend reads are
// locked, so the fence holds until the commit).
func (s *Store) LogTx(ctx context.Context, fn func(tx store.LogTx) error) error {
	return s.Tx(ctx, func(t store.Tx) error { return fn(t.(*tx)) })
}

// tx is the store.Tx of one Store.Tx call.
type tx struct {
	s     *Store
	q     *pgx.Conn
	done  bool
	notes []string // encoded notifications, in publication order, without duplicates
	seen  map[string]struct{}
	// counts are the transaction's changes to the run counters, sent
	// with COMMIT (stats.go).
	counts store.CountDeltas
	// rates are its throughput and latency deltas, sent likewise
	// (rates.go).
	rates store.RateDeltas
}

var errTxDone = errors.New("postgres: transaction used after Tx returned")

// check is called first by every Tx method.
func (t *tx) check(ctx context.Context) error {
	if t.done {
		return errTxDone
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}
