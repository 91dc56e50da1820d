package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/bench"
)

func init() { extraCommands = append(extraCommands, newBenchCmd) }

func newBenchCmd() *cobra.Command {
	var (
		opts       bench.Options
		output     string
		cpuProfile string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput, latency, cron precision and delayed-run cost",
		Long: `bench starts an in-process server on the chosen store (default: a temporary
SQLite file), connects workers to it over the real gRPC stream and runs
no-op runs through the whole system. A run counts once its completion is
committed to the store.

  --mode burndown  insert --runs first, then start the workers and time until
                   every completion is committed (the method job-queue
                   benchmarks publish). With --history N: burn down on the
                   empty store (unless --compare-empty=false), bulk-load N
                   finished runs (a week of a realistic mix: 8 groups, 20
                   types, 64 workers, 5% of runs of 50 jobs, 5% failed with
                   error texts, some timed out, cancelled, skipped), time
                   every list filter of GET /api/v1/runs alone and combined,
                   a deep cursor page, GET /api/v1/stats and every page of
                   the web console, signed in (p50/p99/max of 20 calls,
                   PASS/FAIL against 50 ms a list, 20 ms the stats and
                   100 ms a page), then burn down again and compare (PASS
                   when at least 90% of the empty store's throughput)
  --mode steady    start the workers, then submit at --rate runs/s, one run
                   per call, and report latencies under that load. With
                   --duration, --retention or --size-every: a row every
                   --size-every (default 1m) with the store's size on disk
                   (SQLite file + WAL and free pages; PostgreSQL runs,
                   run_logs and the other tables), the runs stored and that
                   interval's submit→start p50/p99, measured in process;
                   rows print to stderr as they come
  --mode cron      create --jobs jobs firing every second ("* * * * * ?"),
                   keep the workers connected until --runs slots have fired
                   (default 1000), then report each run's lateness from its
                   slot: fire (created_at) and start (started_at), and check
                   that every slot fired exactly once
  --mode delayed   submit --runs runs (default 1,000,000) in batches of
                   --batch with run_at uniform over the 24 h starting an
                   hour from now (none comes due), no workers: time to
                   store them, Go heap and RSS before and after, the
                   store's size on disk, and a check of the earliest run_at
  --mode logs      a handler prints --runs lines (default 2000, one a ms);
                   a follower reads them as Server-Sent Events from a second
                   server on the same PostgreSQL store (on SQLite, the same
                   server): print → follower latency. Then a run prints
                   100,000 lines (seq, on a pluto worker --shell process
                   of its own, started from this binary) beside no-op runs
                   submitted at --rate: their submit → start with and
                   without it (four 2 s windows of each, alternating, a
                   new printer each time), and what its log cap kept
  --mode fanout    one parent of --shards no-op children (default 1000),
                   timed from the submit to its result: joined (the
                   children's results in shard order), then merged (a merge
                   run counts them); the server's live heap before and
                   after each, and its peak meanwhile`,
		Example: `  pluto bench --runs 50000
  pluto bench --runs 50000 --tls
  pluto bench --history 1000000
  pluto bench --mode steady --rate 1000 --runs 10000 -o json
  pluto bench --mode steady --rate 500 --duration 30m --retention succeeded=30s,failed=30s --logs-per-run 5
  pluto bench --mode cron --jobs 20
  pluto bench --mode delayed --store 'postgres://localhost/pluto'
  pluto bench --mode logs --store 'postgres://localhost/pluto'
  pluto bench --mode fanout --shards 10000`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkBenchFlags(cmd, &opts, output); err != nil {
				return err
			}
			if output == "table" {
				opts.Progress = cmd.ErrOrStderr()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			if exe, err := os.Executable(); err == nil {
				opts.WorkerCommand = []string{exe, "worker"}
			}
			rep, err := bench.Run(ctx, opts)
			if err != nil {
				return err
			}
			if output == "json" {
				fmt.Fprintln(cmd.OutOrStdout(), string(rep.JSON()))
			} else {
				fmt.Fprint(cmd.OutOrStdout(), rep.Text())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Runs, "runs", 50000, "number of no-op runs (cron: slots to fire, default 1000; delayed: default 1000000; logs: lines followed, default 2000)")
	f.IntVar(&opts.Workers, "workers", 4, "workers connected over gRPC")
	f.IntVar(&opts.Capacity, "capacity", 64, "runs each worker processes at once")
	f.IntVar(&opts.Prefetch, "prefetch", 0, "extra runs each worker holds beyond capacity (default: capacity)")
	f.StringVar(&opts.Store, "store", "", "store URL (default: a temporary SQLite file)")
	f.StringVar(&opts.Mode, "mode", "burndown", "burndown, steady, cron, delayed, logs or fanout")
	f.Float64Var(&opts.Rate, "rate", 1000, "steady and logs modes: submits per second")
	f.IntVar(&opts.BatchSize, "batch", 1000, "burndown and delayed modes: runs per submit call")
	f.IntVar(&opts.Jobs, "jobs", 20, "cron mode: jobs firing every second")
	f.IntVar(&opts.Shards, "shards", 1000, "fanout mode: children of each parent")
	f.IntVar(&opts.History, "history", 0, "burndown mode: after a first burndown on the empty store, bulk-load this many finished runs, burn down again and time every list filter")
	f.BoolVar(&opts.CompareEmpty, "compare-empty", true, "with --history: burn down on the empty store first and compare")
	f.DurationVar(&opts.Duration, "duration", 0, "steady mode: submit for this long (--rate × this many runs) instead of --runs")
	f.DurationVar(&opts.SizeEvery, "size-every", 0, "steady mode: report the store size and submit→start latencies every interval (default 1m with --duration or --retention)")
	f.StringVar(&opts.Retention, "retention", "", "steady mode: the server's retention, as pluto server --retention (succeeded=30s,failed=1m,…; statuses not named keep the server default); default: runs are kept")
	f.IntVar(&opts.LogsPerRun, "logs-per-run", 0, "burndown and steady modes: log lines each run prints")
	f.BoolVar(&opts.NoAuth, "no-auth", false, "run the in-process server with authentication off (to measure its cost)")
	f.BoolVar(&opts.TLS, "tls", false, "serve HTTP and gRPC over TLS, with client certificates required on gRPC (mutual TLS), from throwaway certificates made for the run")
	f.StringVarP(&output, "output", "o", "table", "output format: table or json")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole benchmark to this file (go tool pprof)")
	return cmd
}

// checkBenchFlags checks the command line (exit 2) and sets the mode's
// default --runs.
func checkBenchFlags(cmd *cobra.Command, opts *bench.Options, output string) error {
	if output != "table" && output != "json" {
		return usageErrorf("invalid --output %q: want table or json", output)
	}
	if !slices.Contains(bench.Modes, opts.Mode) {
		return usageErrorf("invalid --mode %q: want %s", opts.Mode, strings.Join(bench.Modes, ", "))
	}
	if !cmd.Flags().Changed("runs") {
		switch opts.Mode {
		case "cron":
			opts.Runs = 1000
		case "delayed":
			opts.Runs = 1_000_000
		case "logs":
			opts.Runs = 2000
		}
	}
	if opts.History < 0 || opts.History > 0 && opts.Mode != "burndown" {
		return usageErrorf("--history must be positive and is for --mode burndown")
	}
	if opts.Runs < 1 || opts.Workers < 1 || opts.Capacity < 1 || opts.Rate <= 0 || opts.Jobs < 1 || opts.BatchSize < 1 || opts.Shards < 1 {
		return usageErrorf("--runs, --workers, --capacity, --rate, --jobs, --batch and --shards must be positive")
	}
	if cmd.Flags().Changed("runs") && cmd.Flags().Changed("duration") {
		return usageErrorf("--runs and --duration exclude each other")
	}
	if err := bench.Validate(*opts); err != nil {
		return usageErrorf("%s", strings.TrimPrefix(err.Error(), "bench: "))
	}
	return nil
}
