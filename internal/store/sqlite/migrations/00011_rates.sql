-- +goose Up

-- Throughput and dispatch latency in time buckets (store/rates.go),
-- written by the transactions that end and start runs, one upsert per
-- touched bucket before COMMIT (rates.go). The primary key leads with the
-- bucket, so a window is one range of it, the current buckets are at the
-- end of the B-tree (the write path touches few pages) and pruning
-- deletes a range.
--
-- run_rates: runs ended per (group, job, terminal status), res 60 (minute
-- buckets: bucket = unix seconds / 60) and res 3600 (hour buckets).
CREATE TABLE run_rates (
    res    INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    grp    TEXT NOT NULL,
    job    TEXT NOT NULL,
    status TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (res, bucket, grp, job, status)
) WITHOUT ROWID;

-- run_latency: starts per (minute, group, latency histogram bucket le).
CREATE TABLE run_latency (
    bucket INTEGER NOT NULL,
    grp    TEXT NOT NULL,
    le     INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (bucket, grp, le)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE run_latency;
DROP TABLE run_rates;
