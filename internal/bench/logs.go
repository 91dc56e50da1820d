package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/client"
	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/worker"
)

// --mode logs: two measurements of run logs.
//
// Follow latency: a handler prints --runs lines (one a millisecond), each
// holding the time it was printed, on a worker connected to server A; a
// follower reads the run's log as Server-Sent Events from server B (on
// PostgreSQL a second server on the same store, so each line crosses the
// store's notifications; on SQLite, which one process owns, A itself).
// The latency of a line is its arrival at the follower less its printing.
//
// Cap: a run prints capLines lines as fast as it can while no-op runs are
// submitted at --rate; their submit → start is compared with the same
// submissions with nobody printing (capRounds of each, alternating), and
// each printer's log must hold the cap's lines and its marker. The
// printer is a shell run (`seq`) on a `pluto worker --shell` process of
// its own when Options.WorkerCommand says how to start one (as `pluto
// bench` does), as a handler runs in production; otherwise (tests, and
// --tls, whose certificates live in this process only) it is a handler in
// this process, whose busy goroutine then takes one of the benchmark's
// cores — and, until Go's scheduler preempts it, the goroutines queued
// behind it.

// capLines is what the capped run prints.
const capLines = 100_000

// LogsReport is what --mode logs measured.
type LogsReport struct {
	Servers  int         `json:"servers"` // 2: the follower on another server than the worker's
	Lines    int         `json:"lines"`
	Received int         `json:"received"`
	Latency  Percentiles `json:"print_to_follower_ms"`

	CapPrinted    int         `json:"cap_printed"`
	CapStored     int         `json:"cap_stored"` // lines in the log, the marker included
	CapDropped    int64       `json:"cap_dropped"`
	CapSeconds    float64     `json:"cap_print_s"`        // how long the slowest printer ran
	CapRounds     int         `json:"cap_rounds"`         // printers run, each between two windows
	CapProcess    bool        `json:"cap_worker_process"` // the printer's worker was a process of its own
	StartBaseline Percentiles `json:"submit_to_start_baseline_ms"`
	StartPrinting Percentiles `json:"submit_to_start_printing_ms"`
}

func runLogs(ctx context.Context, opts Options, storeURL string) (*Report, error) {
	a, err := startServerID(ctx, opts, storeURL, "bench-a", nil)
	if err != nil {
		return nil, err
	}
	defer a.Stop(context.Background())
	b, lr := a, &LogsReport{Servers: 1, Lines: opts.Runs}
	if isPostgres(storeURL) {
		if b, err = startServerID(ctx, opts, storeURL, "bench-b", nil); err != nil {
			return nil, err
		}
		defer b.Stop(context.Background())
		b.token = a.token
		lr.Servers = 2
	}
	cl, err := a.dial(opts)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ws, err := startLogWorkers(ctx, a, opts)
	if err != nil {
		return nil, err
	}
	defer ws.stop()
	rep := newReport(opts, a.Server)
	rep.Logs = lr
	if err := followLatency(ctx, cl, b, opts, lr); err != nil {
		return nil, err
	}
	if err := capUnderLoad(ctx, cl, a, opts, lr); err != nil {
		return nil, err
	}
	return rep, nil
}

// startLogWorkers connects the workers: --workers no-op ones in group
// "bench", and one in group "print" whose runs print their payload's
// lines (gap 0: as fast as they can). The printer has a worker of its own:
// a worker's messages share one stream, so runs on the printer's worker
// would wait behind its lines whatever the server does.
func startLogWorkers(ctx context.Context, srv *benchServer, opts Options) (*workers, error) {
	ws := &workers{}
	wctx, cancel := context.WithCancel(ctx)
	ws.cancel = cancel
	for i := range opts.Workers + 1 {
		group, types := "bench", []string{"noop"}
		if i == opts.Workers {
			group, types = "print", []string{"print"}
		}
		w, err := worker.New(worker.Options{
			Servers: []string{srv.GRPCAddr()}, ID: fmt.Sprintf("bench-%d", i), Group: group,
			Capacity: opts.Capacity, Prefetch: opts.Prefetch, Logger: opts.Logger,
			Handler: worker.HandlerFunc(printHandler),
			Types:   types, Token: srv.token, TLS: opts.workerTLS(),
		})
		if err != nil {
			ws.stop()
			return nil, err
		}
		ws.wg.Add(1)
		go func() { defer ws.wg.Done(); _ = w.Run(wctx) }()
	}
	return ws, nil
}

// printJob is a print run's payload.
type printJob struct {
	Lines int           `json:"lines"`
	Gap   time.Duration `json:"gap"`
	Wait  time.Duration `json:"wait"` // before the first line (the follower connects)
}

