package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pluto-sched/pluto/internal/store"
)

// Jobs, and the runs of jobs (doc.go tells the design; the tables are in
// migrations/00002_jobs.sql).
//
// A job is a row of jobs. The cron loop of the leader locks the due ones
// with FOR UPDATE SKIP LOCKED (JobListDue), so two leaders never fire one
// job at once, and moves next_fire on with a compare-and-set
// (JobAdvance). A slot fires once because (job, logical_time) is unique in
// runs (runs_job_slot): an insert naming a slot that has a run returns
// that run, like an idempotency key.
//
// The unfinished runs of a job are found without reading its finished
// ones through two side tables kept like queue, pending and active: job_live
// (the runs of jobs that are pending, queued, dispatched or running) and
// blocked (every blocked run, by job). A run enters job_live when it is
// born, retried or unblocked and leaves it when it reaches a terminal
// status; the moves in between (claims, starts, hand-backs, retries after
// backoff, promotions, requeues) leave it alone, so the hot path of runs
// of no job never touches either table.

// jobCols is the column list every job query reads, in scanJob's order.
const jobCols = `name, type, grp, payload, schedule, timezone, depends_on, misfire, misfire_max, overlap,
	routing, priority, timeout, retries, shards, paused, next_fire, version, created_at, updated_at, callback_url,
	keep, keep_last, trigger_rule, alerts, min_success, merge`

const (
	sqlJobGet  = `SELECT ` + jobCols + ` FROM jobs WHERE name = $1`
	sqlJobList = `SELECT ` + jobCols + ` FROM jobs ORDER BY name`
	// sqlJobNextFire reads the first entry of jobs_due.
	sqlJobNextFire = `SELECT min(next_fire) FROM jobs WHERE NOT paused AND next_fire IS NOT NULL`

	// sqlJobPut creates a job at version 1 or replaces it at the next
	// version, keeping created_at; version 1 tells a creation.
	sqlJobPut = `INSERT INTO jobs AS j (name, type, grp, payload, schedule, timezone, depends_on, misfire,
			misfire_max, overlap, routing, priority, timeout, retries, shards, paused, next_fire, version,
			created_at, updated_at, callback_url, keep, keep_last, trigger_rule, alerts, min_success, merge)
		VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7::text[], $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 1, $18, $18, $19,
			$20, $21, $22, $23, $24, $25)
		ON CONFLICT (name) DO UPDATE SET type = excluded.type, grp = excluded.grp, payload = excluded.payload,
			schedule = excluded.schedule, timezone = excluded.timezone, depends_on = excluded.depends_on,
			misfire = excluded.misfire, misfire_max = excluded.misfire_max, overlap = excluded.overlap,
			routing = excluded.routing, priority = excluded.priority, timeout = excluded.timeout,
			retries = excluded.retries, shards = excluded.shards, paused = excluded.paused,
			next_fire = excluded.next_fire, version = j.version + 1, updated_at = excluded.updated_at,
			callback_url = excluded.callback_url, keep = excluded.keep, keep_last = excluded.keep_last,
			trigger_rule = excluded.trigger_rule, alerts = excluded.alerts, min_success = excluded.min_success,
			merge = excluded.merge
		RETURNING ` + jobCols
	sqlJobDelete = `DELETE FROM jobs WHERE name = $1`
	sqlJobPause  = `UPDATE jobs SET paused = $2, next_fire = $3, version = version + 1, updated_at = $4
		WHERE name = $1 RETURNING ` + jobCols
	// sqlJobListDue locks the due jobs, in firing order (jobs_due), and
	// skips the ones another transaction holds (another leader firing
	// them, or RunUnblockNext). Arguments: now, limit.
	sqlJobListDue = `SELECT ` + jobCols + ` FROM jobs
		WHERE NOT paused AND next_fire IS NOT NULL AND next_fire <= $1
		ORDER BY next_fire, name
		LIMIT $2
		FOR UPDATE SKIP LOCKED`
	// sqlJobAdvance: compare-and-sets of next_fire (NULL: none), one per
	// element; returns the ordinals (1-based) that applied. A row is
	// updated at most once per statement, so of duplicates at most one
	// applies. Arguments: names, froms, tos, nows.
	sqlJobAdvance = `UPDATE jobs j SET next_fire = u.to_t, version = j.version + 1, updated_at = u.now_t
		FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[])
			WITH ORDINALITY AS u(name, from_t, to_t, now_t, ord)
		WHERE j.name = u.name AND j.next_fire IS NOT DISTINCT FROM u.from_t
		RETURNING u.ord`
)

