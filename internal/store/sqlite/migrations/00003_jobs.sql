-- +goose Up

-- Jobs: stored definitions, fired by the leader's cron loop. Times are Unix
-- microseconds like everywhere else; next_fire is NULL when the job has no
-- slot to fire. payload and depends_on (a JSON array) are NULL for nil, so
-- a nil DependsOn and an empty one stay apart. timeout is in nanoseconds,
-- as in runs.
CREATE TABLE jobs (
    name        TEXT    PRIMARY KEY,
    type        TEXT    NOT NULL,
    grp         TEXT    NOT NULL,
    payload     TEXT,
    schedule    TEXT    NOT NULL DEFAULT '',
    timezone    TEXT    NOT NULL DEFAULT '',
    depends_on  TEXT,
    misfire     TEXT    NOT NULL DEFAULT '',
    misfire_max INTEGER NOT NULL DEFAULT 0,
    overlap     TEXT    NOT NULL DEFAULT '',
    routing     TEXT    NOT NULL DEFAULT '',
    priority    INTEGER NOT NULL DEFAULT 0,
    timeout     INTEGER NOT NULL DEFAULT 0,
    retries     INTEGER NOT NULL DEFAULT 0,
    shards      INTEGER NOT NULL DEFAULT 0,
    paused      INTEGER NOT NULL DEFAULT 0,
    next_fire   INTEGER,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- The jobs the cron loop fires, in firing order (JobListDue, JobNextFire).
CREATE INDEX jobs_due ON jobs (next_fire, name) WHERE paused = 0 AND next_fire IS NOT NULL;

-- The run indexes below are partial on job <> '' (runs.job is '' for runs
-- of no job), so runs of no job — the hot path — never write them. The
-- statements that use them repeat "job <> ''" word for word: SQLite uses a
-- partial index only for a query whose WHERE clause implies its predicate.

-- One run per slot of a job: (job, logical_time) is unique when both are
-- set. RunInsert treats a conflict like one on an idempotency key.
CREATE UNIQUE INDEX runs_job_slot ON runs (job, logical_time) WHERE job <> '' AND logical_time IS NOT NULL;

-- The runs of jobs that are not terminal, by job and status, oldest first:
-- RunListActiveForJob, and RunUnblockNext (a job's oldest blocked run, and
-- whether any of its runs is pending, queued, dispatched or running). A
-- run leaves it when it ends, so it stays as small as the work in flight.
-- One index, not one per question: every state change of every run
-- evaluates the predicate of each index that mentions status (for a run of
-- no job, job <> '' settles it), and claims, starts and finishes are the
-- hot path. The statuses are an OR, not an IN list: a query that names one
-- status (status = 'blocked') implies an OR that contains it, so it may
-- use the index without repeating the whole list.
CREATE INDEX runs_job_active ON runs (job, status, seq)
    WHERE job <> '' AND (status = 'pending' OR status = 'blocked' OR status = 'queued'
        OR status = 'dispatched' OR status = 'running');

-- +goose Down
DROP INDEX runs_job_active;
DROP INDEX runs_job_slot;
DROP TABLE jobs;