func printHandler(ctx context.Context, r *worker.Run) error {
	if r.Type() != "print" {
		return nil
	}
	var p printJob
	if err := r.Decode(&p); err != nil {
		return err
	}
	sleep := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := sleep(p.Wait); err != nil {
		return err
	}
	out := r.Output(worker.StreamStdout)
	for i := range p.Lines {
		fmt.Fprintf(out, "%d %d\n", i, time.Now().UnixNano())
		if p.Gap > 0 {
			if err := sleep(p.Gap); err != nil {
				return err
			}
		}
	}
	return nil
}

// followLatency times lines from the handler to a follower on srv.
func followLatency(ctx context.Context, cl *client.Client, srv *benchServer, opts Options, lr *LogsReport) error {
	payload, _ := json.Marshal(printJob{Lines: opts.Runs, Gap: time.Millisecond, Wait: time.Second})
	run, err := cl.Submit(ctx, client.RunSpec{Type: "print", Group: "print", Payload: payload})
	if err != nil {
		return err
	}
	var lat []float64
	err = followSSE(ctx, srv.httpClient(opts), "http://"+srv.HTTPAddr()+"/api/v1/runs/"+run.ID+"/logs?follow=1", func(text string) {
		_, ts, _ := strings.Cut(text, " ")
		if ns, err := strconv.ParseInt(ts, 10, 64); err == nil {
			lat = append(lat, ms(time.Since(time.Unix(0, ns))))
		}
	})
	lr.Received = len(lat)
	lr.Latency = percentiles(lat)
	return err
}

// followSSE reads a log follow stream to its end event, calling line with
// each line's text.
func followSSE(ctx context.Context, hc *http.Client, url string, line func(string)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	hc = &http.Client{Transport: hc.Transport} // no timeout: the stream lasts
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1024))
		return fmt.Errorf("bench: follow: HTTP %d: %s", res.StatusCode, b)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	event := ""
	for sc.Scan() {
		t := sc.Text()
		switch {
		case strings.HasPrefix(t, "event: "):
			event = t[7:]
		case strings.HasPrefix(t, "data: ") && event == "":
			var l struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal([]byte(t[6:]), &l); err != nil {
				return err
			}
			line(l.Text)
		case t == "" && event == "end":
			return nil
		case t == "":
			event = ""
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("bench: the follow stream broke before its end")
}

// capRounds is how many times the cap measurement alternates a window
// with nobody printing and one beside a new printer. Alternating, and
// pooling the windows of each kind, keeps the machine's own drift (a
// single 2-second window's p99 varies 2–3× on a quiet 2-core VM) out of
// the comparison.
const capRounds = 4

// capUnderLoad times no-op runs' submit → start without, then with, a run
// printing capLines lines, capRounds times, and checks each printer's log.
func capUnderLoad(ctx context.Context, cl *client.Client, srv *benchServer, opts Options, lr *LogsReport) error {
	payload, _ := json.Marshal(printJob{Lines: capLines})
	spec := client.RunSpec{Type: "print", Group: "print", Payload: payload}
	if len(opts.WorkerCommand) > 0 && opts.tls == nil {
		stop, err := startPrinterProcess(ctx, cl, srv, opts)
		if err != nil {
			return err
		}
		defer stop()
		payload, _ = json.Marshal(map[string]string{"cmd": fmt.Sprintf("seq 1 %d", capLines)})
		spec = client.RunSpec{Type: "shell", Group: printProcGroup, Payload: payload}
		lr.CapProcess = true
	}
	n := int(2 * opts.Rate) // two seconds of submissions a window
	var base, busy []float64
	for round := range capRounds {
		alone, err := pacedStarts(ctx, cl, srv.Store(), n, opts.Rate)
		if err != nil {
			return err
		}
		printer, err := cl.Submit(ctx, spec)
		if err != nil {
			return err
		}
		beside, err := pacedStarts(ctx, cl, srv.Store(), n, opts.Rate)
		if err != nil {
			return err
		}
		base, busy = append(base, alone...), append(busy, beside...)
		if err := checkPrinter(ctx, cl, srv.Store(), printer.ID, round, lr); err != nil {
			return err
		}
	}
	lr.CapRounds = capRounds
	lr.CapPrinted = capLines
	lr.StartBaseline = percentiles(base)
	lr.StartPrinting = percentiles(busy)
	return nil
}

// checkPrinter waits for a printer run and reads its log into lr: every
// round's printer must keep the same number of lines and drop the same
// number, or the cap is not what it says.
func checkPrinter(ctx context.Context, cl *client.Client, st store.Store, id string, round int, lr *LogsReport) error {
	done, err := cl.Wait(ctx, id)
	if err != nil {
		return err
	}
	lr.CapSeconds = max(lr.CapSeconds, done.FinishedAt.Sub(done.StartedAt).Seconds())
	stored := 0
	for after := int64(0); ; {
		page, err := st.LogList(ctx, store.LogListParams{RunID: id, After: after, Limit: 10000})
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		stored += len(page)
		after = page[len(page)-1].Seq
	}
	stats, err := st.LogStats(ctx, id)
	if err != nil {
		return err
	}
	if round > 0 && (stored != lr.CapStored || stats.Dropped != lr.CapDropped) {
		return fmt.Errorf("bench: printer %s kept %d lines and dropped %d, the first kept %d and dropped %d",
			id, stored, stats.Dropped, lr.CapStored, lr.CapDropped)
	}
	lr.CapStored, lr.CapDropped = stored, stats.Dropped
	return nil
}

// printProcGroup is the group of the printer's worker process.
const printProcGroup = "print-process"

// startPrinterProcess starts a `pluto worker --shell` process in group
// printProcGroup (its token in the environment, not on its command line)
// and returns once it ran a run; stop ends it.
func startPrinterProcess(ctx context.Context, cl *client.Client, srv *benchServer, opts Options) (stop func(), err error) {
	pctx, cancel := context.WithCancel(ctx)
	args := append(opts.WorkerCommand[1:len(opts.WorkerCommand):len(opts.WorkerCommand)],
		"--server", srv.GRPCAddr(), "--group", printProcGroup, "--capacity", "1", "--shell", "--id", "bench-printer")
	cmd := exec.CommandContext(pctx, opts.WorkerCommand[0], args...)
	cmd.Env = append(os.Environ(), "PLUTO_TOKEN="+srv.token)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("bench: printer's worker: %w", err)
	}
	stop = func() {
		cancel()
		_ = cmd.Wait()
	}
	// A first run tells when the worker is connected.
	payload, _ := json.Marshal(map[string]string{"cmd": "true"})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	r, err := cl.Submit(wctx, client.RunSpec{Type: "shell", Group: printProcGroup, Payload: payload})
	if err == nil {
		r, err = cl.Wait(wctx, r.ID)
	}
	if err == nil && r.Status != client.StatusSucceeded {
		err = fmt.Errorf("its first run %s: %s", r.Status, r.Error)
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("bench: printer's worker: %w (its output: %s)", err, bytes.TrimSpace(out.Bytes()))
	}
	return stop, nil
}

