package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// Alerts (store/alerts.go): stored once per key; a webhook's delivery is
// claimed and recorded like a run's callback; groups' default rules; a
// job's own rules.

// alert is a failed-run alert of run "run-ID" of job j, created at `at`,
// without a webhook.
func alert(id string, at time.Time) *store.Alert {
	return &store.Alert{ID: id, Key: "run:run-" + id + ":failed", Job: "j", Group: "g", RunID: "run-" + id,
		Rule: store.AlertFailed, Reason: "run failed: boom", CreatedAt: at}
}

// hooked gives a a webhook, its delivery pending from its creation.
func hooked(a *store.Alert) *store.Alert {
	a.Webhook, a.Format = hook, store.AlertFormatSlack
	a.Delivery = store.Callback{State: store.CallbackPending, NextAt: a.CreatedAt}
	return a
}

func insertAlerts(t *testing.T, s store.Store, as ...*store.Alert) []bool {
	t.Helper()
	var ok []bool
	tx(t, s, func(tx store.Tx) error {
		var err error
		ok, err = tx.AlertInsert(ctx, as)
		return err
	})
	if len(ok) != len(as) {
		t.Fatalf("AlertInsert returned %d results for %d alerts", len(ok), len(as))
	}
	return ok
}

func listAlerts(t *testing.T, s store.Store, p store.AlertListParams) []*store.Alert {
	t.Helper()
	if p.Limit == 0 {
		p.Limit = 1000
	}
	as, err := s.AlertList(ctx, p)
	if err != nil {
		t.Fatalf("AlertList(%+v): %v", p, err)
	}
	return as
}

func alertsDue(t *testing.T, s store.Store, now, lease time.Time, limit int) []*store.Alert {
	t.Helper()
	var as []*store.Alert
	tx(t, s, func(tx store.Tx) error {
		var err error
		as, err = tx.AlertListDue(ctx, store.CallbackListDueParams{Now: now, LeaseUntil: lease, Limit: limit})
		return err
	})
	return as
}

func alertRecord(t *testing.T, s store.Store, ps ...store.CallbackRecordParams) []bool {
	t.Helper()
	var ok []bool
	tx(t, s, func(tx store.Tx) error {
		var err error
		ok, err = tx.AlertRecord(ctx, ps)
		return err
	})
	if len(ok) != len(ps) {
		t.Fatalf("AlertRecord returned %d results for %d", len(ok), len(ps))
	}
	return ok
}

func alertNextAt(t *testing.T, s store.Store) time.Time {
	t.Helper()
	at, err := s.AlertNextAt(ctx)
	if err != nil {
		t.Fatalf("AlertNextAt: %v", err)
	}
	return at
}

// getAlert is the stored alert id (by listing: there is no get).
func getAlert(t *testing.T, s store.Store, id string) *store.Alert {
	t.Helper()
	for _, a := range listAlerts(t, s, store.AlertListParams{}) {
		if a.ID == id {
			return a
		}
	}
	t.Fatalf("alert %q not stored", id)
	return nil
}

func alertIDs(as []*store.Alert) []string {
	return names(as, func(a *store.Alert) string { return a.ID })
}

func diffAlert(t *testing.T, what string, want, got *store.Alert) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func wantDelivery(t *testing.T, what string, want store.Callback, got *store.Alert) {
	t.Helper()
	if d := cmp.Diff(want, got.Delivery); d != "" {
		t.Errorf("%s: delivery of %s (-want +got):\n%s", what, got.ID, d)
	}
}

