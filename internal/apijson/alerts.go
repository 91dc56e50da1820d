package apijson

import (
	"net/url"

	"github.com/pluto-sched/pluto/internal/store"
)

// AlertRules are a job's alert rules (the job's "alerts") or a group's
// default ones (PUT /api/v1/groups/{group}/alerts). max_duration is a
// duration string ("1h", "1d"); sla is "HH:MM" in the job's time zone.
// An empty object on a job switches its group's default off.
type AlertRules struct {
	On          []string `json:"on"`
	SLA         string   `json:"sla,omitempty"`
	MaxDuration *string  `json:"max_duration,omitempty"`
	Webhook     string   `json:"webhook,omitempty"`
	Format      string   `json:"format,omitempty"`
}

// FromAlertRules is r as the API shows it (nil: null).
func FromAlertRules(r *store.AlertRules) *AlertRules {
	if r == nil {
		return nil
	}
	on := r.On
	if on == nil {
		on = []string{}
	}
	return &AlertRules{On: on, SLA: r.SLA, MaxDuration: OptDuration(r.MaxDuration), Webhook: r.Webhook, Format: r.Format}
}

// Alert is a stored alert as the API shows it (GET /api/v1/alerts). The
// webhook's URL often holds a secret (a chat bot's token): only its host
// is shown.
type Alert struct {
	ID          string        `json:"id"`
	Rule        string        `json:"rule"`
	Job         string        `json:"job"`
	Group       string        `json:"group"`
	RunID       *string       `json:"run_id"`
	LogicalTime *string       `json:"logical_time"`
	Reason      string        `json:"reason"`
	CreatedAt   *string       `json:"created_at"`
	Webhook     *AlertWebhook `json:"webhook"`
}

// AlertWebhook is an alert's delivery: state is pending, delivered or
// failed.
type AlertWebhook struct {
	Host        string  `json:"host"`
	Format      string  `json:"format"`
	State       string  `json:"state"`
	Attempts    int     `json:"attempts"`
	NextAt      *string `json:"next_at"`
	LastError   string  `json:"last_error,omitempty"`
	DeliveredAt *string `json:"delivered_at"`
}

// FromAlert is a as the API shows it.
func FromAlert(a *store.Alert) Alert {
	out := Alert{ID: a.ID, Rule: a.Rule, Job: a.Job, Group: a.Group, RunID: OptString(a.RunID),
		LogicalTime: OptTime(a.LogicalTime), Reason: a.Reason, CreatedAt: OptTime(a.CreatedAt)}
	if a.Webhook != "" {
		host := ""
		if u, err := url.Parse(a.Webhook); err == nil {
			host = u.Host
		}
		format := a.Format
		if format == "" {
			format = store.AlertFormatJSON
		}
		d := a.Delivery
		out.Webhook = &AlertWebhook{Host: host, Format: format, State: string(d.State), Attempts: d.Attempts,
			NextAt: OptTime(d.NextAt), LastError: d.LastError, DeliveredAt: OptTime(d.DeliveredAt)}
	}
	return out
}
