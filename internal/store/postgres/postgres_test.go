package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/postgres"
	"github.com/pluto-sched/pluto/internal/store/storetest"
)

// The tests need a PostgreSQL server: PLUTO_TEST_POSTGRES names the
// database (default below). Each test works in a fresh schema of its own,
// dropped when it ends. Without a reachable server the tests fail under CI
// and are skipped, loudly, elsewhere.

const defaultTestURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

var (
	testURL   string
	reachErr  error // why PostgreSQL cannot be used, if it cannot
	reachOnce sync.Once
)

func TestMain(m *testing.M) {
	testURL = os.Getenv("PLUTO_TEST_POSTGRES")
	if testURL == "" {
		testURL = defaultTestURL
	}
	checkReachable()
	if reachErr != nil && os.Getenv("CI") == "" {
		announce(fmt.Sprintf("\n*** PostgreSQL unreachable at %s: SKIPPING the PostgreSQL tests (%v) ***\n\n", redacted(testURL), reachErr))
	}
	goleak.VerifyTestMain(m)
}

// announce shows msg to whoever runs the tests. go test shows a passing
// package's output only with -v, so the message goes to the terminal when
// there is one, and to stderr otherwise.
func announce(msg string) {
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		fmt.Fprint(tty, msg)
		tty.Close()
		return
	}
	fmt.Fprint(os.Stderr, msg)
}

func redacted(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return raw
}

func checkReachable() {
	reachOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, testURL)
		if err != nil {
			reachErr = err
			return
		}
		reachErr = conn.Ping(ctx)
		conn.Close(ctx)
	})
}

// needPostgres fails (under CI) or skips the test when PostgreSQL cannot
// be reached.
func needPostgres(t testing.TB) {
	t.Helper()
	checkReachable()
	if reachErr == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("PostgreSQL unreachable at %s (CI must run the PostgreSQL tests): %v", redacted(testURL), reachErr)
	}
	t.Skipf("PostgreSQL unreachable at %s: SKIPPING the PostgreSQL tests: %v", redacted(testURL), reachErr)
}

// adminExec runs one statement on a connection of its own.
func adminExec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testURL)
	if err != nil {
		t.Errorf("connect: %v", err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Errorf("%s: %v", sql, err)
	}
}

