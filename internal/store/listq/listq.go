// Package listq plans and runs RunList for the SQL backends. Both stores
// list runs the same way, so the plan is written once here and each
// backend supplies its dialect and four small queries (Querier).
//
// # The plan
//
// A listing walks runs in seq order (creation order), newest or oldest
// first, along one "lead" path — an index on columns fixed at insert —
// and tests the other filters on each run it reads:
//
//  1. Seq bounds. The cursor bounds seq. A created_at range is turned
//     into seq bounds by a binary search over seq (bounds.go): created_at
//     grows with seq, up to CreatedSlack, so no index on it is needed; a
//     finished_before bound gives an upper seq bound too (a run finishes
//     after it is created).
//  2. The lead, by expected selectivity: a fan-out's parent (runs_parent:
//     its children and merge run), then job (runs_job), then the runs
//     that ended failed, cancelled, timed_out or skipped when only those
//     statuses are asked for (the side table ended), then type
//     (runs_type), then group (runs_grp), else the primary key.
//  3. Residual filters (status, worker, finished_at, created_at within the
//     slack, error) are tested on the rows read. No index serves them: on
//     PostgreSQL each would name a column the hot path updates and turn
//     every state change into a non-HOT update. So a page reads at most a
//     budget of rows along the lead (a window, found by an index-only walk)
//     and stops there: a page that spends its budget is short and carries
//     a cursor at the window's end. Every call is bounded; a rare match
//     costs more calls, not longer ones.
//
// Without residual filters the lead answers exactly and a page is one
// ordered index range read up to the limit.
package listq

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// ScanBudget is the default number of runs one page examines along its
// lead. The slowest list is one that spends it all reading runs at random
// (a rare error substring over failed runs, a worker within a type): at
// 10M runs on the 2-core development machine 5,000 such reads took up to
// 59 ms on SQLite when the pages were not cached yet and up to 57 ms on
// PostgreSQL (a worker within a type), over the 50 ms a list may take;
// 2,000 keep both near 20 ms (bench --history measures every filter). A
// rarer match costs more pages, each as bounded.
const ScanBudget = 2000

// CreatedSlack is how far created_at may disagree with seq order: a run's
// created_at is taken when it is submitted and its seq when its group
// commit inserts it, and servers' clocks differ. Time bounds are turned
// into seq bounds this far outside the range, then tested exactly.
const CreatedSlack = 2 * time.Second

// rareTerminal are the statuses of the runs in the ended side table:
// terminal states few runs end in, and the ones people list.
var rareTerminal = []store.RunStatus{store.StatusFailed, store.StatusCancelled, store.StatusTimedOut, store.StatusSkipped}

// Dialect is what differs between the backends' SQL.
type Dialect struct {
	Postgres bool
	// Time converts a time into the backend's column value.
	Time func(time.Time) any
	// EndedTable, if set, names a side table (seq primary key) of the runs
	// in rareTerminal.
	EndedTable string
}

// Querier runs a plan's statements on one backend.
type Querier interface {
	// MaxSeq returns the largest seq stored (0 when there is none).
	MaxSeq(ctx context.Context) (int64, error)
	// RunFrom returns the seq and created_at of the first run whose seq is
	// at least seq (a primary key probe), false if none.
	RunFrom(ctx context.Context, seq int64) (int64, time.Time, bool, error)
	// Window runs a statement returning one row: the seq at the window's
	// far end (NULL when empty) and the number of runs in it.
	Window(ctx context.Context, sql string, args []any) (end int64, n int, err error)
	// Runs runs a statement returning run columns.
	Runs(ctx context.Context, sql string, args []any) ([]*store.Run, error)
}

// Normalize applies the defaults a listing's filters imply: an error
// search with no statuses lists failed and timed-out runs.
func Normalize(p store.RunListParams) store.RunListParams {
	if p.ErrorContains != "" && len(p.Statuses) == 0 {
		p.Statuses = []store.RunStatus{store.StatusFailed, store.StatusTimedOut}
	}
	if p.Order != store.OrderAsc {
		p.Order = store.OrderDesc
	}
	if p.ScanBudget <= 0 {
		p.ScanBudget = ScanBudget
	}
	return p
}

