package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

func testInsertAndGet(t *testing.T, s store.Store) {
	shard := 3
	p := store.RunInsertParams{
		ID:          "r1",
		Job:         "nightly-report",
		ParentID:    "r0",
		Shard:       &shard,
		Type:        "email.send",
		Group:       "mail",
		Payload:     json.RawMessage(`{"to": "a@example.com", "n": [1, 2.5, "x"], "nested": {"ok": true}}`),
		Priority:    7,
		Status:      store.StatusQueued,
		MaxAttempts: 3,
		Key:         "order-42",
		LogicalTime: t0.Add(-24 * time.Hour),
		RunAt:       t0.Add(time.Minute),
		Timeout:     90 * time.Second,
		Routing:     "hash",
		RoutingKey:  "customer-9",
		Now:         t0,
	}
	got := insert(t, s, p)[0]
	shard2 := 3
	want := &store.Run{
		ID:          "r1",
		Seq:         got.Seq,
		Job:         "nightly-report",
		ParentID:    "r0",
		Shard:       &shard2,
		Type:        "email.send",
		Group:       "mail",
		Payload:     p.Payload,
		Priority:    7,
		Status:      store.StatusQueued,
		MaxAttempts: 3,
		Key:         "order-42",
		LogicalTime: t0.Add(-24 * time.Hour),
		RunAt:       t0.Add(time.Minute),
		CreatedAt:   t0,
		Timeout:     90 * time.Second,
		Routing:     "hash",
		RoutingKey:  "customer-9",
	}
	if got.Seq <= 0 {
		t.Errorf("Seq = %d, want > 0", got.Seq)
	}
	diffRun(t, "RunInsert result", want, got)
	diffRun(t, "RunGet", want, get(t, s, "r1"))
	byKey, err := s.RunGetByKey(ctx, "order-42")
	if err != nil {
		t.Fatalf("RunGetByKey: %v", err)
	}
	diffRun(t, "RunGetByKey", want, byKey)

	// Insertion order is Seq order, across and within batches.
	more := insert(t, s, params("r2"), params("r3"))
	more = append(more, insert(t, s, params("r4"))...)
	last := got.Seq
	for _, r := range more {
		if r.Seq <= last {
			t.Errorf("run %s has Seq %d, not after %d", r.ID, r.Seq, last)
		}
		last = r.Seq
		diffRun(t, "RunGet "+r.ID, r, get(t, s, r.ID))
	}
}

func testInsertDefaults(t *testing.T, s store.Store) {
	// A minimal run: no payload, shard, key or times. RunAt defaults to Now;
	// attempt and failures start at zero whatever the caller passes.
	p := store.RunInsertParams{ID: "r1", Type: "t", Group: "g", Status: store.StatusPending, Now: t0}
	got := insert(t, s, p)[0]
	want := &store.Run{
		ID: "r1", Seq: got.Seq, Type: "t", Group: "g", Status: store.StatusPending,
		RunAt: t0, CreatedAt: t0,
	}
	diffRun(t, "RunInsert result", want, got)
	diffRun(t, "RunGet", want, get(t, s, "r1"))
	if got := get(t, s, "r1"); got.Payload != nil && string(got.Payload) != "null" {
		t.Errorf("Payload = %q, want nil", got.Payload)
	}

	// Every insertable status is accepted and kept.
	for _, st := range []store.RunStatus{store.StatusBlocked, store.StatusQueued, store.StatusSkipped} {
		p := params("r-" + string(st))
		p.Status = st
		insert(t, s, p)
		if got := get(t, s, p.ID).Status; got != st {
			t.Errorf("status %s stored as %s", st, got)
		}
	}
}

func testInsertRejectsBadStatus(t *testing.T, s store.Store) {
	for _, st := range []store.RunStatus{store.StatusDispatched, store.StatusRunning, store.StatusSucceeded, "bogus", ""} {
		good, bad := params("good-"+string(st)), params("bad-"+string(st))
		bad.Status = st
		err := s.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.RunInsert(ctx, []store.RunInsertParams{good, bad})
			return err
		})
		if err == nil {
			t.Errorf("RunInsert with status %q: no error", st)
		}
		for _, id := range []string{good.ID, bad.ID} {
			if _, err := s.RunGet(ctx, id); !isNotFound(err) {
				t.Errorf("after a failed insert (status %q), RunGet(%q) = %v, want ErrNotFound", st, id, err)
			}
		}
	}
}

