package console

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// Workflows in the console: a job's dependencies (upstream and downstream
// jobs, each with its run for a logical time), the backfill form with its
// dry run, and the backfills pages with their progress.

// depNode is a job of a job's graph and its run for the chosen time.
type depNode struct {
	Job    string
	Window string       // for an upstream with a window
	Run    *apijson.Run // nil: none for that time
}

// depView is a job page's dependency card.
type depView struct {
	At         string // the logical time shown (RFC 3339), "" for none
	Rule       string
	Upstream   []depNode
	Downstream []depNode
}

// jobDeps reads the jobs around j and each one's run for logical time at
// (the newest of j's slots when at is empty): one read of the jobs, one
// of each neighbour's newest runs.
func (c *Console) jobDeps(r *http.Request, v *view, j apijson.Job, at string) (depView, error) {
	d := depView{Rule: j.TriggerRule, At: at}
	var jobs apijson.List[apijson.Job]
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/jobs", nil, nil, &jobs); err != nil {
		return d, err
	}
	for _, o := range jobs.Items {
		for _, dep := range o.DependsOn {
			if dep.Job == j.Name {
				d.Downstream = append(d.Downstream, depNode{Job: o.Name, Window: dep.Window})
			}
		}
	}
	for _, dep := range j.DependsOn {
		d.Upstream = append(d.Upstream, depNode{Job: dep.Job, Window: dep.Window})
	}
	if len(d.Upstream)+len(d.Downstream) == 0 {
		return d, nil
	}
	if d.At == "" {
		own, err := c.slotRuns(r, v, j.Name)
		if err != nil {
			return d, err
		}
		for _, run := range own {
			if run.LogicalTime != nil {
				d.At = *run.LogicalTime
				break
			}
		}
	}
	for _, nodes := range [][]depNode{d.Upstream, d.Downstream} {
		for i := range nodes {
			runs, err := c.slotRuns(r, v, nodes[i].Job)
			if err != nil {
				return d, err
			}
			for k := range runs {
				if runs[k].LogicalTime != nil && sameTime(*runs[k].LogicalTime, d.At) {
					nodes[i].Run = &runs[k]
					break
				}
			}
		}
	}
	return d, nil
}

// slotRuns are a job's newest 100 runs.
func (c *Console) slotRuns(r *http.Request, v *view, job string) ([]apijson.Run, error) {
	var runs apijson.List[apijson.Run]
	err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/runs", url.Values{"job": {job}, "limit": {"100"}}, nil, &runs)
	return runs.Items, err
}

func sameTime(a, b string) bool {
	ta, err1 := time.Parse(time.RFC3339Nano, a)
	tb, err2 := time.Parse(time.RFC3339Nano, b)
	return err1 == nil && err2 == nil && ta.Equal(tb)
}

// backfillForm is the body the job page's backfill form sends.
func backfillForm(r *http.Request) (map[string]any, *APIError) {
	body := map[string]any{"cascade": r.PostFormValue("cascade") != "", "dry_run": r.PostFormValue("dry_run") != ""}
	for _, f := range []string{"from", "to"} {
		s := strings.TrimSpace(r.PostFormValue(f))
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, s); err != nil {
				return nil, &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: f + ": want a date such as 2026-11-01", Field: f}}
			}
		}
		body[f] = t.UTC().Format(time.RFC3339)
	}
	if p := strings.TrimSpace(r.PostFormValue("parallel")); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: "parallel: want a number", Field: "parallel"}}
		}
		body["parallel"] = n
	}
	return body, nil
}

// backfillPlan is a dry run as the form shows it.
type backfillPlan struct {
	*view
	apijson.BackfillPlan
}

// Estimate is the plan's estimate, rounded to the second.
func (p backfillPlan) Estimate() string {
	return (time.Duration(p.EstimateSeconds * float64(time.Second))).Round(time.Second).String()
}

// jobBackfill answers the job page's backfill form: the plan (dry run,
// rendered in place) or a new backfill (to its page).
func (c *Console) jobBackfill(w http.ResponseWriter, r *http.Request, v *view, name string) error {
	body, perr := backfillForm(r)
	if perr != nil {
		return perr
	}
	path := "/api/v1/jobs/" + url.PathEscape(name) + "/backfill"
	if body["dry_run"] == true {
		p := backfillPlan{view: v}
		if err := c.api.call(r.Context(), v.secret(), http.MethodPost, path, nil, body, &p.BackfillPlan); err != nil {
			return err
		}
		return c.renderPart(w, "job", "plan", p)
	}
	var bf struct {
		ID string `json:"id"`
	}
	if err := c.api.call(r.Context(), v.secret(), http.MethodPost, path, nil, body, &bf); err != nil {
		return err
	}
	w.Header().Set("HX-Redirect", "/backfills/"+url.PathEscape(bf.ID))
	if r.Header.Get("HX-Request") == "" {
		http.Redirect(w, r, "/backfills/"+url.PathEscape(bf.ID), http.StatusSeeOther)
	}
	return nil
}