const (
	// sqlInsertFull is sqlInsert for batches that hold runs of jobs, or
	// blocked or skipped runs: it also fills blocked and job_live, stores
	// skipped runs finished (at created_at) with their error, and skips
	// runs whose slot (job, logical_time) has a run as well as those whose
	// key has one — ON CONFLICT without a target, as one INSERT can name
	// only one arbiter; a run refused for nothing but its ID is an error.
	// Batches without such runs, nearly all of them, take sqlInsert.
	sqlInsertFull = `WITH i AS (
			INSERT INTO runs (id, job, parent_id, shard, type, grp, payload, priority, status,
				max_attempts, key, logical_time, run_at, created_at, timeout, routing, routing_key,
				finished_at, error, callback_url, callback_state, callback_next_at)
			SELECT u.id, u.job, u.parent_id, u.shard, u.type, u.grp, u.payload, u.priority, u.status,
				u.max_attempts, u.key, u.logical_time, u.run_at, u.created_at, u.timeout, u.routing, u.routing_key,
				CASE WHEN u.status = 'skipped' THEN u.created_at END, u.error, u.callback_url,
				CASE WHEN u.status = 'skipped' AND u.callback_url IS NOT NULL THEN 'pending' ELSE '' END,
				CASE WHEN u.status = 'skipped' AND u.callback_url IS NOT NULL THEN u.created_at END
			FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], $7::text[],
					$8::int4[], $9::text[], $10::int4[], $11::text[], $12::timestamptz[], $13::timestamptz[],
					$14::timestamptz[], $15::int8[], $16::text[], $17::text[], $18::text[], $19::text[])
				WITH ORDINALITY AS u(id, job, parent_id, shard, type, grp, payload, priority, status,
					max_attempts, key, logical_time, run_at, created_at, timeout, routing, routing_key, error,
					callback_url, ord)
			ORDER BY u.ord
			ON CONFLICT DO NOTHING
			RETURNING id, key, job, logical_time, status, callback_next_at, ` + queueCols + `),
		q AS (INSERT INTO queue (` + queueCols + `) SELECT ` + queueCols + ` FROM i WHERE status = 'queued'),
		p AS (INSERT INTO pending (run_at, seq) SELECT run_at, seq FROM i WHERE status = 'pending'),
		b AS (INSERT INTO blocked (job, seq) SELECT job, seq FROM i WHERE status = 'blocked'),
		l AS (INSERT INTO job_live (job, seq) SELECT job, seq FROM i WHERE job <> '' AND status IN ('queued', 'pending')),
		c AS (INSERT INTO callbacks (next_at, seq) SELECT callback_next_at, seq FROM i WHERE callback_next_at IS NOT NULL),
		e AS (INSERT INTO ended (seq) SELECT seq FROM i WHERE status = 'skipped')
		SELECT seq, id, key, job, logical_time FROM i`

	// sqlGetBySlots reads the runs of slots (arrays of job and logical
	// time) through runs_job_slot.
	sqlGetBySlots = `SELECT ` + qualifiedRunCols + ` FROM unnest($1::text[], $2::timestamptz[]) AS u(job, logical_time)
		JOIN runs ON runs.job = u.job AND runs.logical_time = u.logical_time
		WHERE runs.job <> '' AND runs.logical_time IS NOT NULL`

	// sqlFinishJobLive, sent after sqlFinish instead of sqlDeleteActive
	// when runs of jobs reached a terminal status, also takes them out of
	// job_live. Arguments: the seqs of the finished runs, then the jobs and
	// seqs of those that leave job_live.
	sqlFinishJobLive = `WITH a AS (DELETE FROM active WHERE seq = ANY ($1::int8[]))
		DELETE FROM job_live USING unnest($2::text[], $3::int8[]) AS u(job, seq)
		WHERE job_live.job = u.job AND job_live.seq = u.seq`

	// sqlListActiveForJob: the job's runs in job_live and blocked, oldest
	// first (a merge of two index ranges), at most limit; the status test
	// is a second guard. Arguments: job, limit.
	sqlListActiveForJob = `SELECT ` + runCols + ` FROM runs
		WHERE seq = ANY (ARRAY(
			SELECT s.seq FROM (
				SELECT l.seq FROM job_live AS l WHERE l.job = $1
				UNION ALL
				SELECT b.seq FROM blocked AS b WHERE b.job = $1) AS s
			ORDER BY s.seq
			LIMIT $2))
			AND status IN ('pending', 'blocked', 'queued', 'dispatched', 'running')
		ORDER BY seq`

	sqlLockJob = `SELECT 1 FROM jobs WHERE name = $1 FOR UPDATE`
	// sqlLockNoJob stands in for the row lock of a job that has no row
	// (deleted, its runs left): a transaction-scoped advisory lock.
	sqlLockNoJob = `SELECT pg_advisory_xact_lock($1)`

	// sqlUnblockCandidate is the job's oldest blocked run if none of its
	// runs is pending, queued, dispatched or running, and the job has no
	// dependencies (its runs wait for RunGate, deps.go). Arguments: job.
	sqlUnblockCandidate = `SELECT b.seq FROM blocked AS b JOIN runs AS r ON r.seq = b.seq
		WHERE b.job = $1 AND r.status = 'blocked'
			AND NOT EXISTS (SELECT 1 FROM jobs AS j WHERE j.name = $1 AND cardinality(j.depends_on) > 0)
			AND NOT EXISTS (SELECT 1 FROM job_live AS l JOIN runs AS lr ON lr.seq = l.seq
				WHERE l.job = $1 AND lr.status IN ('pending', 'queued', 'dispatched', 'running'))
		ORDER BY b.seq
		LIMIT 1`

	// sqlUnblock queues a blocked run: out of blocked (in the same
	// statement: only a change of the run's status — which the update
	// re-checks after waiting — removes a blocked row), into the queue and
	// job_live. Arguments: seq, job.
	sqlUnblock = `WITH u AS (
			UPDATE runs SET status = 'queued' WHERE seq = $1 AND status = 'blocked' RETURNING ` + runCols + `),
		q AS (INSERT INTO queue (` + queueCols + `) SELECT ` + queueCols + ` FROM u),
		l AS (INSERT INTO job_live (job, seq) SELECT job, seq FROM u WHERE job <> ''),
		d AS (DELETE FROM blocked WHERE job = $2 AND seq = $1 AND EXISTS (SELECT 1 FROM u))
		SELECT * FROM u`
)

