// Package bench measures Pluto end to end: an in-process server on a real
// store, workers connected over the real gRPC stream, and a gRPC client
// submitting no-op runs. It is what `pluto bench` runs.
//
// Four modes:
//
//   - burndown (the method queue benchmarks publish): insert all runs
//     first, then start the workers and time until every completion is
//     committed. Throughput = runs / that time.
//     With History, on a store holding that many finished runs: the
//     list filters and the stats are timed through the HTTP API first
//     (history.go, lists.go).
//   - steady: start the workers, submit at a fixed rate, and report
//     latencies under that load; with SizeEvery, a row per interval with
//     the store's size, under the server's retention (steady.go,
//     size.go).
//   - cron: jobs firing every second; the lateness of each fired run
//     from its slot, and one fire per slot (time.go).
//   - delayed: many runs due over the next day, no workers; the time to
//     store them and what they cost the server's memory (time.go).
//
// A run counts only once its terminal status is committed to the store
// (the engine's OnTerminal hook fires after the commit). Latencies come
// from the stored timestamps: created_at (the server accepted the submit),
// started_at (the worker started the handler) and finished_at (the
// completion was committed).
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/client"
	"github.com/pluto-sched/pluto/internal/auth"
	"github.com/pluto-sched/pluto/internal/engine"
	"github.com/pluto-sched/pluto/internal/server"
	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/worker"
)

// Options configure a benchmark. Zero values mean defaults.
type Options struct {
	Runs      int     // default 50,000
	Workers   int     // default 4
	Capacity  int     // per worker; default 64
	Prefetch  int     // per worker; default Capacity
	Store     string  // store URL; default a temporary SQLite file
	Mode      string  // "burndown" (default), "steady", "cron" or "delayed"
	Rate      float64 // steady: submits per second (default 1000)
	BatchSize int     // burndown, delayed: runs per submit call (default 1000)
	Jobs      int     // cron: every-second jobs (default 20)
	Shards    int     // fanout: children of each parent (default 1000)
	// NoAuth turns authentication off, to measure its cost (default on,
	// as a real server runs).
	NoAuth bool
	// TLS serves HTTP and gRPC over TLS, with client certificates required
	// on gRPC (workers and the client present one), from throwaway
	// certificates (tls.go).
	TLS bool
	// History, in burndown mode, fills the store with this many finished
	// runs (bulk, not through the API) between a first burndown on the
	// empty store and the measured one, then times the list filters
	// (history.go).
	History int
	// CompareEmpty, with History, burns down once on the empty store
	// before the load and reports the ratio of the two throughputs.
	CompareEmpty bool
	// Steady mode (steady.go). Duration submits for that long (Runs
	// becomes Rate × Duration). SizeEvery reports a row every interval:
	// the store's size and that interval's submit→start latencies
	// (default a minute with Duration or Retention). Retention is the
	// server's retention setting, as `pluto server --retention` reads it
	// (default: runs are kept for ever).
	Duration  time.Duration
	SizeEvery time.Duration
	Retention string
	// LogsPerRun makes each run print this many log lines (burndown and
	// steady), so that log storage and its retention show in the size.
	LogsPerRun int
	// Progress, if set, is sent each steady interval's row as it is
	// measured (a long run shows its rows as they come).
	Progress io.Writer
	// WorkerCommand starts a worker process (`pluto worker`: the binary
	// and that argument). The logs mode runs the printing run's worker
	// with it, outside the benchmark's process as a handler runs in
	// production (logs.go). Empty: every worker is in this process.
	WorkerCommand []string
	Logger        *slog.Logger

	tls       *benchTLS        // set by Run when TLS is on
	retention engine.Retention // parsed from Retention
}

// Modes are the benchmark modes Run knows.
var Modes = []string{"burndown", "steady", "cron", "delayed", "logs", "fanout"}

