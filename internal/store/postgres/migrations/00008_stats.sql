-- +goose Up

-- Run counters per (group, job, status), kept by the write path
-- (stats.go). Several servers commit at once, so transactions never
-- update a shared counter row: each appends its changes to
-- run_count_deltas (no key, no index: an insert conflicts with nothing),
-- and a fold — one server at a time, under a transaction-level advisory
-- lock — moves them into run_counts. A read adds the two in one
-- statement (one snapshot), so it sees each change exactly once.
CREATE TABLE run_counts (
    grp    text COLLATE "C" NOT NULL,
    job    text COLLATE "C" NOT NULL,
    status text COLLATE "C" NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (grp, job, status)
);

CREATE TABLE run_count_deltas (
    grp    text COLLATE "C" NOT NULL,
    job    text COLLATE "C" NOT NULL,
    status text COLLATE "C" NOT NULL,
    n      bigint NOT NULL
);

INSERT INTO run_counts (grp, job, status, n)
    SELECT grp, job, status, count(*) FROM runs GROUP BY grp, job, status;

-- prev_status: the status a run had before its last finish. A finish
-- moves a run that is dispatched OR running; "prev_status = status" in
-- its SET (which reads the old row) lets RETURNING say which. No index
-- names it, so the update stays HOT.
ALTER TABLE runs ADD COLUMN prev_status text;

-- +goose Down
ALTER TABLE runs DROP COLUMN prev_status;
DROP TABLE run_count_deltas;
DROP TABLE run_counts;
