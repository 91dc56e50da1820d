package bench

// The two time-based modes:
//
//   - cron: fire precision of the leader's cron loop. Jobs firing every
//     second (Quartz "* * * * * ?") run no-op handlers on connected
//     workers until --runs slots have fired; every run is then read back
//     and its lateness measured from its slot (logical_time).
//   - delayed: --runs runs with run_at spread over a day, submitted in
//     batches with no workers connected. It shows that the server keeps
//     far-future runs only in the store (the promoter holds one timer):
//     time to store them, the Go heap and RSS before and after, the store
//     on disk.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pluto-sched/pluto/client"
	"github.com/pluto-sched/pluto/internal/cron"
	"github.com/pluto-sched/pluto/internal/store"
)

// cronSchedule fires every second (Quartz, with seconds).
const cronSchedule = "* * * * * ?"

// cronBarP99 is the bar for fire lateness: p99 ≤ 10 ms.
const cronBarP99 = 10.0

// CronReport is the outcome of --mode cron. Latencies are measured from
// each run's slot (logical_time): the fire lateness to created_at (set when
// the tick's transaction applies), the start lateness to started_at (when a
// worker started the handler).
type CronReport struct {
	Jobs     int    `json:"jobs"`
	Schedule string `json:"schedule"`
	// Slots is the number of slots fired (runs the cron loop created).
	Slots          int     `json:"slots_fired"`
	Seconds        float64 `json:"seconds"` // first slot to last
	Succeeded      int     `json:"succeeded"`
	Skipped        int     `json:"skipped"`         // slots recorded as skipped (misfire or overlap)
	MissingSlots   int     `json:"missing_slots"`   // slots without a fired run
	DuplicateSlots int     `json:"duplicate_slots"` // slots with more than one run
	// Ticks is the number of distinct created_at times: the slots of
	// every job due at once fire in one tick, so the percentiles of a
	// tick's slots move together (p99 of 1,000 slots of 20 jobs is about
	// the worst of 50 ticks).
	Ticks         int         `json:"ticks"`
	FireLateness  Percentiles `json:"fire_lateness_ms"`
	StartLateness Percentiles `json:"start_lateness_ms"`
	// TimerLateness is a control: a Go timer (time.AfterFunc, as the cron
	// loop's) armed for every whole second in the same process, under the
	// same load. The part of the fire lateness the runtime accounts for.
	TimerLateness Percentiles `json:"timer_lateness_ms"`
	BarP99        float64     `json:"bar_fire_p99_ms"`
	BarMet        bool        `json:"bar_met"`
}

// MemSnapshot is the process's memory after a forced GC.
type MemSnapshot struct {
	HeapLiveBytes uint64 `json:"heap_live_bytes"` // runtime/metrics /gc/heap/live:bytes
	HeapAlloc     uint64 `json:"heap_alloc_bytes"`
	RSSBytes      uint64 `json:"rss_bytes"`      // VmRSS
	RSSAnonBytes  uint64 `json:"rss_anon_bytes"` // RssAnon: the heaps, Go's and SQLite's
	// GoBytes is what the Go runtime holds from the OS and has not
	// released (/memory/classes/total:bytes − …/heap/released:bytes):
	// RSSAnon − GoBytes is roughly memory outside Go: SQLite's page
	// caches, which modernc.org/sqlite allocates outside the Go heap.
	GoBytes    uint64 `json:"go_runtime_bytes"`
	Goroutines int    `json:"goroutines"`
}

// DelayedReport is the outcome of --mode delayed.
type DelayedReport struct {
	Window       string      `json:"window"`        // run_at is uniform over this window …
	WindowOffset string      `json:"window_offset"` // … starting this long after the start
	Batch        int         `json:"batch"`
	StoreSeconds float64     `json:"store_s"`
	StoreRate    float64     `json:"store_runs_per_s"`
	Before       MemSnapshot `json:"before"`
	After        MemSnapshot `json:"after"`
	HeapGrowth   int64       `json:"heap_growth_bytes"`
	RSSGrowth    int64       `json:"rss_growth_bytes"`
	PeakRSSBytes uint64      `json:"peak_rss_bytes"` // VmHWM: the high-water mark over the whole process
	// Store size: SQLite's file and WAL, or PostgreSQL's tables with their
	// indexes (pg_total_relation_size over the schema).
	StoreBytes     int64 `json:"store_bytes"`
	StoreFileBytes int64 `json:"store_file_bytes,omitempty"`
	StoreWALBytes  int64 `json:"store_wal_bytes,omitempty"`
	// Checks.
	Pending        int    `json:"pending"`           // pending runs in the store afterwards
	EarliestRunAt  string `json:"earliest_run_at"`   // the earliest run_at submitted
	NextPendingAt  string `json:"next_pending_at"`   // what RunNextPendingAt answered
	NextPendingOK  bool   `json:"next_pending_ok"`   // they agree
	SamplesChecked int    `json:"samples_checked"`   // runs read back with Get
	SampleErrors   int    `json:"sample_mismatches"` // of those, not pending or a different run_at
}

