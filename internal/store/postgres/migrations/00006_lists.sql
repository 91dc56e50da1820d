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
-- created_at is turned into seq bounds (listq.seqBounds); it is written
-- once, in nearly increasing order: appends at the right edge.
CREATE INDEX runs_created ON runs (created_at);

-- +goose Down
DROP INDEX runs_created;
DROP INDEX runs_job;
DROP INDEX runs_type;
DROP INDEX runs_grp;
