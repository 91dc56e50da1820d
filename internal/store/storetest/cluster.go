package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// The cluster side of the contract: runs held by servers (fencing by
// server, adoption, requeue of a lost server's runs), the leader lease,
// server registrations and notifications.

func claimFor(t *testing.T, s store.Store, server string, limit int) []*store.Run {
	t.Helper()
	return claim(t, s, store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: limit, ServerID: server})
}

func adopt(t *testing.T, s store.Store, ps ...store.RunAdoptParams) []bool {
	t.Helper()
	var ok []bool
	tx(t, s, func(tx store.Tx) error {
		var err error
		ok, err = tx.RunAdopt(ctx, ps)
		return err
	})
	if len(ok) != len(ps) {
		t.Fatalf("RunAdopt returned %d results for %d", len(ok), len(ps))
	}
	return ok
}

// testFencedByServer: a start or finish that names a server applies only
// while that server holds the run; one that names none is not fenced.
func testFencedByServer(t *testing.T, s store.Store) {
	insert(t, s, params("r1"), params("r2"), params("r3"))
	diffIDs(t, "claim", []string{"r1", "r2", "r3"}, claimFor(t, s, "srv-1", 10))
	t1 := t0.Add(time.Second)

	ok := start(t, s,
		store.RunStartParams{ID: "r1", Attempt: 1, WorkerID: "w2", ServerID: "srv-2", Now: t1},
		store.RunStartParams{ID: "r2", Attempt: 1, WorkerID: "w1", ServerID: "srv-1", Now: t1},
		store.RunStartParams{ID: "r3", Attempt: 1, WorkerID: "w1", Now: t1}, // not fenced
	)
	if want := []bool{false, true, true}; fmt.Sprint(ok) != fmt.Sprint(want) {
		t.Errorf("RunStart = %v, want %v", ok, want)
	}
	if r := get(t, s, "r1"); r.Status != store.StatusDispatched || r.WorkerID != "" || !r.StartedAt.IsZero() {
		t.Errorf("r1 changed by another server's start: %s worker %q started %v", r.Status, r.WorkerID, r.StartedAt)
	}
	if ok := start(t, s, store.RunStartParams{ID: "r1", Attempt: 1, WorkerID: "w1", ServerID: "srv-1", Now: t1}); !ok[0] {
		t.Error("start by the holding server rejected")
	}

	// Another server adopts r3; the first server's reports are rejected.
	if ok := adopt(t, s, store.RunAdoptParams{ID: "r3", Attempt: 1, ServerID: "srv-2"}); !ok[0] {
		t.Fatal("adopt of r3 rejected")
	}
	res := finish(t, s,
		store.RunFinishParams{ID: "r1", Attempt: 1, Status: store.StatusSucceeded, ServerID: "srv-2", Now: t1},
		store.RunFinishParams{ID: "r2", Attempt: 1, Status: store.StatusSucceeded, ServerID: "srv-1", Now: t1},
		store.RunFinishParams{ID: "r3", Attempt: 1, Status: store.StatusFailed, Failure: true, ServerID: "srv-1", Now: t1},
	)
	if got, want := accepted(res), []bool{false, true, false}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("RunFinish = %v, want %v", got, want)
	}
	if r := get(t, s, "r1"); r.Status != store.StatusRunning || r.ServerID != "srv-1" {
		t.Errorf("r1 after another server's finish: %s server %q", r.Status, r.ServerID)
	}
	if r := get(t, s, "r3"); r.Status != store.StatusRunning || r.Failures != 0 || r.ServerID != "srv-2" {
		t.Errorf("r3 after the old server's finish: %s failures %d server %q", r.Status, r.Failures, r.ServerID)
	}
	res = finish(t, s,
		store.RunFinishParams{ID: "r1", Attempt: 1, Status: store.StatusSucceeded, ServerID: "srv-1", Now: t1},
		store.RunFinishParams{ID: "r3", Attempt: 1, Status: store.StatusQueued, ServerID: "srv-2", Now: t1},
	)
	if got, want := accepted(res), []bool{true, true}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("RunFinish by the holders = %v, want %v", got, want)
	}
	// A fenced start of a run nobody holds (queued) is rejected.
	if ok := start(t, s, store.RunStartParams{ID: "r3", Attempt: 1, ServerID: "srv-2", Now: t1}); ok[0] {
		t.Error("fenced start of a queued run applied")
	}
}

