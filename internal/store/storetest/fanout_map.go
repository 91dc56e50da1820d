package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// Map-reduce (FanoutMap, FanoutRelease): a run its worker holds makes
// children; it stays its worker's run, never joins, until its release
// makes it their parent.

// mapperParams is a queued run of type mapper in group g.
func mapperParams(id string) store.RunInsertParams {
	p := params(id)
	p.Type, p.MaxAttempts = "mapper", 3
	return p
}

// claimMappers claims the queued mappers for srv and starts them on w.
func claimMappers(t *testing.T, s store.Store) []*store.Run {
	t.Helper()
	runs := claim(t, s, store.RunClaimParams{Group: "g", Types: []string{"mapper"}, Limit: 100, ServerID: "srv"})
	for _, r := range runs {
		start(t, s, store.RunStartParams{ID: r.ID, Attempt: r.Attempt, WorkerID: "w", Now: t0})
	}
	return runs
}

// mapParams maps id, held at attempt by srv, into n queued children id-c0….
func mapParams(id string, attempt, n int) store.FanoutMapParams {
	p := store.FanoutMapParams{ID: id, Attempt: attempt, ServerID: "srv", MinSuccess: n, Now: t0.Add(time.Second)}
	for i := range n {
		p.Children = append(p.Children, params(childID(id, i)))
	}
	return p
}

func fanoutMap(s store.Store, p store.FanoutMapParams) (store.FanoutMapResult, error) {
	var res store.FanoutMapResult
	err := s.Tx(ctx, func(tx store.Tx) error {
		var err error
		res, err = tx.FanoutMap(ctx, p)
		return err
	})
	return res, err
}

func fanoutRelease(t *testing.T, s store.Store, p store.FanoutReleaseParams) *store.Run {
	t.Helper()
	var r *store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		r, err = tx.FanoutRelease(ctx, p)
		return err
	})
	return r
}