// freshSchema names a new schema, dropped when the test ends.
func freshSchema(t testing.TB) string {
	t.Helper()
	needPostgres(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "pluto_test_" + hex.EncodeToString(b)
	t.Cleanup(func() { adminExec(t, "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	return schema
}

// openIn opens a store in schema (the store is closed before the schema is
// dropped: cleanups run last registered first).
func openIn(t testing.TB, schema string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), testURL, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openTest(t testing.TB) *postgres.Store { return openIn(t, freshSchema(t)) }

// waitLimit bounds every wait of these tests: a broken store must fail a
// test with a message, not hang it.
const waitLimit = 30 * time.Second

// recv returns the next value from ch, or fails the test if none comes
// within waitLimit.
func recv[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("%s: nothing within %v", what, waitLimit)
		var zero T
		return zero
	}
}

// waitGroup waits for wg, or fails the test if it takes over waitLimit.
func waitGroup(t testing.TB, what string, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	recv(t, what, done)
}

func TestConformance(t *testing.T) {
	needPostgres(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openTest(t)
		postgres.SetFoldEvery(s, 3*time.Millisecond)
		return s
	}, storetest.Options{
		Notifies: true, ConcurrentTx: true, LockRun: postgres.LockRun, Waiting: postgres.Waiting,
		OldestBuckets: postgres.OldestBuckets,
	})
}

func withSchema(t testing.TB, raw, schema string) string {
	t.Helper()
	return withParam(t, raw, "schema", schema)
}

func withParam(t testing.TB, raw, name, value string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(name, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	schema := freshSchema(t)
	for i, u := range []string{
		withSchema(t, testURL, schema),
		strings.Replace(withSchema(t, testURL, schema), "postgres://", "postgresql://", 1),
	} {
		s, err := postgres.OpenURL(ctx, u)
		if err != nil {
			t.Fatalf("OpenURL(%q): %v", u, err)
		}
		if s.Name() != "postgres" || s.Schema() != schema {
			t.Errorf("Name %q Schema %q", s.Name(), s.Schema())
		}
		if err := s.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.RunInsert(ctx, []store.RunInsertParams{{ID: fmt.Sprint("r", i), Type: "t", Group: "g", Status: store.StatusQueued}})
			return err
		}); err != nil {
			t.Errorf("%s: insert: %v", u, err)
		}
		s.Close()
	}
	// Both opens used the same schema, whose tables hold both runs.
	var n int
	conn, err := pgx.Connect(ctx, testURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+schema+".runs").Scan(&n); err != nil || n != 2 {
		t.Errorf("runs in %s: %d, %v", schema, n, err)
	}
	for _, c := range []struct{ url, why string }{
		{"sqlite:x.db", "not a postgres URL"},
		{"host=127.0.0.1 user=postgres", "a DSN is not a URL"},
		{withSchema(t, testURL, "bad-name"), "bad schema name"},
		{withSchema(t, testURL, "1abc"), "schema starts with a digit"},
		{withSchema(t, testURL, strings.Repeat("a", 64)), "schema too long"},
		{withSchema(t, testURL, ""), "empty schema"},
	} {
		if s, err := postgres.OpenURL(ctx, c.url); err == nil {
			s.Close()
			t.Errorf("OpenURL(%q) (%s): no error", c.url, c.why)
		}
	}
	if s, err := postgres.Open(ctx, withSchema(t, testURL, schema), postgres.Options{Schema: "other"}); err == nil {
		s.Close()
		t.Error("Open with different schemas in the URL and the options: no error")
	}
}

// TestDefaultSchema: without a schema, the store uses "pluto".
func TestDefaultSchema(t *testing.T) {
	needPostgres(t)
	var exists bool
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'pluto')").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		t.Cleanup(func() { adminExec(t, "DROP SCHEMA IF EXISTS pluto CASCADE") })
	}
	s, err := postgres.OpenURL(ctx, testURL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Schema() != postgres.DefaultSchema {
		t.Errorf("Schema() = %q", s.Schema())
	}
	var version int64
	if err := conn.QueryRow(ctx, "SELECT max(version_id) FROM pluto.goose_db_version").Scan(&version); err != nil || version < 1 {
		t.Errorf("goose version table in schema pluto: %d, %v", version, err)
	}
}

// TestConcurrentOpen: servers starting at once on a new schema take turns
// to create and migrate it.
func TestConcurrentOpen(t *testing.T) {
	schema := freshSchema(t)
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, 4)
	errs := make([]error, 4)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = postgres.Open(context.Background(), testURL, postgres.Options{Schema: schema})
		}()
	}
	waitGroup(t, "concurrent opens", &wg)
	for i, s := range stores {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		s.Close()
	}
}

// TestReopen: committed runs survive Close; opening a migrated schema works.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	schema := freshSchema(t)
	s := openIn(t, schema)
	if err := s.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.RunInsert(ctx, []store.RunInsertParams{{ID: "r1", Type: "t", Group: "g", Status: store.StatusQueued, Key: "k"}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openIn(t, schema)
	if r, err := s.RunGetByKey(ctx, "k"); err != nil || r.ID != "r1" {
		t.Fatalf("after reopen: %v, %v", r, err)
	}
}

// TestSchemasAreIsolated: two stores in two schemas of one database see
// neither each other's runs nor each other's notifications.
func TestSchemasAreIsolated(t *testing.T) {
	ctx := context.Background()
	a, b := openTest(t), openTest(t)
	heardB := make(chan store.Notification, 100)
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Listen(lctx, func(n store.Notification) { heardB <- n }) }()
	defer func() { cancel(); recv(t, "Listen after cancel", done) }()
	waitHeard(t, b, heardB)
	if err := a.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.RunInsert(ctx, []store.RunInsertParams{{ID: "r1", Type: "t", Group: "g", Status: store.StatusQueued}}); err != nil {
			return err
		}
		return tx.Notify(ctx, store.Notification{Topic: store.TopicQueued, Payload: "from a"})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RunGet(ctx, "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("b sees a's run: %v", err)
	}
	// b's own marker arrives; a's notification never does.
	if err := b.Tx(ctx, func(tx store.Tx) error { return tx.Notify(ctx, store.Notification{Topic: "marker"}) }); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case n := <-heardB:
			if n.Topic == "probe" {
				continue
			}
			if n.Topic != "marker" {
				t.Errorf("b heard %+v", n)
				continue
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatal("b's marker not heard")
		}
	}
}

