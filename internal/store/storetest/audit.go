package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// The audit trail (store/audit.go): batches keep their order, listings go
// newest first with filters and cursors, retention deletes the oldest.

func auditAppend(t *testing.T, s store.Store, entries ...store.AuditEntry) {
	t.Helper()
	tx(t, s, func(tx store.Tx) error { return tx.AuditAppend(ctx, entries) })
}

func auditList(t *testing.T, s store.Store, p store.AuditListParams) store.AuditPage {
	t.Helper()
	page, err := s.AuditList(ctx, p)
	if err != nil {
		t.Fatalf("AuditList(%+v): %v", p, err)
	}
	return page
}

func details(es []store.AuditEntry) []string {
	return names(es, func(e store.AuditEntry) string { return e.Detail })
}

// auditTrail appends ten entries, e0 to e9, a minute apart from t0: actors
// alice (even) and bob (odd), actions run.cancel (i%3 == 0) or
// token.create, target "r" + i/2.
func auditTrail(t *testing.T, s store.Store) {
	t.Helper()
	var es []store.AuditEntry
	for i := range 10 {
		e := store.AuditEntry{
			At: t0.Add(time.Duration(i) * time.Minute), Actor: "alice", Action: "token.create",
			Target: fmt.Sprintf("r%d", i/2), Outcome: "ok", Detail: fmt.Sprintf("e%d", i),
		}
		if i%2 == 1 {
			e.Actor = "bob"
		}
		if i%3 == 0 {
			e.Action, e.Outcome = "run.cancel", "denied"
		}
		es = append(es, e)
	}
	// Two batches in one transaction and one in another: order is kept.
	tx(t, s, func(tx store.Tx) error {
		if err := tx.AuditAppend(ctx, es[:3]); err != nil {
			return err
		}
		return tx.AuditAppend(ctx, es[3:6])
	})
	auditAppend(t, s, es[6:]...)
}

func testAuditAppendAndList(t *testing.T, s store.Store) {
	auditTrail(t, s)
	page := auditList(t, s, store.AuditListParams{})
	diffNames(t, "AuditList", []string{"e9", "e8", "e7", "e6", "e5", "e4", "e3", "e2", "e1", "e0"}, details(page.Entries))
	if page.NextCursor != "" {
		t.Errorf("NextCursor = %q on the only page", page.NextCursor)
	}
	for i := 1; i < len(page.Entries); i++ {
		if page.Entries[i].Seq >= page.Entries[i-1].Seq {
			t.Errorf("Seq not decreasing: %d then %d", page.Entries[i-1].Seq, page.Entries[i].Seq)
		}
	}
	got := page.Entries[len(page.Entries)-1]
	want := store.AuditEntry{Seq: got.Seq, At: t0, Actor: "alice", Action: "run.cancel", Target: "r0", Outcome: "denied", Detail: "e0"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("entry e0 (-want +got):\n%s", d)
	}
	auditAppend(t, s) // an empty batch is fine
}

func testAuditListFilters(t *testing.T, s store.Store) {
	auditTrail(t, s)
	for _, c := range []struct {
		name string
		p    store.AuditListParams
		want []string
	}{
		{"actor", store.AuditListParams{Actor: "bob"}, []string{"e9", "e7", "e5", "e3", "e1"}},
		{"action", store.AuditListParams{Action: "run.cancel"}, []string{"e9", "e6", "e3", "e0"}},
		{"target", store.AuditListParams{Target: "r2"}, []string{"e5", "e4"}},
		{"since", store.AuditListParams{Since: t0.Add(7 * time.Minute)}, []string{"e9", "e8", "e7"}},
		{"until", store.AuditListParams{Until: t0.Add(2 * time.Minute)}, []string{"e1", "e0"}},
		{"range", store.AuditListParams{Since: t0.Add(3 * time.Minute), Until: t0.Add(6 * time.Minute)}, []string{"e5", "e4", "e3"}},
		{"combined", store.AuditListParams{Actor: "alice", Action: "run.cancel", Since: t0.Add(time.Minute)}, []string{"e6"}},
		{"nothing", store.AuditListParams{Actor: "carol"}, nil},
	} {
		diffNames(t, "AuditList by "+c.name, c.want, details(auditList(t, s, c.p).Entries))
	}
}