func accepted(res []store.RunFinishResult) []bool {
	out := make([]bool, len(res))
	for i, r := range res {
		out[i] = r.Accepted
	}
	return out
}

func testAdopt(t *testing.T, s store.Store) {
	insert(t, s, params("d"), params("r"), params("stale"), params("done"))
	claimFor(t, s, "old", 10)
	start(t, s, store.RunStartParams{ID: "r", Attempt: 1, WorkerID: "w1", Now: t0})
	finishOne(t, s, store.RunFinishParams{ID: "done", Attempt: 1, Status: store.StatusSucceeded, Now: t0})
	finishOne(t, s, store.RunFinishParams{ID: "stale", Attempt: 1, Status: store.StatusQueued, Now: t0})
	claimFor(t, s, "old", 10) // stale: attempt 2
	insert(t, s, params("queued"))
	before := map[string]*store.Run{}
	for _, id := range []string{"d", "r", "stale", "done", "queued"} {
		before[id] = get(t, s, id)
	}

	ok := adopt(t, s,
		store.RunAdoptParams{ID: "d", Attempt: 1, ServerID: "new"},
		store.RunAdoptParams{ID: "r", Attempt: 1, ServerID: "new"},
		store.RunAdoptParams{ID: "stale", Attempt: 1, ServerID: "new"}, // attempt 2 is current
		store.RunAdoptParams{ID: "done", Attempt: 1, ServerID: "new"},  // terminal
		store.RunAdoptParams{ID: "queued", Attempt: 0, ServerID: "new"},
		store.RunAdoptParams{ID: "missing", Attempt: 1, ServerID: "new"},
	)
	if want := []bool{true, true, false, false, false, false}; fmt.Sprint(ok) != fmt.Sprint(want) {
		t.Errorf("RunAdopt = %v, want %v", ok, want)
	}
	for id, b := range before {
		want := *b
		if id == "d" || id == "r" {
			want.ServerID = "new" // nothing else changes
		}
		diffRun(t, "after adopt: "+id, &want, get(t, s, id))
	}
	list := func(srv string) []*store.Run {
		runs, err := s.RunListActive(ctx, store.RunListActiveParams{ServerID: srv})
		if err != nil {
			t.Fatal(err)
		}
		return sortedByID(runs, "d", "r", "stale")
	}
	diffIDs(t, "active on new", []string{"d", "r"}, list("new"))
	diffIDs(t, "active on old", []string{"stale"}, list("old"))
	// Adopting again (the same server, or back) is fine.
	if ok := adopt(t, s, store.RunAdoptParams{ID: "d", Attempt: 1, ServerID: "new"}, store.RunAdoptParams{ID: "r", Attempt: 1, ServerID: "old"}); !ok[0] || !ok[1] {
		t.Errorf("re-adopt = %v", ok)
	}
	diffIDs(t, "active on old after re-adopt", []string{"r", "stale"}, list("old"))
	if ok := adopt(t, s); len(ok) != 0 {
		t.Errorf("empty adopt returned %v", ok)
	}
}

func heartbeat(t *testing.T, s store.Store, id string, lastSeen time.Time) {
	t.Helper()
	if err := s.ServerHeartbeat(ctx, store.ServerInfo{ID: id, HTTP: id + ":7070", GRPC: id + ":7071", StartedAt: t0.Add(-time.Hour), LastSeen: lastSeen}); err != nil {
		t.Fatalf("ServerHeartbeat(%s): %v", id, err)
	}
}

func requeueLost(t *testing.T, s store.Store, staleBefore time.Time, limit int) []*store.Run {
	t.Helper()
	var runs []*store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		runs, err = tx.RunRequeueLost(ctx, store.RunRequeueLostParams{StaleBefore: staleBefore, Limit: limit, Now: staleBefore.Add(time.Minute)})
		return err
	})
	return runs
}