// Percentiles in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Report is a benchmark's outcome.
type Report struct {
	Runs           int         `json:"runs"`
	Store          string      `json:"store"`
	Mode           string      `json:"mode"`
	Cores          int         `json:"cores"`
	Workers        int         `json:"workers"`
	Capacity       int         `json:"capacity"`
	Prefetch       int         `json:"prefetch"`
	TLS            bool        `json:"tls"`
	Rate           float64     `json:"rate,omitempty"`
	SubmitRate     float64     `json:"submit_runs_per_s"`
	Throughput     float64     `json:"throughput_runs_per_s"`
	ElapsedSeconds float64     `json:"elapsed_s"`
	SubmitToStart  Percentiles `json:"submit_to_start_ms"`
	SubmitToFinish Percentiles `json:"submit_to_finish_ms"`
	Succeeded      int         `json:"succeeded"`
	GoVersion      string      `json:"go_version"`
	CPU            string      `json:"cpu,omitempty"`
	// The machine's 1-minute load average when the benchmark started and
	// ended (/proc/loadavg): other work on the machine shows here.
	LoadStart float64 `json:"load_avg_start"`
	LoadEnd   float64 `json:"load_avg_end"`

	Cron    *CronReport    `json:"cron,omitempty"`    // --mode cron
	Delayed *DelayedReport `json:"delayed,omitempty"` // --mode delayed
	History *HistoryReport `json:"history,omitempty"` // --history
	Logs    *LogsReport    `json:"logs,omitempty"`    // --mode logs
	Fanout  *FanoutReport  `json:"fanout,omitempty"`  // --mode fanout
	Steady  *SteadyReport  `json:"steady,omitempty"`  // --mode steady with --size-every
}

func (o *Options) defaults() error {
	if o.Mode == "" {
		o.Mode = "burndown"
	}
	if o.Runs == 0 {
		switch o.Mode {
		case "cron":
			o.Runs = 1000
		case "delayed":
			o.Runs = 1_000_000
		case "logs":
			o.Runs = 2000
		default:
			o.Runs = 50000
		}
	}
	if o.Jobs == 0 {
		o.Jobs = 20
	}
	if o.Shards == 0 {
		o.Shards = 1000
	}
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.Capacity == 0 {
		o.Capacity = 64
	}
	if o.Prefetch == 0 {
		o.Prefetch = o.Capacity
	}
	if o.Rate == 0 {
		o.Rate = 1000
	}
	if o.BatchSize == 0 {
		o.BatchSize = 1000
	}
	if o.Mode == "steady" && o.Duration > 0 {
		o.Runs = max(1, int(o.Rate*o.Duration.Seconds()))
	}
	if o.Mode == "steady" && o.SizeEvery == 0 && (o.Duration > 0 || o.Retention != "") {
		o.SizeEvery = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o.validate()
}

// validate checks the options after defaults.
func (o *Options) validate() error {
	switch {
	case o.Runs < 1:
		return errors.New("bench: --runs must be positive")
	case o.Workers < 1:
		return errors.New("bench: --workers must be positive")
	case o.Capacity < 1:
		return errors.New("bench: --capacity must be positive")
	case !slices.Contains(Modes, o.Mode):
		return fmt.Errorf("bench: --mode must be one of %s, not %q", strings.Join(Modes, ", "), o.Mode)
	case o.Jobs < 1:
		return errors.New("bench: --jobs must be positive")
	case o.Shards < 1 || o.Shards > store.MaxFanout:
		return fmt.Errorf("bench: --shards must be between 1 and %d", store.MaxFanout)
	case o.BatchSize < 1:
		return errors.New("bench: --batch must be positive")
	case o.Rate <= 0:
		return errors.New("bench: --rate must be positive")
	case o.History < 0:
		return errors.New("bench: --history must not be negative")
	case o.History > 0 && o.Mode != "burndown":
		return errors.New("bench: --history is for --mode burndown")
	case o.Duration < 0 || o.SizeEvery < 0 || o.LogsPerRun < 0:
		return errors.New("bench: --duration, --size-every and --logs-per-run must not be negative")
	case (o.Duration > 0 || o.SizeEvery > 0 || o.Retention != "") && o.Mode != "steady":
		return errors.New("bench: --duration, --size-every and --retention are for --mode steady")
	case o.LogsPerRun > 0 && o.Mode != "steady" && o.Mode != "burndown":
		return errors.New("bench: --logs-per-run is for --mode burndown and steady")
	}
	if o.Retention != "" {
		r, err := engine.ParseRetention(o.Retention, engine.DefaultRetention)
		if err != nil {
			return fmt.Errorf("bench: --retention: %w", err)
		}
		o.retention = r
	}
	return nil
}

// Validate reports what is wrong with opts (after the defaults), as Run
// would.
func Validate(opts Options) error { return opts.defaults() }

// Run runs one benchmark.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	storeURL, cleanup, err := benchStore(ctx, opts.Store)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if opts.TLS {
		bt, cleanupTLS, err := setupTLS(opts)
		if err != nil {
			return nil, err
		}
		defer cleanupTLS()
		opts.tls = bt
	}
	var rep *Report
	switch opts.Mode {
	case "cron":
		rep, err = runCron(ctx, opts, storeURL)
	case "delayed":
		rep, err = runDelayed(ctx, opts, storeURL)
	case "logs":
		rep, err = runLogs(ctx, opts, storeURL)
	case "fanout":
		rep, err = runFanout(ctx, opts, storeURL)
	default:
		rep, err = runQueue(ctx, opts, storeURL)
	}
	if rep != nil {
		rep.LoadEnd = loadAvg()
	}
	return rep, err
}

