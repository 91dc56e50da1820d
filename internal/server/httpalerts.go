package server

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/auth"
	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/store"
)

// Alerts: the list of stored alerts, and the groups' default alert rules
// (a job's own rules are its "alerts" field).

// alertSource is what the alert routes need of the engine.
type alertSource interface {
	Alerts(ctx context.Context, p store.AlertListParams) ([]*store.Alert, error)
	GroupAlerts(ctx context.Context, group string) (*store.AlertRules, error)
	GroupAlertsPut(ctx context.Context, group string, r *store.AlertRules) error
}

var _ alertSource = (*engine.Engine)(nil)

func (h *httpAPI) alertRoutes(src alertSource) []route {
	return []route{
		{"GET /api/v1/alerts", auth.PermRead, scopeNone, "", h.listAlerts(src)},
		{"GET /api/v1/groups/{group}/alerts", auth.PermRead, scopeGroup, "", h.getGroupAlerts(src)},
		{"PUT /api/v1/groups/{group}/alerts", auth.PermJobWrite, scopeGroup, "group.alerts.put", h.putGroupAlerts(src)},
		{"DELETE /api/v1/groups/{group}/alerts", auth.PermJobWrite, scopeGroup, "group.alerts.delete", h.deleteGroupAlerts(src)},
	}
}

// listAlerts answers GET /api/v1/alerts?job=&run=&limit=&cursor=, newest
// first; the cursor is the last alert's sequence number. A token limited
// to groups sees its groups' alerts.
func (h *httpAPI) listAlerts(src alertSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p := store.AlertListParams{Job: q.Get("job"), RunID: q.Get("run")}
		limit, err := queryLimit(q.Get("limit"), 100, maxListLimit)
		if err != nil {
			writeError(w, err)
			return
		}
		p.Limit = limit
		if c := q.Get("cursor"); c != "" {
			if p.Before, err = strconv.ParseInt(c, 10, 64); err != nil || p.Before < 1 {
				writeError(w, badRequest("cursor", "cursor %q is not one this list gave", c))
				return
			}
		}
		out, err := scopedAlerts(r.Context(), src, p)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// alertScanPages bounds the pages a group-limited token's listing reads
// to fill one page of its groups' alerts.
const alertScanPages = 10

// scopedAlerts reads one page of the alerts the caller may see: for a
// token limited to groups, the pages that follow until its page is full
// (at most alertScanPages), the cursor then standing after the last alert
// read.
func scopedAlerts(ctx context.Context, src alertSource, p store.AlertListParams) (apijson.List[apijson.Alert], error) {
	out := apijson.List[apijson.Alert]{Items: []apijson.Alert{}}
	for range alertScanPages {
		as, err := src.Alerts(ctx, p)
		if err != nil {
			return out, err
		}
		for _, a := range as {
			if len(out.Items) == p.Limit {
				break
			}
			if checkGroup(ctx, a.Group) == nil {
				out.Items = append(out.Items, apijson.FromAlert(a))
			}
			p.Before = a.Seq
		}
		out.NextCursor = ""
		if len(as) < p.Limit {
			return out, nil // the last page
		}
		out.NextCursor = strconv.FormatInt(p.Before, 10)
		if len(out.Items) == p.Limit {
			return out, nil
		}
	}
	return out, nil
}

// getGroupAlerts answers a group's default rules ({"alerts": null} for
// none).
func (h *httpAPI) getGroupAlerts(src alertSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rules, err := src.GroupAlerts(r.Context(), r.PathValue("group"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, groupAlertsJSON{Group: r.PathValue("group"), Alerts: redactRules(r.Context(), apijson.FromAlertRules(rules))})
	}
}

// redactHooks hides the path and query of a job's alert webhook from a
// caller who may not change jobs: chat webhooks carry their token there.
func redactHooks(ctx context.Context, j jobJSON) jobJSON {
	j.Alerts = redactRules(ctx, j.Alerts)
	return j
}

// redactRules is redactHooks for rules.
func redactRules(ctx context.Context, r *apijson.AlertRules) *apijson.AlertRules {
	if r == nil || r.Webhook == "" || principal(ctx).Authorize(auth.PermJobWrite) == nil {
		return r
	}
	out := *r
	out.Webhook = "…"
	if u, err := url.Parse(r.Webhook); err == nil {
		out.Webhook = u.Scheme + "://" + u.Host + "/…"
	}
	return &out
}

// groupAlertsJSON is a group's default rules.
type groupAlertsJSON struct {
	Group  string              `json:"group"`
	Alerts *apijson.AlertRules `json:"alerts"`
}

// putGroupAlerts sets a group's default rules from the rules object.
func (h *httpAPI) putGroupAlerts(src alertSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := h.readObject(w, r, `{"on": ["failed"], "webhook": …}`, true)
		if err != nil {
			writeError(w, err)
			return
		}
		var in apijson.AlertRules
		if err := decodeStrict(body, &in); err != nil {
			writeError(w, err)
			return
		}
		rules, err := alertRulesFromJSON("alerts", &in)
		if err != nil {
			writeError(w, err)
			return
		}
		group := r.PathValue("group")
		if err := src.GroupAlertsPut(r.Context(), group, rules); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, groupAlertsJSON{Group: group, Alerts: apijson.FromAlertRules(rules)})
	}
}

// deleteGroupAlerts removes a group's default rules (204, also when it
// had none).
func (h *httpAPI) deleteGroupAlerts(src alertSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := src.GroupAlertsPut(r.Context(), r.PathValue("group"), nil); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// alertRulesFromJSON converts rules given in field.
func alertRulesFromJSON(field string, in *apijson.AlertRules) (*store.AlertRules, error) {
	out := &store.AlertRules{On: in.On, SLA: strings.TrimSpace(in.SLA), Webhook: strings.TrimSpace(in.Webhook),
		Format: strings.TrimSpace(in.Format)}
	if in.MaxDuration != nil && strings.TrimSpace(*in.MaxDuration) != "" {
		d, err := parseDuration(*in.MaxDuration)
		if err != nil {
			return nil, badRequest(field+".max_duration", "%q is not a duration (want e.g. \"30m\", \"1h\")", *in.MaxDuration)
		}
		out.MaxDuration = d
	}
	return out, nil
}
