-- +goose Up

-- runs: one row per run. seq is the rowid: insertion order, the FIFO
-- tie-break of the claim order and the list cursor. Times are Unix
-- microseconds (PostgreSQL's precision); optional times are NULL when unset.
-- server_id is non-NULL exactly while a worker holds the run (dispatched or
-- running), so the index that finds active runs is not touched when a run
-- goes from dispatched to running.
CREATE TABLE runs (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    job          TEXT    NOT NULL DEFAULT '',
    parent_id    TEXT    NOT NULL DEFAULT '',
    shard        INTEGER,
    type         TEXT    NOT NULL,
    grp          TEXT    NOT NULL,
    payload      TEXT,
    priority     INTEGER NOT NULL DEFAULT 0,
    status       TEXT    NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 0,
    failures     INTEGER NOT NULL DEFAULT 0,
    key          TEXT,
    logical_time INTEGER,
    run_at       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    worker_id    TEXT    NOT NULL DEFAULT '',
    server_id    TEXT,
    result       TEXT,
    error        TEXT    NOT NULL DEFAULT '',
    timeout      INTEGER NOT NULL DEFAULT 0, -- nanoseconds
    routing      TEXT    NOT NULL DEFAULT '',
    routing_key  TEXT    NOT NULL DEFAULT ''
);

-- Idempotency keys; NULL means none.
CREATE UNIQUE INDEX runs_key ON runs (key) WHERE key IS NOT NULL;

-- The queues: one range per (group, type), in claim order. A claim reads
-- the head of each type's range, so runs of a type no worker serves never
-- slow down the others.
CREATE INDEX runs_claim ON runs (grp, type, priority DESC, run_at, seq) WHERE status = 'queued';

-- Runs waiting for their time (delays, retry backoff).
CREATE INDEX runs_pending ON runs (run_at) WHERE status = 'pending';

-- Runs a worker holds, by the server holding them.
CREATE INDEX runs_active ON runs (server_id) WHERE server_id IS NOT NULL;

CREATE TABLE run_logs (
    seq     INTEGER PRIMARY KEY,
    run_id  TEXT    NOT NULL,
    attempt INTEGER NOT NULL,
    time    INTEGER NOT NULL,
    stream  TEXT    NOT NULL,
    level   TEXT    NOT NULL DEFAULT '',
    text    TEXT    NOT NULL
);

CREATE INDEX run_logs_run ON run_logs (run_id, seq);

-- +goose Down
DROP TABLE run_logs;
DROP TABLE runs;
