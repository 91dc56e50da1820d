-- +goose Up

-- Alerts (store/alerts.go).
--
-- A job's alert rules, as the JSON of store.AlertRules; NULL for none (its
-- group's default rules apply), so no rules and empty ones stay apart.
-- Text, not jsonb: the store never looks inside, and the document reads
-- back as written. A nullable column without a default rewrites nothing.
ALTER TABLE jobs ADD COLUMN alerts text;

-- alerts: the alerts that fired, one per key (subject and rule): a second
-- insert of a key does nothing. seq is insertion order, the list cursor.
-- run_id is NULL for a slot without a run.
--
-- The webhook delivery, as a run's callback (00003_callbacks), but in the
-- row itself, with no side table: alerts are few and written rarely, so a
-- claim that moves an indexed next_at (not a HOT update) costs nothing
-- that matters. state is '' (no webhook), 'pending', 'delivered' or
-- 'failed'; next_at is set exactly while a delivery is pending (when it is
-- due, or when the claim of one in progress lapses); attempts counts
-- claims.
CREATE TABLE alerts (
    seq          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           text        COLLATE "C" NOT NULL UNIQUE,
    key          text        COLLATE "C" NOT NULL UNIQUE,
    job          text        COLLATE "C" NOT NULL DEFAULT '',
    grp          text        COLLATE "C" NOT NULL DEFAULT '',
    run_id       text        COLLATE "C",
    logical_time timestamptz,
    rule         text        NOT NULL,
    reason       text        NOT NULL DEFAULT '',
    webhook      text        NOT NULL DEFAULT '',
    format       text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    state        text        NOT NULL DEFAULT '',
    attempts     integer     NOT NULL DEFAULT 0,
    next_at      timestamptz,
    last_error   text        NOT NULL DEFAULT '',
    delivered_at timestamptz
);

-- Listings, newest first: all alerts walk the primary key down; a job's
-- and a run's walk these.
CREATE INDEX alerts_job ON alerts (job, seq);
CREATE INDEX alerts_run ON alerts (run_id, seq) WHERE run_id IS NOT NULL;

-- The pending deliveries, in due order (AlertListDue, AlertNextAt), like
-- runs_callback_due of the SQLite store.
CREATE INDEX alerts_due ON alerts (next_at, seq) WHERE next_at IS NOT NULL;

-- group_alerts: a group's default alert rules (the JSON of
-- store.AlertRules), for the jobs of the group without rules of their own.
CREATE TABLE group_alerts (
    grp        text        COLLATE "C" PRIMARY KEY,
    rules      text        NOT NULL,
    updated_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE group_alerts;
DROP TABLE alerts;
ALTER TABLE jobs DROP COLUMN alerts;
