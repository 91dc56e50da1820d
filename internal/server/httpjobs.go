package server

// The jobs endpoints of the HTTP JSON API (docs/api.md, docs/scheduling.md):
//
//	PUT    /api/v1/jobs/{name}          create (201) or replace (200) a job
//	GET    /api/v1/jobs                 every job, by name
//	GET    /api/v1/jobs/{name}          one job
//	DELETE /api/v1/jobs/{name}          delete a job (204); its runs stay
//	POST   /api/v1/jobs/{name}/pause    stop firing slots (answers the job)
//	POST   /api/v1/jobs/{name}/resume   fire again from the next slot after now
//	POST   /api/v1/jobs/{name}/trigger  run it now ({"payload"} optional; 201 with the run)

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/store"
)

type (
	jobJSON        = apijson.Job
	jobTriggerJSON = apijson.JobTrigger
)

func (h *httpAPI) putJob(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, err := h.readObject(w, r, "a JSON object describing a job", true)
	if err != nil {
		writeError(w, err)
		return
	}
	var in jobJSON
	if err := decodeStrict(body, &in); err != nil {
		writeError(w, err)
		return
	}
	j, err := h.jobFromJSON(name, in)
	if err != nil {
		writeError(w, err)
		return
	}
	group := j.Group
	if group == "" {
		group = "default" // the engine's group for a job that names none
	}
	if err := checkGroup(r.Context(), group); err != nil {
		writeError(w, httpAuthError(err))
		return
	}
	saved, created, err := h.eng.JobPut(r.Context(), j)
	if err != nil {
		writeError(w, err)
		return
	}
	if saved == nil {
		writeError(w, errors.New("engine saved a job but returned none"))
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/api/v1/jobs/"+saved.Name)
	}
	writeJSON(w, status, toJobJSON(saved))
}

// jobFromJSON turns a decoded PUT body into the definition for the engine,
// which checks the rest (name, policies, schedule, time zone, limits).
// The name in the URL is the job's; a different one in the body is a 400.
func (h *httpAPI) jobFromJSON(name string, in jobJSON) (store.Job, error) {
	if in.Name != "" && in.Name != name {
		return store.Job{}, badRequest("name", "name %q in the body differs from %q in the URL; rename a job by deleting it and creating the new one", in.Name, name)
	}
	j := store.Job{
		Name:       name,
		Type:       strings.TrimSpace(in.Type),
		Group:      strings.TrimSpace(in.Group),
		Schedule:   strings.TrimSpace(in.Schedule),
		Timezone:   strings.TrimSpace(in.Timezone),
		Misfire:    strings.TrimSpace(in.Misfire),
		MisfireMax: in.MisfireMax,
		Overlap:    strings.TrimSpace(in.Overlap),
		Priority:   in.Priority,
		Retries:    in.Retries,
		Shards:     in.Shards,
		MinSuccess: in.MinSuccess,
		Paused:     in.Paused,
		KeepLast:   in.KeepLast,
	}
	j.TriggerRule = strings.TrimSpace(in.TriggerRule)
	if in.Merge != nil {
		j.Merge = strings.TrimSpace(*in.Merge)
	}
	for _, d := range in.DependsOn {
		dep := store.Dependency{Job: strings.TrimSpace(d.Job)}
		if w := strings.TrimSpace(d.Window); w != "" {
			var err error
			if dep.Window, err = parseDuration(w); err != nil || dep.Window <= 0 {
				return j, badRequest("depends_on", "the window of %q, %q, is not a positive duration (want e.g. \"1d\", \"6h\")", dep.Job, d.Window)
			}
		}
		if strings.Contains(dep.Job, "@") {
			return j, badRequest("depends_on", "%q is not a job name", dep.Job)
		}
		j.DependsOn = append(j.DependsOn, dep.String())
	}
	if in.DependsOn != nil && j.DependsOn == nil {
		j.DependsOn = []string{}
	}
	if in.Routing != nil {
		j.Routing = strings.TrimSpace(*in.Routing)
	}
	if in.Alerts != nil {
		rules, err := alertRulesFromJSON("alerts", in.Alerts)
		if err != nil {
			return j, err
		}
		j.Alerts = rules
	}
	if in.CallbackURL != nil {
		j.CallbackURL = *in.CallbackURL
	}
	payload, err := h.compactPayload("payload", in.Payload)
	if err != nil {
		return j, err
	}
	j.Payload = payload
	if in.Timeout != nil && strings.TrimSpace(*in.Timeout) != "" {
		d, err := parseDuration(*in.Timeout)
		if err != nil {
			return j, badRequest("timeout", "timeout %q is not a duration (want e.g. \"30m\", \"2h\", \"1d\"): %v", *in.Timeout, err)
		}
		if d < 0 {
			return j, badRequest("timeout", "timeout must not be negative, got %q", *in.Timeout)
		}
		j.Timeout = d
	}
	if in.Keep != nil && strings.TrimSpace(*in.Keep) != "" {
		d, err := parseDuration(*in.Keep)
		if err != nil {
			return j, badRequest("keep", "keep %q is not a duration (want e.g. \"12h\", \"30d\"): %v", *in.Keep, err)
		}
		if d < 0 {
			return j, badRequest("keep", "keep must not be negative, got %q", *in.Keep)
		}
		j.Keep = d
	}
	if in.KeepLast < 0 {
		return j, badRequest("keep_last", "keep_last must not be negative, got %d", in.KeepLast)
	}
	return j, nil
}

