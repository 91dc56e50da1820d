package postgres

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/listq"
)

// listPlanCase is a listing whose plans TestListPlans checks and the
// index both of its statements must walk.
type listPlanCase struct {
	p    store.RunListParams
	want string
}

// listPlanCases: each filter alone and the combinations that pick each
// lead.
func listPlanCases(now time.Time) []listPlanCase {
	sts := func(s ...store.RunStatus) []store.RunStatus { return s }
	return []listPlanCase{
		{store.RunListParams{}, "runs_pkey"},
		{store.RunListParams{Order: store.OrderAsc}, "runs_pkey"},
		{store.RunListParams{Statuses: sts(store.StatusFailed)}, "ended_pkey"},
		{store.RunListParams{Statuses: sts(store.StatusCancelled, store.StatusTimedOut), Order: store.OrderAsc}, "ended_pkey"},
		{store.RunListParams{Statuses: sts(store.StatusQueued, store.StatusRunning)}, "runs_pkey"},
		{store.RunListParams{Group: "g1"}, "runs_grp"},
		{store.RunListParams{Job: "j3"}, "runs_job"},
		{store.RunListParams{Type: "t2"}, "runs_type"},
		{store.RunListParams{WorkerID: "w1"}, "runs_pkey"},
		{store.RunListParams{CreatedAfter: now, CreatedBefore: now.Add(time.Hour)}, "runs_pkey"},
		{store.RunListParams{FinishedAfter: now, FinishedBefore: now.Add(time.Hour)}, "runs_pkey"},
		{store.RunListParams{ErrorContains: "boom"}, "ended_pkey"},
		{store.RunListParams{Group: "g1", Type: "t2", Statuses: sts(store.StatusSucceeded), Order: store.OrderAsc}, "runs_type"},
		{store.RunListParams{Group: "g1", Type: "t2", Statuses: sts(store.StatusFailed)}, "ended_pkey"},
		{store.RunListParams{Job: "j3", Group: "g1", WorkerID: "w1", ErrorContains: "x"}, "runs_job"},
		{store.RunListParams{Type: "t1", CreatedAfter: now, FinishedBefore: now}, "runs_type"},
		{store.RunListParams{Parent: "p1"}, "runs_parent"},
		{store.RunListParams{Parent: "p1", Statuses: sts(store.StatusQueued), Order: store.OrderAsc}, "runs_parent"},
		{store.RunListParams{Parent: "p1", Statuses: sts(store.StatusFailed)}, "runs_parent"},
		{store.RunListParams{Parent: "p1", Job: "j3", Group: "g1", WorkerID: "w1"}, "runs_parent"},
	}
}

// TestListPlans: every list statement reads runs through an index, in
// seq order — no sequential scan, no sort, no bitmap scan (which would
// read a whole range before returning its first row) — with statistics
// (ANALYZE) and with custom and generic plans, under the settings of a
// listing's transaction (listBeginSQL).
func TestListPlans(t *testing.T) {
	s := openInternal(t)
	ctx := context.Background()
	now := time.Now()
	const n = 20000
	ps := make([]store.RunInsertParams, n)
	for i := range ps {
		if i%10 == 7 {
			ps[i].Status = store.StatusSkipped // in ended
		}
		ps[i] = store.RunInsertParams{ID: fmt.Sprintf("r%05d", i), Type: fmt.Sprintf("t%d", i%5), Group: fmt.Sprintf("g%d", i%3),
			Status: store.StatusQueued, Now: now.Add(time.Duration(i) * time.Second)}
		if i%50 == 0 {
			ps[i].Job = fmt.Sprintf("j%d", i%7)
			ps[i].Status = store.StatusPending
		}
		if i%100 == 3 { // a parent's runs
			ps[i].ParentID = fmt.Sprintf("p%d", i%4)
		}
	}
	if err := s.Tx(ctx, func(tx store.Tx) error { _, err := tx.RunInsert(ctx, ps); return err }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "ANALYZE runs"); err != nil {
		t.Fatal(err)
	}
	check := func(what, sql string, args []any, want string) {
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			plan := explainRead(t, s, mode, sql, args)
			bad := strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Sort") || strings.Contains(plan, "Bitmap") ||
				strings.Contains(plan, "Hash") || strings.Contains(plan, "Materialize")
			if bad || !strings.Contains(plan, want) || os.Getenv("SHOWPLANS") != "" {
				t.Errorf("%s, %s: plan does not walk %s in order:\n%s", what, mode, want, plan)
			}
		}
	}
	for _, c := range listPlanCases(now) {
		window, page, wargs, pargs := listq.Statements(listDialect, runCols, c.p)
		check(fmt.Sprintf("window %+v", c.p), window, wargs, c.want)
		check(fmt.Sprintf("page %+v", c.p), page, pargs, c.want)
	}
	check("max seq", sqlMaxSeq, nil, "runs_pkey")
	check("run from", sqlRunFrom, []any{int64(5)}, "runs_pkey")
}

// explainRead returns the plan of sql, prepared, with args, under
// plan_cache_mode mode and a listing's settings.
func explainRead(t *testing.T, s *Store, mode, sql string, args []any) string {
	t.Helper()
	return explainUnder(t, s, listBeginSQL, mode, sql, args)
}
