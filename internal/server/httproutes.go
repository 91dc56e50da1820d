package server

import (
	"context"
	"errors"
	"net/http"
	"path"
	"strings"

	"github.com/pluto-sched/pluto/internal/auth"
	"github.com/pluto-sched/pluto/internal/store"
)

// route is one HTTP route: what it needs and who serves it. The table
// (routes) is the one place a route's permission is declared; a test walks
// it and fails for a route without one, or without a 401 and a 403 test.
type route struct {
	pattern string
	// perm is the permission the caller's token needs; permOpen routes
	// (the health checks) need no token.
	perm auth.Permission
	// scope names the path value that says which group the call acts on,
	// for tokens limited to groups.
	scope scope
	// action names a state-changing call in the audit log ("" for reads).
	action  string
	handler http.HandlerFunc
}

// permOpen marks the routes anyone may call.
const permOpen auth.Permission = 0

// scope is how a route's group is found.
type scope int

const (
	scopeNone   scope = iota // no single group (lists filter by group themselves)
	scopeRun                 // {id} is a run: its group
	scopeJob                 // {name} is a job: its group
	scopeWorker              // {id} is a worker: its group (when connected here)
	scopeGroup               // {group} is the group
)

// routes is the HTTP API. Routes that create runs refuse (503) once the
// server is stopping (intake).
func (h *httpAPI) routes() []route {
	rs := []route{
		{"POST /api/v1/runs", auth.PermSubmit, scopeNone, "run.submit", h.intake(h.submit)},
		{"GET /api/v1/runs", auth.PermRead, scopeNone, "", h.list},
		{"GET /api/v1/runs/{id}", auth.PermRead, scopeRun, "", h.get},
		{"POST /api/v1/runs/{id}/cancel", auth.PermRunWrite, scopeRun, "run.cancel", h.cancel},
		{"POST /api/v1/runs/{id}/retry", auth.PermRunWrite, scopeRun, "run.retry", h.intake(h.retry)},
		{"GET /api/v1/runs/{id}/wait", auth.PermRead, scopeRun, "", h.wait},
		{"GET /api/v1/runs/{id}/logs", auth.PermRead, scopeRun, "", h.logs},
		{"GET /api/v1/runs/{id}/attempts", auth.PermRead, scopeRun, "", h.attempts},
		{"GET /api/v1/workers", auth.PermRead, scopeNone, "", h.workers},
		{"GET /api/v1/workers/{id}", auth.PermRead, scopeWorker, "", h.getWorker},
		{"PUT /api/v1/jobs/{name}", auth.PermJobWrite, scopeJob, "job.put", h.putJob},
		{"GET /api/v1/jobs", auth.PermRead, scopeNone, "", h.listJobs},
		{"GET /api/v1/jobs/{name}", auth.PermRead, scopeJob, "", h.getJob},
		{"DELETE /api/v1/jobs/{name}", auth.PermJobWrite, scopeJob, "job.delete", h.deleteJob},
		{"POST /api/v1/jobs/{name}/pause", auth.PermJobWrite, scopeJob, "job.pause", h.pauseJob},
		{"POST /api/v1/jobs/{name}/resume", auth.PermJobWrite, scopeJob, "job.resume", h.resumeJob},
		{"POST /api/v1/jobs/{name}/trigger", auth.PermSubmit, scopeJob, "job.trigger", h.intake(h.triggerJob)},
		{"GET /api/v1/cluster", auth.PermRead, scopeNone, "", h.cluster},
		{"POST /api/v1/tokens", auth.PermTokenAdmin, scopeNone, "token.create", h.createToken},
		{"GET /api/v1/tokens", auth.PermTokenAdmin, scopeNone, "", h.listTokens},
		{"DELETE /api/v1/tokens/{name}", auth.PermTokenAdmin, scopeNone, "token.revoke", h.revokeToken},
		{"GET /api/v1/audit", auth.PermAudit, scopeNone, "", h.listAudit},
		{"GET /metrics", auth.PermRead, scopeNone, "", h.metrics},
		{"GET /healthz", permOpen, scopeNone, "", h.healthz},
		{"GET /readyz", permOpen, scopeNone, "", h.readyz},
	}
	if src, ok := h.eng.(statsSource); ok {
		rs = append(rs, route{"GET /api/v1/stats", auth.PermRead, scopeNone, "", h.stats(src)})
	}
	if src, ok := h.eng.(backfillSource); ok {
		rs = append(rs, h.backfillRoutes(src)...)
	}
	if src, ok := h.eng.(alertSource); ok {
		rs = append(rs, h.alertRoutes(src)...)
	}
	if src, ok := h.eng.(seriesSource); ok {
		rs = append(rs, route{"GET /api/v1/stats/series", auth.PermRead, scopeNone, "", h.series(src)})
	}
	if ctl, ok := h.eng.(workerControl); ok {
		for _, a := range []string{"drain", "resume", "shutdown", "restart"} {
			rs = append(rs, route{"POST /api/v1/workers/{id}/" + a, auth.PermWorkerAdmin, scopeWorker, "worker." + a, h.workerAction(ctl, a)})
		}
		rs = append(rs,
			route{"POST /api/v1/workers/{id}/command", auth.PermWorkerAdmin, scopeWorker, "worker.command",
				func(w http.ResponseWriter, r *http.Request) { h.workerCommand(ctl, w, r) }},
			route{"POST /api/v1/groups/{group}/command", auth.PermWorkerAdmin, scopeGroup, "group.command",
				func(w http.ResponseWriter, r *http.Request) { h.groupCommand(ctl, w, r) }})
	}
	return rs
}