func testInsertIdempotencyKey(t *testing.T, s store.Store) {
	a := params("a")
	a.Key = "k1"
	first := insert(t, s, a)[0]

	// Same key in a later batch, a new key twice in one batch, and runs
	// without a key (which never collide).
	b := params("b")
	b.Key = "k1"
	b.Priority = 99
	c, d := params("c"), params("d")
	c.Key, d.Key = "k2", "k2"
	e, f := params("e"), params("f")
	var res []store.RunInsertResult
	tx(t, s, func(tx store.Tx) error {
		var err error
		res, err = tx.RunInsert(ctx, []store.RunInsertParams{b, c, d, e, f})
		return err
	})
	if len(res) != 5 {
		t.Fatalf("got %d results, want 5", len(res))
	}
	type outcome struct {
		ID       string
		Existing bool
	}
	var got []outcome
	for _, r := range res {
		got = append(got, outcome{r.Run.ID, r.Existing})
	}
	want := []outcome{{"a", true}, {"c", false}, {"c", true}, {"e", false}, {"f", false}}
	if len(got) != len(want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("element %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	diffRun(t, "existing run returned for b", first, res[0].Run)
	if res[2].Run.Seq != res[1].Run.Seq {
		t.Errorf("d returned Seq %d, want c's %d", res[2].Run.Seq, res[1].Run.Seq)
	}
	for _, id := range []string{"b", "d"} {
		if _, err := s.RunGet(ctx, id); !isNotFound(err) {
			t.Errorf("RunGet(%q) = %v, want ErrNotFound (nothing written for a duplicate key)", id, err)
		}
	}
	if p := get(t, s, "a").Priority; p != 0 {
		t.Errorf("existing run changed: priority %d", p)
	}
	r, err := s.RunGetByKey(ctx, "k2")
	if err != nil || r.ID != "c" {
		t.Errorf("RunGetByKey(k2) = %v, %v; want run c", r, err)
	}
	page, err := s.RunList(ctx, store.RunListParams{})
	if err != nil {
		t.Fatal(err)
	}
	diffIDs(t, "all runs", []string{"f", "e", "c", "a"}, page.Runs)

	// Re-sending the whole first batch is a no-op.
	tx(t, s, func(tx store.Tx) error {
		res, err := tx.RunInsert(ctx, []store.RunInsertParams{a})
		if err == nil && (!res[0].Existing || res[0].Run.ID != "a") {
			t.Errorf("resend: got %+v", res[0])
		}
		return err
	})
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, store.ErrNotFound) }

func testNotFound(t *testing.T, s store.Store) {
	insert(t, s, params("exists"))
	_, err := s.RunGet(ctx, "nope")
	wantErr(t, "RunGet", err, store.ErrNotFound)
	_, err = s.RunGetByKey(ctx, "nope")
	wantErr(t, "RunGetByKey", err, store.ErrNotFound)
	err = s.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.RunCancel(ctx, store.RunCancelParams{ID: "nope", Now: t0})
		return err
	})
	wantErr(t, "RunCancel", err, store.ErrNotFound)
	err = s.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.RunRetry(ctx, store.RunRetryParams{ID: "nope", Now: t0})
		return err
	})
	wantErr(t, "RunRetry", err, store.ErrNotFound)
	// Reports for unknown runs are rejected, not errors.
	if ok := start(t, s, store.RunStartParams{ID: "nope", Attempt: 1, Now: t0}); ok[0] {
		t.Error("RunStart of an unknown run applied")
	}
	if finishOne(t, s, store.RunFinishParams{ID: "nope", Attempt: 1, Status: store.StatusSucceeded, Now: t0}) {
		t.Error("RunFinish of an unknown run accepted")
	}
}

