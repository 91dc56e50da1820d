-- +goose Up

-- Fan-out (store/fanout.go, fanout.go): a parent run split into child
-- runs, its join state kept here.
--
-- shard_count: on a parent and on each of its children, the number of
-- children; 0 on every other run. A constant default rewrites nothing, and
-- no index names it: updates stay HOT.
ALTER TABLE runs ADD COLUMN shard_count integer NOT NULL DEFAULT 0;

-- parent_id is matched like the other names: byte order. (Only the
-- collation changes, before any index names the column: no rewrite.)
ALTER TABLE runs ALTER COLUMN parent_id TYPE text COLLATE "C";

-- A parent's runs (its children and its merge run): runs_parent in seq
-- order, for RunList's Parent filter (store/listq reads (lead, seq)
-- ranges), runs_parent_shard in shard order, for FanoutResults. Partial:
-- runs without a parent — the hot path — never write them; parent_id and
-- shard never change, so updates stay HOT.
CREATE INDEX runs_parent ON runs (parent_id, seq) WHERE parent_id <> '';
CREATE INDEX runs_parent_shard ON runs (parent_id, shard) WHERE parent_id <> '';

-- fanouts: one row per parent; done is set when the parent stops running
-- (FanoutFinish, RunCancel), which takes it out of fanouts_open, the
-- fan-outs FanoutListJoinable reads.
--
-- The counters are ended (children in a terminal status) and failed (of
-- those, not succeeded): the row's plus the unfolded rows of
-- fanout_deltas. The Tx methods that move a child into or out of a
-- terminal status (postgres/fanout.go) never update a fanouts row:
-- several servers end children of one parent at once, and an update of
-- the shared row would serialise their commits on its lock — and
-- deadlock two batches ending children of two parents in opposite
-- orders, which with random ids is the common case. They append to
-- fanout_deltas instead (no key: an insert conflicts with nothing), like
-- the run counters (00008_stats.sql). The counters' fold folds them into
-- the rows of parents no other transaction holds (it never waits), and
-- every read adds the unfolded ones in the same statement.
--
-- Not triggers on runs: a table with an AFTER UPDATE row trigger has the
-- old version of every row an UPDATE changes fetched again for it, WHEN
-- clause or not, and the hot start paid about 2 µs of server CPU per run
-- for it (BenchmarkStore/Start, 11.4 → 14.8 pg-cpu-µs/run).
CREATE TABLE fanouts (
    parent_id   text    COLLATE "C" PRIMARY KEY,
    total       integer NOT NULL,
    ended       integer NOT NULL DEFAULT 0,
    failed      integer NOT NULL DEFAULT 0,
    min_success integer NOT NULL,
    merge       text    NOT NULL DEFAULT '',
    merge_id    text    NOT NULL DEFAULT '',
    done        boolean NOT NULL DEFAULT false
);

CREATE INDEX fanouts_open ON fanouts (parent_id) WHERE NOT done;

CREATE TABLE fanout_deltas (
    parent_id text    COLLATE "C" NOT NULL,
    ended     integer NOT NULL,
    failed    integer NOT NULL
);

CREATE INDEX fanout_deltas_parent ON fanout_deltas (parent_id);

-- +goose Down
DROP TABLE fanout_deltas;
DROP TABLE fanouts;
DROP INDEX runs_parent_shard;
DROP INDEX runs_parent;
ALTER TABLE runs ALTER COLUMN parent_id TYPE text COLLATE "default";
ALTER TABLE runs DROP COLUMN shard_count;