func testAuditListPages(t *testing.T, s store.Store) {
	auditTrail(t, s)
	for _, p := range []store.AuditListParams{{Limit: 3}, {Limit: 2, Actor: "alice"}} {
		var (
			all   []string
			pages int
		)
		for {
			page := auditList(t, s, p)
			if len(page.Entries) > p.Limit {
				t.Fatalf("page of %d entries, limit %d", len(page.Entries), p.Limit)
			}
			all = append(all, details(page.Entries)...)
			pages++
			if page.NextCursor == "" || pages > 10 {
				break
			}
			p.Cursor = page.NextCursor
		}
		want := []string{"e9", "e8", "e7", "e6", "e5", "e4", "e3", "e2", "e1", "e0"}
		if p.Actor != "" {
			want = []string{"e8", "e6", "e4", "e2", "e0"}
		}
		diffNames(t, fmt.Sprintf("pages of %d", p.Limit), want, all)
	}
	for _, cur := range []string{"x", "-1", "0"} {
		_, err := s.AuditList(ctx, store.AuditListParams{Cursor: cur})
		wantErr(t, "AuditList with cursor "+cur, err, store.ErrInvalidCursor)
	}
}

func testAuditAppendChecks(t *testing.T, s store.Store) {
	good := store.AuditEntry{At: t0, Actor: "a", Action: "x", Outcome: "ok"}
	for _, bad := range []store.AuditEntry{
		{Actor: "a", Action: "x"},                              // no time
		{At: t0, Actor: "a"},                                   // no action
		{At: t0, Actor: strings.Repeat("a", 300), Action: "x"}, // actor too long
	} {
		err := s.Tx(ctx, func(tx store.Tx) error { return tx.AuditAppend(ctx, []store.AuditEntry{good, bad}) })
		if err == nil {
			t.Errorf("AuditAppend of %+v: no error", bad)
		}
	}
	if n := len(auditList(t, s, store.AuditListParams{}).Entries); n != 0 {
		t.Errorf("%d entries written by refused batches", n)
	}
	// A long detail is cut, not refused; NUL and invalid UTF-8 are stored.
	long := good
	long.Detail = strings.Repeat("é", store.MaxAuditDetail) // two bytes each
	odd := good
	odd.Detail = "a\x00b"
	auditAppend(t, s, long, odd)
	es := auditList(t, s, store.AuditListParams{}).Entries
	if len(es) != 2 {
		t.Fatalf("%d entries, want 2", len(es))
	}
	if d := es[1].Detail; len(d) != store.MaxAuditDetail || d != strings.Repeat("é", store.MaxAuditDetail/2) {
		t.Errorf("long detail stored as %d bytes, want %d", len(d), store.MaxAuditDetail)
	}
}

func testAuditDeleteBefore(t *testing.T, s store.Store) {
	auditTrail(t, s)
	del := func(before time.Time, limit int) int {
		var n int
		tx(t, s, func(tx store.Tx) error {
			var err error
			n, err = tx.AuditDeleteBefore(ctx, before, limit)
			return err
		})
		return n
	}
	cut := t0.Add(5 * time.Minute) // e0 to e4 are older
	if n := del(cut, 0); n != 0 {
		t.Errorf("AuditDeleteBefore with limit 0 deleted %d", n)
	}
	if n := del(cut, 3); n != 3 {
		t.Errorf("AuditDeleteBefore(limit 3) = %d, want 3", n)
	}
	diffNames(t, "after a limited delete", []string{"e9", "e8", "e7", "e6", "e5", "e4", "e3"}, details(auditList(t, s, store.AuditListParams{}).Entries))
	if n := del(cut, 100); n != 2 {
		t.Errorf("AuditDeleteBefore = %d, want 2", n)
	}
	if n := del(cut, 100); n != 0 {
		t.Errorf("AuditDeleteBefore again = %d, want 0", n)
	}
	diffNames(t, "after retention", []string{"e9", "e8", "e7", "e6", "e5"}, details(auditList(t, s, store.AuditListParams{}).Entries))
}
