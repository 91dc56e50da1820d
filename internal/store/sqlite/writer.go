package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	"github.com/pluto-sched/pluto/internal/store"
)

// The write path talks to the driver connection directly (through
// sql.Conn.Raw on the one-connection writer pool): statements are prepared
// once per connection and executed with driver values, which skips
// database/sql's argument conversion, result wrapping and per-row Scan
// conversions — about a fifth of the cost of a single-row UPDATE.
//
// Statements run with a context that is never done: with a cancellable
// context the driver starts a watcher goroutine for every statement. Tx
// honours its caller's context while waiting for the writer, and every Tx
// method checks its context before it starts.

// bg is the context of driver calls on the write path.
var bg = context.Background()

// writer is the writer connection's prepared statements. They belong to
// one driver connection (dc); if database/sql ever replaces that
// connection, they are prepared again on the new one.
type writer struct {
	dc    any
	stmts [numWStmts]driver.Stmt
	// counts is reused by every transaction (their deltas are written or
	// dropped before the next one begins): its map keeps its buckets.
	counts store.CountDeltas
	// moved is the buffer of countMoved (stats.go), reused likewise.
	moved []string
	// rates are the throughput and latency deltas (rates.go), reused
	// likewise; pruned is the newest minute whose old buckets were pruned.
	rates  store.RateDeltas
	pruned int64
}

// errRawPanic stands in for a panic while fn runs inside sql.Conn.Raw, so
// that database/sql keeps the connection (the transaction was rolled back).
var errRawPanic = errors.New("sqlite: panic in Tx")

// wconn is one database's writer: its one-connection pool, the semaphore
// a transaction holds, and the connection's prepared statements (guarded
// by sem).
type wconn struct {
	db  *sql.DB
	sem chan struct{}
	wr  *writer
}

// Tx implements store.Store. It runs fn inside BEGIN IMMEDIATE on the
// runs' database's single writer connection and commits before returning.
// Concurrent calls run one after the other; ctx bounds the wait for the
// writer. Tx must not be called from inside fn: the writer is taken, it
// would deadlock. The log lines of the runs it deleted are deleted from
// their own database once it committed (purge, logdb.go).
func (s *Store) Tx(ctx context.Context, fn func(tx store.Tx) error) error {
	var last *tx
	err := s.transact(ctx, &s.main, func(t *tx) error {
		last = t
		if err := fn(t); err != nil {
			return err
		}
		if err := t.flushCounts(); err != nil {
			return err
		}
		if err := t.flushRates(); err != nil {
			return err
		}
		return nil
	})
	if last == nil {
		return err
	}
	if err != nil {
		s.purge.restore(last.cleared)
		return err
	}
	if len(last.purge) > 0 {
		s.purgeLogs(ctx, last.purge)
	}
	return nil
}

// transact runs fn in a write transaction on c and commits it, unless fn
// fails: then it rolls back and returns fn's error.
func (s *Store) transact(ctx context.Context, c *wconn, fn func(t *tx) error) error {
	if s.closed.Load() {
		return errClosed
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("sqlite: waiting for the writer: %w", ctx.Err())
	case <-s.closing:
		return errClosed
	}
	defer func() { <-c.sem }()
	if s.closed.Load() {
		return errClosed
	}
	conn, err := c.db.Conn(bg)
	if err != nil {
		return s.wrap("writer", err)
	}
	defer conn.Close()

	var (
		fnErr    error
		panicked bool
		panicVal any
	)
	err = conn.Raw(func(dc any) error {
		t, err := s.begin(c, dc)
		if err != nil {
			return err
		}
		defer func() {
			t.done = true
			if p := recover(); p != nil {
				_ = t.dtx.Rollback()
				panicked, panicVal = true, p
				fnErr = errRawPanic
			}
		}()
		if err := ctx.Err(); err != nil {
			_ = t.dtx.Rollback()
			return fmt.Errorf("sqlite: %w", err)
		}
		if fnErr = fn(t); fnErr != nil {
			t.done = true
			if err := t.dtx.Rollback(); err != nil {
				return errors.Join(fnErr, s.wrap("rollback", err))
			}
			return nil
		}
		t.done = true
		if err := t.dtx.Commit(); err != nil { // the driver rolls back a failed commit
			return s.wrap("commit", err)
		}
		return nil
	})
	if panicked {
		panic(panicVal)
	}
	if err != nil {
		return err
	}
	return fnErr
}

func (s *Store) begin(c *wconn, dc any) (*tx, error) {
	if c.wr == nil || c.wr.dc != dc {
		// A new connection (the first, or database/sql replaced a bad one).
		// The old statements died with their connection.
		c.wr = &writer{dc: dc}
	}
	cb, ok := dc.(driver.ConnBeginTx)
	if !ok {
		return nil, fmt.Errorf("sqlite: driver connection %T cannot begin transactions", dc)
	}
	dtx, err := cb.BeginTx(bg, driver.TxOptions{}) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return nil, s.wrap("begin", err)
	}
	w := c.wr
	w.counts.Reset() // what a rolled-back transaction left
	w.rates.Reset()
	return &tx{s: s, w: w, dtx: dtx, counts: &w.counts, moved: &w.moved, rates: &w.rates}, nil
}

