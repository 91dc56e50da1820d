package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Alerts (store/alerts.go; migration 00017_alerts). Alerts are few and
// written rarely next to runs; their statements favour clarity. An alert's
// webhook delivery is kept like a run's callback (callbacks.go), in the
// alert's row: next_at is set exactly while it is pending, so the partial
// index alerts_due holds the pending deliveries in due order.

// alertCols is the column list every alert query selects or returns, in
// the order decodeAlert reads it.
const alertCols = `seq, id, key, job, grp, run_id, logical_time, rule, reason, webhook, format, created_at,
	state, attempts, next_at, last_error, delivered_at`

const numAlertCols = 17

func init() {
	// The oldest alerts first (seq follows created_at): a walk of the
	// rowid from its start that stops at the limit. Arguments: before,
	// limit.
	wSQL[wAlertDelete] = `DELETE FROM alerts WHERE seq IN (
			SELECT seq FROM alerts WHERE created_at < ?1 AND state <> 'pending' ORDER BY seq LIMIT ?2)`
	// A key already stored inserts nothing; a taken id is an error (the
	// caller chose it).
	wSQL[wAlertInsert] = `INSERT INTO alerts (id, key, job, grp, run_id, logical_time, rule, reason, webhook,
			format, created_at, state, attempts, next_at, last_error, delivered_at)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (key) DO NOTHING`
	// The first due deliveries (alerts_due): one more attempt, and next_at
	// moved to the lease. Arguments: now, lease, limit.
	wSQL[wAlertListDue] = `UPDATE alerts SET attempts = attempts + 1, next_at = ?2
		WHERE seq IN (
			SELECT a.seq FROM alerts AS a INDEXED BY alerts_due
			WHERE a.next_at IS NOT NULL AND a.next_at <= ?1
			ORDER BY a.next_at, a.seq
			LIMIT ?3)
			AND state = 'pending'
		RETURNING ` + alertCols
	// One outcome, fenced by the attempt and the lease of its claim.
	// Arguments: state, next_at (NULL unless pending), error, delivered_at
	// (NULL: keep), id, attempt, lease.
	wSQL[wAlertRecord] = `UPDATE alerts SET state = ?1, next_at = ?2, last_error = ?3,
			delivered_at = coalesce(?4, delivered_at)
		WHERE id = ?5 AND state = 'pending' AND attempts = ?6 AND next_at = ?7`
	wSQL[wGroupAlertsPut] = `INSERT INTO group_alerts (grp, rules, updated_at) VALUES (?1, ?2, ?3)
		ON CONFLICT (grp) DO UPDATE SET rules = ?2, updated_at = ?3`
	wSQL[wGroupAlertsDelete] = `DELETE FROM group_alerts WHERE grp = ?`
	rSQL[rAlertNextAt] = `SELECT min(next_at) FROM alerts WHERE next_at IS NOT NULL`
	rSQL[rGroupAlerts] = `SELECT grp, rules FROM group_alerts ORDER BY grp`
}

// decodeAlert builds an alert from one row of alertCols.
func decodeAlert[V any](vs []V) (*store.Alert, error) {
	v := func(i int) any { return vs[i] }
	return &store.Alert{
		Seq: asInt(v(0)), ID: asString(v(1)), Key: asString(v(2)), Job: asString(v(3)), Group: asString(v(4)),
		RunID: asString(v(5)), LogicalTime: asTime(v(6)), Rule: asString(v(7)), Reason: asString(v(8)),
		Webhook: asString(v(9)), Format: asString(v(10)), CreatedAt: asTime(v(11)),
		Delivery: store.Callback{
			State:       store.CallbackState(asString(v(12))),
			Attempts:    int(asInt(v(13))),
			NextAt:      asTime(v(14)),
			LastError:   asString(v(15)),
			DeliveredAt: asTime(v(16)),
		},
	}, nil
}

