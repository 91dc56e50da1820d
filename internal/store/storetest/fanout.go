package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// Fan-out (store/fanout.go): a parent stored running with no worker,
// its children ordinary runs; the join state counted by the store in the
// statements that move children, whatever the path.

// fanoutParams is parent id with n queued children id-c0…, in group g,
// type t; minSuccess 0 is all of them.
func fanoutParams(id string, n, minSuccess int) store.FanoutCreateParams {
	p := store.FanoutCreateParams{Parent: params(id), MinSuccess: minSuccess}
	p.Parent.Status = store.StatusRunning
	p.Parent.Type = "split"
	if minSuccess == 0 {
		p.MinSuccess = n
	}
	for i := range n {
		p.Children = append(p.Children, params(childID(id, i)))
	}
	return p
}

func childID(parent string, i int) string { return fmt.Sprintf("%s-c%d", parent, i) }

func fanoutCreate(t *testing.T, s store.Store, p store.FanoutCreateParams) store.RunInsertResult {
	t.Helper()
	var res store.RunInsertResult
	tx(t, s, func(tx store.Tx) error {
		var err error
		res, err = tx.FanoutCreate(ctx, p)
		return err
	})
	if res.Run == nil {
		t.Fatalf("FanoutCreate %q returned no run", p.Parent.ID)
	}
	return res
}

func fanoutGet(t *testing.T, s store.Store, id string) *store.Fanout {
	t.Helper()
	var fo *store.Fanout
	tx(t, s, func(tx store.Tx) error {
		var err error
		fo, err = tx.FanoutGet(ctx, id)
		return err
	})
	// The read outside a transaction sees the same.
	read, err := s.FanoutRead(ctx, id)
	if err != nil {
		t.Fatalf("FanoutRead %s: %v", id, err)
	}
	if *read != *fo {
		t.Errorf("FanoutRead %s = %+v, FanoutGet %+v", id, *read, *fo)
	}
	return fo
}

// wantCounters checks a parent's counters.
func wantCounters(t *testing.T, s store.Store, what, id string, ended, failed int) {
	t.Helper()
	fo := fanoutGet(t, s, id)
	if fo.Ended != ended || fo.Failed != failed {
		t.Errorf("%s: %s has ended %d, failed %d; want %d, %d", what, id, fo.Ended, fo.Failed, ended, failed)
	}
}

func fanoutResults(t *testing.T, s store.Store, id string, from, limit int) []store.ChildResult {
	t.Helper()
	var rs []store.ChildResult
	tx(t, s, func(tx store.Tx) error {
		var err error
		rs, err = tx.FanoutResults(ctx, id, from, limit)
		return err
	})
	return rs
}

// recount counts a parent's ended and failed children from their
// statuses.
func recount(t *testing.T, s store.Store, id string) (ended, failed int) {
	t.Helper()
	for from := 0; ; from += 100 {
		rs := fanoutResults(t, s, id, from, 100)
		for _, r := range rs {
			if r.Status.Terminal() {
				ended++
				if r.Status != store.StatusSucceeded {
					failed++
				}
			}
		}
		if len(rs) < 100 {
			return ended, failed
		}
	}
}

func fanoutFinish(t *testing.T, s store.Store, p store.FanoutFinishParams) *store.Run {
	t.Helper()
	var r *store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		r, err = tx.FanoutFinish(ctx, p)
		return err
	})
	return r
}

func joinable(t *testing.T, s store.Store, limit int) []string {
	t.Helper()
	fos, err := s.FanoutListJoinable(ctx, limit)
	if err != nil {
		t.Fatalf("FanoutListJoinable: %v", err)
	}
	return names(fos, func(fo *store.Fanout) string { return fo.ParentID })
}

func listRuns(t *testing.T, s store.Store, p store.RunListParams) store.RunPage {
	t.Helper()
	page, err := s.RunList(ctx, p)
	if err != nil {
		t.Fatalf("RunList(%+v): %v", p, err)
	}
	return page
}

