package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pluto-sched/pluto/internal/store"
)

// Alerts (store/alerts.go; migration 00015_alerts). Alerts are few and
// written rarely next to runs, so an alert's webhook delivery is kept in
// its own row, with no side table (compare callbacks.go): next_at is set
// exactly while the delivery is pending, and the partial index alerts_due
// holds the pending deliveries in due order. A claim locks the first due
// rows with FOR UPDATE SKIP LOCKED, so two leaders for a moment claim
// disjoint deliveries; a record is fenced by the attempt and lease of its
// claim, which the update re-checks on the newest row after any wait.

const (
	// sqlAlertDelete deletes the oldest alerts (seq follows created_at).
	sqlAlertDelete = `DELETE FROM alerts WHERE seq IN (
			SELECT seq FROM alerts WHERE created_at < $1 AND state <> 'pending' ORDER BY seq LIMIT $2)`
	alertCols = `seq, id, key, job, grp, run_id, logical_time, rule, reason, webhook, format, created_at,
		state, attempts, next_at, last_error, delivered_at`

	// sqlAlertInsert inserts a batch in input order (seq follows it). A key
	// already stored, or earlier in the batch, inserts nothing; a taken id
	// is an error (the caller chose it). It returns the inserted rows' id,
	// key and seq. Arguments: one array per column.
	sqlAlertInsert = `INSERT INTO alerts (id, key, job, grp, run_id, logical_time, rule, reason, webhook, format,
			created_at, state, attempts, next_at, last_error, delivered_at)
		SELECT u.id, u.key, u.job, u.grp, nullif(u.run_id, ''), u.logical_time, u.rule, u.reason, u.webhook,
			u.format, u.created_at, u.state, u.attempts, u.next_at, u.last_error, u.delivered_at
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[],
				$8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::text[], $13::int4[],
				$14::timestamptz[], $15::text[], $16::timestamptz[])
			WITH ORDINALITY AS u(id, key, job, grp, run_id, logical_time, rule, reason, webhook, format,
				created_at, state, attempts, next_at, last_error, delivered_at, ord)
		ORDER BY u.ord
		ON CONFLICT (key) DO NOTHING
		RETURNING id, key, seq`

	// sqlAlertListDue claims the first due deliveries (alerts_due),
	// skipping those another transaction holds: one more attempt, and
	// next_at moved to the lease. The state test is a second guard.
	// Arguments: now, lease, limit.
	sqlAlertListDue = `WITH c AS MATERIALIZED (
			SELECT seq FROM alerts
			WHERE next_at IS NOT NULL AND next_at <= $1
			ORDER BY next_at, seq
			LIMIT $3
			FOR UPDATE SKIP LOCKED)
		UPDATE alerts SET attempts = attempts + 1, next_at = $2
		WHERE seq = ANY (ARRAY(SELECT seq FROM c)) AND state = 'pending'
		RETURNING ` + alertCols

	// sqlAlertRecord: arrays of id, attempt, lease, state, next_at (NULL
	// unless pending), error, delivered_at (NULL: keep); returns the
	// ordinals (1-based) that applied.
	sqlAlertRecord = `UPDATE alerts SET state = u.state, next_at = u.next_at, last_error = u.error,
			delivered_at = coalesce(u.delivered, alerts.delivered_at)
		FROM unnest($1::text[], $2::int4[], $3::timestamptz[], $4::text[], $5::timestamptz[], $6::text[],
				$7::timestamptz[]) WITH ORDINALITY AS u(id, attempt, lease, state, next_at, error, delivered, ord)
		WHERE alerts.id = u.id AND alerts.state = 'pending' AND alerts.attempts = u.attempt
			AND alerts.next_at = u.lease
		RETURNING u.ord`

	sqlAlertNextAt = `SELECT min(next_at) FROM alerts WHERE next_at IS NOT NULL`

	sqlGroupAlertsPut = `INSERT INTO group_alerts (grp, rules, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (grp) DO UPDATE SET rules = excluded.rules, updated_at = excluded.updated_at`
	sqlGroupAlertsDelete = `DELETE FROM group_alerts WHERE grp = $1`
	sqlGroupAlertsList   = `SELECT grp, rules FROM group_alerts`
)