// List runs p on q; cols is the backend's run column list.
func List(ctx context.Context, q Querier, d Dialect, cols string, p store.RunListParams) (store.RunPage, error) {
	p = Normalize(p)
	limit := p.PageLimit()
	cursor, err := p.BeforeSeq()
	if err != nil {
		return store.RunPage{}, err
	}
	b, empty, err := seqBounds(ctx, q, p, cursor)
	if err != nil || empty {
		return store.RunPage{}, err
	}
	pl := newPlan(d, p, b)
	if !pl.residual() {
		sql, args := pl.pageSQL(cols, 0, limit+1, 0)
		runs, err := q.Runs(ctx, sql, args)
		if err != nil {
			return store.RunPage{}, err
		}
		return cutPage(runs, limit, 0), nil
	}
	sql, args := pl.windowSQL(p.ScanBudget)
	end, n, err := q.Window(ctx, sql, args)
	if err != nil || n == 0 {
		return store.RunPage{}, err
	}
	sql, args = pl.pageSQL(cols, end, limit+1, n)
	runs, err := q.Runs(ctx, sql, args)
	if err != nil {
		return store.RunPage{}, err
	}
	more := int64(0)
	if n >= p.ScanBudget {
		more = end // the budget ran out: later pages go on past the window
	}
	return cutPage(runs, limit, more), nil
}

// cutPage makes a page of runs read with a limit of limit+1; when the
// extra run is missing but the window was cut by the budget, the cursor is
// the window's end.
func cutPage(runs []*store.Run, limit int, windowEnd int64) store.RunPage {
	page := store.NewRunPage(runs, limit)
	if page.NextCursor == "" && windowEnd > 0 {
		page.NextCursor = strconv.FormatInt(windowEnd, 10)
	}
	return page
}

// plan is one listing's statements.
type plan struct {
	d    Dialect
	p    store.RunListParams
	b    bounds
	lead []string // conditions the lead index answers
	res  []string // residual conditions, tested on each run read
	hint string   // SQLite: INDEXED BY clause that pins the lead
	// args are the lead's then the residual's arguments, in the order
	// their placeholders appear (SQLite's are positional); leadN counts
	// the lead's.
	args  []any
	leadN int
	// leadCol is the lead index's first column ("" for the primary key):
	// on PostgreSQL the seq bounds and the order name it (seqConds).
	leadCol string
	// table is what the window walks: runs, or the ended table.
	table string
}

func newPlan(d Dialect, p store.RunListParams, b bounds) *plan {
	pl := &plan{d: d, p: p, b: b, table: "runs"}
	if !d.Postgres {
		pl.hint = " NOT INDEXED"
	}
	ended := d.EndedTable != "" && len(p.Statuses) > 0 && !slices.ContainsFunc(p.Statuses, func(s store.RunStatus) bool {
		return !slices.Contains(rareTerminal, s)
	})
	// Every condition is added exactly once, to the lead or the residual.
	leadUsed := false
	addEq := func(col, v, index, extra string) {
		if v == "" {
			return
		}
		c := col + " = " + pl.arg(v)
		if leadUsed {
			pl.res = append(pl.res, c)
			return
		}
		leadUsed = true
		if !d.Postgres {
			pl.lead = append(pl.lead, c)
		} // PostgreSQL: the seq bounds say it (seqConds)
		pl.leadN = len(pl.args)
		pl.leadCol = col
		if extra != "" {
			pl.lead = append(pl.lead, extra)
		}
		pl.setHint(index)
	}
	addEq("parent_id", p.Parent, "runs_parent", "parent_id <> ''")
	addEq("job", p.Job, "runs_job", "job <> ''")
	if ended && !leadUsed {
		leadUsed = true
		pl.table = d.EndedTable // statuses stay in the residual
	}
	addEq("type", p.Type, "runs_type", "")
	addEq("grp", p.Group, "runs_grp", "")
	pl.residuals()
	return pl
}

func (pl *plan) setHint(index string) {
	if !pl.d.Postgres {
		pl.hint = " INDEXED BY " + index
	}
}

