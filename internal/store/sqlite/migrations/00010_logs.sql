-- +goose Up

-- run_log_stats: one row per run that has log lines, the counters the
-- per-run log caps are decided on (store/logcap.go): lines and text bytes
-- kept (the cap marker not counted) and lines dropped past the caps, all
-- attempts together. Written in the transaction that appends the lines; a
-- run deleted from runs must take its row here with it.
CREATE TABLE run_log_stats (
    run_id  TEXT    PRIMARY KEY,
    lines   INTEGER NOT NULL DEFAULT 0,
    bytes   INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- +goose Down
DROP TABLE run_log_stats;
