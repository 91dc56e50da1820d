package bench

// Steady mode: the workers connected, runs submitted one per call at a
// fixed rate. Plain, its latencies are read back from the store at the
// end. With --size-every (or --duration, or --retention) it reports
// interval by interval instead, for runs long enough that retention
// deletes runs as fast as they are created: after each interval the
// store's size on disk (size.go), the runs stored (GET /api/v1/stats) and
// the submit→start latencies of the runs started in it. Those are measured
// in process, since the runs are deleted as they go: each submit carries
// its time in the payload and the handler subtracts it from the time it
// starts (one clock: server, workers and client share the process).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pluto-sched/pluto/client"
	"github.com/pluto-sched/pluto/worker"
)

// SteadyReport is what --size-every adds to a steady report.
type SteadyReport struct {
	Duration  string `json:"duration,omitempty"`
	SizeEvery string `json:"size_every"`
	Retention string `json:"retention"` // as the server applied it; "" keeps every run
	// Autovacuum is PostgreSQL's autovacuum setting ("on" or "off").
	Autovacuum string     `json:"autovacuum,omitempty"`
	LogsPerRun int        `json:"logs_per_run,omitempty"`
	Intervals  []Interval `json:"intervals"`
	// Compare sets the last full interval against the one at a third of
	// the run (minute 10 of 30): the size should have stopped growing.
	Compare *IntervalCompare `json:"compare,omitempty"`
}

// Interval is one row of a steady run: measured at its end.
type Interval struct {
	End       float64   `json:"end_s"`             // seconds since the first submit
	Partial   bool      `json:"partial,omitempty"` // the last row, after the submits ended
	Submitted int64     `json:"submitted"`         // since the start
	Finished  int64     `json:"finished"`          // since the start
	Stored    int64     `json:"stored_runs"`       // every status, GET /api/v1/stats
	Size      StoreSize `json:"size"`
	// Starts is the runs started in the interval, SubmitToStart their
	// latency from the submit call to the handler's start.
	Starts        int         `json:"starts"`
	SubmitToStart Percentiles `json:"submit_to_start_ms"`
}

// IntervalCompare compares two full intervals (indexes into Intervals).
type IntervalCompare struct {
	From      int     `json:"from"`
	To        int     `json:"to"`
	SizeRatio float64 `json:"size_ratio"` // To's size / From's
	SizePass  bool    `json:"size_pass"`  // within sizeBar
}

// sizeBar: at steady state the size moves by at most 10%.
const sizeBar = 0.10

// steady submits at opts.Rate with the workers connected.
func steady(ctx context.Context, srv *benchServer, cl *client.Client, opts Options, done *finishCounter, rep *Report) error {
	ws := &workers{}
	defer ws.stop()
	rep.Rate = opts.Rate
	if err := ws.start(ctx, srv, opts, nil); err != nil {
		return err
	}
	start := time.Now()
	if err := submitPaced(ctx, cl, opts.Runs, opts.Rate, noopSpec); err != nil {
		return err
	}
	rep.SubmitRate = float64(opts.Runs) / time.Since(start).Seconds()
	if err := waitDone(ctx, done, int64(opts.Runs), opts.Runs); err != nil {
		return err
	}
	rep.ElapsedSeconds = time.Since(start).Seconds()
	rep.Throughput = float64(opts.Runs) / rep.ElapsedSeconds
	return nil
}

