package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pluto-sched/pluto/internal/store"
)

func pending(id string, at time.Time) store.RunInsertParams {
	p := params(id)
	p.Status = store.StatusPending
	p.RunAt = at
	return p
}

func promote(t *testing.T, s store.Store, now time.Time, limit int) []*store.Run {
	t.Helper()
	var runs []*store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		runs, err = tx.RunPromote(ctx, store.RunPromoteParams{Now: now, Limit: limit})
		return err
	})
	return runs
}

func nextPending(t *testing.T, s store.Store) time.Time {
	t.Helper()
	at, err := s.RunNextPendingAt(ctx)
	if err != nil {
		t.Fatalf("RunNextPendingAt: %v", err)
	}
	return at
}

func testPromote(t *testing.T, s store.Store) {
	blocked := params("blocked")
	blocked.Status = store.StatusBlocked
	blocked.RunAt = t0.Add(-time.Hour)
	insert(t, s,
		pending("p10", t0.Add(10*time.Second)),
		pending("p5a", t0.Add(5*time.Second)),
		pending("p20", t0.Add(20*time.Second)),
		pending("p5b", t0.Add(5*time.Second)),
		blocked,
		params("queued"),
	)
	diffIDs(t, "promote before anything is due", nil, promote(t, s, t0, 10))
	got := promote(t, s, t0.Add(10*time.Second), 2)
	diffIDs(t, "promote limit 2", []string{"p5a", "p5b"}, got)
	for _, r := range got {
		if r.Status != store.StatusQueued || r.Attempt != 0 {
			t.Errorf("promoted %s: status %s attempt %d", r.ID, r.Status, r.Attempt)
		}
		diffRun(t, "promoted run vs RunGet", r, get(t, s, r.ID))
	}
	diffIDs(t, "promote the rest due", []string{"p10"}, promote(t, s, t0.Add(10*time.Second), 10))
	diffIDs(t, "promote again", nil, promote(t, s, t0.Add(10*time.Second), 10))
	diffIDs(t, "promote later", []string{"p20"}, promote(t, s, t0.Add(time.Hour), 10))
	if r := get(t, s, "blocked"); r.Status != store.StatusBlocked {
		t.Errorf("blocked run promoted to %s", r.Status)
	}
	diffIDs(t, "claim after promote", []string{"p5a", "p5b", "p10", "p20", "queued"},
		sortedByID(claimAll(t, s), "p5a", "p5b", "p10", "p20", "queued"))
}

// sortedByID orders runs as order lists their IDs (for sets whose claim
// order is not the point).
func sortedByID(runs []*store.Run, order ...string) []*store.Run {
	pos := func(id string) int { return slices.Index(order, id) }
	out := slices.Clone(runs)
	slices.SortFunc(out, func(a, b *store.Run) int { return pos(a.ID) - pos(b.ID) })
	return out
}

func testNextPendingAt(t *testing.T, s store.Store) {
	if at := nextPending(t, s); !at.IsZero() {
		t.Errorf("empty store: %v, want zero", at)
	}
	q := params("queued")
	q.RunAt = t0.Add(-time.Hour) // not pending: ignored
	insert(t, s, q, pending("a", t0.Add(time.Minute)), pending("b", t0.Add(30*time.Second)))
	if at := nextPending(t, s); !at.Equal(t0.Add(30 * time.Second)) {
		t.Errorf("got %v, want %v", at, t0.Add(30*time.Second))
	}
	promote(t, s, t0.Add(45*time.Second), 10)
	if at := nextPending(t, s); !at.Equal(t0.Add(time.Minute)) {
		t.Errorf("after promote: %v, want %v", at, t0.Add(time.Minute))
	}
	promote(t, s, t0.Add(time.Minute), 10)
	if at := nextPending(t, s); !at.IsZero() {
		t.Errorf("no pending runs: %v, want zero", at)
	}
}