func testAlertInsert(t *testing.T, s store.Store) {
	// Every field, delivery included, as given; times at microseconds in
	// any zone, the zero ones zero.
	full := hooked(alert("a1", t0))
	full.LogicalTime = t0.Add(-time.Hour)
	full.Delivery = store.Callback{State: store.CallbackPending, Attempts: 2, NextAt: t0.Add(time.Minute),
		LastError: "HTTP 502", DeliveredAt: t0.Add(-time.Minute)}
	plain := alert("a2", t0.Add(time.Second))
	sla := &store.Alert{ID: "a3", Key: "slot:j@1:sla", Job: "j", Group: "g", LogicalTime: t0, Rule: store.AlertSLA,
		Reason: "late", CreatedAt: t0.Add(2 * time.Second)}
	done := alert("a4", t0.Add(3*time.Second))
	done.Webhook, done.Format = hook, store.AlertFormatJSON
	done.Delivery = store.Callback{State: store.CallbackDelivered, Attempts: 1, DeliveredAt: t0.Add(4 * time.Second)}
	want := []store.Alert{*full, *plain, *sla, *done}
	in := []*store.Alert{full, plain, sla, done}
	if d := cmp.Diff([]bool{true, true, true, true}, insertAlerts(t, s, in...)); d != "" {
		t.Fatalf("AlertInsert stored (-want +got):\n%s", d)
	}
	for i, a := range in {
		if a.Seq <= 0 || (i > 0 && a.Seq <= in[i-1].Seq) {
			t.Errorf("alert %s: Seq %d set by the insert, want > 0 and in insertion order", a.ID, a.Seq)
		}
		want[i].Seq = a.Seq
	}
	got := listAlerts(t, s, store.AlertListParams{})
	if len(got) != len(want) {
		t.Fatalf("listed %v, want 4 alerts", alertIDs(got))
	}
	for i := range want {
		diffAlert(t, "stored alert "+want[i].ID, &want[i], got[len(got)-1-i])
	}

	// A key stored already: not stored, and nothing changes, in a batch
	// or across batches; the given alert's Seq is left alone.
	again := hooked(alert("a5", t0.Add(time.Hour)))
	again.Key = full.Key
	twice, twiceAgain := alert("a6", t0), alert("a7", t0)
	twiceAgain.Key = twice.Key
	if d := cmp.Diff([]bool{false, true, false}, insertAlerts(t, s, again, twice, twiceAgain)); d != "" {
		t.Errorf("AlertInsert of taken keys stored (-want +got):\n%s", d)
	}
	if again.Seq != 0 || twiceAgain.Seq != 0 || twice.Seq <= want[3].Seq {
		t.Errorf("Seqs after the insert: %d, %d, %d; want 0, > %d, 0", again.Seq, twice.Seq, twiceAgain.Seq, want[3].Seq)
	}
	diffAlert(t, "alert after an insert of its key", &want[0], getAlert(t, s, "a1"))
	diffNames(t, "alerts", []string{"a6", "a4", "a3", "a2", "a1"}, alertIDs(listAlerts(t, s, store.AlertListParams{})))
	if at := alertNextAt(t, s); !at.Equal(full.Delivery.NextAt) {
		t.Errorf("AlertNextAt = %v, want a1's, %v", at, full.Delivery.NextAt)
	}

	// A rolled-back insert leaves nothing; an empty one does nothing.
	err := s.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.AlertInsert(ctx, []*store.Alert{alert("rolled", t0)}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Tx returned %v, want fn's error", err)
	}
	if ok := insertAlerts(t, s); len(ok) != 0 {
		t.Errorf("empty AlertInsert returned %v", ok)
	}
	if n := len(listAlerts(t, s, store.AlertListParams{})); n != 5 {
		t.Errorf("%d alerts after a rollback, want 5", n)
	}

	// Alerts that CheckAlert refuses fail the call.
	for name, bad := range map[string]func(a *store.Alert){
		"no ID":                 func(a *store.Alert) { a.ID = "" },
		"no key":                func(a *store.Alert) { a.Key = "" },
		"no rule":               func(a *store.Alert) { a.Rule = "" },
		"no CreatedAt":          func(a *store.Alert) { a.CreatedAt = time.Time{} },
		"pending without time":  func(a *store.Alert) { a.Delivery = store.Callback{State: store.CallbackPending} },
		"NextAt without a hook": func(a *store.Alert) { a.Delivery.NextAt = t0 },
		"unknown state":         func(a *store.Alert) { a.Delivery.State = "sent" },
	} {
		a := alert("bad", t0)
		bad(a)
		err := s.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.AlertInsert(ctx, []*store.Alert{alert("good", t0), a})
			return err
		})
		if err == nil {
			t.Errorf("AlertInsert of an alert with %s: no error", name)
		}
	}
	if n := len(listAlerts(t, s, store.AlertListParams{})); n != 5 {
		t.Errorf("%d alerts after refused inserts, want 5", n)
	}
}