func testRequeueLost(t *testing.T, s store.Store) {
	cut := t0.Add(-30 * time.Second)
	heartbeat(t, s, "fresh", t0)
	heartbeat(t, s, "edge", cut) // last seen exactly at the cut-off: alive
	heartbeat(t, s, "stale", t0.Add(-time.Minute))
	// One run per server, claimed in insertion order.
	servers := []string{"fresh", "stale", "unknown", "stale", "edge", "stale", "stale"}
	var ps []store.RunInsertParams
	for i := range servers {
		ps = append(ps, params(runID(i)))
	}
	insert(t, s, ps...)
	for _, srv := range servers {
		if got := claimFor(t, s, srv, 1); len(got) != 1 {
			t.Fatalf("claim for %s: %v", srv, ids(got))
		}
	}
	// 3 runs on worker w1 and fails once on its way; 5 succeeds; 6 is
	// handed back (queued, not active): neither is lost.
	start(t, s, store.RunStartParams{ID: runID(3), Attempt: 1, WorkerID: "w1", Now: t0})
	finishOne(t, s, store.RunFinishParams{ID: runID(5), Attempt: 1, Status: store.StatusSucceeded, Now: t0})
	finishOne(t, s, store.RunFinishParams{ID: runID(6), Attempt: 1, Status: store.StatusQueued, Now: t0})
	insert(t, s, params("queued"))
	before := map[string]*store.Run{}
	for _, id := range []string{runID(1), runID(2), runID(3)} {
		before[id] = get(t, s, id)
	}

	got := requeueLost(t, s, cut, 100)
	diffIDs(t, "requeued", []string{runID(1), runID(2), runID(3)}, got)
	for _, r := range got {
		want := *before[r.ID]
		want.Status = store.StatusQueued
		want.ServerID = ""
		want.WorkerID = ""
		diffRun(t, "requeued run "+r.ID, &want, r)
		diffRun(t, "requeued run "+r.ID+" RunGet", &want, get(t, s, r.ID))
	}
	for id, st := range map[string]store.RunStatus{runID(0): store.StatusDispatched, runID(4): store.StatusDispatched,
		runID(5): store.StatusSucceeded, runID(6): store.StatusQueued, "queued": store.StatusQueued} {
		if r := get(t, s, id); r.Status != st || r.Attempt > 1 {
			t.Errorf("%s: %s attempt %d, want %s", id, r.Status, r.Attempt, st)
		}
	}
	diffIDs(t, "requeue again", nil, requeueLost(t, s, cut, 100))

	// The lost attempt is fenced off: the next claim is attempt 2 and the
	// old attempt's reports are rejected.
	again := claimFor(t, s, "fresh", 100)
	diffIDs(t, "claim after requeue", []string{runID(1), runID(2), runID(3), runID(6), "queued"}, again)
	for _, r := range again[:3] {
		if r.Attempt != 2 {
			t.Errorf("%s claimed with attempt %d, want 2", r.ID, r.Attempt)
		}
	}
	if finishOne(t, s, store.RunFinishParams{ID: runID(3), Attempt: 1, Status: store.StatusSucceeded, Now: t0}) {
		t.Error("a report for the lost attempt was accepted")
	}

	// A server that stops heartbeating loses its runs too; one removed
	// from the table likewise.
	if err := s.ServerRemove(ctx, "edge"); err != nil {
		t.Fatal(err)
	}
	diffIDs(t, "after edge is removed", []string{runID(4)}, requeueLost(t, s, cut, 100))
	diffIDs(t, "fresh goes stale", []string{runID(0), runID(1), runID(2), runID(3), runID(6), "queued"},
		requeueLost(t, s, t0.Add(time.Second), 100))
}

func testRequeueLostLimit(t *testing.T, s store.Store) {
	var ps []store.RunInsertParams
	for i := range 5 {
		ps = append(ps, params(runID(i)))
	}
	insert(t, s, ps...)
	claimFor(t, s, "gone", 3)
	claimFor(t, s, "gone-too", 2)
	diffIDs(t, "limit 0", nil, requeueLost(t, s, t0, 0))
	diffIDs(t, "limit 2", []string{runID(0), runID(1)}, requeueLost(t, s, t0, 2))
	diffIDs(t, "limit 2 again", []string{runID(2), runID(3)}, requeueLost(t, s, t0, 2))
	diffIDs(t, "the rest", []string{runID(4)}, requeueLost(t, s, t0, 2))
}

func elect(t *testing.T, s store.Store, server string, ttl time.Duration, now time.Time) store.Leader {
	t.Helper()
	l, err := s.LeaderElect(ctx, store.LeaderElectParams{ServerID: server, TTL: ttl, Now: now})
	if err != nil {
		t.Fatalf("LeaderElect(%s at %v): %v", server, now, err)
	}
	return l
}

func leaderGet(t *testing.T, s store.Store) store.Leader {
	t.Helper()
	l, err := s.LeaderGet(ctx)
	if err != nil {
		t.Fatalf("LeaderGet: %v", err)
	}
	return l
}