// wantNotActive fails if RunListActive lists one of ids.
func wantNotActive(t *testing.T, s store.Store, what string, ids ...string) {
	t.Helper()
	for _, server := range []string{"", "srv"} {
		active, err := s.RunListActive(ctx, store.RunListActiveParams{ServerID: server})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range active {
			if slices.Contains(ids, r.ID) {
				t.Errorf("%s: RunListActive(%q) lists %s", what, server, r.ID)
			}
		}
	}
}

func testFanoutCreate(t *testing.T, s store.Store) {
	p := fanoutParams("p", 4, 3)
	p.Merge = "merge"
	p.Parent.Payload = json.RawMessage(`{"n":4}`)
	p.Children[3].Status, p.Children[3].Error = store.StatusSkipped, "nothing to do"
	p.Children[1].Payload = json.RawMessage(`{"part":1}`)
	res := fanoutCreate(t, s, p)
	if res.Existing {
		t.Fatal("a new parent is Existing")
	}
	want := &store.Run{ID: "p", Seq: res.Run.Seq, Type: "split", Group: "g", Payload: json.RawMessage(`{"n":4}`),
		Status: store.StatusRunning, MaxAttempts: 1, RunAt: t0, CreatedAt: t0, StartedAt: t0, ShardCount: 4}
	diffRun(t, "FanoutCreate's parent", want, res.Run)
	diffRun(t, "stored parent", want, get(t, s, "p"))
	for i := range 4 {
		c := get(t, s, childID("p", i))
		if c.ParentID != "p" || c.Shard == nil || *c.Shard != i || c.ShardCount != 4 || c.Seq <= res.Run.Seq {
			t.Errorf("child %d: parent %q, shard %v, shard count %d, seq %d", i, c.ParentID, c.Shard, c.ShardCount, c.Seq)
		}
		wantSt := store.StatusQueued
		if i == 3 {
			wantSt = store.StatusSkipped
		}
		if c.Status != wantSt || c.Attempt != 0 || c.Type != "t" {
			t.Errorf("child %d: %s attempt %d type %s; want %s, 0, t", i, c.Status, c.Attempt, c.Type, wantSt)
		}
	}
	if c := get(t, s, childID("p", 1)); !jsonEqual(c.Payload, json.RawMessage(`{"part":1}`)) {
		t.Errorf("child 1 payload %s", c.Payload)
	}
	if c := get(t, s, childID("p", 3)); c.Error != "nothing to do" || !c.FinishedAt.Equal(t0) {
		t.Errorf("skipped child: error %q, finished %v", c.Error, c.FinishedAt)
	}
	fo := fanoutGet(t, s, "p")
	if d := cmp.Diff(&store.Fanout{ParentID: "p", Total: 4, Ended: 1, Failed: 1, MinSuccess: 3, Merge: "merge"}, fo); d != "" {
		t.Errorf("FanoutGet (-want +got):\n%s", d)
	}
	wantNotActive(t, s, "after create", "p")
	checkCounts(t, s, "after create")

	// The parent is not a run a worker could take.
	claimed := claimAll(t, s)
	diffIDs(t, "claim", []string{"p-c0", "p-c1", "p-c2"}, claimed)
	if got := claim(t, s, store.RunClaimParams{Group: "g", Types: []string{"split"}, Limit: 10, ServerID: "srv"}); len(got) != 0 {
		t.Errorf("a claim of the parent's type got %v", ids(got))
	}
	wantNotActive(t, s, "after the claim", "p")
	heartbeat(t, s, "alive", t0)
	if got := requeueLost(t, s, t0.Add(time.Hour), 100); len(got) != 3 {
		t.Errorf("requeue of srv's runs: %v, want the three children", ids(got))
	}
	if r := get(t, s, "p"); r.Status != store.StatusRunning || r.ServerID != "" {
		t.Errorf("parent after a requeue of lost runs: %s, server %q", r.Status, r.ServerID)
	}
	// No report can touch it: attempt 0 is no worker's.
	if finishOne(t, s, store.RunFinishParams{ID: "p", Attempt: 1, Status: store.StatusSucceeded, Now: t0}) {
		t.Error("a finish of the parent was accepted")
	}
	checkCounts(t, s, "after the requeue")
	wantCounters(t, s, "after the requeue", "p", 1, 1)
	if _, err := s.RunGet(ctx, "p"); err != nil {
		t.Fatal(err)
	}

	// A parent's runs, listed: its children and any run naming it.
	m := params("p-merge")
	m.ParentID, m.Key, m.Type = "p", "merge:p", "merge"
	insert(t, s, m, params("other"))
	diffIDs(t, "children, newest first", []string{"p-merge", "p-c3", "p-c2", "p-c1", "p-c0"},
		listRuns(t, s, store.RunListParams{Parent: "p"}).Runs)
	diffIDs(t, "queued children, oldest first", []string{"p-c0", "p-c1", "p-c2", "p-merge"},
		listRuns(t, s, store.RunListParams{Parent: "p", Statuses: []store.RunStatus{store.StatusQueued}, Order: store.OrderAsc}).Runs)
	diffIDs(t, "children of type t in group g", []string{"p-c3", "p-c2", "p-c1", "p-c0"},
		listRuns(t, s, store.RunListParams{Parent: "p", Type: "t", Group: "g"}).Runs)
	diffIDs(t, "skipped children", []string{"p-c3"},
		listRuns(t, s, store.RunListParams{Parent: "p", Statuses: []store.RunStatus{store.StatusSkipped}}).Runs)
	diffIDs(t, "no such parent", nil, listRuns(t, s, store.RunListParams{Parent: "nope"}).Runs)
	var paged []*store.Run
	lp := store.RunListParams{Parent: "p", Limit: 2}
	for {
		page := listRuns(t, s, lp)
		paged = append(paged, page.Runs...)
		if page.NextCursor == "" {
			break
		}
		lp.Cursor = page.NextCursor
	}
	diffIDs(t, "children by pages of 2", []string{"p-merge", "p-c3", "p-c2", "p-c1", "p-c0"}, paged)
	// The merge run is not a child: not counted, not a result.
	if rs := fanoutResults(t, s, "p", 0, 10); len(rs) != 4 {
		t.Errorf("FanoutResults: %d results, want the 4 children", len(rs))
	}
}

