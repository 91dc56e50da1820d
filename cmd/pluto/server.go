package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/server"
	"github.com/pluto-sched/pluto/worker"
)

const (
	defaultHTTPAddr = "127.0.0.1:7070"
	defaultGRPCAddr = "127.0.0.1:7071"
	envStore        = "PLUTO_STORE"
)

// logOpts are the logging flags of the long-running commands.
type logOpts struct {
	level  string
	format string
}

func addLogFlags(cmd *cobra.Command) *logOpts {
	o := &logOpts{}
	cmd.Flags().StringVar(&o.level, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&o.format, "log-format", "text", "log format: text or json")
	return o
}

// logger builds the process logger (to stderr).
func (o *logOpts) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.level)); err != nil {
		return nil, usageErrorf("invalid --log-level %q: want debug, info, warn or error", o.level)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch o.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, usageErrorf("invalid --log-format %q: want text or json", o.format)
}

// checkListenAddr checks a HOST:PORT flag.
func checkListenAddr(flag, addr string) error {
	if strings.Contains(addr, "://") {
		return usageErrorf("invalid --%s %q: want HOST:PORT, not a URL", flag, addr)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usageErrorf("invalid --%s %q: want HOST:PORT (%v)", flag, addr, err)
	}
	return nil
}

// isLoopback reports whether a listen address only accepts local
// connections. An empty host listens on every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (a *app) newServerCmd() *cobra.Command {
	var (
		cfg        server.Config
		maxPayload int64
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a Pluto server",
		Long: `Run a Pluto server: the HTTP JSON API on --http, the gRPC
worker and client services on --grpc, with its state in --store.

The store is sqlite:PATH (one server) or postgres://… (any number of
servers share it). SIGINT or SIGTERM stops the server gracefully: it stops
taking work, flushes pending writes and closes the store; a second signal
exits at once.`,
		Example: `  pluto server --store sqlite:/var/lib/pluto/pluto.db --http 0.0.0.0:7070 --grpc 0.0.0.0:7071`,
		Args:    cobra.NoArgs,
	}
	storeDefault := a.getenv(envStore)
	if storeDefault == "" {
		storeDefault = "sqlite:" + filepath.Join("pluto-data", "pluto.db")
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Store, "store", storeDefault, "store: sqlite:PATH or postgres://… (env "+envStore+")")
	f.StringVar(&cfg.HTTPAddr, "http", defaultHTTPAddr, "HTTP listen address (JSON API, /healthz, /readyz)")
	f.StringVar(&cfg.GRPCAddr, "grpc", defaultGRPCAddr, "gRPC listen address (workers, Go client)")
	f.StringVar(&cfg.ServerID, "id", "", "server ID (default hostname-pid)")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat", 5*time.Second, "worker heartbeat interval (suspect after 1 missed, dead after 3)")
	f.Int64Var(&maxPayload, "max-payload", server.DefaultMaxPayload, "largest run payload in bytes")
	f.DurationVar(&cfg.StopTimeout, "stop-timeout", 30*time.Second, "how long a graceful stop may take")
	f.DurationVar(&cfg.Engine.LeaseTTL, "lease-ttl", 10*time.Second, "leader lease and server registration lifetime without renewal")
	f.DurationVar(&cfg.Engine.RenewInterval, "renew-interval", 2*time.Second, "how often the leases are renewed (shorter than --lease-ttl)")
	f.BoolVar(&cfg.Engine.Standby, "standby", false, "serve and dispatch, but never lead: never fire schedules or promote delayed runs (pre-release mode)")
	var completionLog string
	f.StringVar(&completionLog, "completion-log", "", "append one line (run id, status) per committed terminal status to this file (audit; written after the commit, so a killed server may miss its last lines)")
	lo := addLogFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		log, err := lo.logger(a.stderr)
		if err != nil {
			return err
		}
		if strings.TrimSpace(cfg.Store) == "" {
			return usageErrorf("--store must not be empty")
		}
		if err := checkListenAddr("http", cfg.HTTPAddr); err != nil {
			return err
		}
		if err := checkListenAddr("grpc", cfg.GRPCAddr); err != nil {
			return err
		}
		if cfg.HeartbeatInterval <= 0 {
			return usageErrorf("invalid --heartbeat %s: must be positive", cfg.HeartbeatInterval)
		}
		if maxPayload <= 0 {
			return usageErrorf("invalid --max-payload %d: must be positive", maxPayload)
		}
		if cfg.StopTimeout <= 0 {
			return usageErrorf("invalid --stop-timeout %s: must be positive", cfg.StopTimeout)
		}
		if cfg.Engine.LeaseTTL <= 0 || cfg.Engine.RenewInterval <= 0 || cfg.Engine.RenewInterval >= cfg.Engine.LeaseTTL {
			return usageErrorf("invalid --renew-interval %s / --lease-ttl %s: both positive, renew shorter than the TTL", cfg.Engine.RenewInterval, cfg.Engine.LeaseTTL)
		}
		if completionLog != "" {
			audit, err := openCompletionLog(completionLog)
			if err != nil {
				return err
			}
			defer audit.Close()
			cfg.Engine.OnTerminal = audit.record
		}
		cfg.MaxPayload = maxPayload
		cfg.Logger = log
		ctx := cmd.Context()
		srv, err := server.Start(ctx, cfg)
		if err != nil {
			return err
		}
		name := "pluto server"
		if cfg.ServerID != "" {
			name += " " + cfg.ServerID
		}
		fmt.Fprintf(a.stdout, "%s: API %s/api/v1, gRPC %s, store %s\n", name, srv.HTTPURL(), srv.GRPCAddr(), cfg.Store)
		serveErr := waitForStop(ctx, srv)
		log.Info("stopping pluto server")
		stopErr := stopServer(a, srv)
		if serveErr != nil {
			return fmt.Errorf("server failed: %w", serveErr)
		}
		if stopErr != nil {
			return fmt.Errorf("stopping the server: %w", stopErr)
		}
		return nil
	}
	return cmd
}

