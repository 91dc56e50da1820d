package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/cron"
)

// The job page and form: a job's spec, its slot timeline, trigger with a
// payload, and the create/edit form whose cron expression is explained
// and previewed (next fire times) as it is typed, by the server's own
// parser.

type jobPage struct {
	*view
	Job      apijson.Job
	New      bool
	Payload  string // the payload as the form shows it
	Preview  cronPreviewData
	Timeline timeline
	Err      *APIError
}

func (c *Console) jobForm(w http.ResponseWriter, r *http.Request, v *view) error {
	p := jobPage{view: v, New: true, Job: apijson.Job{Group: "default", Misfire: "skip", Overlap: "allow"}, Payload: "null"}
	v.Title = v.T("jobs.new")
	return c.render(w, "job", p)
}

func (c *Console) jobPage(w http.ResponseWriter, r *http.Request, v *view) error {
	name := r.PathValue("name")
	p := jobPage{view: v}
	if err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/jobs/"+url.PathEscape(name), nil, nil, &p.Job); err != nil {
		return err
	}
	p.Payload = prettyJSON(p.Job.Payload)
	p.Preview = previewCron(v, p.Job.Schedule, p.Job.Timezone, time.Now())
	tl, err := c.jobTimeline(r, v, p.Job, time.Now())
	if err != nil {
		return err
	}
	p.Timeline = tl
	v.Title = v.T("jobs.job", name)
	return c.render(w, "job", p)
}

// jobSave creates or replaces a job from the form (PUT /api/v1/jobs/NAME);
// a refused field is shown next to the form.
func (c *Console) jobSave(w http.ResponseWriter, r *http.Request, v *view) error {
	r.Body = http.MaxBytesReader(w, r.Body, 2<<20)
	j, perr := jobFromForm(r)
	p := jobPage{view: v, Job: j, New: r.PostFormValue("new") == "1", Payload: r.PostFormValue("payload")}
	if perr == nil && j.Name == "" {
		perr = &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: "name is required", Field: "name"}}
	}
	if perr == nil {
		err := c.api.call(r.Context(), v.secret(), http.MethodPut, "/api/v1/jobs/"+url.PathEscape(j.Name), nil, j, nil)
		if err == nil {
			http.Redirect(w, r, "/jobs/"+url.PathEscape(j.Name), http.StatusSeeOther)
			return nil
		}
		ae, ok := err.(*APIError)
		if !ok || ae.Status >= 500 || ae.Status == http.StatusForbidden {
			return err
		}
		perr = ae
	}
	p.Err = perr
	p.Preview = previewCron(v, j.Schedule, j.Timezone, time.Now())
	v.Title = v.T("jobs.new")
	w.WriteHeader(http.StatusBadRequest)
	return c.render(w, "job", p)
}

// jobFromForm reads the job fields of the form.
func jobFromForm(r *http.Request) (apijson.Job, *APIError) {
	f := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	j := apijson.Job{Name: f("name"), Type: f("type"), Group: f("group"), Schedule: f("schedule"), Timezone: f("timezone"),
		Misfire: f("misfire"), Overlap: f("overlap"), Paused: r.PostFormValue("paused") == "on"}
	bad := func(field, msg string) *APIError {
		return &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: msg, Field: field}}
	}
	if p := f("payload"); p != "" {
		if !json.Valid([]byte(p)) {
			return j, bad("payload", "payload must be JSON")
		}
		j.Payload = json.RawMessage(p)
	}
	for _, n := range []struct {
		field string
		dst   *int
	}{{"priority", &j.Priority}, {"retries", &j.Retries}} {
		if s := f(n.field); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil {
				return j, bad(n.field, n.field+" must be a whole number")
			}
			*n.dst = v
		}
	}
	for _, o := range []struct {
		field string
		dst   **string
	}{{"timeout", &j.Timeout}, {"routing", &j.Routing}, {"callback_url", &j.CallbackURL}} {
		if s := f(o.field); s != "" {
			*o.dst = &s
		}
	}
	return j, nil
}

// cronPreviewData is the explanation and next fire times of a schedule.
type cronPreviewData struct {
	Schedule string
	Fields   []cronField
	Next     []string
	Zone     string
	Err      string
}

func (c *Console) cronPreview(w http.ResponseWriter, r *http.Request, v *view) error {
	q := r.URL.Query()
	p := struct {
		*view
		Preview cronPreviewData
	}{v, previewCron(v, q.Get("schedule"), q.Get("timezone"), time.Now())}
	return c.renderPart(w, "job", "preview", p)
}

// previewCron parses a schedule with the scheduler's parser and lists its
// next ten fire times in its zone.
func previewCron(v *view, expr, tz string, now time.Time) cronPreviewData {
	p := cronPreviewData{Schedule: strings.TrimSpace(expr), Zone: "UTC"}
	if p.Schedule == "" {
		return p
	}
	loc := time.UTC
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			p.Err = v.T("cron.badzone", tz)
			return p
		}
		loc, p.Zone = l, tz
	}
	s, err := cron.ParseIn(p.Schedule, loc)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	p.Fields = explainCron(v, p.Schedule)
	t := now
	for range 10 {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		p.Next = append(p.Next, t.In(loc).Format("2006-01-02 15:04:05 Mon MST"))
	}
	return p
}
