package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/listq"
)

// TestListPlans: every list statement walks an index in seq order — the
// lead it names (INDEXED BY) or the rowid — never scans runs through
// another index or sorts; the seq probes of time bounds are rowid seeks.
func TestListPlans(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	sts := func(s ...store.RunStatus) []store.RunStatus { return s }
	cases := []struct {
		p    store.RunListParams
		want string // the index the page walks
	}{
		{store.RunListParams{}, "INTEGER PRIMARY KEY"},
		{store.RunListParams{Order: store.OrderAsc, WorkerID: "w"}, "INTEGER PRIMARY KEY"},
		{store.RunListParams{Statuses: sts(store.StatusFailed)}, "ended"},
		{store.RunListParams{Statuses: sts(store.StatusCancelled, store.StatusSkipped), Order: store.OrderAsc}, "ended"},
		{store.RunListParams{ErrorContains: "boom"}, "ended"},
		{store.RunListParams{Statuses: sts(store.StatusQueued, store.StatusFailed)}, "INTEGER PRIMARY KEY"},
		{store.RunListParams{Group: "g"}, "runs_grp"},
		{store.RunListParams{Type: "t", Group: "g", Statuses: sts(store.StatusSucceeded)}, "runs_type"},
		{store.RunListParams{Job: "j", Statuses: sts(store.StatusFailed), Type: "t"}, "runs_job"},
		{store.RunListParams{CreatedAfter: now, CreatedBefore: now, FinishedAfter: now, FinishedBefore: now}, "INTEGER PRIMARY KEY"},
		{store.RunListParams{Statuses: sts(store.StatusTimedOut), Group: "g", WorkerID: "w", ErrorContains: "x"}, "ended"},
		{store.RunListParams{Parent: "p"}, "runs_parent"},
		{store.RunListParams{Parent: "p", Statuses: sts(store.StatusQueued), Order: store.OrderAsc}, "runs_parent"},
		{store.RunListParams{Parent: "p", Statuses: sts(store.StatusFailed), Job: "j", Group: "g"}, "runs_parent"},
	}
	for _, c := range cases {
		window, page, wargs, pargs := listq.Statements(listDialect, runCols, c.p)
		for _, q := range []struct {
			sql  string
			args []any
		}{{window, wargs}, {page, pargs}} {
			plan := explainQueryPlan(t, s, q.sql, q.args)
			if strings.Contains(plan, "TEMP B-TREE") || !strings.Contains(plan, c.want) ||
				strings.Contains(plan, "SCAN runs") && c.want != "INTEGER PRIMARY KEY" ||
				c.want == "ended" && strings.Contains(q.sql, "FROM runs") && !strings.Contains(plan, "SEARCH runs USING INTEGER PRIMARY KEY (rowid=?)") {
				t.Errorf("%+v: plan does not walk %s in order: %s\n%s", c.p, c.want, plan, q.sql)
			}
		}
	}
	for _, q := range []string{
		"SELECT coalesce(max(seq), 0) FROM runs",
		"SELECT seq, created_at FROM runs WHERE seq >= ? ORDER BY seq LIMIT 1",
	} {
		if plan := explainQueryPlan(t, s, q, []any{1}[:strings.Count(q, "?")]); strings.Contains(plan, "SCAN runs") || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%s: %s", q, plan)
		}
	}
}

func explainQueryPlan(t *testing.T, s *Store, q string, args []any) string {
	t.Helper()
	return strings.Join(queryPlan(t, s.r, q, args), "; ")
}

// queryPlan is SQLite's EXPLAIN QUERY PLAN of q on db, one step a line.
func queryPlan(t *testing.T, db *sql.DB, q string, args []any) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if testing.Verbose() {
		t.Logf("%s: %s", q, strings.Join(plan, "; "))
	}
	return plan
}