// waitForStop blocks until ctx ends (a signal) or a listener fails.
func waitForStop(ctx context.Context, srv *server.Server) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-srv.Done():
			return nil
		case <-tick.C:
			if err := srv.Err(); err != nil {
				return err
			}
		}
	}
}

// stopServer stops srv gracefully; a second SIGINT/SIGTERM meanwhile exits
// the process at once.
func stopServer(a *app, srv *server.Server) error {
	done := make(chan struct{})
	defer close(done)
	forceExitOnSignal(a, done)
	return srv.Stop(context.Background())
}

// forceExitOnSignal exits the process on a signal that arrives before done
// is closed (the first signal started a graceful stop).
func forceExitOnSignal(a *app, done <-chan struct{}) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		defer signal.Stop(sig)
		select {
		case <-sig:
			fmt.Fprintln(a.stderr, "pluto: second signal, exiting without a graceful stop")
			os.Exit(exitFailure)
		case <-done:
		}
	}()
}

func (a *app) newDevCmd() *cobra.Command {
	var (
		httpAddr, grpcAddr, dataDir string
		shell, unsafeShell          bool
		capacity                    int
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a server and a local worker for development",
		Long: `Run everything on this machine: a server with its SQLite store in
--data/pluto.db, and one in-process worker (group "default", capacity =
number of CPUs) with the built-in handlers shell, http and noop.

dev listens on loopback only, so the shell handler is on by default
(--shell=false turns it off). A scheduler that runs shell commands from the
network is remote code execution: --shell with a non-loopback --http or
--grpc is refused unless --unsafe-shell is given too.`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&httpAddr, "http", defaultHTTPAddr, "HTTP listen address (JSON API)")
	f.StringVar(&grpcAddr, "grpc", defaultGRPCAddr, "gRPC listen address (workers, Go client)")
	f.StringVar(&dataDir, "data", "pluto-data", "directory of the SQLite store")
	f.BoolVar(&shell, "shell", true, "enable the shell handler on the local worker")
	f.BoolVar(&unsafeShell, "unsafe-shell", false, "allow --shell with a non-loopback listen address")
	f.IntVar(&capacity, "capacity", runtime.NumCPU(), "capacity of the local worker")
	lo := addLogFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		log, err := lo.logger(a.stderr)
		if err != nil {
			return err
		}
		if err := checkListenAddr("http", httpAddr); err != nil {
			return err
		}
		if err := checkListenAddr("grpc", grpcAddr); err != nil {
			return err
		}
		if shell && !unsafeShell && (!isLoopback(httpAddr) || !isLoopback(grpcAddr)) {
			return usageErrorf("refusing to enable the shell handler on a non-loopback address (--http %s, --grpc %s): "+
				"anyone who can reach the server could run commands here; use --shell=false, loopback addresses, or --unsafe-shell", httpAddr, grpcAddr)
		}
		if capacity < 1 {
			return usageErrorf("invalid --capacity %d: must be at least 1", capacity)
		}
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return fmt.Errorf("creating the data directory: %w", err)
		}
		ctx := cmd.Context()
		storeURL := "sqlite:" + filepath.Join(dataDir, "pluto.db")
		srv, err := server.Start(ctx, server.Config{Store: storeURL, HTTPAddr: httpAddr, GRPCAddr: grpcAddr, Logger: log})
		if err != nil {
			return err
		}

		mux := builtinMux(shell)
		host, _ := os.Hostname()
		wopts := worker.Options{
			Servers:      []string{srv.GRPCAddr()},
			ID:           "dev-" + host,
			Group:        "default",
			Capacity:     capacity,
			Handler:      mux,
			Logger:       log,
			DrainTimeout: 10 * time.Second,
		}
		wctx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
		workerDone := make(chan error, 1)
		first, err := worker.New(wopts)
		if err != nil {
			stopWorker()
			_ = srv.Stop(context.Background())
			return err
		}
		go func() { workerDone <- runDevWorker(wctx, first, wopts, log) }()

		a.printDevBanner(srv, storeURL, wopts, mux.Types())
		serveErr := waitForStop(ctx, srv)
		log.Info("stopping: draining the local worker, then the server")
		done := make(chan struct{})
		forceExitOnSignal(a, done)
		stopWorker()
		werr := <-workerDone
		stopErr := srv.Stop(context.Background())
		close(done)
		switch {
		case serveErr != nil:
			return fmt.Errorf("server failed: %w", serveErr)
		case werr != nil:
			return fmt.Errorf("local worker: %w", werr)
		case stopErr != nil:
			return fmt.Errorf("stopping the server: %w", stopErr)
		}
		return nil
	}
	return cmd
}

