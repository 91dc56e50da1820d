-- +goose Up

-- Throughput and dispatch latency in time buckets (store/rates.go). As
-- for the run counters (00008_stats.sql), transactions never update a
-- shared row: each appends its deltas to run_rate_deltas (minute buckets)
-- and run_latency_deltas at COMMIT, and the fold, under the counters'
-- advisory lock, adds them to run_rates (into the minute AND the hour
-- bucket) and run_latency, and prunes the old buckets. Reads add the
-- unfolded deltas in the same statement.
--
-- run_rates: runs ended per (group, job, terminal status), res 60 (bucket
-- = unix seconds / 60) and res 3600 (hour buckets). The key leads with
-- the bucket: a window is one range, pruning deletes a range.
CREATE TABLE run_rates (
    res    integer NOT NULL,
    bucket bigint NOT NULL,
    grp    text COLLATE "C" NOT NULL,
    job    text COLLATE "C" NOT NULL,
    status text COLLATE "C" NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (res, bucket, grp, job, status)
);

CREATE TABLE run_rate_deltas (
    bucket bigint NOT NULL,
    grp    text COLLATE "C" NOT NULL,
    job    text COLLATE "C" NOT NULL,
    status text COLLATE "C" NOT NULL,
    n      bigint NOT NULL
);

-- run_latency: starts per (minute, group, latency histogram bucket le).
CREATE TABLE run_latency (
    bucket bigint NOT NULL,
    grp    text COLLATE "C" NOT NULL,
    le     integer NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (bucket, grp, le)
);

CREATE TABLE run_latency_deltas (
    bucket bigint NOT NULL,
    grp    text COLLATE "C" NOT NULL,
    le     integer NOT NULL,
    n      bigint NOT NULL
);

-- +goose Down
DROP TABLE run_latency_deltas;
DROP TABLE run_latency;
DROP TABLE run_rate_deltas;
DROP TABLE run_rates;