// waitHeard probes until s's listener (feeding heard) is listening.
func waitHeard(t *testing.T, s *postgres.Store, heard chan store.Notification) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := s.Tx(ctx, func(tx store.Tx) error { return tx.Notify(ctx, store.Notification{Topic: "probe"}) }); err != nil {
			t.Fatal(err)
		}
		select {
		case <-heard:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("listener never heard a probe")
}

// TestTwoServers: two stores on one schema (two servers) share the runs:
// claims race without handing a run out twice, one's notifications reach
// the other, and a finish fenced by server is refused to the server that
// lost the run.
func TestTwoServers(t *testing.T) {
	ctx := context.Background()
	schema := freshSchema(t)
	a, b := openIn(t, schema), openIn(t, schema)
	heard := make(chan store.Notification, 100)
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Listen(lctx, func(n store.Notification) { heard <- n }) }()
	defer func() { cancel(); recv(t, "Listen after cancel", done) }()
	waitHeard(t, b, heard)

	const n = 3000
	ps := make([]store.RunInsertParams, n)
	for i := range ps {
		ps[i] = store.RunInsertParams{ID: fmt.Sprintf("r%05d", i), Type: "t", Group: "g", Status: store.StatusQueued, Now: time.Now()}
	}
	if err := a.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.RunInsert(ctx, ps); err != nil {
			return err
		}
		return tx.Notify(ctx, store.Notification{Topic: store.TopicQueued, Payload: "g"})
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-heard:
		for got.Topic == "probe" {
			got = recv(t, "a's notification after the probes", heard)
		}
		if got != (store.Notification{Topic: store.TopicQueued, Payload: "g"}) {
			t.Errorf("b heard %+v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b did not hear a's notification")
	}

	var (
		mu   sync.Mutex
		seen = map[string]string{}
		wg   sync.WaitGroup
	)
	cctx, ccancel := context.WithTimeout(ctx, waitLimit)
	defer ccancel()
	for i, s := range []*postgres.Store{a, b, a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			server := []string{"srv-a", "srv-b"}[i%2]
			for round := 0; ; round++ {
				if round > n {
					t.Errorf("%s: still claiming after %d claims of %d runs", server, round, n)
					return
				}
				var got []*store.Run
				err := s.Tx(cctx, func(tx store.Tx) error {
					var err error
					got, err = tx.RunClaim(cctx, store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: 37, ServerID: server, Now: time.Now()})
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, r := range got {
					if prev, dup := seen[r.ID]; dup {
						t.Errorf("%s claimed by %s and %s", r.ID, prev, server)
					}
					seen[r.ID] = server
				}
				mu.Unlock()
			}
		}()
	}
	waitGroup(t, "claimers", &wg)
	if len(seen) != n {
		t.Errorf("%d runs claimed, want %d", len(seen), n)
	}
	// b adopts one of a's runs: a's fenced finish is refused, b's accepted.
	var id string
	for rid, srv := range seen {
		if srv == "srv-a" {
			id = rid
			break
		}
	}
	if err := b.Tx(ctx, func(tx store.Tx) error {
		ok, err := tx.RunAdopt(ctx, []store.RunAdoptParams{{ID: id, Attempt: 1, ServerID: "srv-b"}})
		if err == nil && !ok[0] {
			err = errors.New("adopt refused")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s      *postgres.Store
		server string
		want   bool
	}{{a, "srv-a", false}, {b, "srv-b", true}} {
		if err := c.s.Tx(ctx, func(tx store.Tx) error {
			res, err := tx.RunFinish(ctx, []store.RunFinishParams{{ID: id, Attempt: 1, Status: store.StatusSucceeded, ServerID: c.server, Now: time.Now()}})
			if err == nil && res[0].Accepted != c.want {
				t.Errorf("finish by %s: accepted %v, want %v", c.server, res[0].Accepted, c.want)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestListenConnectionLost: Listen returns an error (not the context's)
// when its connection dies, and a new Listen works.
func TestListenConnectionLost(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	heard := make(chan store.Notification, 100)
	done := make(chan error, 1)
	go func() { done <- s.Listen(ctx, func(n store.Notification) { heard <- n }) }()
	waitHeard(t, s, heard)
	adminExec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = 'pluto' AND query LIKE 'LISTEN "pluto_`+s.Schema()+`"%'`)
	select {
	case err := <-done:
		if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, store.ErrClosed) {
			t.Errorf("Listen after its connection died: %v, want a connection error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return after its connection was terminated")
	}
	lctx, cancel := context.WithCancel(ctx)
	go func() { done <- s.Listen(lctx, func(n store.Notification) { heard <- n }) }()
	waitHeard(t, s, heard)
	cancel()
	if err := recv(t, "Listen after cancel", done); !errors.Is(err, context.Canceled) {
		t.Errorf("Listen after cancel: %v", err)
	}
}

// TestCloseEndsListen: Close makes Listen return ErrClosed, and waits for
// it.
func TestCloseEndsListen(t *testing.T) {
	s := openTest(t)
	heard := make(chan store.Notification, 100)
	done := make(chan error, 1)
	go func() { done <- s.Listen(context.Background(), func(n store.Notification) { heard <- n }) }()
	waitHeard(t, s, heard)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("Listen after Close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return after Close")
	}
}

// TestCloseWaitsForTx: Close waits for a transaction in progress, which
// commits.
func TestCloseWaitsForTx(t *testing.T) {
	ctx := context.Background()
	schema := freshSchema(t)
	s := openIn(t, schema)
	inside, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.Tx(ctx, func(tx store.Tx) error {
			if _, err := tx.RunInsert(ctx, []store.RunInsertParams{{ID: "held", Type: "t", Group: "g", Status: store.StatusQueued}}); err != nil {
				return err
			}
			close(inside)
			<-release
			return nil
		})
	}()
	select {
	case <-inside:
	case err := <-done:
		t.Fatalf("Tx: %v", err)
	case <-time.After(waitLimit):
		t.Fatalf("the Tx did not get going within %v", waitLimit)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned during a Tx: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := recv(t, "the held Tx", done); err != nil {
		t.Errorf("Tx: %v", err)
	}
	if err := recv(t, "Close", closed); err != nil {
		t.Errorf("Close: %v", err)
	}
	s2 := openIn(t, schema)
	if _, err := s2.RunGet(ctx, "held"); err != nil {
		t.Errorf("run committed during Close: %v", err)
	}
}

// TestDirtyText: NUL bytes and invalid UTF-8 in free text do not fail the
// transaction.
func TestDirtyText(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	err := s.Tx(ctx, func(tx store.Tx) error {
		res, err := tx.RunInsert(ctx, []store.RunInsertParams{{ID: "r1", Type: "t", Group: "g", Status: store.StatusQueued,
			Payload: []byte("\"a\x00b\xff\"")}})
		if err != nil {
			return err
		}
		if got := string(res[0].Run.Payload); got != "\"a\uFFFDb\uFFFD\"" {
			t.Errorf("payload returned as %q", got)
		}
		if _, err := tx.RunClaim(ctx, store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: 1, ServerID: "s"}); err != nil {
			return err
		}
		if _, err := tx.RunFinish(ctx, []store.RunFinishParams{{ID: "r1", Attempt: 1, Status: store.StatusFailed,
			Error: "bad\x00\xfe", Result: []byte("\x00")}}); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.LogTx(ctx, func(tx store.LogTx) error {
		_, err := tx.LogAppend(ctx, store.LogAppendParams{Lines: []store.LogLine{{RunID: "r1", Attempt: 1, Stream: "stdout", Text: "x\x00y\xc3"}}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.RunGet(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Error != "bad\uFFFD\uFFFD" || string(r.Payload) != "\"a\uFFFDb\uFFFD\"" {
		t.Errorf("stored error %q payload %q", r.Error, r.Payload)
	}
	logs, err := s.LogList(ctx, store.LogListParams{RunID: "r1"})
	if err != nil || len(logs) != 1 || logs[0].Text != "x\uFFFDy\uFFFD" {
		t.Errorf("logs %+v, %v", logs, err)
	}
}