// runDevWorker runs the local worker until ctx ends, starting it again when
// the server asks for a restart.
func runDevWorker(ctx context.Context, w *worker.Worker, opts worker.Options, log *slog.Logger) error {
	for {
		err := w.Run(ctx)
		if err != worker.ErrRestart || ctx.Err() != nil {
			if err == nil && ctx.Err() == nil {
				log.Info("the local worker was shut down by the server; the server keeps running")
			}
			if err == worker.ErrRestart {
				err = nil
			}
			return err
		}
		log.Info("restarting the local worker at the server's request")
		if w, err = worker.New(opts); err != nil {
			return err
		}
	}
}

func (a *app) printDevBanner(srv *server.Server, storeURL string, wopts worker.Options, types []string) {
	url := srv.HTTPURL()
	serverFlag := ""
	if url != defaultServerURL {
		serverFlag = " --server " + url
	}
	example := `pluto submit` + serverFlag + ` --type noop --wait`
	if containsString(types, "shell") {
		example = `pluto submit` + serverFlag + ` --type shell --payload '{"cmd":"echo hello from pluto"}' --wait`
	}
	fmt.Fprintf(a.stdout, `Pluto dev is running.
  API:     %s/api/v1
  gRPC:    %s
  store:   %s
  worker:  %s (group %s, capacity %d, handlers: %s)

Try:
  %s
  pluto run ls%s

Ctrl-C stops (the worker drains first).
`, url, srv.GRPCAddr(), storeURL, wopts.ID, wopts.Group, wopts.Capacity, strings.Join(types, ", "), example, serverFlag)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