func testFanoutKeyAndLimits(t *testing.T, s store.Store) {
	p := fanoutParams("p1", 3, 0)
	p.Parent.Key = "k"
	first := fanoutCreate(t, s, p)
	if first.Existing {
		t.Fatal("first create is Existing")
	}
	again := fanoutParams("p2", 5, 0)
	again.Parent.Key = "k"
	res := fanoutCreate(t, s, again)
	if !res.Existing || res.Run.ID != "p1" || res.Run.ShardCount != 3 {
		t.Errorf("second create with the key: existing %v, run %s (%d children); want p1", res.Existing, res.Run.ID, res.Run.ShardCount)
	}
	for _, id := range []string{"p2", childID("p2", 0)} {
		if _, err := s.RunGet(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s after a create refused for its key: %v", id, err)
		}
	}
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.FanoutGet(ctx, "p2")
		wantErr(t, "FanoutGet of the refused parent", err, store.ErrNotFound)
		_, err = tx.FanoutGet(ctx, childID("p1", 0))
		wantErr(t, "FanoutGet of a child", err, store.ErrNotFound)
		return nil
	})
	// A key another run took: that run, as RunInsert would.
	plain := params("plain")
	plain.Key = "k2"
	insert(t, s, plain)
	taken := fanoutParams("p3", 2, 0)
	taken.Parent.Key = "k2"
	if res := fanoutCreate(t, s, taken); !res.Existing || res.Run.ID != "plain" {
		t.Errorf("create with a plain run's key: %+v", res)
	}

	big := fanoutParams("big", 0, 1)
	big.Children = make([]store.RunInsertParams, store.MaxFanout+1)
	for i := range big.Children {
		big.Children[i] = params(childID("big", i))
	}
	bad := map[string]store.FanoutCreateParams{"no children": fanoutParams("b0", 0, 1), "too many children": big}
	for name, mut := range map[string]func(p *store.FanoutCreateParams){
		"min success 0":           func(p *store.FanoutCreateParams) { p.MinSuccess = 0 },
		"min success over":        func(p *store.FanoutCreateParams) { p.MinSuccess = 4 },
		"parent queued":           func(p *store.FanoutCreateParams) { p.Parent.Status = store.StatusQueued },
		"parent without ID":       func(p *store.FanoutCreateParams) { p.Parent.ID = "" },
		"child with a key":        func(p *store.FanoutCreateParams) { p.Children[1].Key = "ck" },
		"child running":           func(p *store.FanoutCreateParams) { p.Children[1].Status = store.StatusRunning },
		"child without ID":        func(p *store.FanoutCreateParams) { p.Children[2].ID = "" },
		"child ID taken":          func(p *store.FanoutCreateParams) { p.Children[2].ID = "plain" },
		"child ID twice":          func(p *store.FanoutCreateParams) { p.Children[2].ID = p.Children[0].ID },
		"parent with a parent":    func(p *store.FanoutCreateParams) { p.Parent.ParentID = "p1" },
		"child with a job's slot": func(p *store.FanoutCreateParams) { p.Children[0].Job, p.Children[0].LogicalTime = "j", t0 },
	} {
		p := fanoutParams("b-"+name, 3, 0)
		mut(&p)
		bad[name] = p
	}
	for name, p := range bad {
		err := s.Tx(ctx, func(tx store.Tx) error { _, err := tx.FanoutCreate(ctx, p); return err })
		if err == nil {
			t.Errorf("%s: FanoutCreate accepted it", name)
		}
		if _, err := s.RunGet(ctx, p.Parent.ID); p.Parent.ID != "" && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: the parent was stored (%v)", name, err)
		}
	}
	checkCounts(t, s, "after the refusals")

	// The largest fan-outs insert in one transaction.
	const n = 10000
	large := fanoutParams("large", n, 1)
	began := time.Now()
	fanoutCreate(t, s, large)
	t.Logf("%d children inserted in %v", n, time.Since(began))
	if rs := fanoutResults(t, s, "large", n-3, 10); len(rs) != 3 || rs[2].Shard != n-1 || rs[2].ID != childID("large", n-1) {
		t.Errorf("last results of the large fan-out: %+v", rs)
	}
	if fo := fanoutGet(t, s, "large"); fo.Total != n || fo.MinSuccess != 1 {
		t.Errorf("large fan-out: %+v", fo)
	}
}

