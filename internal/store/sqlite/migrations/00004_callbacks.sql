-- +goose Up

-- Feedback: a run's outcome POSTed to its callback URL (store/callbacks.go).
-- callback_url is NULL for runs without one — nearly all — and the
-- statements of the hot path (the multi-row insert, the finish of such a
-- run) never name a callback column, so they pay for nothing here.
--
-- The delivery state: callback_state is '' (nothing owed), 'pending',
-- 'delivered' or 'failed'; callback_next_at is set exactly while a delivery
-- is pending (when it is due, or when the claim of one in progress lapses);
-- callback_attempts counts claims; times are Unix microseconds.
ALTER TABLE runs ADD COLUMN callback_url TEXT;
ALTER TABLE runs ADD COLUMN callback_state TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN callback_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN callback_next_at INTEGER;
ALTER TABLE runs ADD COLUMN callback_error TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN callback_delivered_at INTEGER;

-- The pending deliveries, in due order (CallbackListDue, CallbackNextAt).
-- Partial: a run enters it when it ends with a callback URL and leaves it
-- when its delivery is settled. Only statements that set callback_next_at
-- evaluate it, and the hot ones do not.
CREATE INDEX runs_callback_due ON runs (callback_next_at, seq) WHERE callback_next_at IS NOT NULL;

-- A job's callback URL, copied into its runs ('' for none).
ALTER TABLE jobs ADD COLUMN callback_url TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE jobs DROP COLUMN callback_url;
DROP INDEX runs_callback_due;
ALTER TABLE runs DROP COLUMN callback_delivered_at;
ALTER TABLE runs DROP COLUMN callback_error;
ALTER TABLE runs DROP COLUMN callback_next_at;
ALTER TABLE runs DROP COLUMN callback_attempts;
ALTER TABLE runs DROP COLUMN callback_state;
ALTER TABLE runs DROP COLUMN callback_url;