func testCountByGroup(t *testing.T, s store.Store) {
	counts, err := s.RunCountByGroup(ctx)
	if err != nil || len(counts) != 0 {
		t.Errorf("empty store: RunCountByGroup = %v, %v", counts, err)
	}
	mk := func(id, group string, st store.RunStatus) store.RunInsertParams {
		p := params(id)
		p.Group, p.Status = group, st
		return p
	}
	insert(t, s,
		mk("a1", "alpha", store.StatusQueued),
		mk("a2", "alpha", store.StatusQueued),
		mk("a3", "alpha", store.StatusQueued),
		mk("b1", "beta", store.StatusQueued),
		mk("c1", "gamma", store.StatusPending),
		mk("c2", "gamma", store.StatusBlocked),
		mk("d1", "delta", store.StatusQueued),
	)
	got := claim(t, s, store.RunClaimParams{Group: "alpha", Types: []string{"t"}, Limit: 1, ServerID: "srv"})
	finishOne(t, s, store.RunFinishParams{ID: got[0].ID, Attempt: 1, Status: store.StatusSucceeded, Now: t0})
	claim(t, s, store.RunClaimParams{Group: "alpha", Types: []string{"t"}, Limit: 1, ServerID: "srv"})
	claim(t, s, store.RunClaimParams{Group: "delta", Types: []string{"t"}, Limit: 1, ServerID: "srv"})

	counts, err = s.RunCountByGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.GroupCount{
		{Group: "alpha", Status: store.StatusQueued, Count: 1},
		{Group: "alpha", Status: store.StatusDispatched, Count: 1},
		{Group: "alpha", Status: store.StatusSucceeded, Count: 1},
		{Group: "beta", Status: store.StatusQueued, Count: 1},
		{Group: "delta", Status: store.StatusDispatched, Count: 1},
		{Group: "gamma", Status: store.StatusPending, Count: 1},
		{Group: "gamma", Status: store.StatusBlocked, Count: 1},
	}
	less := func(a, b store.GroupCount) bool {
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		return a.Status < b.Status
	}
	if d := cmp.Diff(want, counts, cmpopts.SortSlices(less)); d != "" {
		t.Errorf("RunCountByGroup (-want +got):\n%s", d)
	}
}

// walk lists every page of p and returns the runs in order, checking the
// page sizes and that no run appears twice.
func walk(t *testing.T, s store.Store, p store.RunListParams, pageSize int) []*store.Run {
	t.Helper()
	return walkPages(t, s, p, pageSize, false)
}

// walkAny is walk for lists whose pages may be short (the scan budget).
func walkAny(t *testing.T, s store.Store, p store.RunListParams) []*store.Run {
	t.Helper()
	return walkPages(t, s, p, p.PageLimit(), true)
}

func walkPages(t *testing.T, s store.Store, p store.RunListParams, pageSize int, short bool) []*store.Run {
	t.Helper()
	var all []*store.Run
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page > 10000 {
			t.Fatal("pagination does not end")
		}
		res, err := s.RunList(ctx, p)
		if err != nil {
			t.Fatalf("RunList(%+v): %v", p, err)
		}
		if len(res.Runs) > pageSize {
			t.Fatalf("page %d has %d runs, limit %d", page, len(res.Runs), pageSize)
		}
		if !short && res.NextCursor != "" && len(res.Runs) != pageSize {
			t.Errorf("page %d has %d runs and a next cursor, want a full page of %d", page, len(res.Runs), pageSize)
		}
		for _, r := range res.Runs {
			if seen[r.ID] {
				t.Errorf("run %s listed twice", r.ID)
			}
			seen[r.ID] = true
		}
		all = append(all, res.Runs...)
		if res.NextCursor == "" {
			return all
		}
		if res.NextCursor == p.Cursor {
			t.Fatalf("cursor %q does not advance", p.Cursor)
		}
		p.Cursor = res.NextCursor
	}
}