func testAlertList(t *testing.T, s store.Store) {
	// a0…a9, alternately of jobs j1 and j2; a run has two alerts (its
	// failure and its duration); a slot's has no run.
	var as []*store.Alert
	for i := range 10 {
		a := alert(fmt.Sprintf("a%d", i), t0.Add(time.Duration(i)*time.Second))
		a.Job = fmt.Sprintf("j%d", i%2+1)
		as = append(as, a)
	}
	as[5].RunID, as[5].Rule, as[5].Key = as[4].RunID, store.AlertMaxDuration, "run:"+as[4].RunID+":max_duration"
	as[6].RunID, as[6].Key = "", "slot:j1@1:sla"
	insertAlerts(t, s, as...)
	for _, c := range []struct {
		p    store.AlertListParams
		want []string
	}{
		{store.AlertListParams{}, []string{"a9", "a8", "a7", "a6", "a5", "a4", "a3", "a2", "a1", "a0"}},
		{store.AlertListParams{Job: "j1"}, []string{"a8", "a6", "a4", "a2", "a0"}},
		{store.AlertListParams{Job: "j2", Limit: 2}, []string{"a9", "a7"}},
		{store.AlertListParams{Job: "j2", Before: as[7].Seq}, []string{"a5", "a3", "a1"}},
		{store.AlertListParams{RunID: as[4].RunID}, []string{"a5", "a4"}},
		{store.AlertListParams{RunID: as[4].RunID, Job: "j1"}, []string{"a4"}},
		{store.AlertListParams{RunID: as[4].RunID, Before: as[5].Seq}, []string{"a4"}},
		{store.AlertListParams{RunID: "none"}, nil},
		{store.AlertListParams{Job: "none"}, nil},
		{store.AlertListParams{Before: as[0].Seq}, nil},
		{store.AlertListParams{Limit: 1}, []string{"a9"}},
	} {
		diffNames(t, fmt.Sprintf("AlertList(%+v)", c.p), c.want, alertIDs(listAlerts(t, s, c.p)))
	}
	// Pages of 3, by Before, until an empty one.
	var (
		seen   []string
		before int64
	)
	for range 10 {
		page := listAlerts(t, s, store.AlertListParams{Before: before, Limit: 3})
		if len(page) == 0 {
			break
		}
		if len(page) > 3 {
			t.Fatalf("page of %d, limit 3", len(page))
		}
		seen = append(seen, alertIDs(page)...)
		before = page[len(page)-1].Seq
	}
	diffNames(t, "pages", []string{"a9", "a8", "a7", "a6", "a5", "a4", "a3", "a2", "a1", "a0"}, seen)
	for _, limit := range []int{-1, 0, 1001} {
		if _, err := s.AlertList(ctx, store.AlertListParams{Limit: limit}); err == nil {
			t.Errorf("AlertList with limit %d: no error", limit)
		}
	}
	if _, err := s.AlertList(ctx, store.AlertListParams{Limit: 1000}); err != nil {
		t.Errorf("AlertList with limit 1000: %v", err)
	}
}

