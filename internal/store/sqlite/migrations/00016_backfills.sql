-- +goose Up

-- backfills: a job run over the past slots of [from_t, to_t]
-- (store/backfill.go). Times are Unix microseconds; next_t NULL once every
-- slot was started, finished_at NULL until it ended.
CREATE TABLE backfills (
    id          TEXT    PRIMARY KEY,
    job         TEXT    NOT NULL,
    from_t      INTEGER NOT NULL,
    to_t        INTEGER NOT NULL,
    parallel    INTEGER NOT NULL,
    cascade     INTEGER NOT NULL,
    descending  INTEGER NOT NULL,
    rerun       TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    next_t      INTEGER,
    started     INTEGER NOT NULL DEFAULT 0,
    kept        INTEGER NOT NULL DEFAULT 0,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    finished_at INTEGER
) WITHOUT ROWID;

-- +goose Down
DROP TABLE backfills;