// residuals adds the conditions no index answers.
func (pl *plan) residuals() {
	p := pl.p
	if len(p.Statuses) > 0 {
		if pl.d.Postgres {
			sts := make([]string, len(p.Statuses))
			for i, s := range p.Statuses {
				sts[i] = string(s)
			}
			pl.res = append(pl.res, "status = ANY("+pl.arg(sts)+"::text[])")
		} else {
			ph := make([]string, len(p.Statuses))
			for i, s := range p.Statuses {
				ph[i] = pl.arg(string(s))
			}
			pl.res = append(pl.res, "status IN ("+strings.Join(ph, ", ")+")")
		}
	}
	if p.WorkerID != "" {
		pl.res = append(pl.res, "worker_id = "+pl.arg(p.WorkerID))
	}
	pl.timeRange("created_at", p.CreatedAfter, p.CreatedBefore)
	pl.timeRange("finished_at", p.FinishedAfter, p.FinishedBefore)
	if p.ErrorContains != "" {
		fn := "instr"
		if pl.d.Postgres {
			fn = "strpos"
		}
		pl.res = append(pl.res, fn+"(error, "+pl.arg(p.ErrorContains)+") > 0")
	}
}

func (pl *plan) timeRange(col string, after, before time.Time) {
	if !after.IsZero() {
		pl.res = append(pl.res, col+" >= "+pl.arg(pl.d.Time(after)))
	}
	if !before.IsZero() {
		pl.res = append(pl.res, col+" < "+pl.arg(pl.d.Time(before)))
	}
}

func (pl *plan) residual() bool { return len(pl.res) > 0 }

func (pl *plan) arg(v any) string {
	pl.args = append(pl.args, v)
	if pl.d.Postgres {
		return "$" + strconv.Itoa(len(pl.args))
	}
	return "?"
}

// seqConds are the seq bounds, narrowed to windowEnd (if not 0, an
// inclusive bound on the far side), as one lower and one upper bound:
// SQLite uses a single bound of each kind in an index range, and tests any
// other only on the rows that range returns. Their arguments are appended
// to args.
func (pl *plan) seqConds(args *[]any, windowEnd int64, col string) []string {
	lo, hi := pl.b.lo, pl.b.hi
	if windowEnd > 0 {
		if pl.p.Order == store.OrderAsc {
			if hi == 0 || windowEnd+1 < hi {
				hi = windowEnd + 1
			}
		} else {
			lo = max(lo, windowEnd-1)
		}
	}
	var conds []string
	add := func(op string, v int64) {
		*args = append(*args, v)
		if !pl.d.Postgres {
			conds = append(conds, col+" "+op+" ?")
			return
		}
		ph := "$" + strconv.Itoa(len(*args))
		if pl.rowBounds() && col == "seq" {
			conds = append(conds, "("+pl.leadCol+", seq) "+op+" ($1, "+ph+")")
			return
		}
		conds = append(conds, col+" "+op+" "+ph)
	}
	if pl.rowBounds() {
		// (lead, seq) > ($1, lo) AND (lead, seq) < ($1, hi) is lead = $1
		// AND lo < seq < hi — the lead's value is $1 — and names no
		// constant, so the order (lead, seq) is one only the lead index
		// yields: the planner cannot walk the primary key and filter, as it
		// does when it takes a value's runs to be spread evenly (the newest
		// runs are often all of one group or type).
		if hi == 0 {
			hi = math.MaxInt64
		}
		add(">", lo)
		add("<", hi)
		return conds
	}
	if lo > 0 {
		add(">", lo)
	}
	if hi > 0 {
		add("<", hi)
	}
	return conds
}

func (pl *plan) orderBy() string {
	dir := " DESC"
	if pl.p.Order == store.OrderAsc {
		dir = ""
	}
	if pl.rowBounds() {
		return " ORDER BY " + pl.leadCol + dir + ", seq" + dir
	}
	return " ORDER BY seq" + dir
}

// rowBounds reports whether the seq bounds are row comparisons on the
// lead index (PostgreSQL; seqConds).
func (pl *plan) rowBounds() bool { return pl.d.Postgres && pl.leadCol != "" && pl.table == "runs" }

// windowSQL finds the far end of the next budget runs along the lead
// (an index-only walk) and how many there are.
func (pl *plan) windowSQL(budget int) (string, []any) {
	args := slices.Clone(pl.args[:pl.leadN])
	conds := append(slices.Clone(pl.lead), pl.seqConds(&args, 0, "seq")...)
	agg := "min(seq)"
	if pl.p.Order == store.OrderAsc {
		agg = "max(seq)"
	}
	args = append(args, int64(budget))
	limit := "?"
	if pl.d.Postgres {
		limit = "$" + strconv.Itoa(len(args))
	}
	inner := "SELECT seq FROM " + pl.table + pl.hint + where(conds) + pl.orderBy() + " LIMIT " + limit
	return "SELECT " + agg + ", count(*) FROM (" + inner + ") AS w", args
}