func testAlertListDue(t *testing.T, s store.Store) {
	// Due at +3s, +1s, +2s and +1h, in insertion order; a4 has no webhook.
	ts := []time.Duration{3 * time.Second, time.Second, 2 * time.Second, time.Hour}
	var as []*store.Alert
	for i, d := range ts {
		as = append(as, hooked(alert(fmt.Sprintf("a%d", i), t0.Add(d))))
	}
	as = append(as, alert("a4", t0))
	insertAlerts(t, s, as...)

	if got := alertsDue(t, s, t0, t0.Add(time.Minute), 10); len(got) != 0 {
		t.Errorf("due before any: %v", alertIDs(got))
	}
	now, lease := t0.Add(10*time.Second), t0.Add(40*time.Second)
	got := alertsDue(t, s, now, lease, 2)
	// The earliest two (a1 at +1s, a2 at +2s), returned in seq order.
	diffNames(t, "first claim", []string{"a1", "a2"}, alertIDs(got))
	for _, a := range got {
		wantDelivery(t, "claimed", store.Callback{State: store.CallbackPending, Attempts: 1, NextAt: lease}, a)
		diffAlert(t, "claimed alert "+a.ID, getAlert(t, s, a.ID), a)
		if a.Webhook != hook || a.Format != store.AlertFormatSlack || a.Rule != store.AlertFailed {
			t.Errorf("claimed alert %s: %+v", a.ID, a)
		}
	}
	// A claimed alert is not claimed again before its lease.
	diffNames(t, "second claim", []string{"a0"}, alertIDs(alertsDue(t, s, now, lease, 10)))
	diffNames(t, "third claim", nil, alertIDs(alertsDue(t, s, lease.Add(-time.Microsecond), lease, 10)))
	if at := alertNextAt(t, s); !at.Equal(lease) {
		t.Errorf("AlertNextAt while claims are out = %v, want the lease %v", at, lease)
	}
	// A lapsed claim is claimed again: another attempt.
	lease2 := lease.Add(time.Minute)
	again := alertsDue(t, s, lease, lease2, 10)
	diffNames(t, "claims after the lease", []string{"a0", "a1", "a2"}, alertIDs(again))
	for _, a := range again {
		wantDelivery(t, "claimed again", store.Callback{State: store.CallbackPending, Attempts: 2, NextAt: lease2}, a)
	}
	if got := alertsDue(t, s, lease2, lease2, 0); len(got) != 0 {
		t.Errorf("limit 0 claimed %v", alertIDs(got))
	}
	diffNames(t, "every one, when the last is due", []string{"a0", "a1", "a2", "a3"},
		alertIDs(alertsDue(t, s, t0.Add(time.Hour), t0.Add(2*time.Hour), 10)))
	wantDelivery(t, "alert without a webhook", store.Callback{}, getAlert(t, s, "a4"))
}