func testListFiltersAndPages(t *testing.T, s store.Store) {
	type meta struct {
		id, group, job string
		status         store.RunStatus
	}
	statuses := []store.RunStatus{store.StatusQueued, store.StatusPending, store.StatusBlocked, store.StatusSkipped}
	var (
		all []meta
		ps  []store.RunInsertParams
	)
	for i := range 40 {
		m := meta{id: runID(i), group: fmt.Sprintf("g%d", i%3), job: []string{"ja", "jb"}[(i/2)%2], status: statuses[i%4]}
		if i%7 == 0 {
			m.job = ""
		}
		all = append(all, m)
		p := params(m.id)
		p.Group, p.Job, p.Status = m.group, m.job, m.status
		ps = append(ps, p)
		if len(ps) == 9 || i == 39 { // several batches
			insert(t, s, ps...)
			ps = nil
		}
	}
	slices.Reverse(all) // newest first
	expect := func(keep func(m meta) bool) []string {
		out := []string{}
		for _, m := range all {
			if keep(m) {
				out = append(out, m.id)
			}
		}
		return out
	}
	for _, c := range []struct {
		name string
		p    store.RunListParams
		keep func(m meta) bool
	}{
		{"all", store.RunListParams{}, func(meta) bool { return true }},
		{"group", store.RunListParams{Group: "g1"}, func(m meta) bool { return m.group == "g1" }},
		{"job", store.RunListParams{Job: "jb"}, func(m meta) bool { return m.job == "jb" }},
		{"one status", store.RunListParams{Statuses: []store.RunStatus{store.StatusBlocked}},
			func(m meta) bool { return m.status == store.StatusBlocked }},
		{"two statuses", store.RunListParams{Statuses: []store.RunStatus{store.StatusPending, store.StatusSkipped}},
			func(m meta) bool { return m.status == store.StatusPending || m.status == store.StatusSkipped }},
		{"group+job+status", store.RunListParams{Group: "g2", Job: "ja", Statuses: []store.RunStatus{store.StatusQueued, store.StatusBlocked}},
			func(m meta) bool {
				return m.group == "g2" && m.job == "ja" && (m.status == store.StatusQueued || m.status == store.StatusBlocked)
			}},
		{"no match", store.RunListParams{Group: "nope"}, func(meta) bool { return false }},
	} {
		want := expect(c.keep)
		for _, size := range []int{1, 3, 7, 100} {
			p := c.p
			p.Limit = size
			got := walk(t, s, p, size)
			if d := cmp.Diff(want, ids(got)); d != "" {
				t.Errorf("%s, pages of %d (-want +got):\n%s", c.name, size, d)
			}
		}
		if len(want) > 0 {
			// A last page that is exactly full has no next cursor.
			p := c.p
			p.Limit = len(want)
			res, err := s.RunList(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Runs) != len(want) || res.NextCursor != "" {
				t.Errorf("%s with limit %d: %d runs, cursor %q; want all, no cursor", c.name, len(want), len(res.Runs), res.NextCursor)
			}
		}
	}
	// Listed runs are whole runs.
	res, err := s.RunList(ctx, store.RunListParams{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	diffRun(t, "listed run", get(t, s, runID(39)), res.Runs[0])

	// A run inserted while paging does not disturb the walk (it is newer
	// than the cursor).
	first, err := s.RunList(ctx, store.RunListParams{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	insert(t, s, params("late"))
	rest := walk(t, s, store.RunListParams{Limit: 10, Cursor: first.NextCursor}, 10)
	if got := len(first.Runs) + len(rest); got != 40 {
		t.Errorf("walk with an insert in between saw %d runs, want 40", got)
	}
}

func testListLimits(t *testing.T, s store.Store) {
	const n = 1100
	ps := make([]store.RunInsertParams, n)
	for i := range ps {
		ps[i] = params(runID(i))
	}
	insert(t, s, ps...)
	for _, c := range []struct{ limit, want int }{{0, 100}, {-5, 100}, {1000, 1000}, {5000, 1000}, {250, 250}} {
		res, err := s.RunList(ctx, store.RunListParams{Limit: c.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Runs) != c.want || res.NextCursor == "" {
			t.Errorf("limit %d: %d runs, cursor %q; want %d and a cursor", c.limit, len(res.Runs), res.NextCursor, c.want)
		}
		if len(res.Runs) > 0 && res.Runs[0].ID != runID(n-1) {
			t.Errorf("limit %d: first run %s, want the newest %s", c.limit, res.Runs[0].ID, runID(n-1))
		}
	}
	got := walk(t, s, store.RunListParams{Limit: 1000}, 1000)
	if len(got) != n {
		t.Errorf("walked %d runs, want %d", len(got), n)
	}
	for _, bad := range []string{"x", "-3", "0", "1.5", "99999999999999999999"} {
		if _, err := s.RunList(ctx, store.RunListParams{Cursor: bad}); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("cursor %q: err %v, want ErrInvalidCursor", bad, err)
		}
	}
	for i, r := range got {
		if want := runID(n - 1 - i); r.ID != want {
			t.Fatalf("position %d: %s, want %s", i, r.ID, want)
		}
	}
}

func testListActive(t *testing.T, s store.Store) {
	// Claim one run at a time, in insertion order, for the given servers.
	var ps []store.RunInsertParams
	for _, id := range []string{"d1", "r1", "d2", "done", "back", "cancelled"} {
		ps = append(ps, params(id))
	}
	insert(t, s, ps...)
	for _, srv := range []string{"srv-1", "srv-1", "srv-2", "srv-1", "srv-2", "srv-1"} {
		if got := claim(t, s, store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: 1, ServerID: srv}); len(got) != 1 {
			t.Fatalf("claim: %v", ids(got))
		}
	}
	insert(t, s, params("queued"))
	start(t, s, store.RunStartParams{ID: "r1", Attempt: 1, WorkerID: "w", Now: t0})
	finishOne(t, s, store.RunFinishParams{ID: "done", Attempt: 1, Status: store.StatusSucceeded, Now: t0})
	finishOne(t, s, store.RunFinishParams{ID: "back", Attempt: 1, Status: store.StatusQueued, Now: t0})
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "cancelled", Now: t0})
		return err
	})
	list := func(srv string) []*store.Run {
		runs, err := s.RunListActive(ctx, store.RunListActiveParams{ServerID: srv})
		if err != nil {
			t.Fatal(err)
		}
		return sortedByID(runs, "d1", "r1", "d2")
	}
	all := list("")
	diffIDs(t, "all active", []string{"d1", "r1", "d2"}, all)
	for _, r := range all {
		diffRun(t, "active run", get(t, s, r.ID), r)
	}
	diffIDs(t, "srv-1", []string{"d1", "r1"}, list("srv-1"))
	diffIDs(t, "srv-2", []string{"d2"}, list("srv-2"))
	diffIDs(t, "srv-3", nil, list("srv-3"))
}