// needsFullInsert says whether a run takes sqlInsertFull.
func needsFullInsert(p *store.RunInsertParams) bool {
	return p.Job != "" || p.Status == store.StatusBlocked || p.Status == store.StatusSkipped || p.Error != "" ||
		p.CallbackURL != ""
}

// slot is a run's (job, logical time) when both are set, the time in
// microseconds as stored; the zero slot otherwise.
type slot struct {
	job   string
	micro int64
}

func slotOf(job string, logical time.Time) slot {
	if job == "" || logical.IsZero() {
		return slot{}
	}
	return slot{job, logical.UnixMicro()}
}

// existing reads the runs that hold keys and slots refused to an insert:
// stored before, or inserted by this batch (or by a transaction that
// committed meanwhile).
func (t *tx) existing(ctx context.Context, keys []string, slots []slot) (map[string]*Run, map[slot]*Run, error) {
	byKey, bySlot := map[string]*Run{}, map[slot]*Run{}
	if len(keys) > 0 {
		rows, err := t.q.Query(ctx, sqlGetByKeys, keys)
		if err != nil {
			return nil, nil, t.s.wrap("RunInsert: existing keys", err)
		}
		runs, err := collectRuns(rows)
		if err != nil {
			return nil, nil, t.s.wrap("RunInsert: existing keys", err)
		}
		for _, r := range runs {
			byKey[r.Key] = r
		}
	}
	if len(slots) > 0 {
		jobs, times := make([]string, len(slots)), make([]time.Time, len(slots))
		for i, s := range slots {
			jobs[i], times[i] = s.job, time.UnixMicro(s.micro)
		}
		rows, err := t.q.Query(ctx, sqlGetBySlots, jobs, times)
		if err != nil {
			return nil, nil, t.s.wrap("RunInsert: existing slots", err)
		}
		runs, err := collectRuns(rows)
		if err != nil {
			return nil, nil, t.s.wrap("RunInsert: existing slots", err)
		}
		for _, r := range runs {
			bySlot[slotOf(r.Job, r.LogicalTime)] = r
		}
	}
	return byKey, bySlot, nil
}

