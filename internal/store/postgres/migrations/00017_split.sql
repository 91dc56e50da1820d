-- +goose Up

-- Splits (store/fanout.go: Split, FanoutExpand): a run that fans out when
-- it is dispatched rather than when it is created — a sharded job's run,
-- or a broadcast.
--
-- split: the JSON of store.Split; NULL for none, nearly every run. Text,
-- not jsonb: the store never looks inside, and the document reads back
-- as written. Set after the insert of the few runs that have one
-- (postgres/split.go), so the inserts of the hot path bind no more
-- arrays, and cleared when FanoutExpand makes the run a parent; no index
-- names it, so both updates stay HOT. A nullable column without a
-- default rewrites nothing.
ALTER TABLE runs ADD COLUMN split text;

-- A job's fan-out, beside shards: min_success (a count, or a fraction of
-- shards below 1; 0: all) and merge (the merge run's handler type, ''
-- for none), as a submit's. Constant defaults: no rewrite.
ALTER TABLE jobs ADD COLUMN min_success double precision NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN merge text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE jobs DROP COLUMN merge;
ALTER TABLE jobs DROP COLUMN min_success;
ALTER TABLE runs DROP COLUMN split;
