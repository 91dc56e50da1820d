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

	"github.com/pluto-sched/pluto/internal/config"
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
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a Pluto server",
		Long: `Run a Pluto server: the HTTP JSON API on --http, the gRPC
worker and client services on --grpc, with its state in --store.

The store is sqlite:PATH (one server) or postgres://… (any number of
servers share it).

Settings can also come from a YAML file (--config FILE): its keys are the
flag names (heartbeat: 5s). Flags given on the command line win over the
environment (` + envStore + `), which wins over the file. The server
watches the file: heartbeat, log-level, log-max-lines, log-max-bytes,
max-payload, misfire-grace, retry-base, retry-max, stop-timeout and
stop-workers-on-exit change live within a second; other keys are logged
as needing a restart. An invalid
file changes nothing and the log says why. See examples/pluto.yaml.

SIGINT or SIGTERM stops the server gracefully: it accepts no new runs (503),
dispatches nothing more, waits up to --stop-timeout for the runs on its
workers to finish and commits their results, flushes pending writes and
closes the store, exiting 0. What is still running at the deadline stays
in the store and is recovered when its worker reconnects (after a restart,
or to another server). --stop-workers-on-exit tells the workers to drain
and exit as well. A second signal exits at once.`,
		Example: `  pluto server --store sqlite:/var/lib/pluto/pluto.db --http 0.0.0.0:7070 --grpc 0.0.0.0:7071
  pluto server --config /etc/pluto/pluto.yaml`,
		Args: cobra.NoArgs,
	}
	defaults := config.Defaults()
	if v := a.getenv(envStore); v != "" {
		defaults.Store = v
	}
	config.AddFlags(cmd.Flags(), defaults)
	var configFile string
	cmd.Flags().StringVar(&configFile, "config", "", "YAML configuration file, watched for live changes (keys: the flag names)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		src := config.Sources{File: configFile, Getenv: a.getenv, Flags: cmd.Flags()}
		loaded, err := config.Load(src)
		if err != nil {
			return usageErrorf("%v", err)
		}
		settings := loaded.Server
		level := new(slog.LevelVar)
		lvl, _ := config.ParseLevel(settings.LogLevel) // validated by Load
		level.Set(lvl)
		log := newLogger(a.stderr, settings.LogFormat, level)

		cfg := serverConfig(settings)
		if err := loadServerTLS(&cfg, settings.TLS, log); err != nil {
			return err
		}
		if settings.CompletionLog != "" {
			audit, err := openCompletionLog(settings.CompletionLog)
			if err != nil {
				return err
			}
			defer audit.Close()
			cfg.Engine.OnTerminal = audit.record
		}
		cfg.Logger = log
		cfg.Auth.BootstrapOut = a.stderr
		ctx := cmd.Context()
		srv, err := server.Start(ctx, cfg)
		if err != nil {
			return err
		}
		if configFile != "" {
			stopWatch, err := watchConfig(src, settings, srv, level, log)
			if err != nil {
				log.Error("live reload of the config file is off", "file", configFile, "err", err)
			} else {
				defer stopWatch()
			}
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
		log.Info("pluto server stopped")
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
		tokenFile := filepath.Join(dataDir, adminTokenFile)
		srv, err := server.Start(ctx, server.Config{Store: storeURL, HTTPAddr: httpAddr, GRPCAddr: grpcAddr, Logger: log,
			Auth: server.AuthConfig{DevTokenFile: tokenFile}})
		if err != nil {
			return err
		}
		token, err := readTokenFile(tokenFile) // the server just made sure it holds a working admin token
		if err == nil && token == "" {
			err = fmt.Errorf("pluto dev: no admin token in %s", tokenFile)
		}
		if err != nil {
			_ = srv.Stop(context.Background())
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
			Token:        token,
		}
		wctx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
		workerDone := make(chan error, 1)
		first, err := worker.New(wopts)
		if err != nil {
			stopWorker()
			_ = srv.Stop(context.Background())
			return err
		}
		registerBuiltinCommands(first, buildVersion())
		go func() { workerDone <- runDevWorker(wctx, first, wopts, log) }()

		a.printDevBanner(srv, storeURL, wopts, mux.Types(), tokenFile)
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
		registerBuiltinCommands(w, buildVersion())
	}
}

func (a *app) printDevBanner(srv *server.Server, storeURL string, wopts worker.Options, types []string, tokenFile string) {
	url := srv.HTTPURL()
	serverFlag := ""
	if url != defaultServerURL {
		serverFlag = " --server " + url
	}
	example := `pluto submit` + serverFlag + ` --type noop --wait`
	if containsString(types, "shell") {
		example = `pluto submit` + serverFlag + ` --type shell --payload '{"cmd":"echo hello from pluto"}' --wait`
	}
	consoleURL := url + "/"
	if link, err := srv.ConsoleLoginURL(readTokenOrEmpty(tokenFile)); err == nil {
		consoleURL = link + "  (signs you in once)"
	}
	fmt.Fprintf(a.stdout, `Pluto dev is running.
  console: %s
  API:     %s/api/v1
  gRPC:    %s
  store:   %s
  worker:  %s (group %s, capacity %d, handlers: %s)
  token:   %s (admin; the CLI reads it from here%s)

Try:
  %s
  pluto run ls%s

Ctrl-C stops (the worker drains first).
`, consoleURL, url, srv.GRPCAddr(), storeURL, wopts.ID, wopts.Group, wopts.Capacity, strings.Join(types, ", "), tokenFile, tokenNote(tokenFile), example, serverFlag)
}

// readTokenOrEmpty reads a token file ("" if it cannot).
func readTokenOrEmpty(path string) string {
	tok, _ := readTokenFile(path)
	return tok
}

// tokenNote tells how the CLI finds a dev token outside ./pluto-data.
func tokenNote(tokenFile string) string {
	if filepath.Clean(tokenFile) == filepath.Join(defaultDataDir, adminTokenFile) {
		return ""
	}
	return "; elsewhere set " + envData + "=" + filepath.Dir(tokenFile)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
