-- +goose Up

-- dispatched_at: when the run's current attempt was claimed, set by the
-- claim's UPDATE; NULL before the first claim. Not indexed: the update
-- stays HOT. Adding a nullable column without a default rewrites nothing.
ALTER TABLE runs ADD COLUMN dispatched_at timestamptz;

-- run_attempts: a run's attempts that ended without ending the run
-- (store/attempts.go): a retry after a failure or a timeout, an attempt
-- lost with its worker or server and requeued, or the last attempt of a
-- terminal run an operator retried. The run's current attempt is its runs
-- row. Only those rare changes write here, never a plain finish; a run
-- deleted from runs takes its rows with it (retention.go). outcome is
-- failed, timed_out, lost, or the terminal status an operator retry
-- ended.
CREATE TABLE run_attempts (
    run_id        text        COLLATE "C" NOT NULL,
    attempt       integer     NOT NULL,
    worker_id     text        NOT NULL DEFAULT '',
    dispatched_at timestamptz,
    started_at    timestamptz,
    ended_at      timestamptz NOT NULL,
    outcome       text        NOT NULL,
    error         text        NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, attempt)
);

-- +goose Down
DROP TABLE run_attempts;
ALTER TABLE runs DROP COLUMN dispatched_at;