// pacedStarts submits n no-op runs at rate and returns their submit →
// start times once all started.
func pacedStarts(ctx context.Context, cl *client.Client, st store.Store, n int, rate float64) ([]float64, error) {
	var (
		mu  sync.Mutex
		ids []string
	)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d) // pacing the load generator
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := cl.Submit(ctx, noopSpec())
			if err != nil {
				select {
				case errc <- err:
				default:
				}
				return
			}
			mu.Lock()
			ids = append(ids, r.ID)
			mu.Unlock()
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	out := make([]float64, 0, len(ids))
	for _, id := range ids {
		if _, err := cl.Wait(ctx, id); err != nil {
			return nil, err
		}
		// The store's times, in microseconds (the API's are in ms).
		r, err := st.RunGet(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, ms(r.StartedAt.Sub(r.CreatedAt)))
	}
	return out, nil
}

func (r *Report) logsText() string {
	l := r.Logs
	var b strings.Builder
	where := "the worker's server (one process owns SQLite)"
	if l.Servers == 2 {
		where = "another server than the worker's"
	}
	fmt.Fprintf(&b, "pluto bench: logs, store %s, %d cores, follower on %s\n", r.Store, r.Cores, where)
	if r.CPU != "" {
		fmt.Fprintf(&b, "cpu:                   %s, load %.2f → %.2f\n", r.CPU, r.LoadStart, r.LoadEnd)
	}
	fmt.Fprintf(&b, "print → follower:      p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms (%d of %d lines)\n",
		l.Latency.P50, l.Latency.P90, l.Latency.P99, l.Latency.Max, l.Received, l.Lines)
	where = "a handler in this process"
	if l.CapProcess {
		where = "seq on a worker process of its own"
	}
	fmt.Fprintf(&b, "capped runs:           %d, each printed %d lines in at most %.2fs (%s), stored %d (the marker included), dropped %d\n",
		l.CapRounds, l.CapPrinted, l.CapSeconds, where, l.CapStored, l.CapDropped)
	fmt.Fprintf(&b, "submit → start alone:  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n",
		l.StartBaseline.P50, l.StartBaseline.P90, l.StartBaseline.P99, l.StartBaseline.Max)
	fmt.Fprintf(&b, "… beside the printer:  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n",
		l.StartPrinting.P50, l.StartPrinting.P90, l.StartPrinting.P99, l.StartPrinting.Max)
	return b.String()
}