// pageSQL reads up to limit runs along the lead, within windowEnd; the
// window holds examined runs of the lead (0: not counted).
func (pl *plan) pageSQL(cols string, windowEnd int64, limit, examined int) (string, []any) {
	// The seq bounds and the limit come after the lead's and the
	// residual's placeholders, in text and in args.
	args := slices.Clone(pl.args)
	if pl.table != "runs" && !pl.d.Postgres {
		// The side table's seqs within the window (at most the budget),
		// each run read by rowid, in order.
		var args []any
		bounds := pl.seqConds(&args, windowEnd, "seq")
		args = append(append(args, pl.args...), int64(limit))
		in := "seq IN (SELECT seq FROM " + pl.table + where(bounds) + ")"
		return "SELECT " + cols + " FROM runs NOT INDEXED" + where(append([]string{in}, pl.res...)) + pl.orderBy() + " LIMIT ?", args
	}
	if pl.table != "runs" {
		// Walk the side table in seq order and read each run by its
		// primary key: a nested loop the planner cannot turn around.
		bounds := pl.seqConds(&args, windowEnd, "e.seq")
		args = append(args, int64(limit))
		run := "SELECT " + cols + " FROM runs" + where(append([]string{"runs.seq = e.seq"}, pl.res...))
		return "SELECT r.* FROM " + pl.table + " AS e CROSS JOIN LATERAL (" + run + ") AS r" + where(bounds) +
			strings.Replace(pl.orderBy(), "seq", "e.seq", 1) + " LIMIT $" + strconv.Itoa(len(args)), args
	}
	if pl.rowBounds() && len(pl.res) > 0 && examined > 0 {
		return pl.walkSQL(cols, windowEnd, limit, examined)
	}
	conds := slices.Concat(pl.lead, pl.res, pl.seqConds(&args, windowEnd, "seq"))
	args = append(args, int64(limit))
	ph := "?"
	if pl.d.Postgres {
		ph = "$" + strconv.Itoa(len(args))
	}
	return "SELECT " + cols + " FROM runs" + pl.hint + where(conds) + pl.orderBy() + " LIMIT " + ph, args
}

// walkSQL is pageSQL on PostgreSQL with row bounds and residual filters.
// A backward walk of the lead index stops at the first member of a row
// comparison only: (type, seq) > ($1, lo) ends the walk where the type's
// runs end, not at lo, so a page whose filter matched fewer runs than its
// limit read every older run of the type (500,000 index entries, 49 ms,
// for a worker within a type at 10M runs). Here the walk is cut by a
// LIMIT at the runs the window counted, and each run is read by its
// primary key for the residual filters (6.9 ms for that page).
func (pl *plan) walkSQL(cols string, windowEnd int64, limit, examined int) (string, []any) {
	args := slices.Clone(pl.args)
	conds := append(slices.Clone(pl.lead), pl.seqConds(&args, windowEnd, "seq")...)
	args = append(args, int64(examined))
	walk := "SELECT seq FROM runs" + pl.hint + where(conds) + pl.orderBy() + " LIMIT $" + strconv.Itoa(len(args))
	// LIMIT 1 keeps the planner from flattening the lateral read and
	// turning the join around (a walk of the primary key, probing the
	// window's runs).
	run := "SELECT " + cols + " FROM runs" + where(append([]string{"runs.seq = e.seq"}, pl.res...)) + " LIMIT 1"
	args = append(args, int64(limit))
	// No ORDER BY: the rows come in the walk's order, the (lead, seq)
	// order of one lead value, which is seq order; a sort would read the
	// whole window first. The backend's plan test holds the plan to a
	// nested loop driven by the walk, without a sort.
	return "SELECT r.* FROM (" + walk + ") AS e CROSS JOIN LATERAL (" + run + ") AS r LIMIT $" + strconv.Itoa(len(args)), args
}

func where(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// Statements returns the window and page statements of a listing with
// seq bounds on both sides, for the backends' query plan tests.
func Statements(d Dialect, cols string, p store.RunListParams) (window, page string, windowArgs, pageArgs []any) {
	p = Normalize(p)
	pl := newPlan(d, p, bounds{lo: 1, hi: 1 << 40})
	window, windowArgs = pl.windowSQL(p.ScanBudget)
	page, pageArgs = pl.pageSQL(cols, 1<<39, p.PageLimit()+1, p.ScanBudget)
	return
}
