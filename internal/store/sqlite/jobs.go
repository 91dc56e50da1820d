package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Jobs (migration 00003_jobs). The jobs table is small and written only
// when a job is saved, paused or resumed and when a slot fires, so its
// statements favour clarity. The runs side (a job's slots, its unfinished
// runs) uses two partial indexes that runs of no job never write,
// runs_job_slot and runs_job_active. SQLite uses a partial index only for
// a query whose WHERE clause implies its predicate, so the statements
// repeat "job <> ''" and name one status at a time (activeForJob).
//
// With one writer there is nothing to lock: JobListDue and RunUnblockNext
// run inside the Tx that holds the database's write lock, which is what the
// row locks of a shared store give.

// jobCols is the column list every job query selects or returns, in the
// order decodeJob reads it.
const jobCols = `name, type, grp, payload, schedule, timezone, depends_on, misfire, misfire_max,
	overlap, routing, priority, timeout, retries, shards, paused, next_fire, version, created_at, updated_at,
	callback_url, keep, keep_last, trigger_rule, alerts, min_success, merge`

const numJobCols = 27

// tx.query decodes rows into a buffer of numRunCols values.
var _ [numRunCols - numJobCols]struct{}

// activeForJob is the condition that selects job ?1's runs in status st
// from runs_job_active, whose predicate it implies.
func activeForJob(alias, st string) string {
	return alias + `job = ?1 AND ` + alias + `job <> '' AND ` + alias + `status = '` + st + `'`
}

// listActiveForJobSQL lists job ?1's runs that are not terminal, oldest
// first, at most ?2. The runs in each status are a range of
// runs_job_active in seq order; the five ranges, each cut at the limit,
// are merged (as in claimSQL), so the statement reads at most five times
// the limit index entries.
func listActiveForJobSQL() string {
	var b strings.Builder
	b.WriteString(`SELECT ` + runCols + ` FROM runs WHERE seq IN (SELECT seq FROM (`)
	for i, st := range []store.RunStatus{store.StatusPending, store.StatusBlocked, store.StatusQueued, store.StatusDispatched, store.StatusRunning} {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString(`SELECT * FROM (SELECT seq FROM runs WHERE ` + activeForJob("", string(st)) + ` ORDER BY seq LIMIT ?2)`)
	}
	b.WriteString(`) ORDER BY seq LIMIT ?2) ORDER BY seq`)
	return b.String()
}

// unblockNextSQL moves job ?1's oldest blocked run to queued, unless one
// of its runs is pending, queued, dispatched or running (four seeks in
// runs_job_active) or the job has dependencies (its runs wait for
// RunGate, deps.go), and returns it.
func unblockNextSQL() string {
	var b strings.Builder
	b.WriteString(`UPDATE runs SET status = 'queued'
		WHERE seq = (SELECT b.seq FROM runs AS b WHERE ` + activeForJob("b.", "blocked") + ` ORDER BY b.seq LIMIT 1)
			AND NOT EXISTS (SELECT 1 FROM jobs WHERE name = ?1 AND depends_on IS NOT NULL AND depends_on <> '[]')`)
	for _, st := range []store.RunStatus{store.StatusPending, store.StatusQueued, store.StatusDispatched, store.StatusRunning} {
		b.WriteString(`
			AND NOT EXISTS (SELECT 1 FROM runs AS l WHERE ` + activeForJob("l.", string(st)) + `)`)
	}
	b.WriteString(`
		RETURNING ` + runCols)
	return b.String()
}

const (
	getBySlotSQL = `SELECT ` + runCols + ` FROM runs
		WHERE job = ? AND logical_time = ? AND job <> '' AND logical_time IS NOT NULL`

	// Arguments: the job's columns from name to next_fire, then created_at
	// and updated_at. A replace keeps created_at and bumps version.
	jobPutSQL = `INSERT INTO jobs (name, type, grp, payload, schedule, timezone, depends_on, misfire,
			misfire_max, overlap, routing, priority, timeout, retries, shards, paused, next_fire,
			version, created_at, updated_at, callback_url, keep, keep_last, trigger_rule, alerts, min_success, merge)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,1,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (name) DO UPDATE SET
			type = excluded.type, grp = excluded.grp, payload = excluded.payload,
			schedule = excluded.schedule, timezone = excluded.timezone,
			depends_on = excluded.depends_on, misfire = excluded.misfire,
			misfire_max = excluded.misfire_max, overlap = excluded.overlap,
			routing = excluded.routing, priority = excluded.priority, timeout = excluded.timeout,
			retries = excluded.retries, shards = excluded.shards, paused = excluded.paused,
			next_fire = excluded.next_fire, version = jobs.version + 1,
			updated_at = excluded.updated_at, callback_url = excluded.callback_url,
			keep = excluded.keep, keep_last = excluded.keep_last, trigger_rule = excluded.trigger_rule,
			alerts = excluded.alerts, min_success = excluded.min_success, merge = excluded.merge
		RETURNING ` + jobCols

	jobPauseSQL = `UPDATE jobs SET paused = ?, next_fire = ?, version = version + 1, updated_at = ?
		WHERE name = ? RETURNING ` + jobCols

	jobListDueSQL = `SELECT ` + jobCols + ` FROM jobs
		WHERE paused = 0 AND next_fire IS NOT NULL AND next_fire <= ?
		ORDER BY next_fire, name LIMIT ?`

	// The compare-and-set: "IS" matches a NULL next_fire too.
	jobAdvanceSQL = `UPDATE jobs SET next_fire = ?, version = version + 1, updated_at = ?
		WHERE name = ? AND next_fire IS ?`
)