// jobRow receives one row of jobCols.
type jobRow struct {
	j         store.Job
	payload   []byte
	nextFire  pgtype.Timestamptz
	timeout   int64
	keep      int64
	dependsOn []string
	alerts    pgtype.Text
}

func scanJob(row pgx.Row) (*store.Job, error) {
	var jr jobRow
	j := &jr.j
	if err := row.Scan(&j.Name, &j.Type, &j.Group, &jr.payload, &j.Schedule, &j.Timezone, &jr.dependsOn,
		&j.Misfire, &j.MisfireMax, &j.Overlap, &j.Routing, &j.Priority, &jr.timeout, &j.Retries, &j.Shards,
		&j.Paused, &jr.nextFire, &j.Version, &j.CreatedAt, &j.UpdatedAt, &j.CallbackURL, &jr.keep, &j.KeepLast,
		&j.TriggerRule, &jr.alerts, &j.MinSuccess, &j.Merge); err != nil {
		return nil, err
	}
	if jr.payload != nil {
		j.Payload = json.RawMessage(jr.payload)
	}
	j.DependsOn = jr.dependsOn
	j.Timeout = time.Duration(jr.timeout)
	j.Keep = time.Duration(jr.keep)
	j.NextFire = tsTime(jr.nextFire)
	j.CreatedAt, j.UpdatedAt = utc(j.CreatedAt), utc(j.UpdatedAt)
	var err error
	if j.Alerts, err = decodeAlertRules(jr.alerts); err != nil {
		return nil, fmt.Errorf("job %q: alerts: %w", j.Name, err)
	}
	return j, nil
}

