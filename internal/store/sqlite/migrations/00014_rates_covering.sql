-- +goose Up

-- run_rates_bucket gains job and n and covers the reads by bucket range:
-- RunStats reads the buckets still being written (the last two minutes,
-- the last hour or two) and, once a minute, the newly settled ones
-- (store.RateCache), and the series read by bucket too. Without n each
-- row was a second lookup in the table: 1,500 rows took 5 ms instead of
-- 1.6. A write that changes a bucket's n now also moves its index entry:
-- one or two rows per key and transaction.
DROP INDEX run_rates_bucket;
CREATE INDEX run_rates_bucket ON run_rates (res, bucket, grp, status, job, n);

-- +goose Down
DROP INDEX run_rates_bucket;
CREATE INDEX run_rates_bucket ON run_rates (res, bucket, grp, status);
