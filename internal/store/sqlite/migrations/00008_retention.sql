-- +goose Up

-- Retention (store/retention.go, internal/engine/retention.go): the
-- leader deletes finished runs once they are older than the retention of
-- their status or of their job.
--
-- No index and no side table finds expired runs. An index naming status
-- or finished_at is written by every state change (a partial index on
-- status doubled the cost of a start: 00007_lists.sql), and a side table
-- of finish times would add a write to the succeeded finish, the hottest
-- statement. Instead retention walks runs in seq order (the rowid) from
-- a cursor, a bounded number of rows per transaction, and tests each
-- row's own status and finished_at, so a run created long ago and
-- finished recently is never deleted early. The walk is short because
-- deleted rows are gone: it reads the runs kept (unfinished ones, longer
-- retentions) and the expired ones, and stops at the first run created
-- after the latest cutoff (finished_at >= created_at). With succeeded
-- runs kept for ever it walks ended instead; a job with a retention of
-- its own is walked through runs_job.
--
-- keep: nanoseconds, 0 for the server's retention per status;
-- keep_last: the job's newest finished runs kept whatever their age.
ALTER TABLE jobs ADD COLUMN keep INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN keep_last INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE jobs DROP COLUMN keep_last;
ALTER TABLE jobs DROP COLUMN keep;