func testAlertRecord(t *testing.T, s store.Store) {
	var as []*store.Alert
	for i := range 4 {
		as = append(as, hooked(alert(fmt.Sprintf("a%d", i), t0)))
	}
	insertAlerts(t, s, as...)
	now, lease := t0.Add(time.Second), t0.Add(time.Minute)
	if claimed := alertsDue(t, s, now, lease, 10); len(claimed) != 4 {
		t.Fatalf("claimed %v", alertIDs(claimed))
	}
	t1 := t0.Add(5 * time.Second)
	retryAt := t0.Add(2 * time.Minute)
	ok := alertRecord(t, s,
		store.CallbackRecordParams{ID: "a0", Attempt: 1, Lease: lease, State: store.CallbackDelivered, Now: t1},
		store.CallbackRecordParams{ID: "a1", Attempt: 1, Lease: lease, State: store.CallbackPending, NextAt: retryAt, Error: "HTTP 500", Now: t1},
		store.CallbackRecordParams{ID: "a2", Attempt: 1, Lease: lease, State: store.CallbackFailed, Error: "expired", Now: t1},
		store.CallbackRecordParams{ID: "a3", Attempt: 2, Lease: lease, State: store.CallbackDelivered, Now: t1},                  // wrong attempt
		store.CallbackRecordParams{ID: "a3", Attempt: 1, Lease: lease.Add(time.Second), State: store.CallbackDelivered, Now: t1}, // wrong lease
		store.CallbackRecordParams{ID: "a0", Attempt: 1, Lease: lease, State: store.CallbackFailed, Now: t1},                     // already recorded
		store.CallbackRecordParams{ID: "unknown", Attempt: 1, Lease: lease, State: store.CallbackDelivered, Now: t1},
	)
	if d := cmp.Diff([]bool{true, true, true, false, false, false, false}, ok); d != "" {
		t.Errorf("applied (-want +got):\n%s", d)
	}
	wantDelivery(t, "delivered", store.Callback{State: store.CallbackDelivered, Attempts: 1, DeliveredAt: t1}, getAlert(t, s, "a0"))
	wantDelivery(t, "retrying", store.Callback{State: store.CallbackPending, Attempts: 1, NextAt: retryAt, LastError: "HTTP 500"}, getAlert(t, s, "a1"))
	wantDelivery(t, "failed", store.Callback{State: store.CallbackFailed, Attempts: 1, LastError: "expired"}, getAlert(t, s, "a2"))
	wantDelivery(t, "still claimed", store.Callback{State: store.CallbackPending, Attempts: 1, NextAt: lease}, getAlert(t, s, "a3"))
	if at := alertNextAt(t, s); !at.Equal(lease) {
		t.Errorf("AlertNextAt = %v, want %v (a3's lease)", at, lease)
	}
	// Delivered and failed deliveries are never due again; the retry is due
	// at its time, and its last error stays until the next outcome.
	diffNames(t, "due after the lease", []string{"a3"}, alertIDs(alertsDue(t, s, lease, lease.Add(time.Hour), 10)))
	got := alertsDue(t, s, retryAt, retryAt.Add(time.Minute), 10)
	diffNames(t, "due at the retry", []string{"a1"}, alertIDs(got))
	if len(got) == 1 {
		wantDelivery(t, "claimed retry", store.Callback{State: store.CallbackPending, Attempts: 2, NextAt: retryAt.Add(time.Minute), LastError: "HTTP 500"}, got[0])
	}
	// Two outcomes for one alert in one batch apply in order: the second
	// is fenced out by the first.
	ok = alertRecord(t, s,
		store.CallbackRecordParams{ID: "a1", Attempt: 2, Lease: retryAt.Add(time.Minute), State: store.CallbackDelivered, Now: retryAt},
		store.CallbackRecordParams{ID: "a1", Attempt: 2, Lease: retryAt.Add(time.Minute), State: store.CallbackFailed, Error: "x", Now: retryAt})
	if d := cmp.Diff([]bool{true, false}, ok); d != "" {
		t.Errorf("record of the retry applied (-want +got):\n%s", d)
	}
	wantDelivery(t, "delivered on retry", store.Callback{State: store.CallbackDelivered, Attempts: 2, DeliveredAt: retryAt}, getAlert(t, s, "a1"))
	diffNames(t, "due a day later (a3, never recorded)", []string{"a3"},
		alertIDs(alertsDue(t, s, t0.Add(24*time.Hour), t0.Add(25*time.Hour), 10)))

	// A state that is not an outcome is an error.
	err := s.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.AlertRecord(ctx, []store.CallbackRecordParams{{ID: "a3", State: store.CallbackNone}})
		return err
	})
	if err == nil {
		t.Error("AlertRecord with state none: no error")
	}
	if len(alertRecord(t, s)) != 0 {
		t.Error("empty record returned results")
	}
}

func testAlertNextAt(t *testing.T, s store.Store) {
	if at := alertNextAt(t, s); !at.IsZero() {
		t.Errorf("AlertNextAt of an empty store = %v, want zero", at)
	}
	// Alerts without a webhook owe no delivery.
	insertAlerts(t, s, alert("plain1", t0), alert("plain2", t0.Add(-time.Hour)))
	if at := alertNextAt(t, s); !at.IsZero() {
		t.Errorf("AlertNextAt with no pending delivery = %v, want zero", at)
	}
	insertAlerts(t, s, hooked(alert("h1", t0.Add(time.Minute))), hooked(alert("h2", t0.Add(30*time.Second))))
	if at := alertNextAt(t, s); !at.Equal(t0.Add(30 * time.Second)) {
		t.Errorf("AlertNextAt = %v, want the earliest, %v", at, t0.Add(30*time.Second))
	}
	// Settled deliveries leave it.
	lease := t0.Add(time.Hour)
	alertsDue(t, s, t0.Add(time.Minute), lease, 10)
	alertRecord(t, s,
		store.CallbackRecordParams{ID: "h1", Attempt: 1, Lease: lease, State: store.CallbackDelivered, Now: t0},
		store.CallbackRecordParams{ID: "h2", Attempt: 1, Lease: lease, State: store.CallbackFailed, Now: t0})
	if at := alertNextAt(t, s); !at.IsZero() {
		t.Errorf("AlertNextAt with every delivery settled = %v, want zero", at)
	}
}