func scanAlert(row pgx.Row) (*store.Alert, error) {
	var (
		a                        store.Alert
		runID                    pgtype.Text
		logical, next, delivered pgtype.Timestamptz
		state                    string
		attempts                 int32
	)
	err := row.Scan(&a.Seq, &a.ID, &a.Key, &a.Job, &a.Group, &runID, &logical, &a.Rule, &a.Reason, &a.Webhook,
		&a.Format, &a.CreatedAt, &state, &attempts, &next, &a.Delivery.LastError, &delivered)
	if err != nil {
		return nil, err
	}
	a.RunID, a.LogicalTime, a.CreatedAt = runID.String, tsTime(logical), utc(a.CreatedAt)
	a.Delivery.State, a.Delivery.Attempts = store.CallbackState(state), int(attempts)
	a.Delivery.NextAt, a.Delivery.DeliveredAt = tsTime(next), tsTime(delivered)
	return &a, nil
}

func collectAlerts(rows pgx.Rows) ([]*store.Alert, error) {
	defer rows.Close()
	var out []*store.Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// alertRulesText binds rules as their JSON; nil is NULL. Empty rules are
// "{}", so they read back empty, not nil.
func alertRulesText(r *store.AlertRules) (pgtype.Text, error) {
	if r == nil {
		return pgtype.Text{}, nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return pgtype.Text{}, err
	}
	return pgtype.Text{String: cleanText(string(b)), Valid: true}, nil
}

// decodeAlertRules reads what alertRulesText bound.
func decodeAlertRules(t pgtype.Text) (*store.AlertRules, error) {
	if !t.Valid {
		return nil, nil
	}
	r := new(store.AlertRules)
	if err := json.Unmarshal([]byte(t.String), r); err != nil {
		return nil, err
	}
	return r, nil
}

// AlertInsert implements store.Tx.
func (t *tx) AlertInsert(ctx context.Context, as []*store.Alert) ([]bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	for _, a := range as {
		if err := store.CheckAlert(a); err != nil {
			return nil, fmt.Errorf("postgres: AlertInsert: %w", err)
		}
	}
	out := make([]bool, len(as))
	if len(as) == 0 {
		return out, nil
	}
	n := len(as)
	var (
		ids, keys, jobs, groups, runIDs = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		rules, reasons, hooks, formats  = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		states, lastErrs                = make([]string, n), make([]string, n)
		attempts                        = make([]int32, n)
		created                         = make([]time.Time, n)
		logical, nextAts, delivered     = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	)
	for i, a := range as {
		d := &a.Delivery
		ids[i], keys[i], jobs[i], groups[i], runIDs[i] = a.ID, a.Key, a.Job, a.Group, a.RunID
		rules[i], reasons[i], hooks[i], formats[i] = a.Rule, cleanText(a.Reason), cleanText(a.Webhook), a.Format
		states[i], lastErrs[i], attempts[i] = string(d.State), cleanText(d.LastError), int32(d.Attempts)
		created[i], logical[i], nextAts[i], delivered[i] = a.CreatedAt, nullTime(a.LogicalTime), nullTime(d.NextAt), nullTime(d.DeliveredAt)
	}
	rows, err := t.q.Query(ctx, sqlAlertInsert, ids, keys, jobs, groups, runIDs, logical, rules, reasons, hooks, formats,
		created, states, attempts, nextAts, lastErrs, delivered)
	if err != nil {
		return nil, t.s.wrap("AlertInsert", err)
	}
	type idKey struct{ id, key string }
	seqs := map[idKey]int64{}
	var (
		k   idKey
		seq int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&k.id, &k.key, &seq}, func() error {
		seqs[k] = seq
		return nil
	}); err != nil {
		return nil, t.s.wrap("AlertInsert", err)
	}
	// A row inserted is the first element's with its ID and key: the rows
	// go in input order, and a later one met the key in the table.
	for i, a := range as {
		k := idKey{a.ID, a.Key}
		if seq, ok := seqs[k]; ok {
			a.Seq, out[i] = seq, true
			delete(seqs, k)
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
	rows, err := t.q.Query(ctx, sqlAlertListDue, p.Now, p.LeaseUntil, int64(p.Limit))
	if err != nil {
		return nil, t.s.wrap("AlertListDue", err)
	}
	as, err := collectAlerts(rows)
	if err != nil {
		return nil, t.s.wrap("AlertListDue", err)
	}
	slices.SortFunc(as, func(a, b *store.Alert) int { return cmp.Compare(a.Seq, b.Seq) })
	return as, nil
}

// AlertRecord implements store.Tx. A batch that names one alert twice is
// cut into rounds (an UPDATE … FROM applies one source row to a target
// row), so its elements apply in order.
func (t *tx) AlertRecord(ctx context.Context, ps []store.CallbackRecordParams) ([]bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if err := checkRecords("AlertRecord", ps); err != nil {
		return nil, err
	}
	out := make([]bool, len(ps))
	for _, idx := range rounds(len(ps), func(i int) string { return ps[i].ID }) {
		n := len(idx)
		rows, err := t.q.Query(ctx, sqlAlertRecord, recordArgs(ps, idx)...)
		if err != nil {
			return nil, t.s.wrap("AlertRecord", err)
		}
		var ord int64
		if _, err := pgx.ForEachRow(rows, []any{&ord}, func() error {
			if ord >= 1 && int(ord) <= n {
				out[idx[ord-1]] = true
			}
			return nil
		}); err != nil {
			return nil, t.s.wrap("AlertRecord", err)
		}
	}
	return out, nil
}

// GroupAlertsPut implements store.Tx.
func (t *tx) GroupAlertsPut(ctx context.Context, group string, r *store.AlertRules, now time.Time) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if r == nil {
		_, err := t.q.Exec(ctx, sqlGroupAlertsDelete, group)
		return t.s.wrap("GroupAlertsPut", err)
	}
	rules, err := alertRulesText(r)
	if err != nil {
		return fmt.Errorf("postgres: GroupAlertsPut: group %q: %w", group, err)
	}
	_, err = t.q.Exec(ctx, sqlGroupAlertsPut, group, rules, now)
	return t.s.wrap("GroupAlertsPut", err)
}

// AlertList implements store.Store. A job's or a run's alerts walk their
// index, the others the primary key, newest first.
func (s *Store) AlertList(ctx context.Context, p store.AlertListParams) ([]*store.Alert, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if p.Limit < 1 || p.Limit > 1000 {
		return nil, fmt.Errorf("postgres: AlertList: limit %d (1 to 1000)", p.Limit)
	}
	var (
		where []string
		args  []any
	)
	cond := func(c string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(c, len(args)))
	}
	if p.Job != "" {
		cond("job = $%d", p.Job)
	}
	if p.RunID != "" {
		cond("run_id = $%d", p.RunID)
	}
	if p.Before > 0 {
		cond("seq < $%d", p.Before)
	}
	q := `SELECT ` + alertCols + ` FROM alerts`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, int64(p.Limit))
	q += fmt.Sprintf(` ORDER BY seq DESC LIMIT $%d`, len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.wrap("AlertList", err)
	}
	as, err := collectAlerts(rows)
	if err != nil {
		return nil, s.wrap("AlertList", err)
	}
	return as, nil
}