var errBoom = errors.New("boom")

func testRollbackOnError(t *testing.T, s store.Store) {
	insert(t, s, params("old"), params("old2"))
	before := get(t, s, "old")
	err := s.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.RunInsert(ctx, []store.RunInsertParams{params("new")}); err != nil {
			return err
		}
		if got, err := tx.RunClaim(ctx, store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: 10, ServerID: "srv"}); err != nil || len(got) != 3 {
			return fmt.Errorf("claim inside tx: %v, %w", ids(got), err)
		}
		if _, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "old2", Now: t0}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Tx returned %v, want fn's error", err)
	}
	err = s.LogTx(ctx, func(tx store.LogTx) error {
		if _, err := tx.LogAppend(ctx, store.LogAppendParams{Lines: []store.LogLine{{RunID: "old", Attempt: 1, Time: t0, Stream: "stdout", Text: "x"}}}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("LogTx returned %v, want fn's error", err)
	}
	if _, err := s.RunGet(ctx, "new"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("inserted run visible after rollback: %v", err)
	}
	diffRun(t, "run claimed in a rolled back tx", before, get(t, s, "old"))
	if r := get(t, s, "old2"); r.Status != store.StatusQueued {
		t.Errorf("cancel not rolled back: %s", r.Status)
	}
	if logs, err := s.LogList(ctx, store.LogListParams{RunID: "old"}); err != nil || len(logs) != 0 {
		t.Errorf("log lines after rollback: %v, %v", logs, err)
	}

	// A store error inside fn, returned by fn, rolls back what came before.
	err = s.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.RunInsert(ctx, []store.RunInsertParams{params("new")}); err != nil {
			return err
		}
		_, err := tx.RunRetry(ctx, store.RunRetryParams{ID: "old", Now: t0})
		return err
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Tx returned %v, want ErrConflict", err)
	}
	if _, err := s.RunGet(ctx, "new"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("insert visible after a failed tx: %v", err)
	}
	// The store still works.
	insert(t, s, params("new"))
	diffIDs(t, "claim after rollbacks", []string{"old", "old2", "new"}, claimAll(t, s))
}