// alertRulesValue binds rules as their JSON; nil is NULL. Empty rules are
// "{}", so they read back empty, not nil.
func alertRulesValue(r *store.AlertRules) (driver.Value, error) {
	if r == nil {
		return nil, nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// decodeAlertRules reads what alertRulesValue bound.
func decodeAlertRules(v any) (*store.AlertRules, error) {
	if v == nil {
		return nil, nil
	}
	r := new(store.AlertRules)
	if err := json.Unmarshal([]byte(asString(v)), r); err != nil {
		return nil, err
	}
	return r, nil
}

// AlertInsert implements store.Tx. One statement per alert: a conflict on
// the key must be told apart, and alerts come a few at a time.
func (t *tx) AlertInsert(ctx context.Context, as []*store.Alert) ([]bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	for _, a := range as {
		if err := store.CheckAlert(a); err != nil {
			return nil, fmt.Errorf("sqlite: AlertInsert: %w", err)
		}
	}
	out := make([]bool, len(as))
	for i, a := range as {
		d := &a.Delivery
		t.bind()
		for _, v := range []driver.Value{a.ID, a.Key, a.Job, a.Group, nullString(a.RunID), nullMicro(a.LogicalTime),
			a.Rule, a.Reason, a.Webhook, a.Format, micro(a.CreatedAt), string(d.State), int64(d.Attempts),
			nullMicro(d.NextAt), d.LastError, nullMicro(d.DeliveredAt)} {
			t.arg(v)
		}
		n, seq, err := t.exec("AlertInsert", wAlertInsert)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			a.Seq, out[i] = seq, true
		}
	}
	return out, nil
}

// AlertListDue implements store.Tx.
func (t *tx) AlertListDue(ctx context.Context, p store.CallbackListDueParams) ([]*store.Alert, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	t.bind()
	t.arg(micro(p.Now))
	t.arg(micro(p.LeaseUntil))
	t.arg(int64(p.Limit))
	as, err := queryDecoded(t, "AlertListDue", wAlertListDue, numAlertCols, decodeAlert[driver.Value])
	if err != nil {
		return nil, err
	}
	// RETURNING has no defined order, and every claimed alert now has the
	// same next_at (the lease).
	slices.SortFunc(as, func(a, b *store.Alert) int { return cmp.Compare(a.Seq, b.Seq) })
	return as, nil
}

// AlertRecord implements store.Tx.
func (t *tx) AlertRecord(ctx context.Context, ps []store.CallbackRecordParams) ([]bool, error) {
	return t.recordDeliveries(ctx, "AlertRecord", wAlertRecord, ps)
}

// GroupAlertsPut implements store.Tx.
func (t *tx) GroupAlertsPut(ctx context.Context, group string, r *store.AlertRules, now time.Time) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	t.bind()
	t.arg(group)
	if r == nil {
		_, _, err := t.exec("GroupAlertsPut", wGroupAlertsDelete)
		return err
	}
	rules, err := alertRulesValue(r)
	if err != nil {
		return fmt.Errorf("sqlite: GroupAlertsPut: group %q: %w", group, err)
	}
	t.arg(rules)
	t.arg(micro(now))
	_, _, err = t.exec("GroupAlertsPut", wGroupAlertsPut)
	return err
}

// The read side, on the reader pool.

// AlertList implements store.Store. A job's or a run's alerts walk their
// index, the others the rowid, newest first.
func (s *Store) AlertList(ctx context.Context, p store.AlertListParams) ([]*store.Alert, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if p.Limit < 1 || p.Limit > 1000 {
		return nil, fmt.Errorf("sqlite: AlertList: limit %d (1 to 1000)", p.Limit)
	}
	var (
		where []string
		args  []any
	)
	if p.Job != "" {
		where, args = append(where, "job = ?"), append(args, p.Job)
	}
	if p.RunID != "" {
		where, args = append(where, "run_id = ?"), append(args, p.RunID)
	}
	if p.Before > 0 {
		where, args = append(where, "seq < ?"), append(args, p.Before)
	}
	q := `SELECT ` + alertCols + ` FROM alerts`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, p.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap("AlertList", err)
	}
	defer rows.Close()
	var out []*store.Alert
	for rows.Next() {
		a, err := scanDecoded(rows, numAlertCols, decodeAlert[any])
		if err != nil {
			return nil, s.wrap("AlertList", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("AlertList", err)
	}
	return out, nil
}

// AlertNextAt implements store.Store.
func (s *Store) AlertNextAt(ctx context.Context) (time.Time, error) {
	if s.closed.Load() {
		return time.Time{}, errClosed
	}
	var at sql.NullInt64
	if err := s.rs[rAlertNextAt].QueryRowContext(ctx).Scan(&at); err != nil {
		return time.Time{}, s.wrap("AlertNextAt", err)
	}
	return fromNullMicro(at), nil
}

// GroupAlertsList implements store.Store.
func (s *Store) GroupAlertsList(ctx context.Context) (map[string]*store.AlertRules, error) {
	type groupRules struct {
		group string
		rules *store.AlertRules
	}
	rows, err := listRows(s, ctx, "GroupAlertsList", rGroupAlerts, func(sc scanner) (groupRules, error) {
		var (
			g     groupRules
			rules string
		)
		if err := sc.Scan(&g.group, &rules); err != nil {
			return g, err
		}
		r, err := decodeAlertRules(rules)
		if err != nil {
			return g, fmt.Errorf("group %q: %w", g.group, err)
		}
		g.rules = r
		return g, nil
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]*store.AlertRules, len(rows))
	for _, g := range rows {
		out[g.group] = g.rules
	}
	return out, nil
}

// AlertDeleteBefore implements store.Tx.
func (t *tx) AlertDeleteBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := t.check(ctx); err != nil {
		return 0, err
	}
	if limit < 1 || limit > 10000 {
		return 0, fmt.Errorf("sqlite: AlertDeleteBefore: limit %d (1 to 10000)", limit)
	}
	t.bind()
	t.arg(micro(before))
	t.arg(int64(limit))
	n, _, err := t.exec("AlertDeleteBefore", wAlertDelete)
	return int(n), err
}