func testFanoutResults(t *testing.T, s store.Store) {
	fanoutCreate(t, s, fanoutParams("p", 5, 0))
	now := t0.Add(time.Minute)
	endChild(t, s, childID("p", 0), store.StatusSucceeded, json.RawMessage(`{"a":0}`), now)
	endChild(t, s, childID("p", 2), store.StatusFailed, nil, now)
	endChild(t, s, childID("p", 3), store.StatusSucceeded, json.RawMessage(`[3]`), now)
	m := params("p-merge")
	m.ParentID, m.Type = "p", "merge"
	insert(t, s, m)
	var all []store.ChildResult
	for from := 0; ; from += 2 {
		rs := fanoutResults(t, s, "p", from, 2)
		all = append(all, rs...)
		if len(rs) < 2 {
			break
		}
	}
	want := []store.ChildResult{
		{Shard: 0, ID: "p-c0", Status: store.StatusSucceeded, Result: json.RawMessage(`{"a":0}`)},
		{Shard: 1, ID: "p-c1", Status: store.StatusDispatched},
		{Shard: 2, ID: "p-c2", Status: store.StatusFailed, Error: "boom p-c2"},
		{Shard: 3, ID: "p-c3", Status: store.StatusSucceeded, Result: json.RawMessage(`[3]`)},
		{Shard: 4, ID: "p-c4", Status: store.StatusDispatched},
	}
	if d := cmp.Diff(want, all, cmpRun); d != "" {
		t.Errorf("results by pages of 2 (-want +got):\n%s", d)
	}
	if rs := fanoutResults(t, s, "p", 3, 100); len(rs) != 2 || rs[0].Shard != 3 {
		t.Errorf("results from shard 3: %+v", rs)
	}
	if rs := fanoutResults(t, s, "p", 5, 100); len(rs) != 0 {
		t.Errorf("results past the last shard: %+v", rs)
	}
	if rs := fanoutResults(t, s, "nope", 0, 100); len(rs) != 0 {
		t.Errorf("results of no parent: %+v", rs)
	}
	for _, bad := range [][2]int{{-1, 10}, {0, 0}, {0, store.MaxFanoutResults + 1}} {
		err := s.Tx(ctx, func(tx store.Tx) error { _, err := tx.FanoutResults(ctx, "p", bad[0], bad[1]); return err })
		if err == nil {
			t.Errorf("FanoutResults from %d limit %d: no error", bad[0], bad[1])
		}
	}
}

