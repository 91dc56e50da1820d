-- +goose Up

-- Throughput and dispatch latency in time buckets (store/rates.go),
-- written by the transactions that end and start runs, one upsert per
-- touched bucket before COMMIT (rates.go). The primary key leads with
-- (res, group, job, status): a window's read walks it in its GROUP BY
-- order, an aggregate without a sort (a sort of 30,000 rows cost 70 ms).
-- run_rates_bucket, in bucket order, serves the series (grouped by bucket,
-- group and status, again without a sort) and pruning (a range); a write
-- adds to it only when a bucket row is created, once per key and minute.
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
    PRIMARY KEY (res, grp, job, status, bucket)
) WITHOUT ROWID;

CREATE INDEX run_rates_bucket ON run_rates (res, bucket, grp, status);

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