func collectJobs(rows pgx.Rows) ([]*store.Job, error) {
	defer rows.Close()
	var out []*store.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// JobGet implements store.Store.
func (s *Store) JobGet(ctx context.Context, name string) (*store.Job, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	j, err := scanJob(s.pool.QueryRow(ctx, sqlJobGet, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: JobGet %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap("JobGet", err)
	}
	return j, nil
}

// JobList implements store.Store.
func (s *Store) JobList(ctx context.Context) ([]*store.Job, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.pool.Query(ctx, sqlJobList)
	if err != nil {
		return nil, s.wrap("JobList", err)
	}
	jobs, err := collectJobs(rows)
	if err != nil {
		return nil, s.wrap("JobList", err)
	}
	return jobs, nil
}

// JobNextFire implements store.Store.
func (s *Store) JobNextFire(ctx context.Context) (time.Time, error) {
	if s.closed.Load() {
		return time.Time{}, errClosed
	}
	var at pgtype.Timestamptz
	if err := s.pool.QueryRow(ctx, sqlJobNextFire).Scan(&at); err != nil {
		return time.Time{}, s.wrap("JobNextFire", err)
	}
	return tsTime(at), nil
}

// jsonbText makes a JSON document storable as jsonb, or says why it is
// not one. Like free text elsewhere (cleanText), invalid UTF-8 and NUL
// bytes become U+FFFD, and so do \u0000 escapes, which jsonb refuses. The
// check happens here so that a bad payload fails the call, not the
// transaction.
func jsonbText(b []byte) (pgtype.Text, error) {
	if len(b) == 0 {
		return pgtype.Text{}, nil
	}
	b = cleanJSON(b)
	if !json.Valid(b) {
		return pgtype.Text{}, errors.New("payload is not valid JSON")
	}
	const nul = `\u0000`
	if bytes.Contains(b, []byte(nul)) {
		out := make([]byte, 0, len(b))
		for i := 0; i < len(b); i++ {
			// Every backslash of a valid document starts an escape in a
			// string; copy escapes whole so that \\u0000 stays.
			if b[i] != '\\' {
				out = append(out, b[i])
				continue
			}
			if bytes.HasPrefix(b[i:], []byte(nul)) {
				out = append(out, `\ufffd`...)
				i += len(nul) - 1
				continue
			}
			out = append(out, b[i], b[i+1])
			i++
		}
		b = out
	}
	return pgtype.Text{String: string(b), Valid: true}, nil
}

// JobPut implements store.Tx.
func (t *tx) JobPut(ctx context.Context, p store.JobPutParams) (*store.Job, bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, false, err
	}
	j := &p.Job
	if j.Name == "" {
		return nil, false, errors.New("postgres: JobPut: no name")
	}
	payload, err := jsonbText(j.Payload)
	if err != nil {
		return nil, false, fmt.Errorf("postgres: JobPut %q: %w", j.Name, err)
	}
	var dependsOn any // nil binds NULL: a nil slice reads back nil, an empty one empty
	if j.DependsOn != nil {
		dependsOn = j.DependsOn
	}
	alerts, err := alertRulesText(j.Alerts)
	if err != nil {
		return nil, false, fmt.Errorf("postgres: JobPut %q: alerts: %w", j.Name, err)
	}
	job, err := scanJob(t.q.QueryRow(ctx, sqlJobPut, j.Name, j.Type, j.Group, payload, j.Schedule, j.Timezone,
		dependsOn, j.Misfire, int32(j.MisfireMax), j.Overlap, j.Routing, int32(j.Priority), int64(j.Timeout),
		int32(j.Retries), int32(j.Shards), j.Paused, nullTime(j.NextFire), p.Now, cleanText(j.CallbackURL),
		int64(j.Keep), int32(j.KeepLast), j.TriggerRule, alerts, j.MinSuccess, j.Merge))
	if err != nil {
		return nil, false, t.s.wrap("JobPut", err)
	}
	return job, job.Version == 1, nil
}

// JobDelete implements store.Tx.
func (t *tx) JobDelete(ctx context.Context, name string) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, sqlJobDelete, name)
	if err != nil {
		return t.s.wrap("JobDelete", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: JobDelete %q: %w", name, store.ErrNotFound)
	}
	return nil
}

// JobPause implements store.Tx.
func (t *tx) JobPause(ctx context.Context, p store.JobPauseParams) (*store.Job, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	j, err := scanJob(t.q.QueryRow(ctx, sqlJobPause, p.Name, p.Paused, nullTime(p.NextFire), p.Now))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: JobPause %q: %w", p.Name, store.ErrNotFound)
	}
	if err != nil {
		return nil, t.s.wrap("JobPause", err)
	}
	return j, nil
}

// JobListDue implements store.Tx.
func (t *tx) JobListDue(ctx context.Context, p store.JobListDueParams) ([]*store.Job, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	rows, err := t.q.Query(ctx, sqlJobListDue, p.Now, int64(p.Limit))
	if err != nil {
		return nil, t.s.wrap("JobListDue", err)
	}
	jobs, err := collectJobs(rows)
	if err != nil {
		return nil, t.s.wrap("JobListDue", err)
	}
	return jobs, nil
}