func testFanoutFinish(t *testing.T, s store.Store) {
	p := fanoutParams("p", 2, 0)
	p.Parent.CallbackURL = hook
	fanoutCreate(t, s, p)
	fanoutCreate(t, s, fanoutParams("q", 2, 0))
	fanoutCreate(t, s, fanoutParams("r", 2, 0))
	insert(t, s, params("plain"))
	claimAll(t, s)
	now := t0.Add(time.Hour)
	result := json.RawMessage(`["a","b"]`)

	for _, id := range []string{"plain", childID("p", 0), "nope"} {
		if r := fanoutFinish(t, s, store.FanoutFinishParams{ParentID: id, Status: store.StatusSucceeded, Now: now}); r != nil {
			t.Errorf("FanoutFinish of %s (not a parent): %v", id, r)
		}
	}
	for _, bad := range []store.RunStatus{store.StatusCancelled, store.StatusRunning, ""} {
		err := s.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.FanoutFinish(ctx, store.FanoutFinishParams{ParentID: "p", Status: bad, Now: now})
			return err
		})
		if err == nil {
			t.Errorf("FanoutFinish to %q: no error", bad)
		}
	}
	r := fanoutFinish(t, s, store.FanoutFinishParams{ParentID: "p", Status: store.StatusSucceeded, Result: result, Now: now})
	if r == nil {
		t.Fatal("FanoutFinish of a running parent: nil")
	}
	if r.Status != store.StatusSucceeded || !r.FinishedAt.Equal(now) || !jsonEqual(r.Result, result) || r.Error != "" ||
		r.Callback.State != store.CallbackPending || !r.Callback.NextAt.Equal(now) {
		t.Errorf("finished parent: %+v", r)
	}
	diffRun(t, "stored parent", r, get(t, s, "p"))
	if again := fanoutFinish(t, s, store.FanoutFinishParams{ParentID: "p", Status: store.StatusFailed, Now: now}); again != nil {
		t.Errorf("second FanoutFinish: %v", again)
	}
	if got := get(t, s, "p"); got.Status != store.StatusSucceeded {
		t.Errorf("after a second finish: %s", got.Status)
	}
	due := callbacksDue(t, s, now, now.Add(time.Minute), 10)
	diffIDs(t, "callbacks due", []string{"p"}, due)

	r = fanoutFinish(t, s, store.FanoutFinishParams{ParentID: "q", Status: store.StatusFailed, Error: "2 of 2 failed", Now: now})
	if r == nil || r.Status != store.StatusFailed || r.Error != "2 of 2 failed" {
		t.Fatalf("failed parent: %+v", r)
	}
	diffIDs(t, "failed runs", []string{"q"}, listRuns(t, s, store.RunListParams{Statuses: []store.RunStatus{store.StatusFailed}}).Runs)
	if c := get(t, s, childID("q", 0)); c.Status != store.StatusDispatched {
		t.Errorf("a finish of the parent moved its child: %s", c.Status)
	}
	checkCounts(t, s, "after the finishes")

	// Retention deletes a finished parent with its fan-out row (p owes
	// its callback: it stays).
	fanoutFinish(t, s, store.FanoutFinishParams{ParentID: "r", Status: store.StatusSucceeded, Now: now})
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunDeleteFinished(ctx, store.RunDeleteParams{
			FinishedBefore: map[store.RunStatus]time.Time{store.StatusSucceeded: now.Add(time.Hour)}})
		return err
	})
	if _, err := s.RunGet(ctx, "r"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("r after retention: %v", err)
	}
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.FanoutGet(ctx, "r")
		wantErr(t, "FanoutGet of a deleted parent", err, store.ErrNotFound)
		_, err = tx.FanoutGet(ctx, "p")
		return err
	})
	checkCounts(t, s, "after retention")
}

