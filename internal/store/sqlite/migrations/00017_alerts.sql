-- +goose Up

-- Alerts (store/alerts.go).
--
-- A job's alert rules, as the JSON of store.AlertRules; NULL for none (its
-- group's default rules apply), so no rules and empty ones stay apart.
ALTER TABLE jobs ADD COLUMN alerts TEXT;

-- alerts: the alerts that fired, one per key (subject and rule): a second
-- insert of a key does nothing. seq is insertion order, the list cursor;
-- AUTOINCREMENT so that a seq is never reused, even after the newest rows
-- are deleted. run_id is NULL for a slot without a run. Times are Unix
-- microseconds.
--
-- The webhook delivery, as a run's callback (00004_callbacks): state is ''
-- (no webhook), 'pending', 'delivered' or 'failed'; next_at is set exactly
-- while a delivery is pending (when it is due, or when the claim of one in
-- progress lapses); attempts counts claims.
CREATE TABLE alerts (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    key          TEXT    NOT NULL UNIQUE,
    job          TEXT    NOT NULL DEFAULT '',
    grp          TEXT    NOT NULL DEFAULT '',
    run_id       TEXT,
    logical_time INTEGER,
    rule         TEXT    NOT NULL,
    reason       TEXT    NOT NULL DEFAULT '',
    webhook      TEXT    NOT NULL DEFAULT '',
    format       TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    state        TEXT    NOT NULL DEFAULT '',
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER,
    last_error   TEXT    NOT NULL DEFAULT '',
    delivered_at INTEGER
);

-- Listings, newest first: all alerts walk the rowid (seq) down; a job's
-- and a run's walk these.
CREATE INDEX alerts_job ON alerts (job, seq);
CREATE INDEX alerts_run ON alerts (run_id, seq) WHERE run_id IS NOT NULL;

-- The pending deliveries, in due order (AlertListDue, AlertNextAt), like
-- runs_callback_due.
CREATE INDEX alerts_due ON alerts (next_at, seq) WHERE next_at IS NOT NULL;

-- group_alerts: a group's default alert rules (the JSON of
-- store.AlertRules), for the jobs of the group without rules of their own.
CREATE TABLE group_alerts (
    grp        TEXT    PRIMARY KEY,
    rules      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE group_alerts;
DROP TABLE alerts;
ALTER TABLE jobs DROP COLUMN alerts;