// AlertNextAt implements store.Store.
func (s *Store) AlertNextAt(ctx context.Context) (time.Time, error) {
	if s.closed.Load() {
		return time.Time{}, errClosed
	}
	var at pgtype.Timestamptz
	if err := s.pool.QueryRow(ctx, sqlAlertNextAt).Scan(&at); err != nil {
		return time.Time{}, s.wrap("AlertNextAt", err)
	}
	return tsTime(at), nil
}

// GroupAlertsList implements store.Store.
func (s *Store) GroupAlertsList(ctx context.Context) (map[string]*store.AlertRules, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.pool.Query(ctx, sqlGroupAlertsList)
	if err != nil {
		return nil, s.wrap("GroupAlertsList", err)
	}
	out := map[string]*store.AlertRules{}
	var (
		group string
		rules pgtype.Text
	)
	if _, err := pgx.ForEachRow(rows, []any{&group, &rules}, func() error {
		r, err := decodeAlertRules(rules)
		if err != nil {
			return fmt.Errorf("group %q: %w", group, err)
		}
		out[group] = r
		return nil
	}); err != nil {
		return nil, s.wrap("GroupAlertsList", err)
	}
	return out, nil
}

// AlertDeleteBefore implements store.Tx.
func (t *tx) AlertDeleteBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := t.check(ctx); err != nil {
		return 0, err
	}
	if limit < 1 || limit > 10000 {
		return 0, fmt.Errorf("postgres: AlertDeleteBefore: limit %d (1 to 10000)", limit)
	}
	tag, err := t.q.Exec(ctx, sqlAlertDelete, before, limit)
	if err != nil {
		return 0, t.s.wrap("AlertDeleteBefore", err)
	}
	return int(tag.RowsAffected()), nil
}