func testFanoutSetMerge(t *testing.T, s store.Store) {
	fanoutCreate(t, s, fanoutParams("p", 2, 0))
	set := func(parent, merge string) error {
		return s.Tx(ctx, func(tx store.Tx) error { return tx.FanoutSetMerge(ctx, parent, merge) })
	}
	if err := set("p", "m1"); err != nil {
		t.Fatalf("first FanoutSetMerge: %v", err)
	}
	if fo := fanoutGet(t, s, "p"); fo.MergeID != "m1" {
		t.Errorf("merge ID %q", fo.MergeID)
	}
	if err := set("p", "m1"); err != nil {
		t.Errorf("the same merge run again: %v", err)
	}
	wantErr(t, "another merge run", set("p", "m2"), store.ErrConflict)
	wantErr(t, "an unknown parent", set("nope", "m1"), store.ErrNotFound)
	if err := set("p", ""); err == nil {
		t.Error("an empty merge run: no error")
	}
	if fo := fanoutGet(t, s, "p"); fo.MergeID != "m1" {
		t.Errorf("merge ID after the refusals: %q", fo.MergeID)
	}
}

func testFanoutJoinable(t *testing.T, s store.Store) {
	now := t0.Add(time.Minute)
	for _, id := range []string{"a-done", "b-failing", "c-going", "d-finished", "e-cancelled", "f-lenient"} {
		fanoutCreate(t, s, fanoutParams(id, 3, map[bool]int{true: 1, false: 2}[id == "f-lenient"]))
	}
	for i := range 3 {
		endChild(t, s, childID("a-done", i), store.StatusSucceeded, nil, now)
		endChild(t, s, childID("d-finished", i), store.StatusSucceeded, nil, now)
		endChild(t, s, childID("e-cancelled", i), store.StatusFailed, nil, now)
	}
	endChild(t, s, childID("b-failing", 0), store.StatusFailed, nil, now)
	endChild(t, s, childID("b-failing", 1), store.StatusTimedOut, nil, now) // 2 failed > 3 - 2
	endChild(t, s, childID("c-going", 0), store.StatusFailed, nil, now)     // 1 failed: not more than 3 - 2
	endChild(t, s, childID("c-going", 1), store.StatusSucceeded, nil, now)
	endChild(t, s, childID("f-lenient", 0), store.StatusFailed, nil, now) // 2 may fail
	endChild(t, s, childID("f-lenient", 1), store.StatusFailed, nil, now)
	fanoutFinish(t, s, store.FanoutFinishParams{ParentID: "d-finished", Status: store.StatusSucceeded, Now: now})
	res := cancelRun(t, s, "e-cancelled", now)
	if !res.Changed || res.Prev != store.StatusRunning || res.Run.Status != store.StatusCancelled || !res.Run.FinishedAt.Equal(now) {
		t.Errorf("cancel of a running parent: %+v", res)
	}
	diffNames(t, "joinable", []string{"a-done", "b-failing"}, joinable(t, s, 100))
	diffNames(t, "joinable, limit 1", []string{"a-done"}, joinable(t, s, 1))
	endChild(t, s, childID("f-lenient", 2), store.StatusFailed, nil, now) // 3 failed > 3 - 1
	diffNames(t, "joinable after f's third failure", []string{"a-done", "b-failing", "f-lenient"}, joinable(t, s, 100))
	for _, bad := range []int{0, store.MaxFanoutResults + 1} {
		if _, err := s.FanoutListJoinable(ctx, bad); err == nil {
			t.Errorf("FanoutListJoinable(%d): no error", bad)
		}
	}
}

