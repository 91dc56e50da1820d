-- +goose Up

-- The log lines' database: a file of its own beside the runs' database
-- (logdb.go), so that appending lines never waits for the scheduling
-- transactions' writer, nor holds it.

-- run_logs: one row per line; seq orders a run's lines (and all lines).
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

-- run_log_stats: one row per run that has log lines, the counters the
-- per-run log caps are decided on (store/logcap.go): lines and text bytes
-- kept (the cap marker not counted) and lines dropped past the caps, all
-- attempts together. Written in the transaction that appends the lines.
CREATE TABLE run_log_stats (
    run_id  TEXT    PRIMARY KEY,
    lines   INTEGER NOT NULL DEFAULT 0,
    bytes   INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- +goose Down
DROP TABLE run_log_stats;
DROP TABLE run_logs;