func diffLeader(t *testing.T, what string, want, got store.Leader) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s: leader mismatch (-want +got):\n%s", what, d)
	}
}

func testLeader(t *testing.T, s store.Store) {
	const ttl = 10 * time.Second
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	diffLeader(t, "never elected", store.Leader{}, leaderGet(t, s))

	steps := []struct {
		what   string
		server string
		now    int
		want   store.Leader
	}{
		{"first election", "a", 0, store.Leader{ServerID: "a", Term: 1, ExpiresAt: at(10)}},
		{"renewal keeps the term", "a", 5, store.Leader{ServerID: "a", Term: 1, ExpiresAt: at(15)}},
		{"another server cannot take an unexpired lease", "b", 6, store.Leader{ServerID: "a", Term: 1, ExpiresAt: at(15)}},
		{"nor just before it expires", "b", 14, store.Leader{ServerID: "a", Term: 1, ExpiresAt: at(15)}},
		{"it takes it at expiry with the next term", "b", 15, store.Leader{ServerID: "b", Term: 2, ExpiresAt: at(25)}},
		{"the old leader cannot take it back", "a", 16, store.Leader{ServerID: "b", Term: 2, ExpiresAt: at(25)}},
		{"renewal by the new leader", "b", 20, store.Leader{ServerID: "b", Term: 2, ExpiresAt: at(30)}},
		{"a lapsed lease retaken by its holder is a new term", "b", 31, store.Leader{ServerID: "b", Term: 3, ExpiresAt: at(41)}},
		{"and renewed", "b", 40, store.Leader{ServerID: "b", Term: 3, ExpiresAt: at(50)}},
		{"the other takes it after it lapses", "a", 60, store.Leader{ServerID: "a", Term: 4, ExpiresAt: at(70)}},
	}
	for _, st := range steps {
		diffLeader(t, st.what, st.want, elect(t, s, st.server, ttl, at(st.now)))
		diffLeader(t, st.what+" (LeaderGet)", st.want, leaderGet(t, s))
	}

	// Times are kept to the microsecond; zones do not matter.
	ns := time.Date(2027, 1, 2, 3, 4, 5, 678901234, time.FixedZone("X", 3600))
	got := elect(t, s, "c", 1500*time.Millisecond, ns)
	want := store.Leader{ServerID: "c", Term: 5, ExpiresAt: ns.Add(1500 * time.Millisecond).Truncate(time.Microsecond)}
	if got.ServerID != want.ServerID || got.Term != want.Term || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("elect with nanoseconds: %+v, want %+v", got, want)
	}
}

