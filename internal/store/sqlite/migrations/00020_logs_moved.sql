-- +goose Up

-- Log lines live in a database of their own from this version on
-- (logdb.go): the store copied them there before this migration runs.
DROP TABLE run_logs;
DROP TABLE run_log_stats;

-- log_purge: runs deleted by retention whose log lines (in the other
-- database) may not be deleted yet. Written in the transaction that
-- deletes the runs; a row goes once the lines are gone, and the rows left
-- by a crash are purged when the store opens.
CREATE TABLE log_purge (
    run_id TEXT PRIMARY KEY
) WITHOUT ROWID;

-- +goose Down
DROP TABLE log_purge;

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

CREATE TABLE run_log_stats (
    run_id  TEXT    PRIMARY KEY,
    lines   INTEGER NOT NULL DEFAULT 0,
    bytes   INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