// steadySized is steady with a row every opts.SizeEvery.
func steadySized(ctx context.Context, srv *benchServer, cl *client.Client, opts Options, storeURL string, done *finishCounter, rep *Report) error {
	sz, err := newSizer(ctx, storeURL)
	if err != nil {
		return err
	}
	defer sz.close()
	st := &SteadyReport{SizeEvery: opts.SizeEvery.String(), LogsPerRun: opts.LogsPerRun}
	if opts.Duration > 0 {
		st.Duration = opts.Duration.String()
	}
	if opts.Retention != "" {
		st.Retention = opts.retention.String()
	}
	st.Autovacuum = sz.autovacuum
	rep.Steady, rep.Rate = st, opts.Rate
	var smp sampler
	ws := &workers{}
	defer ws.stop()
	if err := ws.start(ctx, srv, opts, logLines(opts.LogsPerRun, smp.started)); err != nil {
		return err
	}
	hc := srv.httpClient(opts)
	defer hc.CloseIdleConnections()
	m := &intervalMeter{sz: sz, hc: hc, base: srv.HTTPURL(), smp: &smp, done: done, st: st, out: opts.Progress}
	if m.out != nil {
		fmt.Fprint(m.out, autovacuumNote(st.Autovacuum)+intervalHeader(opts.SizeEvery))
	}

	sctx, cancel := context.WithCancel(ctx)
	subErr := make(chan error, 1)
	m.start = time.Now()
	go func() { subErr <- submitPaced(sctx, cl, opts.Runs, opts.Rate, m.spec) }()
	submitting := true
	defer func() {
		cancel()
		if submitting {
			<-subErr
		}
	}()
	tick := time.NewTicker(opts.SizeEvery)
	defer tick.Stop()
	var finished <-chan struct{} // set once the submits are done
	for finished == nil || !isClosed(finished) {
		select {
		case err := <-subErr:
			submitting = false
			if err != nil {
				return err
			}
			rep.SubmitRate = float64(opts.Runs) / time.Since(m.start).Seconds()
			finished = done.wait(int64(opts.Runs))
		case <-finished:
		case <-tick.C:
			if err := m.measure(ctx, false); err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("bench: %d of %d runs finished: %w", done.count(), opts.Runs, ctx.Err())
		}
	}
	rep.ElapsedSeconds = time.Since(m.start).Seconds()
	rep.Throughput = float64(opts.Runs) / rep.ElapsedSeconds
	if err := m.measure(ctx, true); err != nil {
		return err
	}
	rep.SubmitToStart = percentiles(smp.all)
	rep.Succeeded = int(done.succeededCount())
	st.Compare = compareIntervals(st.Intervals)
	return nil
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// intervalMeter makes the rows of a steady run.
type intervalMeter struct {
	sz    *sizer
	hc    *http.Client
	base  string
	smp   *sampler
	done  *finishCounter
	st    *SteadyReport
	out   io.Writer // progress, may be nil
	start time.Time
	sent  atomic.Int64
}

// spec is a submit stamped with its time (read by sampler.started).
func (m *intervalMeter) spec() client.RunSpec {
	m.sent.Add(1)
	s := noopSpec()
	s.Payload = json.RawMessage(`{"t":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `}`)
	return s
}

// measure adds a row.
func (m *intervalMeter) measure(ctx context.Context, partial bool) error {
	z, err := m.sz.measure(ctx)
	if err != nil {
		return err
	}
	stored, err := storedRuns(ctx, m.hc, m.base)
	if err != nil {
		return err
	}
	lat := m.smp.take()
	iv := Interval{
		End: round(time.Since(m.start).Seconds()), Partial: partial, Submitted: m.sent.Load(), Finished: m.done.count(),
		Stored: stored, Size: z, Starts: len(lat), SubmitToStart: percentiles(lat),
	}
	m.st.Intervals = append(m.st.Intervals, iv)
	if m.out != nil {
		fmt.Fprint(m.out, iv.text())
	}
	return nil
}

// compareIntervals compares the last full interval with the one at a
// third of the run; nil with fewer than three full intervals.
func compareIntervals(ivs []Interval) *IntervalCompare {
	var full []int
	for i, iv := range ivs {
		if !iv.Partial {
			full = append(full, i)
		}
	}
	if len(full) < 3 {
		return nil
	}
	c := &IntervalCompare{From: full[len(full)/3-1], To: full[len(full)-1]}
	if from := ivs[c.From].Size.Bytes; from > 0 {
		c.SizeRatio = float64(ivs[c.To].Size.Bytes) / float64(from)
	}
	c.SizePass = math.Abs(c.SizeRatio-1) <= sizeBar
	return c
}

// sampler collects submit→start latencies, interval by interval.
type sampler struct {
	mu  sync.Mutex
	cur []float64 // this interval
	all []float64 // the intervals taken
}

// started records a run's start; runs not stamped by spec are ignored.
func (s *sampler) started(r *worker.Run) {
	now := time.Now()
	var p struct {
		T int64 `json:"t"`
	}
	if json.Unmarshal(r.Payload(), &p) != nil || p.T == 0 {
		return
	}
	d := ms(now.Sub(time.Unix(0, p.T)))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = append(s.cur, d)
}

// take returns this interval's latencies and starts the next.
func (s *sampler) take() []float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur
	s.cur = nil
	s.all = append(s.all, cur...)
	return cur
}

// logLines is the benchmark's handler: it calls onStart (if set) and
// prints k log lines.
func logLines(k int, onStart func(*worker.Run)) worker.Handler {
	return worker.HandlerFunc(func(_ context.Context, r *worker.Run) error {
		if onStart != nil {
			onStart(r)
		}
		if k > 0 {
			out := r.Output(worker.StreamStdout)
			for i := range k {
				fmt.Fprintf(out, "bench line %d of %d: some output of a run, about as long as a log line is\n", i+1, k)
			}
		}
		return nil
	})
}

// submitPaced submits n single runs at rate per second, each as its own
// call (the way an application submits), from a pool of senders so that a
// slow call does not delay the schedule. It stops early when ctx ends.
func submitPaced(ctx context.Context, cl *client.Client, n int, rate float64, spec func() client.RunSpec) error {
	ticks := make(chan struct{}, 1024)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ticks {
				if _, err := cl.Submit(ctx, spec()); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		}()
	}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d) // pacing the load generator, not waiting for a condition
		}
		ticks <- struct{}{}
	}
	close(ticks)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func intervalHeader(every time.Duration) string {
	return fmt.Sprintf("intervals (a row every %s: runs so far, runs stored, submit→start of the runs started in the interval, store size at its end):\n"+
		"  %8s  %10s  %10s  %10s  %8s  %8s  %8s  %8s  %s\n",
		every, "end", "submitted", "finished", "stored", "starts", "p50 ms", "p99 ms", "max ms", "store size")
}

func (iv Interval) text() string {
	end := strconv.FormatFloat(iv.End, 'f', 1, 64) + "s"
	if iv.Partial {
		end = "end " + end
	}
	p := iv.SubmitToStart
	return fmt.Sprintf("  %8s  %10d  %10d  %10d  %8d  %8.2f  %8.2f  %8.2f  %s\n",
		end, iv.Submitted, iv.Finished, iv.Stored, iv.Starts, p.P50, p.P99, p.Max, iv.Size.text())
}

func (st *SteadyReport) text(b *strings.Builder) {
	ret := st.Retention
	if ret == "" {
		ret = "none (runs kept)"
	}
	fmt.Fprintf(b, "retention:        %s; %d log lines a run\n", ret, st.LogsPerRun)
	b.WriteString(autovacuumNote(st.Autovacuum))
	b.WriteString(intervalHeader(mustDuration(st.SizeEvery)))
	for _, iv := range st.Intervals {
		b.WriteString(iv.text())
	}
	if c := st.Compare; c != nil {
		from, to := st.Intervals[c.From], st.Intervals[c.To]
		fmt.Fprintf(b, "size at %.0fs vs %.0fs: %.1f → %.1f MiB (%+.1f%%)  %s (within %.0f%%); submit→start p99 %.2f → %.2f ms\n",
			from.End, to.End, mib(from.Size.Bytes), mib(to.Size.Bytes), (c.SizeRatio-1)*100, passFail(c.SizePass), sizeBar*100,
			from.SubmitToStart.P99, to.SubmitToStart.P99)
	}
}

// autovacuumNote warns when PostgreSQL's autovacuum is off.
func autovacuumNote(setting string) string {
	if setting != "off" {
		return ""
	}
	return "autovacuum:       OFF on this PostgreSQL server: deleted rows' space is never reused, the tables grow whatever retention does\n"
}

func mustDuration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}
