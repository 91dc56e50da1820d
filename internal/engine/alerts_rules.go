package engine

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Alert rules: their checks, and the groups' defaults.

// maxAlertDuration bounds a rule's max_duration.
const maxAlertDuration = 366 * 24 * time.Hour

// validateAlertRules checks rules given in field ("alerts"); nil passes.
// Empty rules pass too: on a job they switch its group's default off.
func (e *Engine) validateAlertRules(field string, r *store.AlertRules) error {
	if r == nil {
		return nil
	}
	fe := func(sub, msg string) error { return &FieldError{Field: field + "." + sub, Message: msg} }
	for i, st := range r.On {
		if !oneOf(st, store.AlertOnStatuses) {
			return fe("on", fmt.Sprintf("unknown status %q (known: %s)", st, strings.Join(store.AlertOnStatuses, ", ")))
		}
		if slices.Contains(r.On[:i], st) {
			return fe("on", fmt.Sprintf("names %q twice", st))
		}
	}
	if r.SLA != "" {
		if _, _, err := parseSLA(r.SLA); err != nil {
			return fe("sla", err.Error())
		}
	}
	if r.MaxDuration < 0 || (r.MaxDuration > 0 && r.MaxDuration < time.Second) || r.MaxDuration > maxAlertDuration {
		return fe("max_duration", fmt.Sprintf("must be between 1s and %s, not %s", formatDuration(maxAlertDuration), r.MaxDuration))
	}
	if !oneOf(r.Format, append([]string{""}, store.AlertFormats...)) {
		return fe("format", fmt.Sprintf("unknown format %q (known: %s)", r.Format, strings.Join(store.AlertFormats, ", ")))
	}
	if r.Format != "" && r.Webhook == "" {
		return fe("format", "needs a webhook")
	}
	if err := e.validateHookURL(field+".webhook", r.Webhook); err != nil {
		return err
	}
	if r.Empty() && r.Webhook != "" {
		return &FieldError{Field: field, Message: "has a webhook but nothing to alert on: set on, sla or max_duration"}
	}
	return nil
}

// parseSLA parses "HH:MM" (00:00 to 23:59).
func parseSLA(s string) (h, m int, err error) {
	digits := func(v string) bool { return len(v) == 2 && v[0] >= '0' && v[0] <= '9' && v[1] >= '0' && v[1] <= '9' }
	hs, ms, ok := strings.Cut(s, ":")
	if ok && digits(hs) && digits(ms) {
		h, _ := strconv.Atoi(hs)
		m, _ := strconv.Atoi(ms)
		if h < 24 && m < 60 {
			return h, m, nil
		}
	}
	return 0, 0, fmt.Errorf("%q is not a time of day (want HH:MM, 00:00 to 23:59)", s)
}

// GroupAlerts returns a group's default alert rules (nil: none).
func (e *Engine) GroupAlerts(ctx context.Context, group string) (*store.AlertRules, error) {
	all, err := e.st.GroupAlertsList(ctx)
	if err != nil {
		return nil, err
	}
	return all[group], nil
}

// GroupAlertsPut sets a group's default alert rules, which its jobs
// without rules of their own (and its one-off runs) follow; nil removes
// them.
func (e *Engine) GroupAlertsPut(ctx context.Context, group string, r *store.AlertRules) error {
	if err := validName("group", group); err != nil {
		return err
	}
	if err := e.validateAlertRules("alerts", r); err != nil {
		return err
	}
	now := e.now()
	return e.do(ctx, &txOp{fn: func(ctx context.Context, tx store.Tx) error {
		if err := tx.GroupAlertsPut(ctx, group, r, now); err != nil {
			return err
		}
		return e.jobsChanged(ctx, tx, "")
	}}, e.alerts.rulesChanged)
}

// formatDuration writes d without trailing zero units ("1h", "1h30m").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
