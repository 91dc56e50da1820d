-- +goose Up

-- backfills: a job run over the past slots of [from_t, to_t]
-- (store/backfill.go); next_t NULL once every slot was started,
-- finished_at NULL until it ended.
CREATE TABLE backfills (
    id          text        COLLATE "C" PRIMARY KEY,
    job         text        NOT NULL,
    from_t      timestamptz NOT NULL,
    to_t        timestamptz NOT NULL,
    parallel    integer     NOT NULL,
    cascade     boolean     NOT NULL,
    descending  boolean     NOT NULL,
    rerun       text        NOT NULL,
    state       text        NOT NULL,
    next_t      timestamptz,
    started     integer     NOT NULL DEFAULT 0,
    kept        integer     NOT NULL DEFAULT 0,
    version     bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    finished_at timestamptz
);

-- +goose Down
DROP TABLE backfills;