type backfillJSON = apijson.Backfill

type backfillsPage struct {
	*view
	Items []backfillJSON
}

type backfillPage struct {
	*view
	B     backfillJSON
	Flash string
}

func (c *Console) backfillsPage(w http.ResponseWriter, r *http.Request, v *view) error {
	var l apijson.List[backfillJSON]
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/backfills", nil, nil, &l); err != nil {
		return err
	}
	sort.SliceStable(l.Items, func(i, j int) bool { return strOr(l.Items[i].CreatedAt) > strOr(l.Items[j].CreatedAt) })
	v.Title = v.T("bf.title")
	return c.render(w, "backfills", backfillsPage{view: v, Items: l.Items})
}

func (c *Console) backfillPage(w http.ResponseWriter, r *http.Request, v *view) error {
	p := backfillPage{view: v}
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/backfills/"+url.PathEscape(r.PathValue("id")), nil, nil, &p.B); err != nil {
		return err
	}
	v.Title = v.T("bf.one", p.B.Job)
	if r.URL.Query().Get("part") == "progress" {
		return c.renderPart(w, "backfill", "progress", p)
	}
	return c.render(w, "backfill", p)
}

// backfillAction pauses, resumes or cancels a backfill.
func (c *Console) backfillAction(w http.ResponseWriter, r *http.Request, v *view) error {
	id, action := r.PathValue("id"), r.PathValue("action")
	if action != "pause" && action != "resume" && action != "cancel" {
		return &APIError{Status: http.StatusNotFound, ErrorBody: errBody(v.T("error.notfound", r.URL.Path))}
	}
	p := backfillPage{view: v}
	if err := c.api.call(r.Context(), v.secret(), http.MethodPost, "/api/v1/backfills/"+url.PathEscape(id)+"/"+action, nil, struct{}{}, nil); err != nil {
		return err
	}
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/backfills/"+url.PathEscape(id), nil, nil, &p.B); err != nil {
		return err
	}
	p.Flash = v.T("bf.done."+action, id)
	return c.renderPart(w, "backfill", "progress", p)
}

func strOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// gridPage is the grid of a job's graph: the jobs (its upstream jobs, the
// job, its downstream jobs, all the way) × its last logical times, each
// cell the job's run for that time.
type gridPage struct {
	*view
	Job   string
	Times []string // newest first
	Rows  []gridRow
}

type gridRow struct {
	Job   string
	Cells []*apijson.Run // per time; nil: no run
}

// gridTimes is how many logical times the grid shows.
const gridTimes = 14

func (c *Console) gridPage(w http.ResponseWriter, r *http.Request, v *view) error {
	name := r.PathValue("name")
	var jobs apijson.List[apijson.Job]
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/jobs", nil, nil, &jobs); err != nil {
		return err
	}
	p := gridPage{view: v, Job: name}
	scope := graphScope(jobs.Items, name)
	runs := map[string][]apijson.Run{}
	for _, j := range scope {
		rs, err := c.slotRuns(r, v, j)
		if err != nil {
			return err
		}
		runs[j] = rs
	}
	for _, run := range runs[name] {
		if run.LogicalTime != nil && len(p.Times) < gridTimes && !slicesContains(p.Times, *run.LogicalTime) {
			p.Times = append(p.Times, *run.LogicalTime)
		}
	}
	for _, j := range scope {
		row := gridRow{Job: j, Cells: make([]*apijson.Run, len(p.Times))}
		for k := range runs[j] {
			run := &runs[j][k]
			for i, t := range p.Times {
				if run.LogicalTime != nil && row.Cells[i] == nil && sameTime(*run.LogicalTime, t) {
					row.Cells[i] = run
				}
			}
		}
		p.Rows = append(p.Rows, row)
	}
	v.Title = v.T("grid.title", name)
	return c.render(w, "grid", p)
}

// graphScope lists job's upstream jobs (farthest first), job, and its
// downstream jobs (nearest first), each once.
func graphScope(jobs []apijson.Job, job string) []string {
	byName := map[string]apijson.Job{}
	down := map[string][]string{}
	for _, j := range jobs {
		byName[j.Name] = j
		for _, d := range j.DependsOn {
			down[d.Job] = append(down[d.Job], j.Name)
		}
	}
	seen := map[string]bool{job: true}
	var up []string
	for queue := []string{job}; len(queue) > 0; queue = queue[1:] {
		for _, d := range byName[queue[0]].DependsOn {
			if !seen[d.Job] {
				seen[d.Job] = true
				up = append(up, d.Job)
				queue = append(queue, d.Job)
			}
		}
	}
	out := make([]string, 0, len(up)+1)
	for i := len(up) - 1; i >= 0; i-- {
		out = append(out, up[i])
	}
	out = append(out, job)
	for i := len(out) - 1; i < len(out); i++ {
		for _, d := range down[out[i]] {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out
}

func slicesContains(xs []string, x string) bool {
	for _, y := range xs {
		if sameTime(x, y) {
			return true
		}
	}
	return false
}
