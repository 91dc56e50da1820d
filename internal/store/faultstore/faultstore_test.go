package faultstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/faultstore"
	"github.com/pluto-sched/pluto/internal/store/sqlite"
	"github.com/pluto-sched/pluto/internal/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "pluto.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// With faults off the wrapper is the store: it passes the conformance
// suite, and with a Bus it delivers notifications like PostgreSQL.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return faultstore.New(openSQLite(t), faultstore.Options{Seed: 1, Bus: faultstore.NewBus()})
	}, storetest.Options{Notifies: true, OldestBuckets: oldestBuckets})
}

// oldestBuckets reads the rate buckets of the wrapped SQLite store from
// its file, on a connection of its own (storetest.Options.OldestBuckets).
func oldestBuckets(ctx context.Context, st store.Store) (minute, hour, latency int64, err error) {
	fs, ok := st.(*faultstore.Store)
	if !ok {
		return 0, 0, 0, fmt.Errorf("oldestBuckets: %T is not a faultstore", st)
	}
	db, err := sql.Open("sqlite", fs.Inner().(*sqlite.Store).Path()+"?mode=ro")
	if err != nil {
		return 0, 0, 0, err
	}
	defer db.Close()
	err = db.QueryRowContext(ctx, `SELECT
		coalesce((SELECT min(bucket) FROM run_rates WHERE res = 60), 0),
		coalesce((SELECT min(bucket) FROM run_rates WHERE res = 3600), 0),
		coalesce((SELECT min(bucket) FROM run_latency), 0)`).Scan(&minute, &hour, &latency)
	return minute, hour, latency, err
}

func insert(ctx context.Context, s store.Store, id string) error {
	return s.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.RunInsert(ctx, []store.RunInsertParams{{
			ID: id, Type: "noop", Group: "g", Status: store.StatusQueued, MaxAttempts: 1, Now: time.Unix(1000, 0),
		}})
		return err
	})
}

