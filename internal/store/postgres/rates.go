package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/internal/store"
)

// Throughput and dispatch latency (migration 00011_rates,
// store/rates.go). The transactions collect their deltas in tx.rates: a
// cancel and a skipped insert from their params, a finish from the rows
// its UPDATE … RETURNING gave back (with the params' Now), a start from
// the start time and due time (greatest(created_at, run_at)) its UPDATE
// returns. At commit they are appended, like the counters' deltas, to
// run_rate_deltas (minute buckets only) and run_latency_deltas, in the
// round trip of COMMIT; no transaction updates a shared bucket row. The
// fold (stats.go), under the same try-lock, adds the rate deltas to the
// minute and the hour buckets of run_rates, the latency deltas to
// run_latency, and prunes buckets past their keep counted back from the
// newest bucket (ranges of the primary keys). Reads add the unfolded
// deltas in the same statement.

// sqlFoldRates folds the rate and latency deltas and prunes (see
// sqlFold; it follows it, in the transaction that may hold the lock).
var sqlFoldRates = `WITH d AS (
		DELETE FROM run_rate_deltas WHERE (SELECT pg_try_advisory_xact_lock(%[1]d))
		RETURNING bucket, grp, job, status, n),
	a AS (SELECT bucket, grp, job, status, sum(n) AS n FROM d GROUP BY bucket, grp, job, status)
	INSERT INTO run_rates (res, bucket, grp, job, status, n)
	SELECT 60, bucket, grp, job, status, n FROM a
	UNION ALL
	SELECT 3600, bucket / 60, grp, job, status, sum(n) FROM a GROUP BY bucket / 60, grp, job, status
	ORDER BY 1, 2, 3, 4, 5
	ON CONFLICT (res, bucket, grp, job, status) DO UPDATE SET n = run_rates.n + excluded.n;
WITH d AS (
		DELETE FROM run_latency_deltas WHERE (SELECT pg_try_advisory_xact_lock(%[1]d))
		RETURNING bucket, grp, le, n)
	INSERT INTO run_latency (bucket, grp, le, n)
	SELECT bucket, grp, le, sum(n) FROM d GROUP BY bucket, grp, le ORDER BY bucket, grp, le
	ON CONFLICT (bucket, grp, le) DO UPDATE SET n = run_latency.n + excluded.n;
DELETE FROM run_rates WHERE (SELECT pg_try_advisory_xact_lock(%[1]d)) AND res = 60
	AND bucket <= (SELECT max(bucket) FROM run_rates WHERE res = 60) - ` + strconv.Itoa(store.RateMinuteKeep) + `;
DELETE FROM run_rates WHERE (SELECT pg_try_advisory_xact_lock(%[1]d)) AND res = 3600
	AND bucket <= (SELECT max(bucket) FROM run_rates WHERE res = 3600) - ` + strconv.Itoa(store.RateHourKeep) + `;
DELETE FROM run_latency WHERE (SELECT pg_try_advisory_xact_lock(%[1]d))
	AND bucket <= (SELECT max(bucket) FROM run_latency) - ` + strconv.Itoa(store.LatencyKeep) + `; `

const (
	// ratesFilter restricts a read to group $5 and job $6 ("" for all).
	ratesFilter = ` AND ($5 = '' OR grp = $5) AND ($6 = '' OR job = $6)`

	// sqlRatesRange: the buckets of a store.RateRange (minute buckets
	// $1..$2, hour buckets $3..$4), folded or not, for store.RateCache.
	sqlRatesRange = `SELECT res, bucket, grp, job, status, n FROM run_rates
			WHERE res = 60 AND bucket BETWEEN $1 AND $2` + ratesFilter + `
		UNION ALL
		SELECT res, bucket, grp, job, status, n FROM run_rates
			WHERE res = 3600 AND bucket BETWEEN $3 AND $4` + ratesFilter + `
		UNION ALL
		SELECT 60, bucket, grp, job, status, n FROM run_rate_deltas
			WHERE bucket BETWEEN $1 AND $2` + ratesFilter + `
		UNION ALL
		SELECT 3600, bucket / 60, grp, job, status, n FROM run_rate_deltas
			WHERE bucket / 60 BETWEEN $3 AND $4` + ratesFilter

	sqlLatency = `SELECT grp, le, sum(CASE WHEN bucket >= $1 THEN n ELSE n * $2::float8 END)::float8 FROM (
			SELECT bucket, grp, le, n FROM run_latency WHERE bucket >= $1::int8 - 1 AND ($3 = '' OR grp = $3)
			UNION ALL
			SELECT bucket, grp, le, n FROM run_latency_deltas WHERE bucket >= $1::int8 - 1 AND ($3 = '' OR grp = $3)
		) AS l
		GROUP BY grp, le ORDER BY grp, le`

	// sqlSeries: buckets [$2, $2+$3) of resolution $1 (seconds).
	sqlSeries = `SELECT bucket, grp, status, sum(n)::int8 FROM (
			SELECT bucket, grp, status, n FROM run_rates
			WHERE res = $1 AND bucket >= $2 AND bucket < $2 + $3` + seriesFilter + `
			UNION ALL
			SELECT bucket * 60 / $1, grp, status, n FROM run_rate_deltas
			WHERE bucket * 60 / $1 >= $2 AND bucket * 60 / $1 < $2 + $3` + seriesFilter + `
		) AS s
		GROUP BY bucket, grp, status ORDER BY bucket, grp, status`
	seriesFilter = ` AND ($4 = '' OR grp = $4) AND ($5 = '' OR job = $5)`
)

