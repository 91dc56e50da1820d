-- +goose Up

-- Fan-out (store/fanout.go, fanout.go): a parent run split into child
-- runs, its join state kept here.
--
-- shard_count: on a parent and on each of its children, the number of
-- children; 0 on every other run. A constant default: adding the column
-- rewrites nothing.
ALTER TABLE runs ADD COLUMN shard_count INTEGER NOT NULL DEFAULT 0;

-- A parent's runs (its children and its merge run) by parent: runs_parent
-- in seq order (the rowid ends each entry), for RunList's Parent filter;
-- runs_parent_shard in shard order, for FanoutResults. Partial: runs
-- without a parent — the hot path — never write them, and neither column
-- ever changes, so no state change touches them.
CREATE INDEX runs_parent ON runs (parent_id) WHERE parent_id <> '';
CREATE INDEX runs_parent_shard ON runs (parent_id, shard) WHERE parent_id <> '';

-- fanouts: one row per parent. ended counts its children in a terminal
-- status, failed those of them not succeeded; done is set when the parent
-- stops running (FanoutFinish, RunCancel), which takes it out of
-- fanouts_open, the fan-outs FanoutListJoinable walks.
CREATE TABLE fanouts (
    parent_id   TEXT    PRIMARY KEY,
    total       INTEGER NOT NULL,
    ended       INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    min_success INTEGER NOT NULL,
    merge       TEXT    NOT NULL DEFAULT '',
    merge_id    TEXT    NOT NULL DEFAULT '',
    done        INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE INDEX fanouts_open ON fanouts (parent_id) WHERE done = 0;

-- The counters are kept by the statements that move a child (a run with
-- shard_count > 0 and a parent) into or out of a terminal status, in the
-- same transaction (sqlite/fanout.go). Not a trigger: SQLite runs a row
-- trigger's program — its WHEN clause is evaluated inside it — for every
-- row of every UPDATE that sets status, and the hot start and finish,
-- one statement per run, paid about 1 µs per run for it; an INSERT
-- trigger makes SQLite stage every multi-row insert in a temporary table.

-- +goose Down
DROP TABLE fanouts;
DROP INDEX runs_parent_shard;
DROP INDEX runs_parent;
ALTER TABLE runs DROP COLUMN shard_count;
