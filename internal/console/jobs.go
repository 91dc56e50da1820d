package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// The jobs pages: the list with each job's last run, and the actions
// pause, resume, trigger (with a payload) and delete.

type jobsPage struct {
	*view
	Jobs  []jobRow
	Next  string
	Flash string
}

type jobRow struct {
	apijson.Job
	Last *apijson.Run // the newest run, nil if none
}

func (c *Console) jobsPage(w http.ResponseWriter, r *http.Request, v *view) error {
	p, err := c.jobsData(r, v)
	if err != nil {
		return err
	}
	v.Title = v.T("jobs.title")
	if r.URL.Query().Get("part") == "list" {
		return c.renderPart(w, "jobs", "list", p)
	}
	return c.render(w, "jobs", p)
}

// jobsData reads one page of jobs and the newest run of each (one indexed
// read per job of the page).
func (c *Console) jobsData(r *http.Request, v *view) (jobsPage, error) {
	q := url.Values{"limit": {"100"}}
	if cur := r.URL.Query().Get("cursor"); cur != "" {
		q.Set("cursor", cur)
	}
	var jobs apijson.List[apijson.Job]
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/jobs", q, nil, &jobs); err != nil {
		return jobsPage{}, err
	}
	p := jobsPage{view: v}
	if jobs.NextCursor != "" {
		p.Next = url.Values{"cursor": {jobs.NextCursor}}.Encode()
	}
	for _, j := range jobs.Items {
		row := jobRow{Job: j}
		var last apijson.List[apijson.Run]
		if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/runs", url.Values{"job": {j.Name}, "limit": {"1"}}, nil, &last); err != nil {
			return jobsPage{}, err
		}
		if len(last.Items) > 0 {
			row.Last = &last.Items[0]
		}
		p.Jobs = append(p.Jobs, row)
	}
	return p, nil
}

// jobAction pauses, resumes, triggers or deletes a job.
func (c *Console) jobAction(w http.ResponseWriter, r *http.Request, v *view) error {
	name, action := r.PathValue("name"), r.PathValue("action")
	path := "/api/v1/jobs/" + url.PathEscape(name)
	var flash string
	switch action {
	case "pause", "resume":
		if err := c.api.call(r.Context(), v.secret(), http.MethodPost, path+"/"+action, nil, struct{}{}, nil); err != nil {
			return err
		}
		flash = v.T("jobs.done."+action, name)
	case "trigger":
		body := apijson.JobTrigger{}
		if p := strings.TrimSpace(r.PostFormValue("payload")); p != "" {
			if !json.Valid([]byte(p)) {
				return &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: "payload must be JSON", Field: "payload"}}
			}
			body.Payload = json.RawMessage(p)
		}
		var run apijson.Run
		if err := c.api.call(r.Context(), v.secret(), http.MethodPost, path+"/trigger", nil, body, &run); err != nil {
			return err
		}
		w.Header().Set("HX-Redirect", "/runs/"+url.PathEscape(run.ID))
		if r.Header.Get("HX-Request") == "" {
			http.Redirect(w, r, "/runs/"+url.PathEscape(run.ID), http.StatusSeeOther)
		}
		return nil
	case "backfill":
		return c.jobBackfill(w, r, v, name)
	case "delete":
		if err := c.api.call(r.Context(), v.secret(), http.MethodDelete, path, nil, nil, nil); err != nil {
			return err
		}
		flash = v.T("jobs.done.delete", name)
	default:
		return &APIError{Status: http.StatusNotFound, ErrorBody: errBody(v.T("error.notfound", r.URL.Path))}
	}
	p, err := c.jobsData(r, v)
	if err != nil {
		return err
	}
	p.Flash = flash
	return c.renderPart(w, "jobs", "list", p)
}
