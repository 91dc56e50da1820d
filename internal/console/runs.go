package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// The runs pages: the filtered list, one run, and the run actions.

// runFilters are the list filters the page passes to GET /api/v1/runs.
var runFilters = []string{"status", "group", "job", "type", "worker", "created_after", "created_before",
	"finished_after", "finished_before", "error", "order", "parent"}

// statuses are the run statuses, in lifecycle order, for the filter.
var statuses = []string{"pending", "blocked", "queued", "dispatched", "running", "succeeded", "failed", "cancelled", "timed_out", "skipped"}

type runsPage struct {
	*view
	Runs     []apijson.Run
	Next     string // the next page's query ("" on the last page)
	Filter   url.Values
	Statuses []string
	Query    string // the filter as a query string (for partial refreshes and bulk actions)
	Flash    string
}

// HasStatus reports whether the filter selects status s.
func (p runsPage) HasStatus(s string) bool {
	for _, v := range p.Filter["status"] {
		for _, x := range strings.Split(v, ",") {
			if x == s {
				return true
			}
		}
	}
	return false
}

// filterQuery keeps the known, non-empty filters of a request.
func filterQuery(q url.Values) url.Values {
	out := url.Values{}
	for _, k := range runFilters {
		for _, v := range q[k] {
			if v = strings.TrimSpace(v); v != "" {
				out.Add(k, v)
			}
		}
	}
	if st := out["status"]; len(st) > 1 {
		out.Set("status", strings.Join(st, ","))
	}
	return out
}

func (c *Console) runsPage(w http.ResponseWriter, r *http.Request, v *view) error {
	if r.URL.Query().Get("part") == "rows" {
		return c.runsRows(w, r, v, "")
	}
	p, err := c.runsData(r, v)
	if err != nil {
		return err
	}
	v.Title = v.T("runs.title")
	return c.render(w, "runs", p)
}

// runsRows answers with the list's rows only (htmx refresh), with a note.
func (c *Console) runsRows(w http.ResponseWriter, r *http.Request, v *view, flash string) error {
	p, err := c.runsData(r, v)
	if err != nil {
		return err
	}
	p.Flash = flash
	return c.renderPart(w, "runs", "rows", p)
}

// runsData reads one page of the runs the request's filter selects.
func (c *Console) runsData(r *http.Request, v *view) (runsPage, error) {
	filter := filterQuery(r.URL.Query())
	q := with(filter, "limit", "50", "cursor", r.URL.Query().Get("cursor"))
	var page apijson.List[apijson.Run]
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/runs", q, nil, &page); err != nil {
		return runsPage{}, err
	}
	p := runsPage{view: v, Runs: page.Items, Filter: filter, Statuses: statuses, Query: filter.Encode()}
	if cur := r.URL.Query().Get("cursor"); cur != "" {
		p.Query += "&cursor=" + url.QueryEscape(cur)
	}
	if page.NextCursor != "" {
		p.Next = with(filter, "cursor", page.NextCursor).Encode()
	}
	return p, nil
}

type runPage struct {
	*view
	Run *apijson.Run
	// Attempts are the run's attempts, read only for a run past its
	// first: the summary lists them when there is more than one.
	Attempts []apijson.Attempt
	Logs     []apijson.LogLine
	// Children is a fan-out parent's grid (nil for other runs).
	Children *children
	// LogsNext is the seq to follow the log from.
	LogsNext int64
}

func (c *Console) runPage(w http.ResponseWriter, r *http.Request, v *view) error {
	id := r.PathValue("id")
	var run apijson.Run
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/runs/"+url.PathEscape(id), nil, nil, &run); err != nil {
		return err
	}
	var attempts apijson.Attempts
	if run.Attempt > 1 {
		if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/runs/"+url.PathEscape(id)+"/attempts", nil, nil, &attempts); err != nil {
			return err
		}
	}
	var logs apijson.List[apijson.LogLine]
	q := url.Values{"limit": {"1000"}}
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/runs/"+url.PathEscape(id)+"/logs", q, nil, &logs); err != nil {
		return err
	}
	kids, err := c.loadChildren(r.Context(), v, &run)
	if err != nil {
		return err
	}
	p := runPage{view: v, Run: &run, Attempts: attempts.Attempts, Logs: logs.Items, Children: kids}
	if n := len(logs.Items); n > 0 {
		p.LogsNext = logs.Items[n-1].Seq
	}
	v.Title = v.T("run.title", run.ID)
	if r.URL.Query().Get("part") == "summary" {
		return c.renderPart(w, "run", "summary", p)
	}
	return c.render(w, "run", p)
}