func testTimePrecision(t *testing.T, s store.Store) {
	// Nanoseconds are cut to microseconds; the zone does not matter.
	ns := time.Date(2026, 3, 4, 5, 6, 7, 987654321, time.FixedZone("X", -5*3600-1800))
	p := params("r1")
	p.Now = ns
	p.RunAt = ns.Add(time.Second)
	p.LogicalTime = ns.Add(-time.Hour)
	ins := insert(t, s, p)[0]
	got := get(t, s, "r1")
	for _, c := range []struct {
		name           string
		want, ins, got time.Time
	}{
		{"CreatedAt", ns, ins.CreatedAt, got.CreatedAt},
		{"RunAt", ns.Add(time.Second), ins.RunAt, got.RunAt},
		{"LogicalTime", ns.Add(-time.Hour), ins.LogicalTime, got.LogicalTime},
	} {
		w := c.want.Truncate(time.Microsecond)
		if !c.got.Equal(w) {
			t.Errorf("%s read back as %v, want %v", c.name, c.got, w)
		}
		if !c.ins.Equal(w) {
			t.Errorf("%s returned by RunInsert as %v, want %v", c.name, c.ins, w)
		}
	}

	claimAll(t, s)
	started := ns.Add(2*time.Second + 333)
	start(t, s, store.RunStartParams{ID: "r1", Attempt: 1, WorkerID: "w", Now: started})
	finished := ns.Add(3*time.Second + 999)
	finishOne(t, s, store.RunFinishParams{ID: "r1", Attempt: 1, Status: store.StatusSucceeded, Now: finished})
	got = get(t, s, "r1")
	if w := started.Truncate(time.Microsecond); !got.StartedAt.Equal(w) {
		t.Errorf("StartedAt = %v, want %v", got.StartedAt, w)
	}
	if w := finished.Truncate(time.Microsecond); !got.FinishedAt.Equal(w) {
		t.Errorf("FinishedAt = %v, want %v", got.FinishedAt, w)
	}

	// Times far from now survive too.
	far := params("far")
	far.RunAt = time.Date(2300, 1, 1, 0, 0, 0, 1000, time.UTC)
	far.LogicalTime = time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC)
	insert(t, s, far)
	got = get(t, s, "far")
	if !got.RunAt.Equal(far.RunAt) || !got.LogicalTime.Equal(far.LogicalTime) {
		t.Errorf("far times read back as %v, %v", got.RunAt, got.LogicalTime)
	}
}

// testInsertLargeMixedBatch inserts one batch of 300 runs, some with keys
// (a few repeating earlier ones), and checks every result against the
// stored run, in input order.
func testInsertLargeMixedBatch(t *testing.T, s store.Store) {
	pre := params("pre")
	pre.Key = "key-0"
	insert(t, s, pre)
	var ps []store.RunInsertParams
	for i := range 300 {
		p := params(runID(i))
		p.Priority = i % 5
		p.Payload = json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))
		if i%7 == 3 || i%50 == 0 {
			p.Key = fmt.Sprintf("key-%d", i%100) // i=0 repeats "pre"; i=100, 200 repeat i=0's key
		}
		ps = append(ps, p)
	}
	var res []store.RunInsertResult
	tx(t, s, func(tx store.Tx) error {
		var err error
		res, err = tx.RunInsert(ctx, ps)
		return err
	})
	if len(res) != len(ps) {
		t.Fatalf("%d results for %d runs", len(res), len(ps))
	}
	keys := map[string]string{"key-0": "pre"}
	var last int64
	for i, r := range res {
		p := ps[i]
		if owner, dup := keys[p.Key]; p.Key != "" && dup {
			if !r.Existing || r.Run.ID != owner {
				t.Errorf("run %d (key %s): got %s existing=%v, want existing %s", i, p.Key, r.Run.ID, r.Existing, owner)
			}
			continue
		}
		if p.Key != "" {
			keys[p.Key] = p.ID
		}
		if r.Existing || r.Run.ID != p.ID {
			t.Errorf("run %d: got %s existing=%v", i, r.Run.ID, r.Existing)
			continue
		}
		if r.Run.Seq <= last {
			t.Errorf("run %d: Seq %d not after %d", i, r.Run.Seq, last)
		}
		last = r.Run.Seq
		diffRun(t, "run "+p.ID, r.Run, get(t, s, p.ID))
	}
}