// testAlertListDueConcurrent: claims from concurrent transactions never
// return one delivery twice.
func testAlertListDueConcurrent(t *testing.T, s store.Store) {
	const n = 40
	var as []*store.Alert
	for i := range n {
		as = append(as, hooked(alert(runID(i), t0.Add(time.Duration(i)*time.Millisecond))))
	}
	insertAlerts(t, s, as...)
	now, lease := t0.Add(time.Second), t0.Add(time.Minute)
	type result struct {
		ids []string
		err error
	}
	out := make(chan result, 4)
	dctx := deadlineCtx(t)
	for range 4 {
		go func() {
			var r result
			for i := 0; ; i++ {
				if i > n {
					r.err = fmt.Errorf("still claiming after %d claims of %d deliveries", i, n)
					break
				}
				var got []*store.Alert
				err := s.Tx(dctx, func(tx store.Tx) error {
					var err error
					got, err = tx.AlertListDue(dctx, store.CallbackListDueParams{Now: now, LeaseUntil: lease, Limit: 3})
					return err
				})
				if err != nil {
					r.err = err
					break
				}
				if len(got) == 0 {
					break
				}
				r.ids = append(r.ids, alertIDs(got)...)
			}
			out <- r
		}()
	}
	seen := map[string]int{}
	for range 4 {
		r := receive(t, "a claimer's alerts", out)
		if r.err != nil {
			t.Fatalf("AlertListDue: %v", r.err)
		}
		for _, id := range r.ids {
			seen[id]++
		}
	}
	for i := range n {
		if seen[runID(i)] != 1 {
			t.Errorf("%s claimed %d times, want once", runID(i), seen[runID(i)])
		}
	}
}