// JobAdvance implements store.Tx.
func (t *tx) JobAdvance(ctx context.Context, ps []store.JobAdvanceParams) ([]bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	out := make([]bool, len(ps))
	if len(ps) == 0 {
		return out, nil
	}
	names := make([]string, len(ps))
	froms := make([]pgtype.Timestamptz, len(ps))
	tos := make([]pgtype.Timestamptz, len(ps))
	nows := make([]time.Time, len(ps))
	for i, p := range ps {
		names[i], froms[i], tos[i], nows[i] = p.Name, nullTime(p.From), nullTime(p.To), p.Now
	}
	rows, err := t.q.Query(ctx, sqlJobAdvance, names, froms, tos, nows)
	if err != nil {
		return nil, t.s.wrap("JobAdvance", err)
	}
	var ord int64
	_, err = pgx.ForEachRow(rows, []any{&ord}, func() error {
		if ord >= 1 && int(ord) <= len(out) {
			out[ord-1] = true
		}
		return nil
	})
	if err != nil {
		return nil, t.s.wrap("JobAdvance", err)
	}
	return out, nil
}

// RunListActiveForJob implements store.Tx.
func (t *tx) RunListActiveForJob(ctx context.Context, job string, limit int) ([]*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if job == "" || limit <= 0 {
		return nil, nil
	}
	rows, err := t.q.Query(ctx, sqlListActiveForJob, job, int64(limit))
	if err != nil {
		return nil, t.s.wrap("RunListActiveForJob", err)
	}
	runs, err := collectRuns(rows)
	if err != nil {
		return nil, t.s.wrap("RunListActiveForJob", err)
	}
	return runs, nil
}

// RunUnblockNext implements store.Tx. It locks the job's row (or, for a
// job without one, an advisory lock standing for it), so that unblocks of
// one job, and cron ticks holding its row, take turns; then, in a
// statement whose snapshot follows the lock, looks for the oldest blocked
// run with no run of the job live, and queues it. A candidate whose run
// another transaction changed meanwhile (a cancel) is not queued, and the
// next one is looked for.
func (t *tx) RunUnblockNext(ctx context.Context, job string, now time.Time) (*Run, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if job == "" {
		return nil, nil
	}
	tag, err := t.q.Exec(ctx, sqlLockJob, job)
	if err != nil {
		return nil, t.s.wrap("RunUnblockNext", err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := t.q.Exec(ctx, sqlLockNoJob, t.s.jobLockID(job)); err != nil {
			return nil, t.s.wrap("RunUnblockNext", err)
		}
	}
	for range 1000 {
		var seq int64
		err := t.q.QueryRow(ctx, sqlUnblockCandidate, job).Scan(&seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, t.s.wrap("RunUnblockNext", err)
		}
		rows, err := t.q.Query(ctx, sqlUnblock, seq, job)
		if err != nil {
			return nil, t.s.wrap("RunUnblockNext", err)
		}
		runs, err := collectRuns(rows)
		if err != nil {
			return nil, t.s.wrap("RunUnblockNext", err)
		}
		if len(runs) == 1 {
			t.counts.Move(runs[0].Group, runs[0].Job, store.StatusBlocked, store.StatusQueued)
			return runs[0], nil
		}
		// Changed by a transaction that committed while the update waited
		// for it: the next statement's snapshot shows the change.
	}
	return nil, fmt.Errorf("postgres: RunUnblockNext: job %q: gave up after 1000 candidates changed under it", job)
}

// jobLockID is the advisory lock that stands for the row of a job that
// has none; advisory locks are per database, so the schema is part of it.
func (s *Store) jobLockID(job string) int64 {
	sum := sha256.Sum256([]byte("pluto job " + s.schema + "\x00" + job))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}
