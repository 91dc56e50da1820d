package sqlite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/sqlite"
	"github.com/pluto-sched/pluto/internal/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openTest(t testing.TB, opts sqlite.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "pluto.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// The suite checks semantics, not durability: synchronous=NORMAL keeps it
// fast on slow disks. TestDefaults checks that FULL is the default.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, sqlite.Options{Synchronous: "NORMAL"}) },
		storetest.Options{OldestBuckets: sqlite.OldestBuckets})
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, u := range []string{
		"sqlite:" + filepath.Join(dir, "a", "b", "one.db"),
		"sqlite://" + filepath.Join(dir, "c", "two.db"),
		filepath.Join(dir, "d", "three.db"),
		"sqlite:" + filepath.Join(dir, "e", "four.db") + "?synchronous=normal",
		"sqlite:" + filepath.Join(dir, "f", "five.db") + "?synchronous=FULL",
	} {
		s, err := sqlite.OpenURL(ctx, u)
		if err != nil {
			t.Errorf("OpenURL(%q): %v", u, err)
			continue
		}
		if err := s.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.RunInsert(ctx, []store.RunInsertParams{{ID: "r", Type: "t", Group: "g", Status: store.StatusQueued}})
			return err
		}); err != nil {
			t.Errorf("%s: insert: %v", u, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("%s: close: %v", u, err)
		}
	}
	// Open takes any file name, even one that looks like a URI query.
	odd := filepath.Join(dir, "odd dir", "a?b#c%20d.db")
	s, err := sqlite.Open(ctx, odd, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open(%q): %v", odd, err)
	}
	if s.Path() != odd {
		t.Errorf("Path() = %q, want %q", s.Path(), odd)
	}
	s.Close()
	if _, err := os.Stat(odd); err != nil {
		t.Errorf("database file not at %q: %v", odd, err)
	}
	for _, u := range []string{"sqlite:", "sqlite://", "", "sqlite:" + filepath.Join(dir, "x.db") + "?synchronous=off",
		"sqlite:" + filepath.Join(dir, "y.db") + "?cache=shared", ":memory:"} {
		if s, err := sqlite.OpenURL(ctx, u); err == nil {
			s.Close()
			t.Errorf("OpenURL(%q): no error", u)
		}
	}
}

// TestReopen checks that committed runs survive Close and that opening an
// existing database (migrations already applied) works.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pluto.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.RunInsert(ctx, []store.RunInsertParams{{ID: "r1", Type: "t", Group: "g", Status: store.StatusQueued, Key: "k"}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if r, err := s.RunGetByKey(ctx, "k"); err != nil || r.ID != "r1" {
		t.Fatalf("after reopen: %v, %v", r, err)
	}
}

// TestTxWaitsForWriter: a second Tx waits for the first; its context bounds
// the wait; reads do not wait at all.
func TestTxWaitsForWriter(t *testing.T) {
	s := openTest(t, sqlite.Options{Synchronous: "NORMAL"})
	ctx := context.Background()
	insertOne := func(tx store.Tx, id string) error {
		_, err := tx.RunInsert(ctx, []store.RunInsertParams{{ID: id, Type: "t", Group: "g", Status: store.StatusQueued}})
		return err
	}
	if err := s.Tx(ctx, func(tx store.Tx) error { return insertOne(tx, "before") }); err != nil {
		t.Fatal(err)
	}
	inside, release, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- s.Tx(ctx, func(tx store.Tx) error {
			if err := insertOne(tx, "held"); err != nil {
				return err
			}
			close(inside)
			<-release
			return nil
		})
	}()
	recv(t, "the first Tx", inside)

	// Reads go to the reader pool and see the last commit.
	if _, err := s.RunGet(ctx, "before"); err != nil {
		t.Errorf("read while a Tx is open: %v", err)
	}
	if _, err := s.RunGet(ctx, "held"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("uncommitted run visible to a reader: %v", err)
	}

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	ran := false
	err := s.Tx(short, func(tx store.Tx) error { ran = true; return nil })
	if !errors.Is(err, context.DeadlineExceeded) || ran {
		t.Errorf("Tx while the writer is held: %v (fn ran: %v), want DeadlineExceeded", err, ran)
	}

	// A Tx waiting for the writer when Close starts gives up with
	// ErrClosed; Close waits for the Tx in progress.
	waiter := make(chan error)
	go func() { waiter <- s.Tx(ctx, func(tx store.Tx) error { return insertOne(tx, "late") }) }()
	time.Sleep(20 * time.Millisecond)
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	if err := recv(t, "the waiting Tx", waiter); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Tx waiting when Close started: %v, want ErrClosed", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned during a Tx: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := recv(t, "the held Tx", done); err != nil {
		t.Errorf("held Tx: %v", err)
	}
	if err := recv(t, "Close", closed); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestServerIDOnlyWhileActive: ServerID names the server holding the
// current attempt, and is cleared when the run leaves dispatched/running
// (so the active-runs index holds active runs only).
func TestServerIDOnlyWhileActive(t *testing.T) {
	s := openTest(t, sqlite.Options{Synchronous: "NORMAL"})
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tx := func(fn func(tx store.Tx) error) {
		t.Helper()
		if err := s.Tx(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	tx(func(tx store.Tx) error {
		_, err := tx.RunInsert(ctx, []store.RunInsertParams{
			{ID: "a", Type: "t", Group: "g", Status: store.StatusQueued, Now: now},
			{ID: "b", Type: "t", Group: "g", Status: store.StatusQueued, Now: now},
			{ID: "c", Type: "t", Group: "g", Status: store.StatusQueued, Now: now},
		})
		if err != nil {
			return err
		}
		_, err = tx.RunClaim(ctx, store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: 3, ServerID: "srv", Now: now})
		return err
	})
	for _, id := range []string{"a", "b", "c"} {
		if r, _ := s.RunGet(ctx, id); r == nil || r.ServerID != "srv" {
			t.Fatalf("claimed run %s: %+v", id, r)
		}
	}
	tx(func(tx store.Tx) error {
		_, err := tx.RunFinish(ctx, []store.RunFinishParams{
			{ID: "a", Attempt: 1, Status: store.StatusSucceeded, Now: now},
			{ID: "b", Attempt: 1, Status: store.StatusQueued, Now: now},
		})
		if err != nil {
			return err
		}
		_, err = tx.RunCancel(ctx, store.RunCancelParams{ID: "c", Now: now})
		return err
	})
	for _, id := range []string{"a", "b", "c"} {
		if r, _ := s.RunGet(ctx, id); r == nil || r.ServerID != "" {
			t.Errorf("run %s after leaving active: %+v", id, r)
		}
	}
}

// Two processes must never share one database: both would dispatch its
// runs. The second Open fails while the first holds the lock.
func TestOpenLocksTheDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pluto.db")
	a, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := sqlite.Open(context.Background(), path, sqlite.Options{}); err == nil {
		b.Close()
		t.Fatal("a second Open of a database in use succeeded")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	b.Close()
}

// recv returns the next value from ch, or fails the test if none comes
// within 30 s: a broken store must fail a test, not hang it.
func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: nothing within 30s", what)
		var zero T
		return zero
	}
}