func testGroupAlerts(t *testing.T, s store.Store) {
	put := func(group string, r *store.AlertRules, now time.Time) {
		t.Helper()
		tx(t, s, func(tx store.Tx) error { return tx.GroupAlertsPut(ctx, group, r, now) })
	}
	list := func() map[string]*store.AlertRules {
		t.Helper()
		m, err := s.GroupAlertsList(ctx)
		if err != nil {
			t.Fatalf("GroupAlertsList: %v", err)
		}
		return m
	}
	if m := list(); len(m) != 0 {
		t.Errorf("GroupAlertsList of an empty store: %v", m)
	}
	g1 := &store.AlertRules{On: []string{store.AlertFailed, store.AlertTimedOut}, SLA: "06:30",
		MaxDuration: 90 * time.Minute, Webhook: hook, Format: store.AlertFormatDingTalk}
	g2 := &store.AlertRules{On: []string{store.AlertSkipped}}
	put("g1", g1, t0)
	put("g2", g2, t0)
	put("empty", &store.AlertRules{}, t0)
	got := list()
	if d := cmp.Diff(map[string]*store.AlertRules{"g1": g1, "g2": g2, "empty": {}}, got); d != "" {
		t.Errorf("GroupAlertsList (-want +got):\n%s", d)
	}
	if got["empty"] == nil {
		t.Error("empty rules read back nil")
	}
	// Replace, delete, delete what is not there.
	g1b := &store.AlertRules{SLA: "23:59", Webhook: "https://example.com/other"}
	put("g1", g1b, t0.Add(time.Minute))
	put("g2", nil, t0.Add(time.Minute))
	put("nothing", nil, t0.Add(time.Minute))
	if d := cmp.Diff(map[string]*store.AlertRules{"g1": g1b, "empty": {}}, list()); d != "" {
		t.Errorf("GroupAlertsList after replace and delete (-want +got):\n%s", d)
	}
	// A rolled-back put changes nothing.
	err := s.Tx(ctx, func(tx store.Tx) error {
		if err := tx.GroupAlertsPut(ctx, "g1", nil, t0); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Tx returned %v, want fn's error", err)
	}
	if d := cmp.Diff(map[string]*store.AlertRules{"g1": g1b, "empty": {}}, list()); d != "" {
		t.Errorf("GroupAlertsList after a rolled-back delete (-want +got):\n%s", d)
	}
}

func testJobAlerts(t *testing.T, s store.Store) {
	full := &store.AlertRules{On: []string{store.AlertFailed, store.AlertTimedOut, store.AlertSkipped}, SLA: "07:00",
		MaxDuration: 2*time.Hour + 30*time.Second, Webhook: hook, Format: store.AlertFormatFeishu}
	withRules := job("ruled")
	withRules.Alerts = full
	empty := job("empty")
	empty.Alerts = &store.AlertRules{}
	none := job("none")
	for _, j := range []store.Job{withRules, empty, none} {
		got, _ := putJob(t, s, j, t0)
		if d := cmp.Diff(j.Alerts, got.Alerts); d != "" {
			t.Errorf("JobPut(%s) returned alerts (-want +got):\n%s", j.Name, d)
		}
	}
	check := func(what string, want map[string]*store.AlertRules) {
		t.Helper()
		jobs, err := s.JobList(ctx)
		if err != nil {
			t.Fatalf("JobList: %v", err)
		}
		for _, j := range jobs {
			for how, got := range map[string]*store.AlertRules{"JobList": j.Alerts, "JobGet": getJob(t, s, j.Name).Alerts} {
				// cmp tells a nil *AlertRules from an empty one.
				if d := cmp.Diff(want[j.Name], got); d != "" {
					t.Errorf("%s: %s of %s: alerts (-want +got):\n%s", what, how, j.Name, d)
				}
			}
		}
	}
	check("after create", map[string]*store.AlertRules{"ruled": full, "empty": {}, "none": nil})
	// A replace sets them, changes them and removes them like any field.
	withRules.Alerts, empty.Alerts, none.Alerts = nil, &store.AlertRules{SLA: "01:00"}, full
	putJobs(t, s, withRules, empty, none)
	check("after replace", map[string]*store.AlertRules{"ruled": nil, "empty": {SLA: "01:00"}, "none": full})
	// Pausing keeps them.
	pause(t, s, store.JobPauseParams{Name: "none", Paused: true, Now: t0})
	check("after pause", map[string]*store.AlertRules{"ruled": nil, "empty": {SLA: "01:00"}, "none": full})
}

func testAlertsClosed(t *testing.T, s store.Store) {
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := s.AlertList(ctx, store.AlertListParams{Limit: 10})
	wantErr(t, "AlertList after Close", err, store.ErrClosed)
	_, err = s.AlertNextAt(ctx)
	wantErr(t, "AlertNextAt after Close", err, store.ErrClosed)
	_, err = s.GroupAlertsList(ctx)
	wantErr(t, "GroupAlertsList after Close", err, store.ErrClosed)
}

// AlertDeleteBefore deletes the oldest alerts created before the cutoff,
// at most the limit, never one whose delivery is pending.
func testAlertDeleteBefore(t *testing.T, s store.Store) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	insertAlerts(t, s, alert("a1", t0), hooked(alert("a2", t0.Add(time.Minute))), alert("a3", t0.Add(2*time.Minute)),
		alert("a4", t0.Add(3*time.Minute)), alert("a5", t0.Add(time.Hour)))
	del := func(before time.Time, limit int) int {
		t.Helper()
		var n int
		tx(t, s, func(tx store.Tx) error {
			var err error
			n, err = tx.AlertDeleteBefore(ctx, before, limit)
			return err
		})
		return n
	}
	if n := del(t0.Add(10*time.Minute), 2); n != 2 {
		t.Fatalf("deleted %d, want 2 (the limit)", n)
	}
	if got := alertIDs(listAlerts(t, s, store.AlertListParams{})); !slices.Equal(got, []string{"a5", "a4", "a2"}) {
		t.Fatalf("left %v, want a5 a4 a2 (the oldest two gone, a2's delivery pending)", got)
	}
	if n := del(t0.Add(10*time.Minute), 100); n != 1 {
		t.Fatalf("deleted %d, want 1 (a4)", n)
	}
	if got := alertIDs(listAlerts(t, s, store.AlertListParams{})); !slices.Equal(got, []string{"a5", "a2"}) {
		t.Fatalf("left %v, want a5 a2", got)
	}
	err := s.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.AlertDeleteBefore(ctx, t0, 0)
		return err
	})
	if err == nil {
		t.Error("limit 0 accepted")
	}
}
