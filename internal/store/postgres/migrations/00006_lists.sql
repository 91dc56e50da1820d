-- +goose Up

-- Lists at any size (store/listq). Each filter of RunList that names a
-- column fixed at insert gets an index; none names a column a state
-- change writes (status, worker_id, started_at, finished_at, …), so every
-- state change stays a HOT update. The filters on those columns are
-- tested on the rows a list reads, within a scan budget (listq).
-- (grp, seq) and (type, seq) are read as one ordered range per value.
CREATE INDEX runs_grp ON runs (grp, seq);
CREATE INDEX runs_type ON runs (type, seq);
-- runs_job_slot holds cron slots only; a job's whole history needs its
-- own index. Partial: runs of no job (the hot path) never write it.
CREATE INDEX runs_job ON runs (job, seq) WHERE job <> '';
-- No index on created_at: time bounds are found by a binary search over
-- seq (store/listq/bounds.go).

-- ended: the runs that ended failed, cancelled, timed_out or skipped —
-- the statuses people list and few runs end in — by seq; a side table
-- kept like queue and pending (00001_init.sql), since an index naming
-- status would make every state change of runs non-HOT. A row is written
-- by the statement that ends the run that way (finish, cancel, a skipped
-- insert) and deleted by a retry. A retry that waited for the finish it
-- races can miss the row (its snapshot predates it): lists re-test the
-- status on runs, so such a row costs a step of a walk, never a wrong
-- answer, and a later end of the run finds it there (ON CONFLICT DO
-- NOTHING). Succeeded finishes, nearly all of them, never touch it.
CREATE TABLE ended (
    seq bigint PRIMARY KEY
);

INSERT INTO ended (seq) SELECT seq FROM runs WHERE status IN ('failed', 'cancelled', 'timed_out', 'skipped');

-- +goose Down
DROP TABLE ended;
DROP INDEX runs_job;
DROP INDEX runs_type;
DROP INDEX runs_grp;