// The same seed and the same calls give the same faults; another seed
// gives others.
func TestDeterministic(t *testing.T) {
	ctx := context.Background()
	pattern := func(seed uint64) string {
		fs := faultstore.New(openSQLite(t), faultstore.Options{Seed: seed, Faults: faultstore.Faults{Error: 0.3, Closed: 0.1, CommitError: 0.1}})
		out := ""
		for i := range 60 {
			err := insert(ctx, fs, fmt.Sprintf("r%d", i))
			var f *faultstore.Fault
			switch {
			case err == nil:
				out += "."
			case errors.As(err, &f):
				out += f.Kind.String()[:1]
			default:
				out += "?"
			}
			if _, err := fs.RunGet(ctx, "r0"); err != nil && !errors.Is(err, store.ErrNotFound) {
				out += "R"
			}
		}
		return out
	}
	a, b, c := pattern(7), pattern(7), pattern(8)
	if a != b {
		t.Fatalf("seed 7 twice:\n%s\n%s", a, b)
	}
	if a == c {
		t.Fatalf("seeds 7 and 8 gave the same faults: %s", a)
	}
	for _, k := range []string{"e", "c", "."} {
		if !contains(a, k) {
			t.Errorf("pattern %q has no %q", a, k)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// A commit-then-error commits: the caller gets an error, the observer and
// the store have the write.
func TestCommitError(t *testing.T) {
	ctx := context.Background()
	var commits []faultstore.Commit
	fs := faultstore.New(openSQLite(t), faultstore.Options{
		Seed:     1,
		Faults:   faultstore.Faults{CommitError: 1, Methods: func(m string) bool { return m == "Tx" }},
		OnCommit: func(c faultstore.Commit) { commits = append(commits, c) },
	})
	err := insert(ctx, fs, "r1")
	var f *faultstore.Fault
	if !errors.As(err, &f) || f.Kind != faultstore.KindCommitError {
		t.Fatalf("insert: %v, want a commit error", err)
	}
	if _, err := fs.RunGet(ctx, "r1"); err != nil {
		t.Fatalf("the committed run: %v", err)
	}
	if len(commits) != 1 || commits[0].Reported == nil || len(commits[0].Calls) != 1 || commits[0].Calls[0].Method != "RunInsert" {
		t.Fatalf("observed %+v", commits)
	}
	if st := fs.Stats(); st.Commits != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A failed call inside a transaction rolls it back: nothing of it is
// stored or observed.
func TestTxCallErrorRollsBack(t *testing.T) {
	ctx := context.Background()
	observed := 0
	fs := faultstore.New(openSQLite(t), faultstore.Options{
		Seed:     1,
		Faults:   faultstore.Faults{Error: 1, Methods: func(m string) bool { return m == "Tx.RunClaim" }},
		OnCommit: func(faultstore.Commit) { observed++ },
	})
	err := fs.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.RunInsert(ctx, []store.RunInsertParams{{ID: "r1", Type: "noop", Group: "g", Status: store.StatusQueued, MaxAttempts: 1, Now: time.Unix(1000, 0)}}); err != nil {
			return err
		}
		_, err := tx.RunClaim(ctx, store.RunClaimParams{Group: "g", Types: []string{"noop"}, Limit: 1, ServerID: "s", Now: time.Unix(1001, 0)})
		return err
	})
	var f *faultstore.Fault
	if !errors.As(err, &f) || f.Method != "Tx.RunClaim" || f.Kind != faultstore.KindError {
		t.Fatalf("tx: %v, want an injected RunClaim error", err)
	}
	if _, err := fs.RunGet(ctx, "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the rolled back run: %v", err)
	}
	if observed != 0 {
		t.Fatalf("observed %d commits of a rolled back transaction", observed)
	}
	// Faults off: it works.
	fs.SetFaults(faultstore.Faults{})
	if err := insert(ctx, fs, "r1"); err != nil || observed != 1 {
		t.Fatalf("insert without faults: %v (observed %d)", err, observed)
	}
}

// A closed connection looks like one (sql.ErrConnDone) and never like a
// store answer.
func TestClosedConnection(t *testing.T) {
	ctx := context.Background()
	fs := faultstore.New(openSQLite(t), faultstore.Options{Seed: 1, Faults: faultstore.Faults{Closed: 1}})
	_, err := fs.RunGet(ctx, "nope")
	if !errors.Is(err, sql.ErrConnDone) {
		t.Fatalf("RunGet: %v, want sql.ErrConnDone", err)
	}
	for _, sentinel := range []error{store.ErrNotFound, store.ErrConflict, store.ErrClosed} {
		if errors.Is(err, sentinel) {
			t.Fatalf("an injected fault matches %v", sentinel)
		}
	}
	if err := fs.Listen(ctx, func(store.Notification) {}); !errors.Is(err, sql.ErrConnDone) {
		t.Fatalf("Listen: %v, want a lost connection at once", err)
	}
}

// Latency is a sleep on the clock: inside a synctest bubble, fake time.
func TestLatencyOnFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		fs := faultstore.New(openSQLite(t), faultstore.Options{Seed: 3, Faults: faultstore.Faults{Latency: 1, MaxLatency: time.Second}})
		start := time.Now()
		for i := range 10 {
			if err := insert(ctx, fs, fmt.Sprintf("r%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		took := time.Since(start)
		st := fs.Stats()
		if st.Delays != 20 || took != st.Delay {
			t.Fatalf("took %v with stats %+v: want 20 delays (Tx and Tx.RunInsert) adding up to the time taken", took, st)
		}
		// Slow limits latency to some methods.
		fs.SetFaults(faultstore.Faults{Latency: 1, MaxLatency: time.Second, Slow: func(m string) bool { return m != "RunGet" }})
		before := time.Now()
		if _, err := fs.RunGet(ctx, "r1"); err != nil {
			t.Fatal(err)
		}
		if time.Since(before) != 0 {
			t.Fatalf("RunGet was delayed %v although Slow excludes it", time.Since(before))
		}
		// A caller that gives up stops waiting.
		fs.SetFaults(faultstore.Faults{Latency: 1, MaxLatency: time.Second})
		cctx, cancel := context.WithTimeout(ctx, time.Microsecond)
		defer cancel()
		if _, err := fs.RunGet(cctx, "r1"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("RunGet with an expired context: %v", err)
		}
	})
}

// The Bus delivers on commit only, to every listener.
func TestBus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		bus := faultstore.NewBus()
		inner := openSQLite(t)
		a := faultstore.New(inner, faultstore.Options{Seed: 1, Bus: bus})
		b := faultstore.New(inner, faultstore.Options{Seed: 2, Bus: bus})
		var got []string
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = b.Listen(ctx, func(n store.Notification) { got = append(got, n.Topic+":"+n.Payload) })
		}()
		synctest.Wait()
		_ = a.Tx(ctx, func(tx store.Tx) error {
			_ = tx.Notify(ctx, store.Notification{Topic: "queued", Payload: "rolled-back"})
			return errors.New("roll back")
		})
		if err := a.Tx(ctx, func(tx store.Tx) error {
			return tx.Notify(ctx, store.Notification{Topic: "queued", Payload: "g1"})
		}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		cancel()
		<-done
		if len(got) != 1 || got[0] != "queued:g1" {
			t.Fatalf("heard %v, want only the committed notification", got)
		}
	})
}
