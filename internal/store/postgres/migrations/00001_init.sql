-- +goose Up

-- Every object lives in the store's schema: the connection's search_path
-- names it alone, so nothing here is schema-qualified.

-- runs: one row per run. seq is insertion order: the FIFO tie-break of the
-- claim order and the list cursor. Payloads and results are JSON text,
-- stored as sent (as the SQLite backend does: no re-encoding, and a worker
-- that reports invalid JSON cannot fail a group commit). server_id is
-- non-NULL exactly while a worker holds the run (dispatched or running).
CREATE TABLE runs (
    seq          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           text        NOT NULL UNIQUE,
    job          text        NOT NULL DEFAULT '',
    parent_id    text        NOT NULL DEFAULT '',
    shard        integer,
    type         text        NOT NULL,
    grp          text        NOT NULL,
    payload      text,
    priority     integer     NOT NULL DEFAULT 0,
    status       text        NOT NULL,
    attempt      integer     NOT NULL DEFAULT 0,
    max_attempts integer     NOT NULL DEFAULT 0,
    failures     integer     NOT NULL DEFAULT 0,
    key          text,
    logical_time timestamptz,
    run_at       timestamptz NOT NULL,
    created_at   timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz,
    worker_id    text        NOT NULL DEFAULT '',
    server_id    text,
    result       text,
    error        text        NOT NULL DEFAULT '',
    timeout      bigint      NOT NULL DEFAULT 0, -- nanoseconds
    routing      text        NOT NULL DEFAULT '',
    routing_key  text        NOT NULL DEFAULT '',
    queued       boolean     GENERATED ALWAYS AS (status = 'queued') STORED,
    pending      boolean     GENERATED ALWAYS AS (status = 'pending') STORED
) WITH (fillfactor = 80);

-- Idempotency keys; NULL means none.
CREATE UNIQUE INDEX runs_key ON runs (key) WHERE key IS NOT NULL;

-- The queues: one range per (group, type), in claim order. A run is in
-- this index only while it is queued.
CREATE INDEX runs_claim ON runs (grp, type, priority DESC, run_at, seq) WHERE queued;

-- Runs waiting for their time (delays, retry backoff), in promotion order.
CREATE INDEX runs_pending ON runs (run_at, seq) WHERE pending;

-- Runs a worker holds, by the server holding them.
CREATE INDEX runs_active ON runs (server_id) WHERE server_id IS NOT NULL;

CREATE TABLE run_logs (
    seq     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id  text        NOT NULL,
    attempt integer     NOT NULL,
    time    timestamptz NOT NULL,
    stream  text        NOT NULL,
    level   text        NOT NULL DEFAULT '',
    text    text        NOT NULL
);

CREATE INDEX run_logs_run ON run_logs (run_id, seq);

-- The leader lease: at most one row, name 'leader'. term grows by one every
-- time the lease changes hands or lapses.
CREATE TABLE leader (
    name       text        PRIMARY KEY,
    server_id  text        NOT NULL,
    term       bigint      NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Registered servers. last_seen is renewed by each server's heartbeat; it
-- is the lease under which the server holds its active runs.
CREATE TABLE servers (
    id         text        PRIMARY KEY,
    http       text        NOT NULL DEFAULT '',
    grpc       text        NOT NULL DEFAULT '',
    started_at timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL
);

-- +goose Down
DROP TABLE servers;
DROP TABLE leader;
DROP TABLE run_logs;
DROP TABLE runs;
