-- +goose Up

-- Every object lives in the store's schema: the connection's search_path
-- names it alone, so nothing here is schema-qualified.
--
-- Tables hold no foreign keys (each costs a lookup per written row); the
-- statements keep runs, queue and active consistent.

-- runs: one row per run. seq is insertion order: the FIFO tie-break of the
-- claim order and the list cursor. Payloads and results are JSON text,
-- stored as sent (as the SQLite backend does: no re-encoding, and a worker
-- that reports invalid JSON cannot fail a group commit). server_id is
-- non-NULL exactly while a worker holds the run (dispatched or running).
--
-- Only columns a run never changes are indexed (seq, id, key), so every
-- state change is a HOT update: a new row version on the same page and no
-- index entry at all. fillfactor 50 leaves room for those versions. The
-- runs in a state the scheduler looks up — queued, pending, active — are
-- found through the queue, pending and active tables below instead of
-- partial indexes on status, which would make every state change write an
-- entry in every index of runs. Text columns that are matched or ordered
-- use the "C" collation: byte order, as in the SQLite backend, and
-- comparisons that are a memcmp.
CREATE TABLE runs (
    seq          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           text        COLLATE "C" NOT NULL UNIQUE,
    job          text        NOT NULL DEFAULT '',
    parent_id    text        NOT NULL DEFAULT '',
    shard        integer,
    type         text        COLLATE "C" NOT NULL,
    grp          text        COLLATE "C" NOT NULL,
    payload      text,
    priority     integer     NOT NULL DEFAULT 0,
    status       text        NOT NULL,
    attempt      integer     NOT NULL DEFAULT 0,
    max_attempts integer     NOT NULL DEFAULT 0,
    failures     integer     NOT NULL DEFAULT 0,
    key          text        COLLATE "C",
    logical_time timestamptz,
    run_at       timestamptz NOT NULL,
    created_at   timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz,
    worker_id    text        NOT NULL DEFAULT '',
    server_id    text        COLLATE "C",
    result       text,
    error        text        NOT NULL DEFAULT '',
    timeout      bigint      NOT NULL DEFAULT 0, -- nanoseconds
    routing      text        NOT NULL DEFAULT '',
    routing_key  text        NOT NULL DEFAULT ''
) WITH (fillfactor = 50);

-- Idempotency keys; NULL means none.
CREATE UNIQUE INDEX runs_key ON runs (key) WHERE key IS NOT NULL;

-- The queues: one row per queued run, in one range per (group, type) of
-- queue_order, in claim order. A row is inserted when its run becomes
-- queued and deleted when the run leaves the queue, in the same statement.
CREATE TABLE queue (
    grp      text        COLLATE "C" NOT NULL,
    type     text        COLLATE "C" NOT NULL,
    priority integer     NOT NULL,
    run_at   timestamptz NOT NULL,
    seq      bigint      NOT NULL
);

CREATE INDEX queue_order ON queue (grp, type, priority DESC, run_at, seq);

-- Runs waiting for their time (delays, retry backoff), in promotion order;
-- kept like the queue.
CREATE TABLE pending (
    run_at timestamptz NOT NULL,
    seq    bigint      NOT NULL
);

CREATE INDEX pending_order ON pending (run_at, seq);

-- The runs a worker holds (dispatched or running), by the server holding
-- them (runs.server_id, kept in step).
CREATE TABLE active (
    seq       bigint PRIMARY KEY,
    server_id text   COLLATE "C" NOT NULL
);

CREATE INDEX active_server ON active (server_id);

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
    id         text        COLLATE "C" PRIMARY KEY,
    http       text        NOT NULL DEFAULT '',
    grpc       text        NOT NULL DEFAULT '',
    started_at timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL
);

-- +goose Down
DROP TABLE servers;
DROP TABLE leader;
DROP TABLE run_logs;
DROP TABLE active;
DROP TABLE pending;
DROP TABLE queue;
DROP TABLE runs;
