package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Throughput and dispatch latency (migration 00012_rates, store/rates.go).
// The transactions collect their deltas in tx.rates: a cancel and a
// skipped insert from their params, starts and finishes from the one
// aggregate read that already counts them (countMoved, stats.go), which
// also groups by the minute of the start or end and, for starts, by the
// latency bucket (latencyBucketSQL) — a few more rows per batch, no more
// statements per run. flushRates writes one upsert per touched bucket
// before COMMIT, next to the counters; when a newer minute than the last
// pruned one is written it also deletes the buckets past their keep, a
// range of run_rates_bucket (about once a minute).

// latencyBucketSQL is store.LatencyBucket of a started run in SQL, from
// microseconds: ceil(2 * log2(latency / 1 ms)), 0 up to 1 ms, at most
// LatencyBuckets-1.
var latencyBucketSQL = fmt.Sprintf(`CASE WHEN started_at - max(created_at, run_at) <= 1000 THEN 0
	ELSE min(%d, CAST(ceil(2 * log2((started_at - max(created_at, run_at)) / 1000.0)) AS INTEGER)) END`,
	store.LatencyBuckets-1)

func init() {
	wSQL[wRateAdd] = `INSERT INTO run_rates (res, bucket, grp, job, status, n) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (res, grp, job, status, bucket) DO UPDATE SET n = n + excluded.n`
	wSQL[wLatencyAdd] = `INSERT INTO run_latency (bucket, grp, le, n) VALUES (?, ?, ?, ?)
		ON CONFLICT (bucket, grp, le) DO UPDATE SET n = n + excluded.n`
	wSQL[wRatePrune] = `DELETE FROM run_rates WHERE res = ?1 AND bucket <= ?2`
	wSQL[wLatencyPrune] = `DELETE FROM run_latency WHERE bucket <= ?`
	// Buckets of a store.RateRange, each resolution a range of
	// run_rates_bucket (an OR of the two would be read through a row
	// set). The windows are summed from them by store.RateCache.
	rSQL[rRatesRange] = `SELECT res, bucket, grp, job, status, n FROM run_rates INDEXED BY run_rates_bucket
		WHERE res = 60 AND bucket BETWEEN ?1 AND ?2 AND (?5 = '' OR grp = ?5) AND (?6 = '' OR job = ?6)
		UNION ALL
		SELECT res, bucket, grp, job, status, n FROM run_rates INDEXED BY run_rates_bucket
		WHERE res = 3600 AND bucket BETWEEN ?3 AND ?4 AND (?5 = '' OR grp = ?5) AND (?6 = '' OR job = ?6)`
	rSQL[rLatency] = `SELECT grp, le, sum(CASE WHEN bucket >= ?1 THEN n ELSE n * ?2 END) FROM run_latency
		WHERE bucket >= ?1 - 1 AND (?3 = '' OR grp = ?3) GROUP BY grp, le ORDER BY grp, le`
	rSQL[rSeries] = `SELECT bucket, grp, status, sum(n) FROM run_rates INDEXED BY run_rates_bucket
		WHERE res = ?1 AND bucket >= ?2 AND bucket < ?2 + ?3 AND (?4 = '' OR grp = ?4) AND (?5 = '' OR job = ?5)
		GROUP BY bucket, grp, status ORDER BY bucket, grp, status`
}

// readRates is the store.RateReader of s.rateCache.
func (s *Store) readRates(ctx context.Context, r store.RateRange, fn func(store.RateBucket)) error {
	rows, err := s.rs[rRatesRange].QueryContext(ctx, r.MinuteFrom, r.MinuteTo, r.HourFrom, r.HourTo, r.Group, r.Job)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		b      store.RateBucket
		status string
	)
	for rows.Next() {
		if err := rows.Scan(&b.Res, &b.Bucket, &b.Group, &b.Job, &status, &b.N); err != nil {
			return err
		}
		b.Status = store.RunStatus(status)
		fn(b)
	}
	return rows.Err()
}