// wantActive fails unless RunListActive for srv lists id.
func wantActive(t *testing.T, s store.Store, what, id string) {
	t.Helper()
	active, err := s.RunListActive(ctx, store.RunListActiveParams{ServerID: "srv"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range active {
		if r.ID == id {
			return
		}
	}
	t.Errorf("%s: RunListActive does not list %s", what, id)
}

func testFanoutMap(t *testing.T, s store.Store) {
	insert(t, s, mapperParams("m"))
	claimMappers(t, s)
	held := get(t, s, "m")
	mp := mapParams("m", 1, 3)
	mp.MinSuccess, mp.Merge = 2, "reduce"
	res, err := fanoutMap(s, mp)
	if err != nil {
		t.Fatal(err)
	}
	if res.Existing || res.Total != 3 || len(res.Children) != 3 {
		t.Fatalf("FanoutMap: %+v", res)
	}
	for i, c := range res.Children {
		diffRun(t, "child "+c.ID+" as returned and as stored", get(t, s, childID("m", i)), c)
		if c.ParentID != "m" || c.Shard == nil || *c.Shard != i || c.ShardCount != 3 || c.Status != store.StatusQueued {
			t.Errorf("child %d: %+v", i, c)
		}
	}
	// The run is its worker's as before.
	diffRun(t, "the mapped run", held, get(t, s, "m"))
	wantActive(t, s, "after the map", "m")
	if d := cmp.Diff(&store.Fanout{ParentID: "m", Total: 3, MinSuccess: 2, Merge: "reduce"}, fanoutGet(t, s, "m")); d != "" {
		t.Errorf("FanoutGet (-want +got):\n%s", d)
	}
	checkCounts(t, s, "after the map")

	// Again, at this attempt: nothing more.
	again, err := fanoutMap(s, mapParams("m", 1, 5))
	if err != nil || !again.Existing || again.Total != 3 || again.Children != nil {
		t.Errorf("a second FanoutMap: %+v, %v", again, err)
	}
	if n := len(listRuns(t, s, store.RunListParams{Parent: "m"}).Runs); n != 3 {
		t.Errorf("%d runs name the parent after a second map, want 3", n)
	}

	// Every child ends while the handler still runs: no join.
	claimAll(t, s)
	for i := range 3 {
		finishOne(t, s, store.RunFinishParams{ID: childID("m", i), Attempt: 1, Status: store.StatusSucceeded, Now: t0})
	}
	wantCounters(t, s, "children ended", "m", 3, 0)
	if j := joinable(t, s, 100); len(j) != 0 {
		t.Errorf("FanoutListJoinable lists %v while the mapper is held", j)
	}
	if r := fanoutFinish(t, s, store.FanoutFinishParams{ParentID: "m", Status: store.StatusSucceeded, Now: t0}); r != nil {
		t.Errorf("FanoutFinish ended a held mapper: %+v", r)
	}

	// The release makes it their parent, open to the join.
	now := t0.Add(time.Minute)
	r := fanoutRelease(t, s, store.FanoutReleaseParams{ID: "m", Attempt: 1, ServerID: "srv", Now: now})
	want := *held
	want.Attempt, want.ServerID, want.WorkerID, want.DispatchedAt, want.ShardCount = 0, "", "", time.Time{}, 3
	diffRun(t, "FanoutRelease's parent", &want, r)
	diffRun(t, "stored parent", &want, get(t, s, "m"))
	wantNotActive(t, s, "after the release", "m")
	if j := joinable(t, s, 100); len(j) != 1 || j[0] != "m" {
		t.Errorf("FanoutListJoinable after the release: %v", j)
	}
	if r := fanoutRelease(t, s, store.FanoutReleaseParams{ID: "m", Attempt: 1, ServerID: "srv", Now: now}); r != nil {
		t.Errorf("a second FanoutRelease: %+v", r)
	}
	if ok := finishOne(t, s, store.RunFinishParams{ID: "m", Attempt: 1, Status: store.StatusSucceeded, Now: now}); ok {
		t.Error("the worker's finish of its attempt matched the released parent")
	}
	ended := fanoutFinish(t, s, store.FanoutFinishParams{ParentID: "m", Status: store.StatusSucceeded, Now: now})
	if ended == nil || ended.Status != store.StatusSucceeded {
		t.Fatalf("FanoutFinish of the released parent: %+v", ended)
	}
	checkCounts(t, s, "end")
}

// testFanoutMapFenced: only the run's current attempt, on its server,
// maps; a run that is a fan-out's already does not; a mapper lost with its
// server maps again at its next attempt and gets the children it made.
func testFanoutMapFenced(t *testing.T, s store.Store) {
	insert(t, s, mapperParams("a"), mapperParams("lost"), mapperParams("failed"))
	claimMappers(t, s)
	insert(t, s, mapperParams("queued"))
	fanoutCreate(t, s, fanoutParams("p", 2, 0))
	merge := params("merge")
	merge.ParentID = "p"
	insert(t, s, merge)
	checkCounts(t, s, "before")

	for _, c := range []struct {
		what string
		p    store.FanoutMapParams
		want error
	}{
		{"another attempt", mapParams("a", 2, 2), store.ErrConflict},
		{"another server", func() store.FanoutMapParams { p := mapParams("a", 1, 2); p.ServerID = "srv2"; return p }(), store.ErrConflict},
		{"a queued run", mapParams("queued", 1, 2), store.ErrConflict},
		{"a parent", mapParams("p", 1, 2), store.ErrConflict},
		{"a child", func() store.FanoutMapParams { return mapParams(childID("p", 0), 1, 2) }(), store.ErrConflict},
		{"a merge run", mapParams("merge", 1, 2), store.ErrConflict},
		{"no such run", mapParams("nope", 1, 2), store.ErrNotFound},
	} {
		if c.p.ID == childID("p", 0) || c.p.ID == "merge" {
			claimAll(t, s)
		}
		if _, err := fanoutMap(s, c.p); !errors.Is(err, c.want) {
			t.Errorf("%s: FanoutMap: %v, want %v", c.what, err, c.want)
		}
		if _, err := s.RunGet(ctx, childID(c.p.ID, 1)); !errors.Is(err, store.ErrNotFound) && c.p.ID != "p" {
			t.Errorf("%s: a child was stored (%v)", c.what, err)
		}
	}
	if r := fanoutRelease(t, s, store.FanoutReleaseParams{ID: "a", Attempt: 1, ServerID: "srv", Now: t0}); r != nil {
		t.Errorf("the release of a run that did not map: %+v", r)
	}
	checkCounts(t, s, "after the refusals")

	// Unfenced (ServerID ""), as an exclusive store's engine maps.
	unfenced := mapParams("a", 1, 2)
	unfenced.ServerID = ""
	if res, err := fanoutMap(s, unfenced); err != nil || res.Total != 2 {
		t.Fatalf("unfenced FanoutMap: %+v, %v", res, err)
	}
	if r := fanoutRelease(t, s, store.FanoutReleaseParams{ID: "a", Attempt: 2, Now: t0}); r != nil {
		t.Errorf("a release at another attempt: %+v", r)
	}
	if r := fanoutRelease(t, s, store.FanoutReleaseParams{ID: "a", Attempt: 1, ServerID: "srv2", Now: t0}); r != nil {
		t.Errorf("a release by another server: %+v", r)
	}

	// A mapper whose handler fails for good ends as any run: its
	// children stay (the engine cancels them), never joined.
	if _, err := fanoutMap(s, mapParams("failed", 1, 2)); err != nil {
		t.Fatal(err)
	}
	if !finishOne(t, s, store.RunFinishParams{ID: "failed", Attempt: 1, Status: store.StatusFailed, Failure: true, ServerID: "srv", Now: t0}) {
		t.Error("the finish of a held mapper was refused")
	}
	if r := fanoutRelease(t, s, store.FanoutReleaseParams{ID: "failed", Attempt: 1, ServerID: "srv", Now: t0}); r != nil {
		t.Errorf("the release of a failed mapper: %+v", r)
	}
	for _, id := range joinable(t, s, 100) {
		if id == "failed" {
			t.Error("FanoutListJoinable lists the failed mapper")
		}
	}
	// The mapper's server is lost: the run is queued again, with its
	// children; its next attempt's map makes none.
	if _, err := fanoutMap(s, mapParams("lost", 1, 2)); err != nil {
		t.Fatal(err)
	}
	tx(t, s, func(tx store.Tx) error {
		_, err := tx.RunRequeueLost(ctx, store.RunRequeueLostParams{StaleBefore: t0.Add(time.Hour), Limit: 100, Now: t0.Add(time.Hour)})
		return err
	})
	if r := get(t, s, "lost"); r.Status != store.StatusQueued || r.ShardCount != 0 {
		t.Fatalf("the lost mapper: %s, shard count %d", r.Status, r.ShardCount)
	}
	claimMappers(t, s) // a and queued too
	if again := get(t, s, "lost"); again.Status != store.StatusRunning || again.Attempt != 2 {
		t.Fatalf("the lost mapper claimed again: %s at attempt %d", again.Status, again.Attempt)
	}
	res, err := fanoutMap(s, mapParams("lost", 2, 4))
	if err != nil || !res.Existing || res.Total != 2 {
		t.Errorf("the map of the next attempt: %+v, %v", res, err)
	}
	if r := fanoutRelease(t, s, store.FanoutReleaseParams{ID: "lost", Attempt: 2, ServerID: "srv", Now: t0}); r == nil ||
		r.Attempt != 1 || r.ShardCount != 2 {
		t.Errorf("the release of the next attempt: %+v", r)
	}

	checkCounts(t, s, "end")

	// Params no backend takes.
	for name, mut := range map[string]func(p *store.FanoutMapParams){
		"attempt 0":        func(p *store.FanoutMapParams) { p.Attempt = 0 },
		"no ID":            func(p *store.FanoutMapParams) { p.ID = "" },
		"no children":      func(p *store.FanoutMapParams) { p.Children = nil },
		"min success 0":    func(p *store.FanoutMapParams) { p.MinSuccess = 0 },
		"min success over": func(p *store.FanoutMapParams) { p.MinSuccess = 3 },
		"child with a key": func(p *store.FanoutMapParams) { p.Children[1].Key = "ck" },
	} {
		p := mapParams("queued", 1, 2)
		mut(&p)
		if _, err := fanoutMap(s, p); err == nil {
			t.Errorf("%s: FanoutMap accepted it", name)
		}
	}
	for _, p := range []store.FanoutReleaseParams{{ID: "a", Now: t0}, {Attempt: 1, Now: t0}} {
		err := s.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.FanoutRelease(ctx, p)
			return err
		})
		if err == nil {
			t.Errorf("FanoutRelease(%+v) accepted it", p)
		}
	}
}
