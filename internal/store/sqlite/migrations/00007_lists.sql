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
-- created_at is turned into seq bounds (listq.seqBounds); it is written
-- once, in nearly increasing order: appends at the right edge.
CREATE INDEX runs_created ON runs (created_at);
-- The rare terminal statuses, in seq order. A run enters it once (a
-- retry takes it out); a succeeded finish — the common one — evaluates the
-- predicate and writes nothing. The predicate text is repeated verbatim in
-- the list query (runs_read.go) so that the planner can use it.
CREATE INDEX runs_ended ON runs (seq, status) WHERE status IN ('failed', 'cancelled', 'timed_out', 'skipped');

-- +goose Down
DROP INDEX runs_ended;
DROP INDEX runs_created;
DROP INDEX runs_job;
DROP INDEX runs_type;
DROP INDEX runs_grp;
