-- +goose Up

-- run_log_stats: one row per run that has log lines, the counters the
-- per-run log caps are decided on (store/logcap.go): lines and text bytes
-- kept (the cap marker not counted) and lines dropped past the caps, all
-- attempts together. LogAppend locks a run's row (in run id order) for
-- the transaction that appends its lines, so servers appending to one run
-- at once cannot both pass the cap. A run deleted from runs must take its
-- row here with it.
CREATE TABLE run_log_stats (
    run_id  text   COLLATE "C" PRIMARY KEY,
    lines   bigint NOT NULL DEFAULT 0,
    bytes   bigint NOT NULL DEFAULT 0,
    dropped bigint NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE run_log_stats;
