-- +goose Up

-- Feedback: a run's outcome POSTed to its callback URL (store/callbacks.go).
--
-- The delivery state is kept in runs, in columns no index names, so the
-- state changes of runs stay HOT updates: callback_state is '' (nothing
-- owed), 'pending', 'delivered' or 'failed'; callback_next_at is set while
-- a delivery is pending (when it is due, or when the claim of one in
-- progress lapses); callback_attempts counts claims. Adding columns with
-- constant defaults rewrites nothing.
ALTER TABLE runs
    ADD COLUMN callback_url          text,
    ADD COLUMN callback_state        text    NOT NULL DEFAULT '',
    ADD COLUMN callback_attempts     integer NOT NULL DEFAULT 0,
    ADD COLUMN callback_next_at      timestamptz,
    ADD COLUMN callback_error        text    NOT NULL DEFAULT '',
    ADD COLUMN callback_delivered_at timestamptz;

-- callbacks: the pending deliveries, in due order — a side table kept like
-- queue and pending (00001_init.sql). A row is inserted by the statement
-- that makes a run with a callback URL terminal (finish, cancel, a skipped
-- insert), re-inserted with the lease by the claim, and deleted when the
-- outcome is recorded. A row whose run no longer owes a delivery (it was
-- retried) is dropped by the next claim that reaches it; no primary key,
-- so such a row never makes an insert fail.
CREATE TABLE callbacks (
    next_at timestamptz NOT NULL,
    seq     bigint      NOT NULL
);

CREATE INDEX callbacks_due ON callbacks (next_at, seq);
CREATE INDEX callbacks_seq ON callbacks (seq);

-- A job's callback URL, copied into its runs ('' for none).
ALTER TABLE jobs ADD COLUMN callback_url text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE jobs DROP COLUMN callback_url;
DROP TABLE callbacks;
ALTER TABLE runs
    DROP COLUMN callback_delivered_at,
    DROP COLUMN callback_error,
    DROP COLUMN callback_next_at,
    DROP COLUMN callback_attempts,
    DROP COLUMN callback_state,
    DROP COLUMN callback_url;