func cancelRun(t *testing.T, s store.Store, id string, now time.Time) store.RunCancelResult {
	t.Helper()
	var res store.RunCancelResult
	tx(t, s, func(tx store.Tx) error {
		var err error
		res, err = tx.RunCancel(ctx, store.RunCancelParams{ID: id, Reason: "stop", Now: now})
		return err
	})
	return res
}

func testFanoutCancelParent(t *testing.T, s store.Store) {
	fanoutCreate(t, s, fanoutParams("p", 3, 0))
	claimAll(t, s)
	now := t0.Add(time.Minute)
	res := cancelRun(t, s, "p", now)
	if !res.Changed || res.Prev != store.StatusRunning || res.PrevWorker != "" || res.Run.Status != store.StatusCancelled ||
		!res.Run.FinishedAt.Equal(now) || res.Run.Error != "stop" {
		t.Errorf("cancel of a parent: %+v", res)
	}
	for i := range 3 { // the engine cancels the children
		if c := get(t, s, childID("p", i)); c.Status != store.StatusDispatched {
			t.Errorf("child %d: %s", i, c.Status)
		}
	}
	if r := fanoutFinish(t, s, store.FanoutFinishParams{ParentID: "p", Status: store.StatusSucceeded, Now: now}); r != nil {
		t.Errorf("FanoutFinish of a cancelled parent: %v", r)
	}
	err := s.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.RunRetry(ctx, store.RunRetryParams{ID: "p", Now: now, Succeeded: true})
		return err
	})
	wantErr(t, "retry of a parent", err, store.ErrConflict)
	// Its fan-out still reads (the children to cancel), but is not joinable.
	for i := range 3 {
		cancelRun(t, s, childID("p", i), now)
	}
	wantCounters(t, s, "children cancelled", "p", 3, 3)
	diffNames(t, "joinable", nil, joinable(t, s, 10))
	diffIDs(t, "cancelled runs", []string{"p-c2", "p-c1", "p-c0", "p"},
		listRuns(t, s, store.RunListParams{Statuses: []store.RunStatus{store.StatusCancelled}}).Runs)
	checkCounts(t, s, "after the cancels")
}

// testFanoutJobParent: a parent of a job is one of the job's unfinished
// runs while it runs.
func testFanoutJobParent(t *testing.T, s store.Store) {
	p := fanoutParams("p", 2, 0)
	p.Parent.Job = "j"
	fanoutCreate(t, s, p)
	blocked := params("next")
	blocked.Job, blocked.Status = "j", store.StatusBlocked
	insert(t, s, blocked)
	wantJobParentHolds(t, s, "p", t0)
	checkCounts(t, s, "end")
}

// wantJobParentHolds checks that running parent id of job j is one of the
// job's unfinished runs beside its blocked run "next", which it keeps
// blocked (overlap) until it ends at now.
func wantJobParentHolds(t *testing.T, s store.Store, id string, now time.Time) {
	t.Helper()
	var live []*store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		live, err = tx.RunListActiveForJob(ctx, "j", 10)
		return err
	})
	diffIDs(t, "the job's unfinished runs", []string{id, "next"}, live)
	unblock := func() *store.Run {
		var r *store.Run
		tx(t, s, func(tx store.Tx) error {
			var err error
			r, err = tx.RunUnblockNext(ctx, "j", now)
			return err
		})
		return r
	}
	if r := unblock(); r != nil {
		t.Errorf("unblocked %s while the job's parent runs", r.ID)
	}
	checkCounts(t, s, "while the job's parent runs")
	fanoutFinish(t, s, store.FanoutFinishParams{ParentID: id, Status: store.StatusSucceeded, Now: now})
	if r := unblock(); r == nil || r.ID != "next" {
		t.Errorf("after the parent ended: unblocked %v, want next", r)
	}
}
