-- +goose Up

-- run_counts: the number of stored runs per (group, job, status), kept
-- incrementally by the write path (stats.go): every statement that
-- changes a run's status reports the change to its transaction, which
-- writes one upsert per touched counter before COMMIT. Not triggers, nor
-- an index on status: SQLite evaluates either on every status change
-- (see 00007_lists.sql for what that cost).
CREATE TABLE run_counts (
    grp    TEXT NOT NULL,
    job    TEXT NOT NULL,
    status TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (grp, job, status)
) WITHOUT ROWID;

INSERT INTO run_counts (grp, job, status, n)
    SELECT grp, job, status, count(*) FROM runs GROUP BY grp, job, status;

-- prev_status: the status a run had before its last finish or lost-run
-- requeue. Those statements move a run that is dispatched OR running;
-- "prev_status = status" in their SET (which reads the old row) lets
-- RETURNING say which, so the counters need no read before the write. No
-- index names it.
ALTER TABLE runs ADD COLUMN prev_status TEXT;

-- +goose Down
ALTER TABLE runs DROP COLUMN prev_status;
DROP TABLE run_counts;
