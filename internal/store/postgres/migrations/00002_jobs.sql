-- +goose Up

-- Jobs: stored definitions, fired by the leader's cron loop. A row is
-- written when a job is saved, paused or resumed and when a slot fires
-- (next_fire moves on), so it is not kept HOT-only like runs: the table is
-- small and next_fire, which every advance changes, is indexed anyway.
-- NULL next_fire means no slot to fire; NULL depends_on and payload keep a
-- nil slice and a nil payload apart from empty ones. timeout is in
-- nanoseconds, as in runs.
CREATE TABLE jobs (
    name        text        COLLATE "C" PRIMARY KEY,
    type        text        NOT NULL,
    grp         text        NOT NULL,
    payload     jsonb,
    schedule    text        NOT NULL DEFAULT '',
    timezone    text        NOT NULL DEFAULT '',
    depends_on  text[],
    misfire     text        NOT NULL DEFAULT '',
    misfire_max integer     NOT NULL DEFAULT 0,
    overlap     text        NOT NULL DEFAULT '',
    routing     text        NOT NULL DEFAULT '',
    priority    integer     NOT NULL DEFAULT 0,
    timeout     bigint      NOT NULL DEFAULT 0, -- nanoseconds
    retries     integer     NOT NULL DEFAULT 0,
    shards      integer     NOT NULL DEFAULT 0,
    paused      boolean     NOT NULL DEFAULT false,
    next_fire   timestamptz,
    version     bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- The due jobs, in firing order (JobListDue, JobNextFire).
CREATE INDEX jobs_due ON jobs (next_fire, name) WHERE NOT paused AND next_fire IS NOT NULL;

-- runs.job is matched and ordered like the other names: byte order. (Only
-- the collation changes: no rewrite of the table.)
ALTER TABLE runs ALTER COLUMN job TYPE text COLLATE "C";

-- One run per slot of a job: (job, logical_time) is unique when both are
-- set. Neither column changes after insert, so state changes stay HOT.
CREATE UNIQUE INDEX runs_job_slot ON runs (job, logical_time) WHERE job <> '' AND logical_time IS NOT NULL;

-- Side tables, kept like queue, pending and active (00001_init.sql): a row
-- is written in the statement that moves its run into the state and
-- deleted, while the run is locked, by the one that moves it out.
--
-- blocked: the runs waiting for upstream runs (status blocked), by job
-- ('' for runs of no job), oldest first.
CREATE TABLE blocked (
    job text   COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (job, seq)
);

-- job_live: the runs of jobs (job <> '') that are pending, queued,
-- dispatched or running, oldest first. A row is written when a run of a
-- job is born or brought back to life (insert, retry, unblock) and deleted
-- when it reaches a terminal status (finish, cancel); the moves between
-- those four states leave it alone. With blocked, it lists a job's
-- unfinished runs without reading its finished ones, or any other job's.
CREATE TABLE job_live (
    job text   COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (job, seq)
);

INSERT INTO blocked (job, seq) SELECT job, seq FROM runs WHERE status = 'blocked';
INSERT INTO job_live (job, seq) SELECT job, seq FROM runs
    WHERE job <> '' AND status IN ('pending', 'queued', 'dispatched', 'running');

-- +goose Down
DROP TABLE job_live;
DROP TABLE blocked;
DROP INDEX runs_job_slot;
ALTER TABLE runs ALTER COLUMN job TYPE text COLLATE "default";
DROP TABLE jobs;
