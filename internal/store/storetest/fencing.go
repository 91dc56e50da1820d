package storetest

import (
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// testFencingMatrix sends every kind of stale report — an old attempt, a
// future one, another server's, an unknown run's — for a dispatched run
// (starts) and a running one (finishes), with and without a callback URL
// (a backend may finish those by another statement), and checks that each
// is rejected without changing the run; then the holder's own reports are
// accepted.
func testFencingMatrix(t *testing.T, s store.Store) {
	for _, kind := range []struct {
		name string
		mk   func(id string) store.RunInsertParams
	}{{"plain", params}, {"callback", cbParams}} {
		t.Run(kind.name, func(t *testing.T) { fencingMatrix(t, s, kind.name, kind.mk) })
	}
}

func fencingMatrix(t *testing.T, s store.Store, prefix string, mk func(id string) store.RunInsertParams) {
	// Two runs, each at attempt 2 (the first attempt handed back) and held
	// by srv-1: d stays dispatched, r is started.
	d, r := prefix+"-d", prefix+"-r"
	for _, id := range []string{d, r} {
		p := mk(id)
		p.Group = id // claimed alone
		insert(t, s, p)
		c := store.RunClaimParams{Group: id, Types: []string{"t"}, Limit: 1, ServerID: "srv-1"}
		claim(t, s, c)
		if !finishOne(t, s, store.RunFinishParams{ID: id, Attempt: 1, Status: store.StatusQueued, Now: t0}) {
			t.Fatalf("hand-back of %s rejected", id)
		}
		if got := claim(t, s, c); len(got) != 1 || got[0].Attempt != 2 {
			t.Fatalf("re-claim of %s: %v", id, ids(got))
		}
	}
	t1 := t0.Add(time.Second)
	if ok := start(t, s, store.RunStartParams{ID: r, Attempt: 2, WorkerID: "w1", ServerID: "srv-1", Now: t1}); !ok[0] {
		t.Fatalf("start of %s rejected", r)
	}
	stale := []struct {
		what     string
		id       string
		attempt  int
		serverID string
	}{
		{"an old attempt", "", 1, ""},
		{"an old attempt, by the holder", "", 1, "srv-1"},
		{"a future attempt", "", 3, ""},
		{"another server", "", 2, "srv-2"},
		{"an unknown run", prefix + "-none", 2, ""},
	}
	before := map[string]*store.Run{d: get(t, s, d), r: get(t, s, r)}
	t2 := t1.Add(time.Second)
	for _, c := range stale {
		id := c.id
		if id == "" {
			id = d
		}
		if ok := start(t, s, store.RunStartParams{ID: id, Attempt: c.attempt, WorkerID: "w9", ServerID: c.serverID, Now: t2}); ok[0] {
			t.Errorf("start of %s by %s applied", id, c.what)
		}
		if c.id == "" {
			id = r
		}
		for _, st := range []store.RunStatus{store.StatusSucceeded, store.StatusFailed, store.StatusPending, store.StatusQueued} {
			res := finish(t, s, store.RunFinishParams{ID: id, Attempt: c.attempt, Status: st, Failure: st != store.StatusSucceeded,
				RunAt: t2.Add(time.Minute), Error: "stale", WorkerID: "w9", ServerID: c.serverID, Now: t2})
			if res[0].Accepted || res[0].Callback {
				t.Errorf("finish of %s (%s) by %s: %+v, want rejected", id, st, c.what, res[0])
			}
		}
	}
	for id, b := range before {
		diffRun(t, "after stale reports: "+id, b, get(t, s, id))
	}

	// The holder's reports apply.
	if ok := start(t, s, store.RunStartParams{ID: d, Attempt: 2, WorkerID: "w1", ServerID: "srv-1", Now: t2}); !ok[0] {
		t.Errorf("start of %s by its holder rejected", d)
	}
	for _, id := range []string{d, r} {
		res := finish(t, s, store.RunFinishParams{ID: id, Attempt: 2, Status: store.StatusSucceeded, ServerID: "srv-1", Now: t2})
		if !res[0].Accepted {
			t.Errorf("finish of %s by its holder rejected", id)
		}
		if got := get(t, s, id); got.Status != store.StatusSucceeded || got.Attempt != 2 || got.Error != "" {
			t.Errorf("%s after its holder's finish: %s attempt %d error %q", id, got.Status, got.Attempt, got.Error)
		}
	}
}
