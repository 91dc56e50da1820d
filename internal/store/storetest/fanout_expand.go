package storetest

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// Splits (store.Split) and FanoutExpand: a run stored with a split fans
// out when it is claimed, its claim turned into a parent's running state.

// splitParams is a queued run of type split in group g with a split of n
// shards.
func splitParams(id string, n int) store.RunInsertParams {
	p := params(id)
	p.Type = "split"
	p.Split = &store.Split{Shards: n}
	return p
}

// claimSplits claims the queued runs of type split for srv.
func claimSplits(t *testing.T, s store.Store) []*store.Run {
	t.Helper()
	return claim(t, s, store.RunClaimParams{Group: "g", Types: []string{"split"}, Limit: 100, ServerID: "srv"})
}

// expandParams expands id, claimed at attempt by srv, into n queued
// children id-c0…; minSuccess 0 is all of them.
func expandParams(id string, attempt, n, minSuccess int, now time.Time) store.FanoutExpandParams {
	p := store.FanoutExpandParams{ID: id, Attempt: attempt, ServerID: "srv", MinSuccess: minSuccess, Now: now}
	if minSuccess == 0 {
		p.MinSuccess = n
	}
	for i := range n {
		p.Children = append(p.Children, params(childID(id, i)))
	}
	return p
}

func fanoutExpand(s store.Store, p store.FanoutExpandParams) (*store.Run, []*store.Run, error) {
	var (
		parent   *store.Run
		children []*store.Run
	)
	err := s.Tx(ctx, func(tx store.Tx) error {
		var err error
		parent, children, err = tx.FanoutExpand(ctx, p)
		return err
	})
	return parent, children, err
}

// wantSplit fails unless r has split want (nil: none).
func wantSplit(t *testing.T, what string, want *store.Split, r *store.Run) {
	t.Helper()
	if r == nil {
		t.Errorf("%s: no run", what)
		return
	}
	if d := cmp.Diff(want, r.Split); d != "" {
		t.Errorf("%s: %s's split (-want +got):\n%s", what, r.ID, d)
	}
}

