package console

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// The overview: the cluster, workers and slots per group, recent failures.

type overviewPage struct {
	*view
	Cluster  apijson.Cluster
	Stats    apijson.Stats
	Groups   []groupLoad
	Failures []apijson.Run
	Alerts   []apijson.Alert
}

// Age shows a queue age in seconds as a short duration.
func (overviewPage) Age(sec float64) string {
	if sec <= 0 {
		return ""
	}
	return (time.Duration(sec * float64(time.Second))).Round(time.Second).String()
}

// groupLoad is one group's workers and slots.
type groupLoad struct {
	Group                string
	Workers, Draining    int
	SlotsUsed, SlotsFree int
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, v *view) error {
	var err error
	p := overviewPage{view: v}
	ctx, secret := r.Context(), v.secret()
	if err := c.api.call(ctx, secret, http.MethodGet, "/api/v1/cluster", nil, nil, &p.Cluster); err != nil {
		return err
	}
	var workers apijson.List[apijson.Worker]
	if err := c.api.call(ctx, secret, http.MethodGet, "/api/v1/workers", nil, nil, &workers); err != nil {
		return err
	}
	p.Groups = groupLoads(workers.Items)
	if err := c.api.call(ctx, secret, http.MethodGet, "/api/v1/stats", nil, nil, &p.Stats); err != nil {
		return err
	}
	var failed apijson.List[apijson.Run]
	q := url.Values{"status": {"failed,timed_out"}, "limit": {"10"}}
	if err := c.api.call(ctx, secret, http.MethodGet, "/api/v1/runs", q, nil, &failed); err != nil {
		return err
	}
	p.Failures = failed.Items
	if p.Alerts, err = c.alerts(r, v, "", 10); err != nil {
		return err
	}
	v.Title = v.T("overview.title")
	if r.URL.Query().Get("part") == "live" {
		return c.renderPart(w, "overview", "live", p)
	}
	return c.render(w, "overview", p)
}

// groupLoads sums workers and slots by group, groups in name order.
func groupLoads(ws []apijson.Worker) []groupLoad {
	by := map[string]*groupLoad{}
	for _, w := range ws {
		g := by[w.Group]
		if g == nil {
			g = &groupLoad{Group: w.Group}
			by[w.Group] = g
		}
		g.Workers++
		if w.Draining || w.Leaving {
			g.Draining++
		}
		g.SlotsUsed += w.Running
		if free := w.Capacity - w.Running; free > 0 && !w.Draining && !w.Leaving {
			g.SlotsFree += free
		}
	}
	out := make([]groupLoad, 0, len(by))
	for _, g := range by {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}

// alerts reads the latest alerts (of job, if not ""), at most n.
func (c *Console) alerts(r *http.Request, v *view, job string, n int) ([]apijson.Alert, error) {
	var l apijson.List[apijson.Alert]
	q := url.Values{"limit": {strconv.Itoa(n)}}
	if job != "" {
		q.Set("job", job)
	}
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/alerts", q, nil, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}
