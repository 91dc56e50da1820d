-- +goose Up

-- Lists at any size (store/listq): the filters of RunList get an index
-- each where the column is fixed at insert, so a state change never
-- writes them. Each index entry ends in the rowid, seq, so an equality
-- range is already in list order.
CREATE INDEX runs_grp ON runs (grp);
CREATE INDEX runs_type ON runs (type);
-- runs_job_slot covers cron slots only and runs_job_active unfinished
-- runs; a job's whole history needs its own index. Partial: runs of no
-- job (the hot path) never write it.
CREATE INDEX runs_job ON runs (job) WHERE job <> '';
-- No index on created_at: time bounds are found by a binary search over
-- seq (store/listq/bounds.go).

-- ended: the runs that ended failed, cancelled, timed_out or skipped —
-- the statuses people list and few runs end in — by seq. A row is written
-- by the statement after the finish, cancel or skipped insert that ends a
-- run that way, and deleted by a retry (ended.go); a succeeded finish
-- writes nothing. Not a partial index on status, nor triggers: SQLite
-- evaluates such an index on every status change, which doubled the cost
-- of a start and made a finish 60% dearer (BenchmarkStore), and the
-- triggers cost more still.
CREATE TABLE ended (seq INTEGER PRIMARY KEY);

INSERT INTO ended (seq) SELECT seq FROM runs WHERE status IN ('failed', 'cancelled', 'timed_out', 'skipped');

-- +goose Down
DROP TABLE ended;
DROP INDEX runs_job;
DROP INDEX runs_type;
DROP INDEX runs_grp;