// authorized wraps a route's handler with its checks: the token, the
// permission, the group, and the audit entry of a state-changing call.
// An unauthenticated call (401) is not audited — it has no actor, and
// anyone could fill the log with them; a refused one (403) is.
func (h *httpAPI) authorized(rt route) http.HandlerFunc {
	if rt.perm == permOpen {
		return rt.handler
	}
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := h.auth.verifyRequest(r)
		if err != nil {
			writeError(w, httpAuthError(err))
			return
		}
		r = r.WithContext(withPrincipal(r.Context(), p))
		err = p.Authorize(rt.perm)
		if err == nil {
			err = h.scopeCheck(r, rt.scope)
		}
		if err != nil {
			if rt.action != "" && errors.Is(err, auth.ErrForbidden) {
				h.audit.record(p, rt.action, auditTarget(r, rt), http.StatusForbidden, authMessage(err))
			}
			writeError(w, authOrErr(err))
			return
		}
		if rt.action == "" {
			rt.handler(w, r)
			return
		}
		tw, ok := w.(*trackingWriter)
		if !ok {
			tw = &trackingWriter{ResponseWriter: w}
		}
		rt.handler(tw, r)
		if selfAudited(rt.action) && tw.status < 300 {
			return // the token operation wrote its own entry, in its transaction
		}
		target := auditTarget(r, rt)
		if loc := tw.Header().Get("Location"); target == "" && loc != "" {
			target = path.Base(loc) // what a create made (a submitted run)
		}
		h.audit.record(p, rt.action, target, tw.status, "")
	}
}

// selfAudited reports an action whose successful calls record their own
// audit entry (the token operations: auth.CreateToken, auth.RevokeToken).
func selfAudited(action string) bool { return strings.HasPrefix(action, "token.") }

// authOrErr maps a forbidden error to 403 and passes others (a store
// error while looking the run up) through.
func authOrErr(err error) error {
	if errors.Is(err, auth.ErrForbidden) {
		return httpAuthError(err)
	}
	return err
}

// auditTarget is what a call acts on: the path value its scope names.
func auditTarget(r *http.Request, rt route) string {
	for _, k := range []string{"id", "name", "group"} {
		if v := r.PathValue(k); v != "" {
			return v
		}
	}
	return ""
}

// scopeCheck checks the group a call acts on, for a token limited to
// groups. Lists and submits check their groups themselves.
func (h *httpAPI) scopeCheck(r *http.Request, sc scope) error {
	ctx := r.Context()
	if len(principal(ctx).Groups) == 0 {
		return nil
	}
	switch sc {
	case scopeRun:
		return runGroupCheck(ctx, h.eng, r.PathValue("id"))
	case scopeJob:
		return h.jobGroupCheck(ctx, r.PathValue("name"))
	case scopeWorker:
		for _, wi := range h.eng.Workers() {
			if wi.ID == r.PathValue("id") {
				return checkGroup(ctx, wi.Group)
			}
		}
		// Not connected here: the server it is connected to checks (the
		// token goes with the forwarded call).
		return nil
	case scopeGroup:
		return checkGroup(ctx, r.PathValue("group"))
	}
	return nil
}

// jobGroupCheck: a job that does not exist yet passes (PUT checks the
// new definition's group; the others answer 404).
func (h *httpAPI) jobGroupCheck(ctx context.Context, name string) error {
	j, err := h.eng.JobGet(ctx, name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && j == nil) {
		return nil
	}
	if err != nil {
		return err
	}
	return checkGroup(ctx, j.Group)
}

// metrics serves the Prometheus scrape (a viewer token, or any that may
// read, is enough: labels are groups and types, never ids or payloads).
func (h *httpAPI) metrics(w http.ResponseWriter, r *http.Request) {
	if h.opts.Metrics == nil {
		writeError(w, notFound("no metrics on this server"))
		return
	}
	h.opts.Metrics.ServeHTTP(w, r)
}