// close finalizes the writer's statements while their connection is still
// open, folds the WAL back into the database file (so that a closed
// database is one file; best effort, a failure loses nothing) and closes
// the connection.
func (c *wconn) close() error {
	if c.db == nil {
		return nil
	}
	var errs []error
	if c.wr != nil {
		if conn, err := c.db.Conn(bg); err != nil {
			errs = append(errs, err)
		} else {
			errs = append(errs, conn.Raw(func(dc any) error {
				if c.wr.dc != dc {
					return nil
				}
				var errs []error
				for i, st := range c.wr.stmts {
					if st != nil {
						errs = append(errs, st.Close())
						c.wr.stmts[i] = nil
					}
				}
				return errors.Join(errs...)
			}), conn.Close())
		}
	}
	_, _ = c.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return errors.Join(append(errs, c.db.Close())...)
}

// tx is the store.Tx of one Store.Tx call.
type tx struct {
	s    *Store
	w    *writer
	dtx  driver.Tx
	done bool
	args []driver.NamedValue // reused argument buffer
	// counts are the transaction's changes to run_counts, written by
	// flushCounts before COMMIT (stats.go).
	counts *store.CountDeltas
	// moved collects the ids of the runs a start or finish batch applied,
	// for countMoved (stats.go).
	moved *[]string
	// rates are the transaction's throughput and latency deltas, written
	// by flushRates before COMMIT (rates.go).
	rates *store.RateDeltas
	// purge are the runs the transaction deleted, whose log lines go
	// once it committed; cleared are the runs whose log_purge rows it
	// deleted (logdb.go).
	purge, cleared []string
}

var errTxDone = errors.New("sqlite: transaction used after Tx returned")

// check is called first by every Tx method.
func (t *tx) check(ctx context.Context) error {
	if t.done {
		return errTxDone
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}

func (t *tx) stmt(i wStmt) (driver.Stmt, error) {
	if st := t.w.stmts[i]; st != nil {
		return st, nil
	}
	pc, ok := t.w.dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, fmt.Errorf("sqlite: driver connection %T cannot prepare", t.w.dc)
	}
	st, err := pc.PrepareContext(bg, wSQL[i])
	if err != nil {
		return nil, t.s.wrap("prepare", err)
	}
	t.w.stmts[i] = st
	return st, nil
}

// bind starts a new argument list.
func (t *tx) bind() { t.args = t.args[:0] }

// arg appends one argument. v must be a driver.Value: int64, float64,
// bool, []byte, string, time.Time or nil (never a plain int).
func (t *tx) arg(v driver.Value) {
	t.args = append(t.args, driver.NamedValue{Ordinal: len(t.args) + 1, Value: v})
}

// exec runs statement i with the bound arguments.
func (t *tx) exec(op string, i wStmt) (affected, lastID int64, err error) {
	st, err := t.stmt(i)
	if err != nil {
		return 0, 0, err
	}
	res, err := st.(driver.StmtExecContext).ExecContext(bg, t.args)
	if err != nil {
		return 0, 0, t.s.wrap(op, err)
	}
	if affected, err = res.RowsAffected(); err != nil {
		return 0, 0, t.s.wrap(op, err)
	}
	if lastID, err = res.LastInsertId(); err != nil {
		return 0, 0, t.s.wrap(op, err)
	}
	return affected, lastID, nil
}

// queryRuns runs statement i (which selects or returns runCols) with the
// bound arguments and decodes the rows.
func (t *tx) queryRuns(op string, i wStmt) ([]*Run, error) {
	var out []*Run
	err := t.query(op, i, numRunCols, func(vals []driver.Value) { out = append(out, decodeRun(vals)) })
	return out, err
}

// query runs statement i, which returns ncols columns, with the bound
// arguments and calls fn with the values of each row (valid during the
// call only).
func (t *tx) query(op string, i wStmt, ncols int, fn func(vals []driver.Value)) error {
	st, err := t.stmt(i)
	if err != nil {
		return err
	}
	rows, err := st.(driver.StmtQueryContext).QueryContext(bg, t.args)
	if err != nil {
		return t.s.wrap(op, err)
	}
	var buf [numRunCols + 1]driver.Value // runCols and one more (RunRequeueLost)
	vals := buf[:ncols]
	for {
		err := rows.Next(vals)
		if err == io.EOF {
			break
		}
		if err != nil {
			rows.Close()
			return t.s.wrap(op, err)
		}
		fn(vals)
	}
	if err := rows.Close(); err != nil {
		return t.s.wrap(op, err)
	}
	return nil
}