// runCron measures cron fire precision.
func runCron(ctx context.Context, opts Options, storeURL string) (*Report, error) {
	var finished atomic.Int64
	srv, err := startServer(ctx, opts, storeURL, func(store.RunStatus) { finished.Add(1) })
	if err != nil {
		return nil, err
	}
	defer srv.Stop(context.Background())
	rep := newReport(opts, srv.Server)
	cr := &CronReport{Jobs: opts.Jobs, Schedule: cronSchedule, BarP99: cronBarP99}
	rep.Cron = cr
	hc := srv.httpClient(opts)
	defer hc.CloseIdleConnections()
	base := srv.HTTPURL()

	ws := &workers{}
	defer ws.stop()
	if err := ws.start(ctx, srv, opts, nil); err != nil {
		return nil, err
	}
	if err := waitWorkers(ctx, hc, base, opts.Workers); err != nil {
		return nil, err
	}
	ctl := startControlTimer()
	defer ctl.stop()

	names := make([]string, opts.Jobs)
	for i := range names {
		names[i] = fmt.Sprintf("bench-cron-%04d", i)
	}
	created := time.Now()
	for _, name := range names {
		if err := jobRequest(ctx, hc, http.MethodPut, base, name, map[string]any{
			"type": "noop", "group": "bench", "schedule": cronSchedule,
		}); err != nil {
			return nil, err
		}
	}
	createdBy := time.Now()

	// Fire until --runs slots have run: ⌈runs/jobs⌉ seconds and a bit.
	want := int64(opts.Runs)
	limit := time.Duration(float64(opts.Runs)/float64(opts.Jobs)*2)*time.Second + 30*time.Second
	if err := waitUntil(ctx, limit, func() bool { return finished.Load() >= want }); err != nil {
		return nil, fmt.Errorf("bench: %d of %d cron slots finished: %w", finished.Load(), want, err)
	}
	deleteAt := time.Now()
	for _, name := range names {
		if err := jobRequest(ctx, hc, http.MethodDelete, base, name, nil); err != nil {
			return nil, err
		}
	}
	cr.TimerLateness = ctl.stop()

	// Wait for the runs fired before the deletes to finish, then read
	// every run back.
	var runs map[string][]*store.Run
	err = waitUntil(ctx, 30*time.Second, func() bool {
		var err error
		if runs, err = jobRuns(ctx, srv.Store(), names); err != nil {
			return true
		}
		for _, rs := range runs {
			for _, r := range rs {
				if !r.Status.Terminal() {
					return false
				}
			}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("bench: waiting for fired cron runs to finish: %w", err)
	}
	if runs, err = jobRuns(ctx, srv.Store(), names); err != nil {
		return nil, err
	}
	ws.stop()
	if err := cronSlots(cr, runs, created, createdBy, deleteAt); err != nil {
		return nil, err
	}
	rep.Succeeded = cr.Succeeded
	rep.ElapsedSeconds = cr.Seconds
	return rep, nil
}

// cronSlots fills the report from the runs of every job: lateness, and one
// fire per slot. A job's slots must have fired without a gap from the first
// slot after it was created (between created and createdBy) to the last one
// at least a second before deleteAt.
func cronSlots(cr *CronReport, runs map[string][]*store.Run, created, createdBy, deleteAt time.Time) error {
	sched, err := cron.Parse(cronSchedule)
	if err != nil {
		return err
	}
	var fire, start []float64
	var first, last time.Time
	ticks := make(map[int64]bool)
	for _, rs := range runs {
		perSlot := make(map[int64]int) // runs per slot (unix ns), any status
		fired := make(map[int64]bool)
		var jobFirst time.Time
		for _, r := range rs {
			if r.LogicalTime.IsZero() {
				continue // not fired by the cron loop
			}
			at := r.LogicalTime
			perSlot[at.UnixNano()]++
			if r.Status == store.StatusSkipped {
				cr.Skipped++
				continue
			}
			fired[at.UnixNano()] = true
			cr.Slots++
			if r.Status == store.StatusSucceeded {
				cr.Succeeded++
			}
			fire = append(fire, ms(r.CreatedAt.Sub(at)))
			ticks[r.CreatedAt.UnixNano()] = true
			if !r.StartedAt.IsZero() {
				start = append(start, ms(r.StartedAt.Sub(at)))
			}
			if jobFirst.IsZero() || at.Before(jobFirst) {
				jobFirst = at
			}
			if first.IsZero() || at.Before(first) {
				first = at
			}
			if at.After(last) {
				last = at
			}
		}
		for _, n := range perSlot {
			if n > 1 {
				cr.DuplicateSlots++
			}
		}
		from := sched.Next(createdBy) // the first slot after the job was saved is no later
		if !jobFirst.IsZero() && !jobFirst.After(from) && jobFirst.After(created) {
			from = jobFirst
		}
		for at := from; !at.IsZero() && !at.After(deleteAt.Add(-time.Second)); at = sched.Next(at) {
			if !fired[at.UnixNano()] {
				cr.MissingSlots++
			}
		}
	}
	if !first.IsZero() {
		cr.Seconds = last.Sub(first).Seconds() + 1
	}
	cr.Ticks = len(ticks)
	cr.FireLateness = percentiles(fire)
	cr.StartLateness = percentiles(start)
	cr.BarMet = cr.Slots > 0 && cr.FireLateness.P99 <= cr.BarP99 && cr.MissingSlots == 0 && cr.DuplicateSlots == 0
	return nil
}

// jobRuns reads every run of the named jobs from the store.
func jobRuns(ctx context.Context, st store.Store, names []string) (map[string][]*store.Run, error) {
	out := make(map[string][]*store.Run, len(names))
	for _, name := range names {
		cursor := ""
		for {
			page, err := st.RunList(ctx, store.RunListParams{Job: name, Limit: 1000, Cursor: cursor})
			if err != nil {
				return nil, err
			}
			out[name] = append(out[name], page.Runs...)
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
	}
	return out, nil
}

// jobRequest calls the HTTP jobs API: PUT (create) or DELETE a job.
func jobRequest(ctx context.Context, hc *http.Client, method, base, name string, body any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+"/api/v1/jobs/"+url.PathEscape(name), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("bench: %s job %s: %w", method, name, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("bench: %s job %s: %s: %s", method, name, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// waitWorkers waits until n workers are connected (GET /api/v1/workers),
// so that the first slot does not wait for a connection.
func waitWorkers(ctx context.Context, hc *http.Client, base string, n int) error {
	count := func() int {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/workers", nil)
		if err != nil {
			return 0
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&list) != nil {
			return 0
		}
		return len(list.Items)
	}
	if err := waitUntil(ctx, 10*time.Second, func() bool { return count() >= n }); err != nil {
		return fmt.Errorf("bench: waiting for %d workers to connect: %w", n, err)
	}
	return nil
}

// waitUntil polls cond every 20 ms until it holds, ctx ends or limit
// passes.
func waitUntil(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// controlTimer arms a time.AfterFunc for every whole second and records
// how late each one ran.
type controlTimer struct {
	mu      sync.Mutex
	timer   *time.Timer
	late    []float64
	stopped bool
	result  Percentiles
}

func startControlTimer() *controlTimer {
	c := &controlTimer{}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.arm()
	return c
}

// arm is called with c.mu held.
func (c *controlTimer) arm() {
	at := time.Now().Truncate(time.Second).Add(time.Second)
	c.timer = time.AfterFunc(time.Until(at), func() {
		late := time.Since(at)
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.stopped {
			return
		}
		c.late = append(c.late, ms(late))
		c.arm()
	})
}

// stop stops the timer and returns the lateness percentiles; safe to call
// twice.
func (c *controlTimer) stop() Percentiles {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopped {
		c.stopped = true
		c.timer.Stop()
		c.result = percentiles(c.late)
	}
	return c.result
}

// delayedOffset starts the run_at window an hour after the start, so that
// no run comes due (and is promoted) while the benchmark runs.
const (
	delayedOffset = time.Hour
	delayedWindow = 24 * time.Hour
)

// runDelayed stores many far-future runs and measures what they cost the
// server.
func runDelayed(ctx context.Context, opts Options, storeURL string) (*Report, error) {
	srv, err := startServer(ctx, opts, storeURL, nil)
	if err != nil {
		return nil, err
	}
	defer srv.Stop(context.Background())
	cl, err := srv.dial(opts)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	rep := newReport(opts, srv.Server)
	rep.Workers, rep.Capacity, rep.Prefetch = 0, 0, 0
	d := &DelayedReport{Window: delayedWindow.String(), WindowOffset: delayedOffset.String(), Batch: opts.BatchSize}
	rep.Delayed = d

	// A first call warms the connection up, so that its buffers count in
	// the baseline.
	if _, err := cl.List(ctx, client.ListOptions{Limit: 1}); err != nil {
		return nil, err
	}
	d.Before = memSnapshot()

	type sample struct {
		id    string
		runAt time.Time
	}
	var (
		mu       sync.Mutex
		earliest time.Time
		samples  []sample
		seen     atomic.Int64
	)
	every := int64(max(1, opts.Runs/100))
	start := time.Now()
	base := start.Add(delayedOffset)
	fill := func(specs []client.RunSpec) {
		var low time.Time
		for i := range specs {
			// Milliseconds: the wire's precision.
			at := base.Add(rand.N(delayedWindow)).Truncate(time.Millisecond).UTC()
			specs[i].RunAt = at
			if low.IsZero() || at.Before(low) {
				low = at
			}
		}
		mu.Lock()
		if earliest.IsZero() || low.Before(earliest) {
			earliest = low
		}
		mu.Unlock()
	}
	got := func(specs []client.RunSpec, runs []*client.Run) {
		for i, r := range runs {
			if seen.Add(1)%every == 0 {
				mu.Lock()
				samples = append(samples, sample{r.ID, specs[i].RunAt})
				mu.Unlock()
			}
		}
	}
	if err := submitBatches(ctx, cl, opts.Runs, opts.BatchSize, fill, got); err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	d.StoreSeconds = elapsed.Seconds()
	d.StoreRate = float64(opts.Runs) / elapsed.Seconds()
	rep.ElapsedSeconds, rep.SubmitRate = d.StoreSeconds, d.StoreRate

	// The client is done: its garbage goes with this GC.
	d.After = memSnapshot()
	d.HeapGrowth = int64(d.After.HeapLiveBytes) - int64(d.Before.HeapLiveBytes)
	d.RSSGrowth = int64(d.After.RSSBytes) - int64(d.Before.RSSBytes)
	d.PeakRSSBytes = procStatus("VmHWM")

	if err := storeSize(ctx, storeURL, d); err != nil {
		return nil, err
	}
	st := srv.Store()
	next, err := st.RunNextPendingAt(ctx)
	if err != nil {
		return nil, err
	}
	d.EarliestRunAt = earliest.Format(time.RFC3339Nano)
	d.NextPendingAt = next.UTC().Format(time.RFC3339Nano)
	d.NextPendingOK = next.Equal(earliest)
	counts, err := st.RunCountByGroup(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range counts {
		if c.Group == "bench" && c.Status == store.StatusPending {
			d.Pending += c.Count
		}
	}
	for _, s := range samples {
		r, err := cl.Get(ctx, s.id)
		if err != nil {
			return nil, err
		}
		d.SamplesChecked++
		if r.Status != client.StatusPending || !r.RunAt.Equal(s.runAt) {
			d.SampleErrors++
		}
	}
	return rep, nil
}

// memSnapshot collects garbage, returns what it can to the OS, and reads
// the live heap and the RSS.
func memSnapshot() MemSnapshot {
	runtime.GC()
	debug.FreeOSMemory() // a second GC, then scavenges freed pages
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	u := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return MemSnapshot{
		HeapLiveBytes: u(0), HeapAlloc: m.HeapAlloc, GoBytes: u(1) - u(2),
		RSSBytes: procStatus("VmRSS"), RSSAnonBytes: procStatus("RssAnon"), Goroutines: runtime.NumGoroutine(),
	}
}

// procStatus reads a "kB" field of /proc/self/status in bytes (0 where
// there is no /proc).
func procStatus(field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

// storeSize measures the store on disk: SQLite's file and WAL, or the
// PostgreSQL schema's tables with their indexes and TOAST.
func storeSize(ctx context.Context, storeURL string, d *DelayedReport) error {
	sz, err := newSizer(ctx, storeURL)
	if err != nil {
		return err
	}
	defer sz.close()
	z, err := sz.measure(ctx)
	if err != nil {
		return err
	}
	d.StoreBytes, d.StoreFileBytes, d.StoreWALBytes = z.Bytes, z.FileBytes, z.WALBytes
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func (r *Report) header(b *strings.Builder) {
	if r.CPU != "" {
		fmt.Fprintf(b, "cpu:              %s (%d cores), %s, load %.2f → %.2f\n", r.CPU, r.Cores, r.GoVersion, r.LoadStart, r.LoadEnd)
	}
}

func pct(p Percentiles) string {
	return fmt.Sprintf("p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms", p.P50, p.P90, p.P99, p.Max)
}

func (r *Report) cronText() string {
	c := r.Cron
	var b strings.Builder
	fmt.Fprintf(&b, "pluto bench: cron, %d jobs %q (type noop), store %s, %d workers × capacity %d%s\n",
		c.Jobs, c.Schedule, r.Store, r.Workers, r.Capacity, tlsNote(r.TLS))
	r.header(&b)
	fmt.Fprintf(&b, "slots fired:      %d over %.0f s (target %d); %d succeeded, %d skipped\n", c.Slots, c.Seconds, r.Runs, c.Succeeded, c.Skipped)
	fmt.Fprintf(&b, "one fire a slot:  %d missing, %d duplicate; %d ticks fired them\n", c.MissingSlots, c.DuplicateSlots, c.Ticks)
	fmt.Fprintf(&b, "fire lateness:    %s   (created_at − slot)\n", pct(c.FireLateness))
	fmt.Fprintf(&b, "start lateness:   %s   (started_at − slot)\n", pct(c.StartLateness))
	fmt.Fprintf(&b, "timer (control):  %s   (a Go timer per second, same process)\n", pct(c.TimerLateness))
	verdict := "met"
	if !c.BarMet {
		verdict = "MISSED"
	}
	fmt.Fprintf(&b, "bar:              p99 fire lateness ≤ %.0f ms, one fire per slot: %s\n", c.BarP99, verdict)
	return b.String()
}

func (r *Report) delayedText() string {
	d := r.Delayed
	var b strings.Builder
	fmt.Fprintf(&b, "pluto bench: delayed, %d runs with run_at uniform over %s (starting %s from now), store %s, batches of %d, no workers%s\n",
		r.Runs, d.Window, d.WindowOffset, r.Store, d.Batch, tlsNote(r.TLS))
	r.header(&b)
	fmt.Fprintf(&b, "stored in:        %.2f s (%.0f runs/s)\n", d.StoreSeconds, d.StoreRate)
	fmt.Fprintf(&b, "Go live heap:     %.1f MiB → %.1f MiB (%+.1f MiB) after GC\n", mib(int64(d.Before.HeapLiveBytes)), mib(int64(d.After.HeapLiveBytes)), mib(d.HeapGrowth))
	fmt.Fprintf(&b, "RSS:              %.1f MiB → %.1f MiB (%+.1f MiB) after GC and FreeOSMemory; peak %.1f MiB\n",
		mib(int64(d.Before.RSSBytes)), mib(int64(d.After.RSSBytes)), mib(d.RSSGrowth), mib(int64(d.PeakRSSBytes)))
	fmt.Fprintf(&b, "  anonymous:      %.1f MiB → %.1f MiB; the Go runtime holds %.1f MiB → %.1f MiB",
		mib(int64(d.Before.RSSAnonBytes)), mib(int64(d.After.RSSAnonBytes)), mib(int64(d.Before.GoBytes)), mib(int64(d.After.GoBytes)))
	b.WriteString("\n")
	if r.Store == "sqlite" {
		b.WriteString("                  the rest is SQLite's page caches: up to 64 MiB for the writer and 16 MiB a reader nominal,\n" +
			"                  about twice that in RSS (modernc's allocator puts each 4 KiB page and its header in an 8 KiB slot)\n")
	}
	fmt.Fprintf(&b, "                  (server, client and bench share this process; the client's garbage is collected before measuring)\n")
	if d.StoreWALBytes > 0 || d.StoreFileBytes > 0 {
		fmt.Fprintf(&b, "store on disk:    %.1f MiB (file %.1f MiB + WAL %.1f MiB), %.0f bytes/run\n",
			mib(d.StoreBytes), mib(d.StoreFileBytes), mib(d.StoreWALBytes), float64(d.StoreBytes)/float64(r.Runs))
	} else {
		fmt.Fprintf(&b, "store on disk:    %.1f MiB (tables, indexes and TOAST of the schema), %.0f bytes/run\n",
			mib(d.StoreBytes), float64(d.StoreBytes)/float64(r.Runs))
	}
	ok := func(b bool) string {
		if b {
			return "ok"
		}
		return "MISMATCH"
	}
	fmt.Fprintf(&b, "pending:          %d of %d\n", d.Pending, r.Runs)
	fmt.Fprintf(&b, "next pending at:  %s, earliest submitted %s: %s\n", d.NextPendingAt, d.EarliestRunAt, ok(d.NextPendingOK))
	fmt.Fprintf(&b, "samples:          %d runs read back, %d mismatches\n", d.SamplesChecked, d.SampleErrors)
	return b.String()
}