func testLeaderResign(t *testing.T, s store.Store) {
	const ttl = time.Minute
	if err := s.LeaderResign(ctx, "a", 1); err != nil {
		t.Fatalf("resign with no lease: %v", err)
	}
	diffLeader(t, "after resigning nothing", store.Leader{}, leaderGet(t, s))
	l := elect(t, s, "a", ttl, t0)
	if l.ServerID != "a" || l.Term != 1 {
		t.Fatalf("first election: %+v", l)
	}
	// Only the holder at its term can resign.
	for _, c := range []struct {
		server string
		term   int64
	}{{"b", 1}, {"a", 2}, {"a", 0}} {
		if err := s.LeaderResign(ctx, c.server, c.term); err != nil {
			t.Fatalf("LeaderResign(%s, %d): %v", c.server, c.term, err)
		}
		diffLeader(t, fmt.Sprintf("after LeaderResign(%s, %d)", c.server, c.term), l, leaderGet(t, s))
	}
	if err := s.LeaderResign(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	got := leaderGet(t, s)
	if got.ServerID != "a" || got.Term != 1 || !got.ExpiresAt.Before(t0) {
		t.Errorf("after resigning: %+v, want a's term 1, expired", got)
	}
	// The next election, well inside the old TTL, takes the next term.
	diffLeader(t, "election after resign", store.Leader{ServerID: "b", Term: 2, ExpiresAt: t0.Add(2 * time.Second).Add(ttl)},
		elect(t, s, "b", ttl, t0.Add(2*time.Second)))
	if err := s.LeaderResign(ctx, "b", 2); err != nil {
		t.Fatal(err)
	}
	diffLeader(t, "the resigned leader elected again", store.Leader{ServerID: "b", Term: 3, ExpiresAt: t0.Add(3 * time.Second).Add(ttl)},
		elect(t, s, "b", ttl, t0.Add(3*time.Second)))
}

// testLeaderConcurrent has 8 servers elect 50 times each, concurrently, on
// a shared fake clock that steps with every call: the lease changes hands
// often, and no term is ever won by two servers.
func testLeaderConcurrent(t *testing.T, s store.Store) {
	const (
		servers = 8
		rounds  = 50
		step    = 100 * time.Millisecond
		ttl     = 10 * step
	)
	var (
		clock   atomic.Int64
		mu      sync.Mutex
		winners = map[int64]map[string]bool{} // term → servers that held it
		maxTerm int64
		wg      sync.WaitGroup
		dctx    = deadlineCtx(t)
	)
	for i := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("srv-%d", i)
			for r := range rounds {
				now := t0.Add(time.Duration(clock.Add(1)) * step)
				l, err := s.LeaderElect(dctx, store.LeaderElectParams{ServerID: id, TTL: ttl, Now: now})
				if err != nil {
					t.Errorf("%s round %d: %v", id, r, err)
					return
				}
				if l.Term <= 0 || l.ServerID == "" {
					t.Errorf("%s round %d: no leader after an election: %+v", id, r, l)
					return
				}
				mu.Lock()
				if winners[l.Term] == nil {
					winners[l.Term] = map[string]bool{}
				}
				winners[l.Term][l.ServerID] = true
				maxTerm = max(maxTerm, l.Term)
				mu.Unlock()
				if l.ServerID == id && r%7 == 6 {
					// Let the lease lapse now and then: skip ahead.
					clock.Add(int64(ttl / step))
				}
			}
		}()
	}
	waitAll(t, "electing servers", &wg)
	for term, ws := range winners {
		if len(ws) != 1 {
			t.Errorf("term %d held by %d servers: %v", term, len(ws), ws)
		}
	}
	if len(winners) < 2 {
		t.Errorf("the lease never changed hands: terms %v", winners)
	}
	if l := leaderGet(t, s); l.Term != maxTerm {
		t.Errorf("LeaderGet term %d, want the highest term seen, %d", l.Term, maxTerm)
	}
}