func (h *httpAPI) listJobs(w http.ResponseWriter, r *http.Request) {
	jobs, err := h.eng.JobList(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	out := listJSON[jobJSON]{Items: make([]jobJSON, 0, len(jobs))}
	pr := principal(r.Context())
	for _, j := range jobs {
		if j != nil && pr.AllowsGroup(j.Group) {
			out.Items = append(out.Items, redactHooks(r.Context(), toJobJSON(j)))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *httpAPI) getJob(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	j, err := h.eng.JobGet(r.Context(), name)
	if err != nil {
		writeError(w, jobErr(name, err))
		return
	}
	writeJSON(w, http.StatusOK, redactHooks(r.Context(), toJobJSON(j)))
}

func (h *httpAPI) deleteJob(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := h.eng.JobDelete(r.Context(), name); err != nil {
		writeError(w, jobErr(name, err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (h *httpAPI) pauseJob(w http.ResponseWriter, r *http.Request)  { h.setPaused(w, r, true) }
func (h *httpAPI) resumeJob(w http.ResponseWriter, r *http.Request) { h.setPaused(w, r, false) }

func (h *httpAPI) setPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	name := r.PathValue("name")
	j, err := h.eng.JobPause(r.Context(), name, paused)
	if err != nil {
		writeError(w, jobErr(name, err))
		return
	}
	writeJSON(w, http.StatusOK, redactHooks(r.Context(), toJobJSON(j)))
}

func (h *httpAPI) triggerJob(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, err := h.readObject(w, r, `{"payload": …} or nothing`, false)
	if err != nil {
		writeError(w, err)
		return
	}
	var (
		payload json.RawMessage
		in      jobTriggerJSON
		at      time.Time
	)
	if len(body) > 0 {
		if err := decodeStrict(body, &in); err != nil {
			writeError(w, err)
			return
		}
		if payload, err = h.compactPayload("payload", in.Payload); err != nil {
			writeError(w, err)
			return
		}
		if in.LogicalTime != "" {
			if at, err = time.Parse(time.RFC3339Nano, in.LogicalTime); err != nil {
				writeError(w, badRequest("logical_time", "logical_time %q is not an RFC 3339 time (e.g. \"2026-11-21T00:00:00Z\")", in.LogicalTime))
				return
			}
		} else if in.Cascade {
			writeError(w, badRequest("cascade", "cascade needs a logical_time: a run with none triggers nothing downstream"))
			return
		}
	}
	created := true
	var run *store.Run
	if at.IsZero() {
		run, err = h.eng.JobTrigger(r.Context(), name, payload)
	} else {
		run, created, err = h.eng.JobTriggerSlot(r.Context(), name, payload, at, in.Cascade)
	}
	if err == nil && run == nil {
		err = errors.New("engine triggered a run but returned none")
	}
	if err != nil {
		writeError(w, jobErr(name, err))
		return
	}
	status := http.StatusOK // the slot had its run already
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", "/api/v1/runs/"+run.ID)
	writeJSON(w, status, toRunJSON(run))
}

// readObject reads a request body that must be a JSON object (what says
// what it should hold). An empty body is an error when required and
// otherwise answered as nil.
func (h *httpAPI) readObject(w http.ResponseWriter, r *http.Request, what string, required bool) ([]byte, error) {
	body, err := readBody(w, r, h.maxBody())
	if err != nil {
		return nil, err
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		if required {
			return nil, badJSON("request body is empty; want %s", what)
		}
		return nil, nil
	}
	if err := checkJSON(body); err != nil {
		return nil, err
	}
	if trimmed[0] != '{' {
		return nil, badJSON("request body must be a JSON object (%s), got %s", what, apijson.KindOf(body))
	}
	return body, nil
}

// compactPayload compacts a payload and checks its size; null and
// nothing are no payload.
func (h *httpAPI) compactPayload(field string, raw json.RawMessage) (json.RawMessage, error) {
	p := bytes.TrimSpace(raw)
	if len(p) == 0 || bytes.Equal(p, []byte("null")) {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, p); err != nil { // cannot happen: the body was valid
		return nil, badRequest(field, "%s is not valid JSON: %v", field, err)
	}
	if limit := h.maxPayload(); int64(buf.Len()) > limit {
		return nil, tooLarge(field, "%s is %d bytes; the limit is %d", field, buf.Len(), limit)
	}
	return json.RawMessage(buf.Bytes()), nil
}

// jobErr names the job in a not-found error.
func jobErr(name string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound("job %s not found", name)
	}
	return err
}

func toJobJSON(j *store.Job) jobJSON {
	deps := make([]apijson.Dependency, 0, len(j.DependsOn))
	for _, s := range j.DependsOn {
		d, err := store.ParseDependency(s)
		if err != nil {
			deps = append(deps, apijson.Dependency{Job: s})
			continue
		}
		w := ""
		if d.Window > 0 {
			w = *optKeep(d.Window)
		}
		deps = append(deps, apijson.Dependency{Job: d.Job, Window: w})
	}
	return jobJSON{
		Name:        j.Name,
		Type:        j.Type,
		Group:       j.Group,
		Payload:     rawJSON(j.Payload),
		Schedule:    j.Schedule,
		Timezone:    j.Timezone,
		DependsOn:   deps,
		TriggerRule: j.TriggerRule,
		Misfire:     j.Misfire,
		MisfireMax:  j.MisfireMax,
		Overlap:     j.Overlap,
		Routing:     optString(j.Routing),
		Priority:    j.Priority,
		Timeout:     optDuration(j.Timeout),
		Retries:     j.Retries,
		Shards:      j.Shards,
		MinSuccess:  j.MinSuccess,
		Merge:       optString(j.Merge),
		Paused:      j.Paused,
		CallbackURL: optString(j.CallbackURL),
		Keep:        optKeep(j.Keep),
		KeepLast:    j.KeepLast,
		Alerts:      apijson.FromAlertRules(j.Alerts),
		NextFire:    optTime(j.NextFire),
		Version:     j.Version,
		CreatedAt:   optTime(j.CreatedAt),
		UpdatedAt:   optTime(j.UpdatedAt),
	}
}

// optKeep shows a job's keep in whole days when it is some ("30d", as
// people write it), else as a duration (null: none).
func optKeep(d time.Duration) *string {
	if d > 0 && d%(24*time.Hour) == 0 {
		s := fmt.Sprintf("%dd", d/(24*time.Hour))
		return &s
	}
	return optDuration(d)
}
