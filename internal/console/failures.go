package console

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/fingerprint"
)

// Failures grouped by error fingerprint: the error text with ids, numbers,
// times and addresses masked (internal/fingerprint), so one cause shows as
// one line however many runs it failed, with its count, first and last
// time seen, the jobs it hit, and a link to its runs. The groups are made
// from the newest failures, one page of the API (failuresWindow runs);
// the page says how many failures the store holds in all.

const failuresWindow = 500

type failuresPage struct {
	*view
	Groups []failureGroup
	Seen   int   // failures grouped
	Total  int64 // failed + timed_out runs stored (the counters)
	Filter url.Values
}

type failureGroup struct {
	Fingerprint string
	Shape       string
	Sample      string // one message as it was
	SampleRun   string
	Count       int
	First, Last string
	Jobs        []string
	Link        string // the runs list filtered to this failure
	first, last time.Time
	jobs        map[string]bool
}

func (c *Console) failuresPage(w http.ResponseWriter, r *http.Request, v *view) error {
	filter := url.Values{}
	for _, k := range []string{"group", "job", "type"} {
		if s := strings.TrimSpace(r.URL.Query().Get(k)); s != "" {
			filter.Set(k, s)
		}
	}
	q := with(filter, "status", "failed,timed_out", "limit", strconv.Itoa(failuresWindow))
	var page apijson.List[apijson.Run]
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/runs", q, nil, &page); err != nil {
		return err
	}
	p := failuresPage{view: v, Groups: groupFailures(page.Items, filter), Seen: len(page.Items), Filter: filter}
	var st apijson.Stats
	sq := url.Values{}
	if g := filter.Get("group"); g != "" {
		sq.Set("group", g)
	}
	if j := filter.Get("job"); j != "" {
		sq.Set("job", j)
	}
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/stats", sq, nil, &st); err == nil {
		p.Total = st.Totals.Counts["failed"] + st.Totals.Counts["timed_out"]
	}
	v.Title = v.T("failures.title")
	return c.render(w, "failures", p)
}

// groupFailures groups runs by the fingerprint of their error, the
// largest group first.
func groupFailures(runs []apijson.Run, filter url.Values) []failureGroup {
	by := map[string]*failureGroup{}
	for i := range runs {
		run := &runs[i]
		msg := ""
		if run.Error != nil {
			msg = *run.Error
		}
		fp := fingerprint.Of(msg)
		g := by[fp]
		if g == nil {
			g = &failureGroup{Fingerprint: fp, Shape: fingerprint.Shape(msg), Sample: msg, SampleRun: run.ID, jobs: map[string]bool{}}
			g.Link = "/runs?" + with(filter, "status", "failed,timed_out", "error", fingerprint.Probe(msg)).Encode()
			by[fp] = g
		}
		g.Count++
		if run.FinishedAt != nil {
			if t, err := time.Parse(time.RFC3339Nano, *run.FinishedAt); err == nil {
				if g.first.IsZero() || t.Before(g.first) {
					g.first, g.First = t, *run.FinishedAt
				}
				if t.After(g.last) {
					g.last, g.Last = t, *run.FinishedAt
				}
			}
		}
		if run.Job != nil && *run.Job != "" {
			g.jobs[*run.Job] = true
		}
	}
	out := make([]failureGroup, 0, len(by))
	for _, g := range by {
		for j := range g.jobs {
			g.Jobs = append(g.Jobs, j)
		}
		sort.Strings(g.Jobs)
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].last.After(out[j].last)
	})
	return out
}
