package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/cron"
	"github.com/pluto-sched/pluto/internal/jobfile"
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
	YAML     string // the job as a job file (the YAML editor)
	YAMLOpen bool   // the YAML editor was used: show it open
	Preview  cronPreviewData
	Timeline timeline
	Deps     depView         // upstream and downstream jobs (workflow.go)
	Alerts   []apijson.Alert // the job's latest alerts
	Err      *APIError
}

func (c *Console) jobForm(w http.ResponseWriter, r *http.Request, v *view) error {
	p := jobPage{view: v, New: true, Job: apijson.Job{Group: "default", Misfire: "skip", Overlap: "allow"}, Payload: "null"}
	p.YAML = jobYAML(p.Job)
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
	p.YAML = jobYAML(p.Job)
	p.Preview = previewCron(v, p.Job.Schedule, p.Job.Timezone, time.Now())
	tl, err := c.jobTimeline(r, v, p.Job, time.Now())
	if err != nil {
		return err
	}
	p.Timeline = tl
	if p.Deps, err = c.jobDeps(r, v, p.Job, r.URL.Query().Get("at")); err != nil {
		return err
	}
	if p.Alerts, err = c.alerts(r, v, name, 10); err != nil {
		return err
	}
	v.Title = v.T("jobs.job", name)
	return c.render(w, "job", p)
}

// jobSave creates or replaces a job from the form's fields, or from the
// YAML editor (a job file, read as pluto job apply reads one) (PUT
// /api/v1/jobs/NAME); a refused field is shown next to the form. Editing
// with the fields keeps what the form does not show (dependencies,
// retention, shards…) as the job has it.
func (c *Console) jobSave(w http.ResponseWriter, r *http.Request, v *view) error {
	r.Body = http.MaxBytesReader(w, r.Body, 2<<20)
	p := jobPage{view: v, New: r.PostFormValue("new") == "1", Payload: r.PostFormValue("payload")}
	var (
		body any
		perr *APIError
	)
	if y, ok := r.PostForm["yaml"]; ok {
		p.YAML, p.YAMLOpen = y[0], true
		p.Job, body, perr = jobFromYAML(y[0])
		p.Payload = prettyJSON(p.Job.Payload)
	} else {
		p.Job, perr = jobFromForm(r)
		if perr == nil && !p.New {
			perr = c.keepUnshown(r, v, &p.Job)
		}
		body = p.Job
		p.YAML = jobYAML(p.Job)
	}
	if perr == nil && p.Job.Name == "" {
		perr = &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: "name is required", Field: "name"}}
	}
	if perr == nil {
		err := c.api.call(r.Context(), v.secret(), http.MethodPut, "/api/v1/jobs/"+url.PathEscape(p.Job.Name), nil, body, nil)
		if err == nil {
			http.Redirect(w, r, "/jobs/"+url.PathEscape(p.Job.Name), http.StatusSeeOther)
			return nil
		}
		ae, ok := err.(*APIError)
		if !ok || ae.Status >= 500 || ae.Status == http.StatusForbidden {
			return err
		}
		perr = ae
	}
	p.Err = perr
	p.Preview = previewCron(v, p.Job.Schedule, p.Job.Timezone, time.Now())
	v.Title = v.T("jobs.new")
	w.WriteHeader(http.StatusBadRequest)
	return c.render(w, "job", p)
}

// keepUnshown copies into j the fields of the stored job that the form
// does not show, so that saving the form changes only what it shows.
func (c *Console) keepUnshown(r *http.Request, v *view, j *apijson.Job) *APIError {
	var cur apijson.Job
	err := c.api.call(r.Context(), v.secret(), http.MethodGet, "/api/v1/jobs/"+url.PathEscape(j.Name), nil, nil, &cur)
	if ae, ok := err.(*APIError); ok && ae.Status == http.StatusNotFound {
		return nil // deleted meanwhile: the form creates it again
	}
	if err != nil {
		return &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: err.Error(), Field: "name"}}
	}
	j.DependsOn, j.TriggerRule, j.MisfireMax, j.Shards, j.Keep, j.KeepLast = cur.DependsOn, cur.TriggerRule, cur.MisfireMax, cur.Shards, cur.Keep, cur.KeepLast
	j.Alerts = cur.Alerts
	return nil
}

// jobFromYAML reads the YAML editor: exactly one job, in the job file
// format. body is the job's JSON as written (sent as it is, so the
// server judges every field the file sets).
func jobFromYAML(text string) (apijson.Job, any, *APIError) {
	bad := func(msg string) *APIError {
		return &APIError{Status: http.StatusBadRequest, ErrorBody: apijson.ErrorBody{Message: msg, Field: "yaml"}}
	}
	docs, err := jobfile.Parse([]byte(text), false)
	if err != nil {
		return apijson.Job{}, nil, bad(err.Error())
	}
	if len(docs) != 1 {
		return docs[0].Job, nil, bad(fmt.Sprintf("the editor takes one job, it holds %d (pluto job apply -f takes several)", len(docs)))
	}
	return docs[0].Job, docs[0].Raw, nil
}

// jobYAML is j as the YAML editor shows it ("" if it cannot be written,
// which only a bug causes).
func jobYAML(j apijson.Job) string {
	b, err := jobfile.YAML(j)
	if err != nil {
		return ""
	}
	return string(b)
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

// AlertRules describes a job's alert rules in a sentence.
func (p jobPage) AlertRules(r *apijson.AlertRules) string {
	var parts []string
	if len(r.On) > 0 {
		on := make([]string, len(r.On))
		for i, s := range r.On {
			on[i] = p.T("alerts.rule." + s)
		}
		parts = append(parts, p.T("alerts.rules_on", strings.Join(on, ", ")))
	}
	if r.SLA != "" {
		zone := p.Job.Timezone
		if zone == "" {
			zone = "UTC"
		}
		parts = append(parts, p.T("alerts.rules_sla", r.SLA, zone))
	}
	if r.MaxDuration != nil {
		parts = append(parts, p.T("alerts.rules_max", *r.MaxDuration))
	}
	if len(parts) == 0 {
		return p.T("alerts.rules_off")
	}
	if r.Webhook != "" {
		host := r.Webhook
		if u, err := url.Parse(r.Webhook); err == nil {
			host = u.Host
		}
		format := r.Format
		if format == "" {
			format = "json"
		}
		parts = append(parts, p.T("alerts.rules_hook", host, format))
	}
	return strings.Join(parts, "; ")
}