// testInsertSplit: a run's split is stored by RunInsert, whatever the
// path of its insert, and every read returns it.
func testInsertSplit(t *testing.T, s store.Store) {
	splits := map[string]*store.Split{
		"a":     {Shards: 3, MinSuccess: 2, Merge: "merge"},
		"b":     {Broadcast: store.RoutingBroadcast, MinSuccess: 0.5},
		"keyed": {Broadcast: store.RoutingShardBroadcast},
		"slot":  {Shards: 1},
	}
	// A batch of plain runs (the multi-row inserts) with splits among
	// them, a run with a key and one with a job's slot (inserted alone).
	var ps []store.RunInsertParams
	for _, id := range []string{"plain0", "a", "plain1", "plain2", "b", "plain3"} {
		p := params(id)
		p.Type = "split"
		p.Split = splits[id]
		ps = append(ps, p)
	}
	keyed := params("keyed")
	keyed.Type, keyed.Key, keyed.Split = "split", "k", splits["keyed"]
	slotted := slot("slot", "j", t0)
	slotted.Type, slotted.Split = "split", splits["slot"]
	ps = append(ps, keyed, slotted)
	runs := insert(t, s, ps...)
	for _, r := range runs {
		wantSplit(t, "RunInsert", splits[r.ID], r)
		wantSplit(t, "RunGet", splits[r.ID], get(t, s, r.ID))
	}
	byKey, err := s.RunGetByKey(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	wantSplit(t, "RunGetByKey", splits["keyed"], byKey)
	listed := listRuns(t, s, store.RunListParams{})
	if len(listed.Runs) != len(ps) {
		t.Errorf("RunList: %d runs, want %d", len(listed.Runs), len(ps))
	}
	for _, r := range listed.Runs {
		wantSplit(t, "RunList", splits[r.ID], r)
	}
	// The run returned has a split of its own: the caller's may change
	// after the insert.
	if runs[1].Split == ps[1].Split {
		t.Error("RunInsert returned the caller's split")
	}

	// A run refused for its key returns the run holding it, with its own
	// split, and stores nothing of its own.
	again := params("keyed-again")
	again.Type, again.Key, again.Split = "split", "k", &store.Split{Shards: 7}
	var res []store.RunInsertResult
	tx(t, s, func(tx store.Tx) error {
		var err error
		res, err = tx.RunInsert(ctx, []store.RunInsertParams{again})
		return err
	})
	if len(res) != 1 || !res[0].Existing || res[0].Run.ID != "keyed" {
		t.Fatalf("insert with a taken key: %+v", res)
	}
	wantSplit(t, "the run holding the key", splits["keyed"], res[0].Run)
	wantSplit(t, "RunGet of the run holding the key", splits["keyed"], get(t, s, "keyed"))

	// The claim returns it, and so does RunListActive while it is held.
	claimed := claimSplits(t, s)
	if len(claimed) != len(ps) {
		t.Fatalf("claim: %v, want the %d runs", ids(claimed), len(ps))
	}
	for _, r := range claimed {
		wantSplit(t, "RunClaim", splits[r.ID], r)
	}
	active, err := s.RunListActive(ctx, store.RunListActiveParams{ServerID: "srv"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range active {
		wantSplit(t, "RunListActive", splits[r.ID], r)
	}
	if len(active) != len(ps) {
		t.Errorf("RunListActive: %v", ids(active))
	}

	// Refusals: a split CheckSplit refuses, one no JSON holds, a split on
	// a run with a parent. Nothing of the batch is stored.
	for name, mut := range map[string]func(p *store.RunInsertParams){
		"no shards, no broadcast":  func(p *store.RunInsertParams) { p.Split = &store.Split{Merge: "m"} },
		"shards and a broadcast":   func(p *store.RunInsertParams) { p.Split = &store.Split{Shards: 2, Broadcast: store.RoutingBroadcast} },
		"unknown broadcast":        func(p *store.RunInsertParams) { p.Split = &store.Split{Broadcast: "everyone"} },
		"negative shards":          func(p *store.RunInsertParams) { p.Split = &store.Split{Shards: -1} },
		"too many shards":          func(p *store.RunInsertParams) { p.Split = &store.Split{Shards: store.MaxFanout + 1} },
		"negative min success":     func(p *store.RunInsertParams) { p.Split = &store.Split{Shards: 2, MinSuccess: -1} },
		"min success not a number": func(p *store.RunInsertParams) { p.Split = &store.Split{Shards: 2, MinSuccess: math.NaN()} },
		"a parent":                 func(p *store.RunInsertParams) { p.Split, p.ParentID = &store.Split{Shards: 2}, "a" },
	} {
		p := params("bad")
		mut(&p)
		err := s.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.RunInsert(ctx, []store.RunInsertParams{params("bad-first"), p})
			return err
		})
		if err == nil {
			t.Errorf("%s: RunInsert accepted it", name)
		}
		for _, id := range []string{"bad-first", "bad"} {
			if _, err := s.RunGet(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: %s was stored (%v)", name, id, err)
			}
		}
	}
	checkCounts(t, s, "end")
}

// testFanoutExpand: a claimed run with a split becomes a parent as
// FanoutCreate makes one, and its fan-out joins as a created one does.
func testFanoutExpand(t *testing.T, s store.Store) {
	p := splitParams("p", 3)
	p.Split.MinSuccess, p.Split.Merge = 2, "merge"
	p.Payload = json.RawMessage(`{"n":3}`)
	insert(t, s, p, params("plain"))
	claimed := claimSplits(t, s)
	if len(claimed) != 1 || claimed[0].ID != "p" || claimed[0].Attempt != 1 {
		t.Fatalf("claim of the split run: %+v", claimed)
	}
	checkCounts(t, s, "after the claim")

	now := t0.Add(time.Minute)
	ep := expandParams("p", 1, 4, 2, now)
	ep.Merge = "merge"
	ep.Children[3].Status, ep.Children[3].Error = store.StatusSkipped, "nothing to do"
	ep.Children[1].Payload = json.RawMessage(`{"part":1}`)
	parent, children, err := fanoutExpand(s, ep)
	if err != nil {
		t.Fatal(err)
	}
	want := *claimed[0]
	want.Status, want.Attempt, want.ServerID, want.WorkerID = store.StatusRunning, 0, "", ""
	want.DispatchedAt, want.StartedAt, want.ShardCount, want.Split = time.Time{}, now, 4, nil
	diffRun(t, "FanoutExpand's parent", &want, parent)
	diffRun(t, "stored parent", &want, get(t, s, "p"))
	if len(children) != 4 {
		t.Fatalf("FanoutExpand returned %d children, want 4", len(children))
	}
	for i, c := range children {
		diffRun(t, "child "+c.ID+" as returned and as stored", get(t, s, childID("p", i)), c)
		if c.ID != childID("p", i) || c.ParentID != "p" || c.Shard == nil || *c.Shard != i || c.ShardCount != 4 ||
			c.Seq <= parent.Seq || c.Split != nil {
			t.Errorf("child %d: %s, parent %q, shard %v, shard count %d, seq %d", i, c.ID, c.ParentID, c.Shard, c.ShardCount, c.Seq)
		}
		wantSt := store.StatusQueued
		if i == 3 {
			wantSt = store.StatusSkipped
		}
		if c.Status != wantSt || c.Attempt != 0 {
			t.Errorf("child %d: %s attempt %d; want %s, 0", i, c.Status, c.Attempt, wantSt)
		}
	}
	if c := get(t, s, childID("p", 1)); !jsonEqual(c.Payload, json.RawMessage(`{"part":1}`)) {
		t.Errorf("child 1 payload %s", c.Payload)
	}
	fo := fanoutGet(t, s, "p")
	if d := cmp.Diff(&store.Fanout{ParentID: "p", Total: 4, Ended: 1, Failed: 1, MinSuccess: 2, Merge: "merge"}, fo); d != "" {
		t.Errorf("FanoutGet (-want +got):\n%s", d)
	}
	diffIDs(t, "children in shard order", []string{"p-c0", "p-c1", "p-c2", "p-c3"},
		listRuns(t, s, store.RunListParams{Parent: "p", Order: store.OrderAsc}).Runs)
	wantNotActive(t, s, "after the expand", "p")
	checkCounts(t, s, "after the expand")

	// Once: the run is not dispatched any more.
	if r, cs, err := fanoutExpand(s, expandParams("p", 1, 2, 0, now)); r != nil || cs != nil || err != nil {
		t.Errorf("a second FanoutExpand: %v, %v, %v", r, cs, err)
	}
	if fo := fanoutGet(t, s, "p"); fo.Total != 4 {
		t.Errorf("fan-out after a second expand: %+v", fo)
	}
	// No report names it: its claim's attempt is gone, and a requeue of
	// its server's runs leaves it alone.
	if finishOne(t, s, store.RunFinishParams{ID: "p", Attempt: 1, Status: store.StatusSucceeded, Now: now}) {
		t.Error("a finish of the claim's attempt was accepted")
	}
	if ok := start(t, s, store.RunStartParams{ID: "p", Attempt: 1, WorkerID: "w", Now: now}); ok[0] {
		t.Error("a start of the claim's attempt was accepted")
	}
	heartbeat(t, s, "alive", now)
	for _, r := range requeueLost(t, s, now.Add(time.Hour), 100) {
		if r.ID == "p" {
			t.Error("the parent was requeued as lost")
		}
	}
	diffRun(t, "parent after the reports", &want, get(t, s, "p"))

	// The children run as any: claimed, finished, joined.
	got := claimAll(t, s)
	diffIDs(t, "claim of the children", []string{"plain", "p-c0", "p-c1", "p-c2"}, got)
	for _, c := range got[1:] {
		if !finishOne(t, s, store.RunFinishParams{ID: c.ID, Attempt: c.Attempt, Status: store.StatusSucceeded,
			Result: json.RawMessage(`"` + c.ID + `"`), Now: now}) {
			t.Errorf("finish of %s refused", c.ID)
		}
	}
	wantCounters(t, s, "children ended", "p", 4, 1)
	diffNames(t, "joinable", []string{"p"}, joinable(t, s, 10))
	if rs := fanoutResults(t, s, "p", 0, 10); len(rs) != 4 || !jsonEqual(rs[2].Result, json.RawMessage(`"p-c2"`)) {
		t.Errorf("FanoutResults: %+v", rs)
	}
	checkCounts(t, s, "after the children")
	r := fanoutFinish(t, s, store.FanoutFinishParams{ParentID: "p", Status: store.StatusSucceeded, Result: json.RawMessage(`[]`), Now: now})
	if r == nil || r.Status != store.StatusSucceeded || !r.FinishedAt.Equal(now) {
		t.Fatalf("FanoutFinish of the expanded parent: %+v", r)
	}
	diffNames(t, "joinable after the finish", nil, joinable(t, s, 10))
	checkCounts(t, s, "after the finish")
}

// testFanoutExpandFenced: FanoutExpand applies only to a run dispatched at
// the attempt by the server, with a split; otherwise it changes nothing.
func testFanoutExpandFenced(t *testing.T, s store.Store) {
	insert(t, s, splitParams("a", 2), splitParams("cancelled", 2), splitParams("started", 2), splitParams("adopted", 2))
	plain := params("plain")
	plain.Type = "split"
	insert(t, s, plain)
	claimSplits(t, s)
	queued := splitParams("queued", 2)
	insert(t, s, queued)
	cancelRun(t, s, "cancelled", t0)
	start(t, s, store.RunStartParams{ID: "started", Attempt: 1, WorkerID: "w", Now: t0})
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunAdopt(ctx, []store.RunAdoptParams{{ID: "adopted", Attempt: 1, ServerID: "srv2"}})
		return err
	})
	checkCounts(t, s, "before")
	now := t0.Add(time.Minute)

	for _, c := range []struct {
		what string
		p    store.FanoutExpandParams
	}{
		{"another attempt", expandParams("a", 2, 2, 0, now)},
		{"another server", func() store.FanoutExpandParams { p := expandParams("a", 1, 2, 0, now); p.ServerID = "srv2"; return p }()},
		{"a run without a split", expandParams("plain", 1, 2, 0, now)},
		{"a queued run", expandParams("queued", 1, 2, 0, now)},
		{"a cancelled run", expandParams("cancelled", 1, 2, 0, now)},
		{"a running run", expandParams("started", 1, 2, 0, now)},
		{"a run another server adopted", expandParams("adopted", 1, 2, 0, now)},
		{"no such run", expandParams("nope", 1, 2, 0, now)},
	} {
		var before *store.Run
		if c.p.ID != "nope" {
			before = get(t, s, c.p.ID)
		}
		r, cs, err := fanoutExpand(s, c.p)
		if r != nil || cs != nil || err != nil {
			t.Errorf("%s: FanoutExpand = %v, %v, %v; want nils", c.what, r, cs, err)
		}
		if before != nil {
			diffRun(t, c.what+": the run", before, get(t, s, c.p.ID))
		}
		if _, err := s.FanoutRead(ctx, c.p.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: FanoutRead: %v, want ErrNotFound", c.what, err)
		}
		if _, err := s.RunGet(ctx, childID(c.p.ID, 0)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: a child was stored (%v)", c.what, err)
		}
	}
	checkCounts(t, s, "after the fenced expands")

	// Params no backend takes.
	for name, mut := range map[string]func(p *store.FanoutExpandParams){
		"attempt 0":        func(p *store.FanoutExpandParams) { p.Attempt = 0 },
		"no server":        func(p *store.FanoutExpandParams) { p.ServerID = "" },
		"no ID":            func(p *store.FanoutExpandParams) { p.ID = "" },
		"no children":      func(p *store.FanoutExpandParams) { p.Children = nil },
		"min success 0":    func(p *store.FanoutExpandParams) { p.MinSuccess = 0 },
		"min success over": func(p *store.FanoutExpandParams) { p.MinSuccess = 3 },
		"child with a key": func(p *store.FanoutExpandParams) { p.Children[1].Key = "ck" },
		"child with a split": func(p *store.FanoutExpandParams) {
			p.Children[1].Split = &store.Split{Shards: 2}
		},
	} {
		p := expandParams("a", 1, 2, 0, now)
		mut(&p)
		if _, _, err := fanoutExpand(s, p); err == nil {
			t.Errorf("%s: FanoutExpand accepted it", name)
		}
	}
	if r := get(t, s, "a"); r.Status != store.StatusDispatched || r.Split == nil {
		t.Errorf("a after the refusals: %s, split %v", r.Status, r.Split)
	}
	// A child's ID that names a run fails the call, and the transaction
	// rolls back: the run stays claimed.
	taken := expandParams("a", 1, 2, 0, now)
	taken.Children[1].ID = "plain"
	if _, _, err := fanoutExpand(s, taken); err == nil {
		t.Error("a child ID naming a run: FanoutExpand accepted it")
	}
	if r := get(t, s, "a"); r.Status != store.StatusDispatched || r.Split == nil {
		t.Errorf("a after a failed expand: %s, split %v", r.Status, r.Split)
	}

	// The adopting server expands it.
	ap := expandParams("adopted", 1, 2, 0, now)
	ap.ServerID = "srv2"
	if r, cs, err := fanoutExpand(s, ap); err != nil || r == nil || len(cs) != 2 {
		t.Errorf("expand by the adopting server: %v, %v, %v", r, cs, err)
	}
	wantNotActive(t, s, "the adopted run expanded", "adopted")
	checkCounts(t, s, "end")
}

// testFanoutExpandJob: a job's run that expanded is one of the job's
// unfinished runs while it runs, as a created parent of a job is.
func testFanoutExpandJob(t *testing.T, s store.Store) {
	p := slot("p", "j", t0)
	p.Type, p.Split = "split", &store.Split{Shards: 2}
	blocked := params("next")
	blocked.Job, blocked.Status = "j", store.StatusBlocked
	insert(t, s, p, blocked)
	claimSplits(t, s)
	now := t0.Add(time.Minute)
	parent, _, err := fanoutExpand(s, expandParams("p", 1, 2, 0, now))
	if err != nil || parent == nil || parent.Job != "j" || !parent.LogicalTime.Equal(t0) {
		t.Fatalf("expand of a job's run: %+v, %v", parent, err)
	}
	wantJobParentHolds(t, s, "p", now)
	checkCounts(t, s, "end")
}