// ratesSQL appends the statements (each ending with "; ") that write the
// transaction's rate and latency deltas.
func (t *tx) ratesSQL(b *strings.Builder) {
	ends, _ := t.rates.Ends()
	t.s.rateCache.Written(ends)
	if len(ends) > 0 {
		b.WriteString("INSERT INTO run_rate_deltas (bucket, grp, job, status, n) VALUES ")
		i := 0
		for k, n := range ends {
			if i++; i > 1 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "(%d, %s, %s, '%s', %d)", k.Minute, quoteLiteral(k.Group), quoteLiteral(k.Job), k.Status, n)
		}
		b.WriteString("; ")
	}
	lat, _ := t.rates.Latency()
	if len(lat) > 0 {
		b.WriteString("INSERT INTO run_latency_deltas (bucket, grp, le, n) VALUES ")
		i := 0
		for k, n := range lat {
			if i++; i > 1 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "(%d, %s, %d, %d)", k.Minute, quoteLiteral(k.Group), k.Bucket, n)
		}
		b.WriteString("; ")
	}
	t.rates.Reset()
}

// readRates is the store.RateReader of s.rateCache.
func (s *Store) readRates(ctx context.Context, r store.RateRange, fn func(store.RateBucket)) error {
	rows, err := s.pool.Query(ctx, sqlRatesRange, r.MinuteFrom, r.MinuteTo, r.HourFrom, r.HourTo, r.Group, r.Job)
	if err != nil {
		return err
	}
	var (
		b      store.RateBucket
		res    int32
		status string
	)
	_, err = pgx.ForEachRow(rows, []any{&res, &b.Bucket, &b.Group, &b.Job, &status, &b.N}, func() error {
		b.Res, b.Status = int64(res), store.RunStatus(status)
		fn(b)
		return nil
	})
	return err
}

// rates adds the throughput windows and the latency of p to out.
func (s *Store) rates(ctx context.Context, p store.StatsParams, out *store.Stats) error {
	tp, err := s.rateCache.Throughput(ctx, p.Now, p.Group, p.Job, s.readRates)
	if err != nil {
		return s.wrap("RunStats", err)
	}
	out.Throughput = append(out.Throughput, tp...)
	w := store.WindowsAt(p.Now)
	rows, err := s.pool.Query(ctx, sqlLatency, w.Minute, w.MinuteWeight, p.Group)
	if err != nil {
		return s.wrap("RunStats", err)
	}
	var (
		hist store.LatencyHistograms
		grp  string
		le   int32
		n    float64
	)
	_, err = pgx.ForEachRow(rows, []any{&grp, &le, &n}, func() error {
		hist.Add(grp, int(le), n)
		return nil
	})
	if err != nil {
		return s.wrap("RunStats", err)
	}
	out.Latency = hist.Latencies()
	return nil
}

// RunSeries implements store.Store.
func (s *Store) RunSeries(ctx context.Context, p store.SeriesParams) (store.Series, error) {
	if s.closed.Load() {
		return store.Series{}, errClosed
	}
	step, first, n, ok := store.SeriesRange(p.Window, p.Now)
	if !ok {
		return store.Series{}, fmt.Errorf("postgres: RunSeries: window %q is not %q or %q", p.Window, store.SeriesHour, store.SeriesDay)
	}
	res := int64(step / time.Second)
	out := store.Series{Step: step, From: time.Unix(first*res, 0).UTC(), Steps: n}
	rows, err := s.pool.Query(ctx, sqlSeries, res, first, int64(n), p.Group, p.Job)
	if err != nil {
		return out, s.wrap("RunSeries", err)
	}
	var (
		pt     store.SeriesPoint
		bucket int64
		status string
	)
	_, err = pgx.ForEachRow(rows, []any{&bucket, &pt.Group, &status, &pt.Count}, func() error {
		pt.Start, pt.Status = time.Unix(bucket*res, 0).UTC(), store.RunStatus(status)
		out.Points = append(out.Points, pt)
		return nil
	})
	if err != nil {
		return out, s.wrap("RunSeries", err)
	}
	return out, nil
}