// decodeJob builds a job from the values of one row of jobCols.
func decodeJob[V any](vs []V) (*store.Job, error) {
	v := func(i int) any { return vs[i] }
	j := &store.Job{
		Name:        asString(v(0)),
		Type:        asString(v(1)),
		Group:       asString(v(2)),
		Payload:     asJSON(v(3)),
		Schedule:    asString(v(4)),
		Timezone:    asString(v(5)),
		Misfire:     asString(v(7)),
		MisfireMax:  int(asInt(v(8))),
		Overlap:     asString(v(9)),
		Routing:     asString(v(10)),
		Priority:    int(asInt(v(11))),
		Timeout:     time.Duration(asInt(v(12))),
		Retries:     int(asInt(v(13))),
		Shards:      int(asInt(v(14))),
		Paused:      asInt(v(15)) != 0,
		NextFire:    asTime(v(16)),
		Version:     asInt(v(17)),
		CreatedAt:   asTime(v(18)),
		UpdatedAt:   asTime(v(19)),
		CallbackURL: asString(v(20)),
		Keep:        time.Duration(asInt(v(21))),
		KeepLast:    int(asInt(v(22))),
		TriggerRule: asString(v(23)),
		MinSuccess:  asFloat(v(25)),
		Merge:       asString(v(26)),
	}
	if v(6) != nil {
		if err := json.Unmarshal([]byte(asString(v(6))), &j.DependsOn); err != nil {
			return nil, fmt.Errorf("job %q: depends_on: %w", j.Name, err)
		}
	}
	var err error
	if j.Alerts, err = decodeAlertRules(v(24)); err != nil {
		return nil, fmt.Errorf("job %q: alerts: %w", j.Name, err)
	}
	return j, nil
}

// dependsOn binds DependsOn as a JSON array; nil is NULL.
func dependsOn(d []string) (driver.Value, error) {
	if d == nil {
		return nil, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// asFloat decodes a REAL column (an integer value too).
func asFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	}
	return 0
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// queryJobs runs statement i (which selects or returns jobCols) with the
// bound arguments and decodes the rows.
func (t *tx) queryJobs(op string, i wStmt) ([]*store.Job, error) {
	return queryDecoded(t, op, i, numJobCols, decodeJob[driver.Value])
}

// queryDecoded runs statement i, which returns ncols columns, with the
// bound arguments and decodes each row with decode.
func queryDecoded[T any](t *tx, op string, i wStmt, ncols int, decode func([]driver.Value) (T, error)) ([]T, error) {
	var (
		out  []T
		derr error
	)
	err := t.query(op, i, ncols, func(vals []driver.Value) {
		v, err := decode(vals)
		if err != nil {
			derr = errors.Join(derr, err)
			return
		}
		out = append(out, v)
	})
	if err == nil && derr != nil {
		err = fmt.Errorf("sqlite: %s: %w", op, derr)
	}
	return out, err
}

// JobPut implements store.Tx.
func (t *tx) JobPut(ctx context.Context, p store.JobPutParams) (*store.Job, bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, false, err
	}
	j := &p.Job
	if j.Name == "" {
		return nil, false, errors.New("sqlite: JobPut: job has no name")
	}
	deps, err := dependsOn(j.DependsOn)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: JobPut: job %q: depends_on: %w", j.Name, err)
	}
	alerts, err := alertRulesValue(j.Alerts)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: JobPut: job %q: alerts: %w", j.Name, err)
	}
	t.bind()
	t.arg(j.Name)
	t.arg(j.Type)
	t.arg(j.Group)
	t.arg(nullJSON(j.Payload))
	t.arg(j.Schedule)
	t.arg(j.Timezone)
	t.arg(deps)
	t.arg(j.Misfire)
	t.arg(int64(j.MisfireMax))
	t.arg(j.Overlap)
	t.arg(j.Routing)
	t.arg(int64(j.Priority))
	t.arg(int64(j.Timeout))
	t.arg(int64(j.Retries))
	t.arg(int64(j.Shards))
	t.arg(boolInt(j.Paused))
	t.arg(nullMicro(j.NextFire))
	t.arg(micro(p.Now))
	t.arg(micro(p.Now))
	t.arg(j.CallbackURL)
	t.arg(int64(j.Keep))
	t.arg(int64(j.KeepLast))
	t.arg(j.TriggerRule)
	t.arg(alerts)
	t.arg(j.MinSuccess)
	t.arg(j.Merge)
	jobs, err := t.queryJobs("JobPut", wJobPut)
	if err != nil {
		return nil, false, err
	}
	if len(jobs) != 1 {
		return nil, false, fmt.Errorf("sqlite: JobPut: job %q: %d rows written", j.Name, len(jobs))
	}
	return jobs[0], jobs[0].Version == 1, nil
}

