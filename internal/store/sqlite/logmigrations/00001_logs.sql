-- +goose Up

-- The log lines' database: a file of its own beside the runs' database
-- (logdb.go), so that appending lines never waits for the scheduling
-- transactions' writer, nor holds it.

-- log_chunks: a run's consecutive lines, up to 64 or 32 KiB of text, in
-- one row (logchunk.go): a row a line cost SQLite ten times as much. Each
-- line keeps its own seq, which orders a run's lines (and all lines); a
-- row is keyed by its last line's.
CREATE TABLE log_chunks (
    last_seq INTEGER PRIMARY KEY,
    run_id   TEXT    NOT NULL,
    lines    BLOB    NOT NULL
);

CREATE INDEX log_chunks_run ON log_chunks (run_id, last_seq);

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
DROP TABLE log_chunks;
