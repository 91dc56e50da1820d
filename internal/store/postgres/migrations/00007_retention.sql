-- +goose Up

-- Retention (store/retention.go, internal/engine/retention.go): the
-- leader deletes finished runs once they are older than the retention of
-- their status or of their job.
--
-- No index and no side table finds expired runs. An index naming status
-- or finished_at would make every state change of runs non-HOT
-- (00006_lists.sql), and a side table of finish times would add an
-- insert to the succeeded finish, the hottest statement. Instead
-- retention walks runs in seq order (the primary key) from a cursor, a
-- bounded number of rows per transaction, and tests each row's own status
-- and finished_at, so a run created long ago and finished recently is
-- never deleted early. The walk is short because deleted rows are gone:
-- it reads the runs kept (unfinished ones, longer retentions) and the
-- expired ones, and stops at the first run created after the latest
-- cutoff (finished_at >= created_at). With succeeded runs kept for ever
-- it walks ended instead; a job with a retention of its own is walked
-- through runs_job. The queue, pending, active, blocked and job_live
-- tables hold unfinished runs only, so deleting a finished run leaves
-- them alone; its ended and callbacks rows and its log lines go with it.
--
-- keep: nanoseconds, 0 for the server's retention per status;
-- keep_last: the job's newest finished runs kept whatever their age.
ALTER TABLE jobs ADD COLUMN keep bigint NOT NULL DEFAULT 0,
    ADD COLUMN keep_last integer NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE jobs DROP COLUMN keep_last, DROP COLUMN keep;
