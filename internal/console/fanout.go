package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// maxShardCells bounds the cells of a parent's grid: a larger fan-out
// shows its first children and links to the full list.
const maxShardCells = 1000

// children is a fan-out's parent's grid: its children in shard order (the
// first maxShardCells), the ones running now (a few, for the join state),
// and a count per status of the cells shown.
type children struct {
	Fanout  *apijson.Fanout
	Cells   []shardCell
	Running []apijson.Run // running or dispatched, at most maxRunningShown
	More    bool          // more running than shown
	Hidden  int           // children beyond the cells
	Counts  []statusCount // of the cells, in lifecycle order
}

type shardCell struct {
	Shard  int
	ID     string
	Status string
	Label  string // shard, status, worker, how long it ran
}

type statusCount struct {
	Status string
	N      int
}

const maxRunningShown = 3

// loadChildren reads a parent's children for its grid (nil for a run that
// is not a parent).
func (c *Console) loadChildren(ctx context.Context, v *view, run *apijson.Run) (*children, error) {
	if run.Fanout == nil {
		return nil, nil
	}
	get := func(q url.Values, out *apijson.List[apijson.Run]) error {
		q.Set("parent", run.ID)
		return c.api.call(ctx, v.secret(), http.MethodGet, "/api/v1/runs", q, nil, out)
	}
	var all, running apijson.List[apijson.Run]
	if err := get(url.Values{"order": {"asc"}, "limit": {fmt.Sprint(maxShardCells)}}, &all); err != nil {
		return nil, err
	}
	if err := get(url.Values{"status": {"running,dispatched"}, "limit": {fmt.Sprint(maxRunningShown + 1)}}, &running); err != nil {
		return nil, err
	}
	ch := &children{Fanout: run.Fanout, Hidden: max(0, run.Fanout.Children-maxShardCells)}
	counts := map[string]int{}
	now := time.Now()
	for _, r := range all.Items {
		if r.Shard == nil || len(ch.Cells) == maxShardCells {
			continue // the merge run, or past the grid
		}
		ch.Cells = append(ch.Cells, shardCell{Shard: *r.Shard, ID: r.ID, Status: r.Status, Label: cellLabel(v, &r, now)})
		counts[r.Status]++
	}
	slices.SortFunc(ch.Cells, func(a, b shardCell) int { return a.Shard - b.Shard })
	for _, s := range statuses {
		if counts[s] > 0 {
			ch.Counts = append(ch.Counts, statusCount{s, counts[s]})
		}
	}
	ch.Running = running.Items
	if len(ch.Running) > maxRunningShown {
		ch.Running, ch.More = ch.Running[:maxRunningShown], true
	}
	return ch, nil
}

// cellLabel says what a child's cell shows: "shard 3: running on w-2,
// 1.2s".
func cellLabel(v *view, r *apijson.Run, now time.Time) string {
	out := v.T("fanout.cell", *r.Shard, v.T("status."+r.Status))
	if w := deref(r.WorkerID); w != "" {
		out += " " + v.T("fanout.on", w)
	}
	if d := ranFor(r.StartedAt, r.FinishedAt, now); d != "" {
		out += ", " + d
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ranFor is how long a run ran: started → finished, or → now while it
// runs ("" before it started).
func ranFor(started, finished *string, now time.Time) string {
	if finished != nil {
		return elapsed(started, finished)
	}
	n := now.UTC().Format(time.RFC3339Nano)
	return elapsed(started, &n)
}