// runQueue runs the burndown and steady modes.
func runQueue(ctx context.Context, opts Options, storeURL string) (*Report, error) {
	var done finishCounter
	srv, err := startServer(ctx, opts, storeURL, done.add)
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
	switch {
	case opts.Mode == "steady" && opts.SizeEvery > 0:
		// The runs are deleted as they go: the latencies are measured in
		// process, interval by interval, not read back from the store.
		return rep, steadySized(ctx, srv, cl, opts, storeURL, &done, rep)
	case opts.Mode == "steady":
		err = steady(ctx, srv, cl, opts, &done, rep)
	default:
		err = burndownHistory(ctx, srv, cl, opts, &done, rep)
	}
	if err != nil {
		return nil, err
	}
	if err := latencies(ctx, srv.Store(), rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// burndown inserts opts.Runs runs, then starts the workers and times
// until every completion is committed.
func burndown(ctx context.Context, srv *benchServer, cl *client.Client, opts Options, done *finishCounter, rep *Report) error {
	ws := &workers{}
	defer ws.stop()
	target := done.count() + int64(opts.Runs)
	t0 := time.Now()
	if err := submitBatches(ctx, cl, opts.Runs, opts.BatchSize, func([]client.RunSpec) {}, nil); err != nil {
		return err
	}
	rep.SubmitRate = float64(opts.Runs) / time.Since(t0).Seconds()
	start := time.Now()
	if err := ws.start(ctx, srv, opts, nil); err != nil {
		return err
	}
	if err := waitDone(ctx, done, target, opts.Runs); err != nil {
		return err
	}
	rep.ElapsedSeconds = time.Since(start).Seconds()
	rep.Throughput = float64(opts.Runs) / rep.ElapsedSeconds
	return nil
}

func waitDone(ctx context.Context, done *finishCounter, target int64, runs int) error {
	select {
	case <-done.wait(target):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bench: %d of %d runs finished: %w", int(done.count()-target)+runs, runs, ctx.Err())
	}
}

// benchStore returns the store URL a benchmark runs on: a schema of its
// own on PostgreSQL, a temporary SQLite file by default. cleanup removes
// what it made.
func benchStore(ctx context.Context, storeURL string) (string, func(), error) {
	if isPostgres(storeURL) {
		return tempSchema(ctx, storeURL)
	}
	if storeURL != "" {
		return storeURL, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "pluto-bench-")
	if err != nil {
		return "", nil, err
	}
	return "sqlite:" + filepath.Join(dir, "bench.db"), func() { os.RemoveAll(dir) }, nil
}

// benchServer is the in-process server and the token its clients use
// ("" with NoAuth).
type benchServer struct {
	*server.Server
	token string
}

// startServer starts the in-process server (with opts' retention);
// onTerminal (may be nil) is called once per run whose terminal status was
// committed. With auth on
// (the default, as in production) it makes an admin token for the
// benchmark's clients and workers, on a new store or an old one.
func startServer(ctx context.Context, opts Options, storeURL string, onTerminal func(store.RunStatus)) (*benchServer, error) {
	return startServerID(ctx, opts, storeURL, "bench", onTerminal)
}

// startServerID is startServer with a server id (several servers on one
// store).
func startServerID(ctx context.Context, opts Options, storeURL, id string, onTerminal func(store.RunStatus)) (*benchServer, error) {
	ecfg := engine.Config{Retention: opts.retention}
	if onTerminal != nil {
		ecfg.OnTerminal = func(_ string, s store.RunStatus) { onTerminal(s) }
	}
	cfg := server.Config{
		Store: storeURL, HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		ServerID: id, Logger: opts.Logger, Engine: ecfg,
		Auth: server.AuthConfig{Disabled: opts.NoAuth, BootstrapOut: io.Discard},
	}
	if opts.tls != nil {
		cfg.HTTPTLS, cfg.GRPCTLS = opts.tls.http, opts.tls.server
	}
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	bs := &benchServer{Server: srv}
	if opts.NoAuth {
		return bs, nil
	}
	now := time.Now()
	bs.token, _, err = auth.CreateToken(ctx, srv.Store(), auth.CreateParams{
		Name: fmt.Sprintf("bench-%d", now.UnixNano()), Role: auth.RoleAdmin, ExpiresAt: now.Add(24 * time.Hour), Now: now,
	})
	if err != nil {
		_ = srv.Stop(context.Background())
		return nil, fmt.Errorf("bench: token: %w", err)
	}
	return bs, nil
}

// dial connects the benchmark's client (with its token, over TLS when on).
func (bs *benchServer) dial(o Options) (*client.Client, error) {
	var opts []client.Option
	if bs.token != "" {
		opts = append(opts, client.WithToken(bs.token))
	}
	if o.tls != nil {
		opts = append(opts, client.WithTLS(o.tls.client))
	}
	return client.Dial(bs.GRPCAddr(), opts...)
}

// httpClient is an HTTP client that sends the benchmark's token.
func (bs *benchServer) httpClient(o Options) *http.Client {
	hc := o.httpClient()
	hc.Transport = bearerTransport{token: bs.token, next: hc.Transport}
	return hc
}

type bearerTransport struct {
	token string
	next  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.next.RoundTrip(r)
}

func newReport(opts Options, srv *server.Server) *Report {
	return &Report{
		Runs: opts.Runs, Store: srv.Store().Name(), Mode: opts.Mode, Cores: runtime.NumCPU(),
		Workers: opts.Workers, Capacity: opts.Capacity, Prefetch: opts.Prefetch, TLS: opts.TLS,
		GoVersion: runtime.Version(), CPU: cpuModel(), LoadStart: loadAvg(),
	}
}

// loadAvg is the 1-minute load average (0 where there is no /proc).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b) + " 0")[0], 64)
	return f
}

// workers are the benchmark's no-op workers, connected over gRPC.
type workers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// start connects opts.Workers workers running h (nil: a no-op that prints
// opts.LogsPerRun lines).
func (ws *workers) start(ctx context.Context, srv *benchServer, opts Options, h worker.Handler) error {
	if h == nil {
		h = logLines(opts.LogsPerRun, nil)
	}
	return ws.startTypes(ctx, srv, opts, h, []string{"noop"})
}

// startTypes connects opts.Workers workers of group bench serving types
// with h.
func (ws *workers) startTypes(ctx context.Context, srv *benchServer, opts Options, h worker.Handler, types []string) error {
	wctx, cancel := context.WithCancel(ctx)
	ws.cancel = cancel
	for i := range opts.Workers {
		w, err := worker.New(worker.Options{
			Servers: []string{srv.GRPCAddr()}, ID: fmt.Sprintf("bench-%d", i), Group: "bench",
			Capacity: opts.Capacity, Prefetch: opts.Prefetch, Logger: opts.Logger,
			Handler: h,
			Types:   types, Token: srv.token, TLS: opts.workerTLS(),
		})
		if err != nil {
			return err
		}
		ws.wg.Add(1)
		go func() { defer ws.wg.Done(); _ = w.Run(wctx) }()
	}
	return nil
}

// stop disconnects the workers and waits for them; safe to call twice.
func (ws *workers) stop() {
	if ws.cancel != nil {
		ws.cancel()
	}
	ws.wg.Wait()
}

func noopSpec() client.RunSpec { return client.RunSpec{Type: "noop", Group: "bench"} }

// submitBatches inserts n runs in batches from two concurrent submitters.
// fill sets up each batch's specs (they start as no-op specs); got, when
// not nil, sees each batch's specs and the runs stored for them.
func submitBatches(ctx context.Context, cl *client.Client, n, batch int, fill func([]client.RunSpec), got func([]client.RunSpec, []*client.Run)) error {
	jobs := make(chan int)
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for size := range jobs {
				specs := make([]client.RunSpec, size)
				for i := range specs {
					specs[i] = noopSpec()
				}
				fill(specs)
				runs, err := cl.SubmitBatch(ctx, specs)
				if err != nil {
					select {
					case errc <- err:
					default:
					}
					return
				}
				if got != nil {
					got(specs, runs)
				}
			}
		}()
	}
	for left := n; left > 0; left -= batch {
		select {
		case jobs <- min(batch, left):
		case err := <-errc:
			close(jobs)
			wg.Wait()
			return err
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// latencies reads every run back and computes percentiles.
func latencies(ctx context.Context, st store.Store, rep *Report) error {
	var toStart, toFinish []float64
	cursor := ""
	for {
		page, err := st.RunList(ctx, store.RunListParams{Group: "bench", Limit: 1000, Cursor: cursor})
		if err != nil {
			return err
		}
		for _, r := range page.Runs {
			if r.Status == store.StatusSucceeded {
				rep.Succeeded++
			}
			if !r.StartedAt.IsZero() {
				toStart = append(toStart, ms(r.StartedAt.Sub(r.CreatedAt)))
			}
			if !r.FinishedAt.IsZero() {
				toFinish = append(toFinish, ms(r.FinishedAt.Sub(r.CreatedAt)))
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	rep.SubmitToStart = percentiles(toStart)
	rep.SubmitToFinish = percentiles(toFinish)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func percentiles(xs []float64) Percentiles {
	if len(xs) == 0 {
		return Percentiles{}
	}
	slices.Sort(xs)
	at := func(p float64) float64 {
		i := int(p*float64(len(xs))+0.5) - 1
		return round(xs[max(0, min(i, len(xs)-1))])
	}
	return Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: round(xs[len(xs)-1])}
}

func round(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			if _, v, ok := strings.Cut(line, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return ""
}

// JSON renders the report.
func (r *Report) JSON() []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return b
}

// Text renders the report for people.
func (r *Report) Text() string {
	switch {
	case r.Cron != nil:
		return r.cronText()
	case r.Delayed != nil:
		return r.delayedText()
	case r.Logs != nil:
		return r.logsText()
	case r.Fanout != nil:
		return r.fanoutText()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pluto bench: %d no-op runs, %s, store %s, %d workers × capacity %d (+%d prefetch), %d cores%s\n",
		r.Runs, r.Mode, r.Store, r.Workers, r.Capacity, r.Prefetch, r.Cores, tlsNote(r.TLS))
	if r.CPU != "" {
		fmt.Fprintf(&b, "cpu:              %s, load %.2f → %.2f\n", r.CPU, r.LoadStart, r.LoadEnd)
	}
	fmt.Fprintf(&b, "submit rate:      %.0f runs/s\n", r.SubmitRate)
	fmt.Fprintf(&b, "throughput:       %.0f runs/s end to end (%.2fs)\n", r.Throughput, r.ElapsedSeconds)
	fmt.Fprintf(&b, "submit → start:   p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", r.SubmitToStart.P50, r.SubmitToStart.P90, r.SubmitToStart.P99, r.SubmitToStart.Max)
	if r.Steady == nil {
		fmt.Fprintf(&b, "submit → finish:  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", r.SubmitToFinish.P50, r.SubmitToFinish.P90, r.SubmitToFinish.P99, r.SubmitToFinish.Max)
	}
	want := r.Runs
	if r.History != nil && r.History.EmptyThroughput > 0 {
		want *= 2 // the burndown ran twice: before and after the load
	}
	fmt.Fprintf(&b, "succeeded:        %d of %d\n", r.Succeeded, want)
	if r.History != nil {
		r.History.text(&b, r.Throughput)
	}
	if r.Steady != nil {
		r.Steady.text(&b)
	}
	return b.String()
}

func isPostgres(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// tempSchema gives a PostgreSQL benchmark a schema of its own, so that it
// starts empty and leaves nothing behind, unless the URL names a schema.
func tempSchema(ctx context.Context, storeURL string) (string, func(), error) {
	u, err := url.Parse(storeURL)
	if err != nil {
		return "", nil, fmt.Errorf("bench: --store: %w", err)
	}
	q := u.Query()
	if q.Get("schema") != "" {
		return storeURL, func() {}, nil
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	schema := "pluto_bench_" + hex.EncodeToString(b)
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, storeURL)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	}
	return u.String(), drop, nil
}

func tlsNote(on bool) string {
	if on {
		return ", TLS (mutual on gRPC)"
	}
	return ""
}