// runAction is cancel, retry or again (a new run with this run's spec and
// payload) on one run; it goes back to the run (or to the new one).
func (c *Console) runAction(w http.ResponseWriter, r *http.Request, v *view) error {
	id, action := r.PathValue("id"), r.PathValue("action")
	path := "/api/v1/runs/" + url.PathEscape(id)
	switch action {
	case "cancel", "retry":
		if err := c.api.call(r.Context(), v.secret(), http.MethodPost, path+"/"+action, nil, struct{}{}, nil); err != nil {
			return err
		}
	case "again":
		var run apijson.Run
		if err := c.api.call(r.Context(), v.secret(), http.MethodGet, path, nil, nil, &run); err != nil {
			return err
		}
		var created apijson.Run
		if err := c.api.call(r.Context(), v.secret(), http.MethodPost, "/api/v1/runs", nil, againRequest(run), &created); err != nil {
			return err
		}
		id = created.ID
	default:
		return &APIError{Status: http.StatusNotFound, ErrorBody: errBody(v.T("error.notfound", r.URL.Path))}
	}
	if r.Header.Get("HX-Request") != "" {
		w.Header().Set("HX-Redirect", "/runs/"+url.PathEscape(id))
		return nil
	}
	http.Redirect(w, r, "/runs/"+url.PathEscape(id), http.StatusSeeOther)
	return nil
}

// againRequest is the submit body of a new run like run: same type, group,
// payload, priority, timeout and routing; a fresh attempt budget.
func againRequest(run apijson.Run) map[string]any {
	body := map[string]any{"type": run.Type, "group": run.Group, "payload": run.Payload, "priority": run.Priority,
		"retries": max(run.MaxAttempts-1, 0)}
	if run.Timeout != nil {
		body["timeout"] = *run.Timeout
	}
	if run.Routing != nil {
		body["routing"] = *run.Routing
	}
	if len(run.Payload) == 0 {
		body["payload"] = nil
	}
	return body
}

// maxBulk bounds the runs one bulk action names.
const maxBulk = 1000

// runsBulk cancels or retries the selected runs, each through the API (so
// each is checked and audited), and answers with the refreshed rows and a
// note of how many were done and why the others were not.
func (c *Console) runsBulk(w http.ResponseWriter, r *http.Request, v *view) error {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return &APIError{Status: http.StatusBadRequest, ErrorBody: errBody(err.Error())}
	}
	action := r.PostFormValue("action")
	if action != "cancel" && action != "retry" {
		return &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: "action must be cancel or retry", Field: "action"}}
	}
	ids := r.PostForm["id"]
	if len(ids) > maxBulk {
		return &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: fmt.Sprintf("at most %d runs at once", maxBulk), Field: "id"}}
	}
	done, refused := 0, map[string]int{}
	for _, id := range ids {
		err := c.api.call(r.Context(), v.secret(), http.MethodPost, "/api/v1/runs/"+url.PathEscape(id)+"/"+action, nil, struct{}{}, nil)
		if err != nil {
			refused[err.Error()]++
			continue
		}
		done++
	}
	flash := v.T("bulk.done."+action, done, len(ids))
	for msg, n := range refused {
		flash += fmt.Sprintf(" — %d: %s", n, msg)
	}
	r.URL.RawQuery = r.PostFormValue("query")
	return c.runsRows(w, r, v, flash)
}

// secret is the session token the view's API calls carry.
func (v *view) secret() string {
	if v.NoAuth {
		return ""
	}
	if ck, err := v.r.Cookie(sessionCookie); err == nil {
		return ck.Value
	}
	return ""
}