func testRollbackOnPanic(t *testing.T, s store.Store) {
	func() {
		defer func() {
			if p := recover(); p != "oops" {
				t.Errorf("recovered %v, want the panic to propagate", p)
			}
		}()
		_ = s.Tx(ctx, func(tx store.Tx) error {
			if _, err := tx.RunInsert(ctx, []store.RunInsertParams{params("new")}); err != nil {
				return err
			}
			panic("oops")
		})
	}()
	if _, err := s.RunGet(ctx, "new"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("insert visible after a panic: %v", err)
	}
	insert(t, s, params("new")) // the writer is free again
}

// testRefusalsKeepTxUsable: ErrNotFound and ErrConflict are answers, not
// failures. The engine applies many callers' changes in one transaction and
// reports such an answer to its caller while the rest commits.
func testRefusalsKeepTxUsable(t *testing.T, s store.Store) {
	insert(t, s, params("queued"))
	tx(t, s, func(tx store.Tx) error {
		if _, err := tx.RunInsert(ctx, []store.RunInsertParams{params("new")}); err != nil {
			return err
		}
		if _, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "missing", Now: t0}); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("cancel of a missing run: %v", err)
		}
		if _, err := tx.RunRetry(ctx, store.RunRetryParams{ID: "queued", Now: t0}); !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("retry of a queued run: %v", err)
		}
		if _, err := tx.RunRetry(ctx, store.RunRetryParams{ID: "missing", Now: t0}); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("retry of a missing run: %v", err)
		}
		if _, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "queued", Now: t0}); err != nil {
			return err
		}
		_, err := tx.RunClaim(ctx, store.RunClaimParams{Group: "g", Types: []string{"t"}, Limit: 10, ServerID: "srv", Now: t0})
		return err
	})
	if r := get(t, s, "new"); r.Status != store.StatusDispatched {
		t.Errorf("new: %s, want dispatched (committed after the refusals)", r.Status)
	}
	if r := get(t, s, "queued"); r.Status != store.StatusCancelled {
		t.Errorf("queued: %s, want cancelled", r.Status)
	}
}

func testTxUnusableAfterReturn(t *testing.T, s store.Store) {
	var kept store.Tx
	tx(t, s, func(tx store.Tx) error {
		kept = tx
		return nil
	})
	if _, err := kept.RunInsert(ctx, []store.RunInsertParams{params("late")}); err == nil {
		t.Error("RunInsert on a finished tx: no error")
	}
	if _, err := s.RunGet(ctx, "late"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("insert through a finished tx is visible: %v", err)
	}
}

func testClosed(t *testing.T, s store.Store) {
	insert(t, s, params("r1"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	checks := map[string]error{}
	_, checks["RunGet"] = s.RunGet(ctx, "r1")
	_, checks["RunGetByKey"] = s.RunGetByKey(ctx, "k")
	_, checks["RunList"] = s.RunList(ctx, store.RunListParams{})
	_, checks["RunListActive"] = s.RunListActive(ctx, store.RunListActiveParams{})
	_, checks["RunNextPendingAt"] = s.RunNextPendingAt(ctx)
	_, checks["RunCountByGroup"] = s.RunCountByGroup(ctx)
	_, checks["LogList"] = s.LogList(ctx, store.LogListParams{RunID: "r1"})
	_, checks["LeaderElect"] = s.LeaderElect(ctx, store.LeaderElectParams{ServerID: "a", TTL: time.Second, Now: t0})
	checks["LeaderResign"] = s.LeaderResign(ctx, "a", 1)
	_, checks["LeaderGet"] = s.LeaderGet(ctx)
	checks["ServerHeartbeat"] = s.ServerHeartbeat(ctx, store.ServerInfo{ID: "a", StartedAt: t0, LastSeen: t0})
	_, checks["ServerList"] = s.ServerList(ctx)
	checks["ServerRemove"] = s.ServerRemove(ctx, "a")
	checks["Listen"] = s.Listen(ctx, func(store.Notification) {})
	called := false
	checks["Tx"] = s.Tx(ctx, func(store.Tx) error { called = true; return nil })
	checks["LogTx"] = s.LogTx(ctx, func(store.LogTx) error { called = true; return nil })
	for name, err := range checks {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if called {
		t.Error("Tx ran fn after Close")
	}
}