// flushRates writes the transaction's throughput and latency deltas, in
// the transaction, and prunes old buckets when a new minute began.
func (t *tx) flushRates() error {
	if t.rates.Empty() {
		return nil
	}
	ends, newest := t.rates.Ends()
	t.s.rateCache.Written(ends)
	for k, n := range ends {
		for _, res := range [2]int64{60, 3600} {
			t.bind()
			t.arg(res)
			t.arg(k.Minute * 60 / res)
			t.arg(k.Group)
			t.arg(k.Job)
			t.arg(string(k.Status))
			t.arg(n)
			if _, _, err := t.exec("rates", wRateAdd); err != nil {
				return err
			}
		}
	}
	lat, newestLat := t.rates.Latency()
	for k, n := range lat {
		t.bind()
		t.arg(k.Minute)
		t.arg(k.Group)
		t.arg(int64(k.Bucket))
		t.arg(n)
		if _, _, err := t.exec("rates", wLatencyAdd); err != nil {
			return err
		}
	}
	t.rates.Reset()
	return t.prune(max(newest, newestLat))
}

// prune deletes the buckets past their keep, counted back from newest,
// once per new minute.
func (t *tx) prune(newest int64) error {
	if newest <= t.w.pruned {
		return nil
	}
	t.w.pruned = newest
	for _, d := range [...]struct {
		st   wStmt
		args []int64
	}{
		{wRatePrune, []int64{60, newest - store.RateMinuteKeep}},
		{wRatePrune, []int64{3600, newest/60 - store.RateHourKeep}},
		{wLatencyPrune, []int64{newest - store.LatencyKeep}},
	} {
		t.bind()
		for _, a := range d.args {
			t.arg(a)
		}
		if _, _, err := t.exec("rates: prune", d.st); err != nil {
			return err
		}
	}
	return nil
}

// rates adds the throughput windows and the latency of p to out.
func (s *Store) rates(ctx context.Context, p store.StatsParams, out *store.Stats) error {
	tp, err := s.rateCache.Throughput(ctx, p.Now, p.Group, p.Job, s.readRates)
	if err != nil {
		return s.wrap("RunStats", err)
	}
	out.Throughput = append(out.Throughput, tp...)
	w := store.WindowsAt(p.Now)
	lrows, err := s.rs[rLatency].QueryContext(ctx, w.Minute, w.MinuteWeight, p.Group)
	if err != nil {
		return s.wrap("RunStats", err)
	}
	defer lrows.Close()
	var h store.LatencyHistograms
	for lrows.Next() {
		var (
			grp string
			le  int
			n   float64
		)
		if err := lrows.Scan(&grp, &le, &n); err != nil {
			return s.wrap("RunStats", err)
		}
		h.Add(grp, le, n)
	}
	if err := lrows.Err(); err != nil {
		return s.wrap("RunStats", err)
	}
	out.Latency = h.Latencies()
	return nil
}

// RunSeries implements store.Store.
func (s *Store) RunSeries(ctx context.Context, p store.SeriesParams) (store.Series, error) {
	if s.closed.Load() {
		return store.Series{}, errClosed
	}
	step, first, n, ok := store.SeriesRange(p.Window, p.Now)
	if !ok {
		return store.Series{}, fmt.Errorf("sqlite: RunSeries: window %q is not %q or %q", p.Window, store.SeriesHour, store.SeriesDay)
	}
	res := int64(step / time.Second)
	out := store.Series{Step: step, From: time.Unix(first*res, 0).UTC(), Steps: n}
	rows, err := s.rs[rSeries].QueryContext(ctx, res, first, n, p.Group, p.Job)
	if err != nil {
		return out, s.wrap("RunSeries", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			pt     store.SeriesPoint
			bucket int64
			status string
		)
		if err := rows.Scan(&bucket, &pt.Group, &status, &pt.Count); err != nil {
			return out, s.wrap("RunSeries", err)
		}
		pt.Start, pt.Status = time.Unix(bucket*res, 0).UTC(), store.RunStatus(status)
		out.Points = append(out.Points, pt)
	}
	if err := rows.Err(); err != nil {
		return out, s.wrap("RunSeries", err)
	}
	return out, nil
}