// JobDelete implements store.Tx.
func (t *tx) JobDelete(ctx context.Context, name string) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	t.bind()
	t.arg(name)
	n, _, err := t.exec("JobDelete", wJobDelete)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("sqlite: JobDelete: job %q: %w", name, store.ErrNotFound)
	}
	return nil
}

// JobPause implements store.Tx.
func (t *tx) JobPause(ctx context.Context, p store.JobPauseParams) (*store.Job, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	t.bind()
	t.arg(boolInt(p.Paused))
	t.arg(nullMicro(p.NextFire))
	t.arg(micro(p.Now))
	t.arg(p.Name)
	jobs, err := t.queryJobs("JobPause", wJobPause)
	if err != nil {
		return nil, err
	}
	if len(jobs) == 0 {
		return nil, fmt.Errorf("sqlite: JobPause: job %q: %w", p.Name, store.ErrNotFound)
	}
	return jobs[0], nil
}

// JobListDue implements store.Tx.
func (t *tx) JobListDue(ctx context.Context, p store.JobListDueParams) ([]*store.Job, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	t.bind()
	t.arg(micro(p.Now))
	t.arg(int64(p.Limit))
	return t.queryJobs("JobListDue", wJobListDue)
}

// JobAdvance implements store.Tx.
func (t *tx) JobAdvance(ctx context.Context, ps []store.JobAdvanceParams) ([]bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	// One statement per job: in-process, on the single writer, that is
	// microseconds each.
	out := make([]bool, len(ps))
	for i, p := range ps {
		t.bind()
		t.arg(nullMicro(p.To))
		t.arg(micro(p.Now))
		t.arg(p.Name)
		t.arg(nullMicro(p.From))
		n, _, err := t.exec("JobAdvance", wJobAdvance)
		if err != nil {
			return nil, err
		}
		out[i] = n > 0
	}
	return out, nil
}

// RunListActiveForJob implements store.Tx.
func (t *tx) RunListActiveForJob(ctx context.Context, job string, limit int) ([]*store.Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if job == "" || limit <= 0 {
		return nil, nil
	}
	t.bind()
	t.arg(job)
	t.arg(int64(limit))
	return t.queryRuns("RunListActiveForJob", wListActiveForJob)
}

// RunUnblockNext implements store.Tx. now is not needed: the run keeps its
// run_at, so it takes its place in the queue by when it was due.
func (t *tx) RunUnblockNext(ctx context.Context, job string, now time.Time) (*store.Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if job == "" {
		return nil, nil
	}
	t.bind()
	t.arg(job)
	runs, err := t.queryRuns("RunUnblockNext", wUnblockNext)
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	t.counts.Move(runs[0].Group, runs[0].Job, store.StatusBlocked, store.StatusQueued)
	return runs[0], nil
}

// The read side, on the reader pool.

// scanJob reads one row of jobCols.
func scanJob(sc scanner) (*store.Job, error) {
	return scanDecoded(sc, numJobCols, decodeJob[any])
}

// scanDecoded reads one row of ncols columns and decodes it with decode.
func scanDecoded[T any](sc scanner, ncols int, decode func([]any) (T, error)) (T, error) {
	vals, ptrs := make([]any, ncols), make([]any, ncols)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := sc.Scan(ptrs...); err != nil {
		var zero T
		return zero, err
	}
	return decode(vals)
}

// JobGet implements store.Store.
func (s *Store) JobGet(ctx context.Context, name string) (*store.Job, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	j, err := scanJob(s.rs[rJobGet].QueryRowContext(ctx, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: JobGet %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap("JobGet", err)
	}
	return j, nil
}

// JobList implements store.Store.
func (s *Store) JobList(ctx context.Context) ([]*store.Job, error) {
	return listRows(s, ctx, "JobList", rJobList, scanJob)
}

// listRows runs reader statement st (without arguments) and scans every
// row with scan.
func listRows[T any](s *Store, ctx context.Context, op string, st rStmt, scan func(scanner) (T, error)) ([]T, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.rs[st].QueryContext(ctx)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.wrap(op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(op, err)
	}
	return out, nil
}

// JobNextFire implements store.Store.
func (s *Store) JobNextFire(ctx context.Context) (time.Time, error) {
	if s.closed.Load() {
		return time.Time{}, errClosed
	}
	var at sql.NullInt64
	if err := s.rs[rJobNextFire].QueryRowContext(ctx).Scan(&at); err != nil {
		return time.Time{}, s.wrap("JobNextFire", err)
	}
	return fromNullMicro(at), nil
}
