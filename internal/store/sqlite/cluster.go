package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// The cluster side of the contract. A SQLite database belongs to one
// process (Open takes an flock), so there is one server: it wins every
// election, and its notifications have nobody else to reach. The methods
// are still real — the engine runs the same code on every backend — and
// cost nothing on the run hot path but the server_id condition of a fenced
// start or finish.

// RunAdopt implements store.Tx.
func (t *tx) RunAdopt(ctx context.Context, ps []store.RunAdoptParams) ([]bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	out := make([]bool, len(ps))
	for i := range ps {
		p := &ps[i]
		if p.ServerID == "" {
			return nil, fmt.Errorf("sqlite: RunAdopt: run %q: no server ID", p.ID)
		}
		t.bind()
		t.arg(p.ServerID)
		t.arg(p.ID)
		t.arg(int64(p.Attempt))
		n, _, err := t.exec("RunAdopt", wAdopt)
		if err != nil {
			return nil, err
		}
		out[i] = n > 0
	}
	return out, nil
}

// RunRequeueLost implements store.Tx.
func (t *tx) RunRequeueLost(ctx context.Context, p store.RunRequeueLostParams) ([]*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	// The lost attempts are recorded first: the requeue clears their
	// workers.
	if n, err := t.recordLost(p); err != nil || n == 0 {
		return nil, err
	}
	t.bind()
	t.arg(micro(p.StaleBefore))
	t.arg(int64(p.Limit))
	// The statement returns runCols and the status each run left.
	var runs []*Run
	err := t.query("RunRequeueLost", wRequeueLost, numRunCols+1, func(v []driver.Value) {
		r := decodeRun(v[:numRunCols])
		t.counts.Move(r.Group, r.Job, store.RunStatus(asString(v[numRunCols])), r.Status)
		runs = append(runs, r)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(runs, func(a, b *Run) int { return cmp.Compare(a.Seq, b.Seq) })
	return runs, nil
}

// Notify implements store.Tx. It is a no-op: only this process uses the
// database, and it learns of its own changes without a round trip.
func (t *tx) Notify(ctx context.Context, n store.Notification) error {
	return t.check(ctx)
}

// Listen implements store.Store: there is nobody else to hear from, so it
// waits until ctx ends (and returns its error) or the store is closed
// (ErrClosed).
func (s *Store) Listen(ctx context.Context, fn func(store.Notification)) error {
	if s.closed.Load() {
		return errClosed
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return errClosed
	}
}

// write runs fn in a write transaction on the writer's prepared statements.
func (s *Store) write(ctx context.Context, fn func(t *tx) error) error {
	return s.Tx(ctx, func(stx store.Tx) error {
		t := stx.(*tx)
		if err := t.check(ctx); err != nil {
			return err
		}
		return fn(t)
	})
}

// resignedAt is the expiry a resigned lease gets: before any time a caller
// passes, so the next election takes it (with the next term).
var resignedAt = time.Time{}

func decodeLeader(vals []driver.Value) store.Leader {
	return store.Leader{ServerID: asString(vals[0]), Term: asInt(vals[1]), ExpiresAt: leaseTime(asInt(vals[2]))}
}

// leaseTime decodes an expiry; a resigned lease reads back as the zero time.
func leaseTime(v int64) time.Time {
	if v == micro(resignedAt) {
		return time.Time{}
	}
	return fromMicro(v)
}

// LeaderElect implements store.Store with one upsert under the write lock.
func (s *Store) LeaderElect(ctx context.Context, p store.LeaderElectParams) (store.Leader, error) {
	if p.ServerID == "" {
		return store.Leader{}, errors.New("sqlite: LeaderElect: no server ID")
	}
	if p.TTL <= 0 {
		return store.Leader{}, fmt.Errorf("sqlite: LeaderElect: TTL %v is not positive", p.TTL)
	}
	var (
		l     store.Leader
		found bool
	)
	err := s.write(ctx, func(t *tx) error {
		t.bind()
		t.arg(p.ServerID)
		t.arg(micro(p.Now.Add(p.TTL)))
		t.arg(micro(p.Now))
		get := func(vals []driver.Value) { l, found = decodeLeader(vals), true }
		if err := t.query("LeaderElect", wLeaderElect, 3, get); err != nil || found {
			return err
		}
		// Held by another server: report the holder.
		t.bind()
		return t.query("LeaderElect", wLeaderGet, 3, get)
	})
	if err != nil {
		return store.Leader{}, err
	}
	return l, nil
}

// LeaderResign implements store.Store.
func (s *Store) LeaderResign(ctx context.Context, serverID string, term int64) error {
	return s.write(ctx, func(t *tx) error {
		t.bind()
		t.arg(micro(resignedAt))
		t.arg(serverID)
		t.arg(term)
		_, _, err := t.exec("LeaderResign", wLeaderResign)
		return err
	})
}

// LeaderGet implements store.Store.
func (s *Store) LeaderGet(ctx context.Context) (store.Leader, error) {
	if s.closed.Load() {
		return store.Leader{}, errClosed
	}
	var (
		l       store.Leader
		expires int64
	)
	err := s.rs[rLeaderGet].QueryRowContext(ctx).Scan(&l.ServerID, &l.Term, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Leader{}, nil
	}
	if err != nil {
		return store.Leader{}, s.wrap("LeaderGet", err)
	}
	l.ExpiresAt = leaseTime(expires)
	return l, nil
}

// ServerHeartbeat implements store.Store.
func (s *Store) ServerHeartbeat(ctx context.Context, si store.ServerInfo) error {
	if si.ID == "" {
		return errors.New("sqlite: ServerHeartbeat: no server ID")
	}
	return s.write(ctx, func(t *tx) error {
		t.bind()
		t.arg(si.ID)
		t.arg(si.HTTP)
		t.arg(si.GRPC)
		t.arg(micro(si.StartedAt))
		t.arg(micro(si.LastSeen))
		_, _, err := t.exec("ServerHeartbeat", wServerUpsert)
		return err
	})
}

// ServerList implements store.Store.
func (s *Store) ServerList(ctx context.Context) ([]store.ServerInfo, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.rs[rServerList].QueryContext(ctx)
	if err != nil {
		return nil, s.wrap("ServerList", err)
	}
	defer rows.Close()
	var out []store.ServerInfo
	for rows.Next() {
		var (
			si          store.ServerInfo
			started, at int64
		)
		if err := rows.Scan(&si.ID, &si.HTTP, &si.GRPC, &started, &at); err != nil {
			return nil, s.wrap("ServerList", err)
		}
		si.StartedAt, si.LastSeen = fromMicro(started), fromMicro(at)
		out = append(out, si)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("ServerList", err)
	}
	return out, nil
}

// ServerRemove implements store.Store. Removing an unknown server is not
// an error.
func (s *Store) ServerRemove(ctx context.Context, id string) error {
	return s.write(ctx, func(t *tx) error {
		t.bind()
		t.arg(id)
		_, _, err := t.exec("ServerRemove", wServerDelete)
		return err
	})
}