func testServers(t *testing.T, s store.Store) {
	list := func() []store.ServerInfo {
		t.Helper()
		got, err := s.ServerList(ctx)
		if err != nil {
			t.Fatalf("ServerList: %v", err)
		}
		return got
	}
	if got := list(); len(got) != 0 {
		t.Errorf("no servers yet: %+v", got)
	}
	ns := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", -7*3600))
	a := store.ServerInfo{ID: "a", HTTP: "10.0.0.1:7070", GRPC: "10.0.0.1:7071", StartedAt: ns, LastSeen: ns.Add(time.Second)}
	c := store.ServerInfo{ID: "c", HTTP: "c:1", GRPC: "c:2", StartedAt: t0, LastSeen: t0}
	b := store.ServerInfo{ID: "b", StartedAt: t0, LastSeen: t0} // no addresses
	for _, si := range []store.ServerInfo{a, c, b} {
		if err := s.ServerHeartbeat(ctx, si); err != nil {
			t.Fatalf("ServerHeartbeat(%s): %v", si.ID, err)
		}
	}
	trunc := func(si store.ServerInfo) store.ServerInfo {
		si.StartedAt = si.StartedAt.Truncate(time.Microsecond)
		si.LastSeen = si.LastSeen.Truncate(time.Microsecond)
		return si
	}
	diffServers := func(what string, want, got []store.ServerInfo) {
		t.Helper()
		for i := range want {
			want[i] = trunc(want[i])
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", what, d)
		}
	}
	diffServers("three servers, by ID", []store.ServerInfo{a, b, c}, list())

	// A heartbeat renews LastSeen (and whatever else changed).
	a.LastSeen = ns.Add(time.Minute)
	a.HTTP = "10.0.0.9:7070"
	if err := s.ServerHeartbeat(ctx, a); err != nil {
		t.Fatal(err)
	}
	diffServers("after a heartbeat", []store.ServerInfo{a, b, c}, list())

	if err := s.ServerRemove(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.ServerRemove(ctx, "nope"); err != nil {
		t.Errorf("removing an unknown server: %v", err)
	}
	diffServers("after removing b", []store.ServerInfo{a, c}, list())
}

// testNotify: notifications reach Listen after commit, never after a
// rollback. For a backend that does not deliver, Notify is still accepted
// and Listen ends with its context.
func testNotify(t *testing.T, s store.Store, opts Options) {
	if !opts.Notifies {
		tx(t, s, func(tx store.Tx) error {
			return tx.Notify(ctx, store.Notification{Topic: store.TopicQueued, Payload: "g"})
		})
		lctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- s.Listen(lctx, func(store.Notification) {}) }()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Listen returned %v, want nil or the context's error", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Listen did not return after its context ended")
		}
		return
	}

	got := make(chan store.Notification, 10000)
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Listen(lctx, func(n store.Notification) { got <- n }) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Listen returned %v after its context was cancelled, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Listen did not return after its context was cancelled")
		}
	}()
	notify := func(ns ...store.Notification) {
		t.Helper()
		tx(t, s, func(tx store.Tx) error {
			for _, n := range ns {
				if err := tx.Notify(ctx, n); err != nil {
					return err
				}
			}
			return nil
		})
	}
	// next returns the next notification, skipping probes.
	next := func(what string) store.Notification {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case n := <-got:
				if n.Topic == "probe" {
					continue
				}
				return n
			case err := <-done:
				t.Fatalf("%s: Listen returned %v", what, err)
			case <-timeout:
				t.Fatalf("%s: no notification within 10s", what)
			}
		}
	}
	// Listen has no "ready" signal: probe until one arrives.
	func() {
		deadline := time.After(10 * time.Second)
		for i := 0; ; i++ {
			notify(store.Notification{Topic: "probe", Payload: fmt.Sprint(i)})
			select {
			case n := <-got:
				if n.Topic != "probe" {
					t.Fatalf("unexpected notification %+v", n)
				}
				return
			case err := <-done:
				t.Fatalf("Listen returned %v", err)
			case <-deadline:
				t.Fatal("no probe heard within 10s")
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	// Nothing is heard before the commit.
	tx(t, s, func(tx store.Tx) error {
		if err := tx.Notify(ctx, store.Notification{Topic: store.TopicQueued, Payload: "g1"}); err != nil {
			return err
		}
		select {
		case n := <-got:
			if n.Topic != "probe" {
				t.Errorf("notification %+v heard before commit", n)
			}
		case <-time.After(100 * time.Millisecond):
		}
		return nil
	})
	if n := next("after commit"); n != (store.Notification{Topic: store.TopicQueued, Payload: "g1"}) {
		t.Errorf("got %+v, want queued g1", n)
	}

	// A rolled back transaction publishes nothing: the marker committed
	// after it is the next thing heard.
	err := s.Tx(ctx, func(tx store.Tx) error {
		if err := tx.Notify(ctx, store.Notification{Topic: store.TopicQueued, Payload: "rolled back"}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Tx = %v, want errBoom", err)
	}
	notify(store.Notification{Topic: "marker", Payload: "1"})
	if n := next("after rollback"); n != (store.Notification{Topic: "marker", Payload: "1"}) {
		t.Errorf("got %+v, want the marker (a rolled back notification was delivered?)", n)
	}

	// Many notifications in one transaction, with odd payloads, all arrive
	// (duplicates may be merged into one).
	odd := []string{"", "a:b", "line\nbreak", `{"json":"x"}`, "ümlaut ✓", strings.Repeat("x", 1000), "a\\b\tc"}
	var batch []store.Notification
	want := map[store.Notification]bool{}
	for i := range 2000 {
		n := store.Notification{Topic: store.TopicQueued, Payload: fmt.Sprintf("group-%04d", i)}
		if i < len(odd) {
			n.Payload = odd[i]
		}
		if i%10 == 9 {
			n.Topic = "other"
		}
		batch = append(batch, n)
		want[n] = true
	}
	batch = append(batch, batch[:100]...) // duplicates
	notify(batch...)
	notify(store.Notification{Topic: "marker", Payload: "2"})
	for {
		n := next("batch")
		if n == (store.Notification{Topic: "marker", Payload: "2"}) {
			break
		}
		if _, ok := want[n]; !ok {
			t.Errorf("unexpected notification %+v", n)
			continue
		}
		want[n] = false
	}
	for n, missing := range want {
		if missing {
			t.Errorf("notification %+v not delivered", n)
		}
	}

	// Notify on a finished transaction fails.
	var kept store.Tx
	tx(t, s, func(tx store.Tx) error { kept = tx; return nil })
	if err := kept.Notify(ctx, store.Notification{Topic: "late"}); err == nil {
		t.Error("Notify on a finished tx: no error")
	}
}
