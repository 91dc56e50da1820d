package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Alerts (the engine's alerts.go): a job, or a group by default, may carry
// alert rules — run statuses that alert when a run ends in them, an SLA
// (a run for logical time T must have succeeded by a time of day) and a
// longest duration. An alert that fires is stored once per subject and
// rule: Key is unique, and AlertInsert of a key that exists does nothing,
// so the servers that may notice the same thing (the one that ended the
// run, the leader's sweep after a crash) store one alert between them.
//
// An alert with a webhook is delivered like a run's callback: its
// Delivery is pending from the insert (due at CreatedAt), claimed with
// AlertListDue, which counts the attempt and sets a lease, and its outcome
// recorded with AlertRecord, fenced by that attempt and lease. The POST
// happens between the two, outside any transaction.

// Alert rule names: the statuses a run may end in (On) and the two
// checks.
const (
	AlertFailed      = "failed"
	AlertTimedOut    = "timed_out"
	AlertSkipped     = "skipped"
	AlertSLA         = "sla"
	AlertMaxDuration = "max_duration"
)

// AlertOnStatuses are the run statuses AlertRules.On may name.
var AlertOnStatuses = []string{AlertFailed, AlertTimedOut, AlertSkipped}

// Alert body formats of a webhook.
const (
	AlertFormatJSON     = "json"
	AlertFormatSlack    = "slack"
	AlertFormatDingTalk = "dingtalk"
	AlertFormatFeishu   = "feishu"
)

// AlertFormats are the known formats ("" is json).
var AlertFormats = []string{AlertFormatJSON, AlertFormatSlack, AlertFormatDingTalk, AlertFormatFeishu}

// AlertRules are a job's (or a group's default) alert rules. The store
// keeps them as given; the engine checks them.
type AlertRules struct {
	// On are the terminal statuses that alert (AlertOnStatuses).
	On []string `json:"on,omitempty"`
	// SLA is "HH:MM": a run for logical time T must have succeeded by the
	// first such time of day after T, in the job's time zone.
	SLA string `json:"sla,omitempty"`
	// MaxDuration alerts once an attempt has run longer (0: no check).
	MaxDuration time.Duration `json:"max_duration,omitempty"`
	// Webhook receives each alert ("" for none: the alert is only stored).
	Webhook string `json:"webhook,omitempty"`
	// Format is the webhook body's (AlertFormats; "" is json).
	Format string `json:"format,omitempty"`
}

// Empty reports rules that alert on nothing.
func (r *AlertRules) Empty() bool {
	return r == nil || (len(r.On) == 0 && r.SLA == "" && r.MaxDuration == 0)
}

// Alert is a stored alert.
type Alert struct {
	// Seq orders alerts by insertion; the store sets it.
	Seq int64
	ID  string
	// Key is unique: the subject and the rule ("run:ID:RULE" for a run's,
	// "slot:JOB@UNIXMICRO:sla" for a slot's).
	Key         string
	Job         string // "" for a run without a job
	Group       string
	RunID       string    // "" when the subject is a slot without a run
	LogicalTime time.Time // zero: none
	Rule        string    // an Alert* rule name
	Reason      string
	Webhook     string
	Format      string
	CreatedAt   time.Time
	// Delivery is the webhook delivery's state: pending from the insert
	// when there is a webhook (NextAt = CreatedAt), CallbackNone without.
	Delivery Callback
}

// AlertListParams selects alerts, newest first. Job and RunID filter when
// set; Before (a Seq) pages: only alerts with a smaller Seq. Limit is 1 to
// 1000.
type AlertListParams struct {
	Job    string
	RunID  string
	Before int64
	Limit  int
}

// AlertStore is the read side of alerts and group rules; part of Store.
type AlertStore interface {
	// AlertList lists alerts, newest first.
	AlertList(ctx context.Context, p AlertListParams) ([]*Alert, error)
	// AlertNextAt is the earliest NextAt of a pending delivery (a claimed
	// one's lease included), or the zero time when none is pending.
	AlertNextAt(ctx context.Context) (time.Time, error)
	// GroupAlertsList returns the groups' default alert rules, by group.
	GroupAlertsList(ctx context.Context) (map[string]*AlertRules, error)
}

// AlertTx is the write side; part of Tx.
type AlertTx interface {
	// AlertInsert stores the alerts whose Key is new (Seq set by the
	// store, every other field as given) and reports, for each, whether it
	// was stored; an alert whose Key exists is left out, not an error, and
	// so is a later one of the batch with the Key of an earlier one. The
	// Seq of each stored alert is set in the given *Alert too; the others
	// are left alone. An alert CheckAlert refuses fails the call.
	AlertInsert(ctx context.Context, as []*Alert) ([]bool, error)
	// AlertListDue claims up to p.Limit pending deliveries whose NextAt <=
	// p.Now, earliest first: each one's Delivery.Attempts+1 and NextAt =
	// p.LeaseUntil. It returns them with the claim applied, in insertion
	// (Seq) order. On a store shared by several servers alerts another
	// transaction is claiming are skipped, not waited for.
	AlertListDue(ctx context.Context, p CallbackListDueParams) ([]*Alert, error)
	// AlertRecord records delivery outcomes (ID is the alert's), each only
	// while its delivery is still pending at the claim's Attempt and
	// Lease; it returns which were applied.
	AlertRecord(ctx context.Context, p []CallbackRecordParams) ([]bool, error)
	// AlertDeleteBefore deletes up to limit (1 to 10000) of the oldest
	// alerts created before before, except those whose delivery is
	// pending, and reports how many it deleted (retention).
	AlertDeleteBefore(ctx context.Context, before time.Time, limit int) (int, error)
	// GroupAlertsPut sets a group's default rules; nil removes them.
	GroupAlertsPut(ctx context.Context, group string, r *AlertRules, now time.Time) error
}

// CheckAlert reports what makes a an alert AlertInsert refuses: no ID,
// Key, Rule or CreatedAt, an unknown delivery state, or a Delivery.NextAt
// that is not set exactly when the delivery is pending. The stores keep
// NextAt exactly while a delivery is pending: that is what their index of
// due deliveries holds.
func CheckAlert(a *Alert) error {
	switch {
	case a == nil:
		return errors.New("nil alert")
	case a.ID == "" || a.Key == "" || a.Rule == "":
		return fmt.Errorf("alert %q (key %q): ID, Key and Rule are required", a.ID, a.Key)
	case a.CreatedAt.IsZero():
		return fmt.Errorf("alert %q: no CreatedAt", a.ID)
	}
	switch d := a.Delivery; d.State {
	case CallbackPending:
		if d.NextAt.IsZero() {
			return fmt.Errorf("alert %q: a pending delivery needs NextAt", a.ID)
		}
	case CallbackNone, CallbackDelivered, CallbackFailed:
		if !d.NextAt.IsZero() {
			return fmt.Errorf("alert %q: NextAt set on a delivery in state %q (only pending has one)", a.ID, d.State)
		}
	default:
		return fmt.Errorf("alert %q: unknown delivery state %q", a.ID, d.State)
	}
	return nil
}
