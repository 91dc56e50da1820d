package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/executor"
	"github.com/pluto-sched/pluto/internal/netguard"
	"github.com/pluto-sched/pluto/worker"
)

const envWorkerServer = "PLUTO_WORKER_SERVER"

func (a *app) newWorkerCmd() *cobra.Command {
	var (
		servers      []string
		id, group    string
		capacity     int
		prefetch     int
		shell        bool
		handlers     builtinHandlers
		httpAllow    []string
		drainTimeout time.Duration
		resultDir    string
		token        string
	)
	cmd := &cobra.Command{
		Use:   "worker --server HOST:GRPCPORT[,HOST:PORT…] --group G --capacity N [--shell] [--http [--http-allow LIST]]",
		Short: "Run a worker (or control workers: pluto worker ls|get|drain|resume|shutdown|restart|command)",
		Long: `Run a worker that executes runs of group --group with the built-in
handler noop, shell only with --shell and http only with --http.

Without --shell this worker never takes shell runs: shell executes commands
sent over the network, so it must be enabled on purpose. Shell runs get a
clean environment (PATH, HOME, USER, LOGNAME, LANG, LC_ALL, LC_CTYPE, TZ,
TMPDIR of the worker's, then what the payload sets), not this worker's,
which may hold secrets; --shell-inherit-env passes the worker's whole
environment instead.

Without --http this worker never takes http runs: http makes requests from
this worker's network. With it, requests may only connect to public
addresses; loopback, link-local (169.254.0.0/16, fe80::/10), private,
CGNAT, multicast and reserved addresses are refused, checked on the address
each connection dials, redirects included, unless --http-allow lists them
(CIDRs, IPs, host names, *.wildcards; comma-separated, repeatable). URLs
with credentials (user:password@) are refused. See docs/security.md.

The worker dials the servers' gRPC port (--server, comma-separated for
failover; env ` + envWorkerServer + `). SIGINT or SIGTERM drains it: it takes
no new runs, lets running ones finish (up to --drain-timeout), reports, and
exits. When a server asks it to restart, it re-executes itself. It answers
the remote commands ping and stats (pluto worker command ID ping).

Results no server has acknowledged yet (the server is unreachable, or slow
to answer) are kept on disk in --result-dir and delivered when a server is
reachable again, also after the worker restarts. The server accepts them if
the worker came back under the same --id before it was declared dead. So the
result directory defaults to one per --id; without --id (the ID then
contains the process ID) results are kept in memory only unless
--result-dir is given.

` + workerTokenHelp,
		Example: `  pluto worker --server 127.0.0.1:7071 --group default --capacity 8
  pluto worker --server pluto-1:7071,pluto-2:7071 --group reports --capacity 2 --shell
  pluto worker --http --http-allow 10.20.0.0/16,status.internal
  pluto worker --id builder-1 --result-dir /var/lib/pluto/builder-1
  pluto worker ls
  pluto worker drain w1
  pluto worker command --group default stats`,
		Args: cobra.NoArgs,
	}
	defServers := []string{defaultGRPCAddr}
	if v := a.getenv(envWorkerServer); v != "" {
		defServers = strings.Split(v, ",")
	}
	f := cmd.Flags()
	f.StringSliceVar(&servers, "server", defServers, "gRPC address(es) of Pluto servers, HOST:PORT (env "+envWorkerServer+")")
	f.StringVar(&group, "group", worker.DefaultGroup, "worker group to serve")
	f.IntVar(&capacity, "capacity", runtime.NumCPU(), "runs processed at once")
	f.IntVar(&prefetch, "prefetch", 0, "runs held beyond capacity so the next is ready (0: same as capacity, -1: none)")
	f.StringVar(&id, "id", "", "worker ID (default hostname-pid); a worker reconnecting with its ID keeps its runs")
	f.BoolVar(&shell, "shell", false, "enable the shell handler (runs commands from the network; off by default)")
	f.BoolVar(&handlers.shellInheritEnv, "shell-inherit-env", false, "give shell runs this worker's whole environment (default: a clean one, see above)")
	f.BoolVar(&handlers.http, "http", false, "enable the http handler (makes requests from this worker's network; off by default)")
	f.BoolVar(&handlers.sensors, "sensors", false, "enable the file-sensor and http-sensor handlers (check this worker's files and network for a run's success marker)")
	f.StringSliceVar(&httpAllow, "http-allow", nil, "non-public destinations http runs may also reach: CIDRs, IPs, host names, *.wildcards (comma-separated, repeatable; default: public addresses only)")
	f.DurationVar(&drainTimeout, "drain-timeout", worker.DefaultDrainTimeout, "on stop, how long running handlers may take to finish")
	f.StringVar(&resultDir, "result-dir", "", "directory for results not yet acknowledged, delivered after a restart (default with --id: $XDG_STATE_HOME/pluto/worker-<id>, XDG_STATE_HOME defaulting to ~/.local/state; without --id, or \"\": memory only)")
	f.StringVar(&token, "token", a.getenv(envToken), "API token of role worker (env "+envToken+"; see the token precedence above)")
	wtls := a.addWorkerTLSFlags(f)
	lo := addLogFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		log, err := lo.logger(a.stderr)
		if err != nil {
			return err
		}
		tlsCfg, err := wtls.config(log)
		if err != nil {
			return err
		}
		var addrs []string
		for _, s := range servers {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
				return usageErrorf("invalid --server %q: a worker dials the gRPC port, HOST:PORT (e.g. 127.0.0.1:7071), not the HTTP URL", s)
			}
			if err := checkListenAddr("server", s); err != nil {
				return err
			}
			addrs = append(addrs, s)
		}
		if len(addrs) == 0 {
			return usageErrorf("--server: at least one HOST:PORT is required")
		}
		if strings.TrimSpace(group) == "" {
			return usageErrorf("--group must not be empty")
		}
		if capacity < 1 {
			return usageErrorf("invalid --capacity %d: must be at least 1", capacity)
		}
		if prefetch < -1 {
			return usageErrorf("invalid --prefetch %d: want -1 (none), 0 (same as capacity) or more", prefetch)
		}
		if drainTimeout <= 0 {
			return usageErrorf("invalid --drain-timeout %s: must be positive", drainTimeout)
		}
		if !cmd.Flags().Changed("result-dir") && id != "" {
			resultDir = defaultResultDir(a.getenv, id)
		}
		if token, err = a.workerToken(cmd, token, addrs); err != nil {
			return err
		}
		handlers.shell = shell
		if err := handlers.configure(httpAllow); err != nil {
			return err
		}
		mux := handlers.mux()
		version := buildVersion()
		w, err := worker.New(worker.Options{
			Servers:      addrs,
			ID:           id,
			Group:        group,
			Capacity:     capacity,
			Prefetch:     prefetch,
			Handler:      mux,
			Logger:       log,
			DrainTimeout: drainTimeout,
			ResultDir:    resultDir,
			Version:      version,
			Token:        token,
			TLS:          tlsCfg,
		})
		if err != nil {
			return usageErrorf("%v", err)
		}
		registerBuiltinCommands(w, version)
		stored := resultDir
		if stored == "" {
			stored = "memory only"
		}
		log.Info("pluto worker starting", "id", w.ID(), "group", group, "capacity", capacity, "servers", addrs, "handlers", mux.Types(), "results", stored,
			"http_allow", handlers.httpAllow.String(), "shell_env", handlers.shellEnv())
		err = w.Run(cmd.Context())
		if errors.Is(err, worker.ErrRestart) {
			log.Info("restarting at the server's request")
			if rerr := a.reexec(); rerr != nil {
				return fmt.Errorf("restart requested by the server, but re-executing failed: %w", rerr)
			}
			return nil
		}
		if err != nil {
			return err
		}
		log.Info("pluto worker stopped")
		return nil
	}
	cmd.AddCommand(a.newWorkerLsCmd())
	cmd.AddCommand(a.workerControlCmds()...)
	return cmd
}

func (a *app) newWorkerLsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "ls",
		Short:   "List connected workers",
		Aliases: []string{"list"},
		Args:    cobra.NoArgs,
	}
	co := a.addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := co.client()
		if err != nil {
			return err
		}
		raw, err := c.do(cmd.Context(), http.MethodGet, "/workers", nil, nil)
		if err != nil {
			return err
		}
		if co.json() {
			return printJSON(a.stdout, raw)
		}
		list, err := decode[apiList[apiWorker]](raw)
		if err != nil {
			return err
		}
		printWorkers(a.stdout, list.Items)
		return nil
	}
	return cmd
}

func printWorkers(w io.Writer, ws []apiWorker) {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tGROUP\tSTATE\tRUNNING/CAPACITY\tCPU\tMEM\tHANDLERS")
	for _, wk := range ws {
		handlers := slices.Clone(wk.Handlers)
		slices.Sort(handlers)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%.0f%%\t%s\t%s\n", wk.ID, wk.Group, workerState(wk), wk.Running, wk.Capacity,
			wk.CPU*100, formatBytes(wk.MemBytes), strings.Join(handlers, ","))
	}
	_ = tw.Flush()
}

// formatBytes shows a byte count in binary units (118MiB).
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v >= 10 {
		return fmt.Sprintf("%.0f%ciB", v, "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.1f%ciB", v, "KMGTPE"[exp])
}

// defaultResultDir is where `pluto worker --id ID` keeps undelivered
// results: $XDG_STATE_HOME/pluto/worker-ID, with XDG_STATE_HOME defaulting
// to $HOME/.local/state; "" (memory only) when neither is set, rather than
// a directory relative to wherever the worker was started. Characters of
// ID other than letters, digits, '.', '_' and '-' become '_'.
func defaultResultDir(getenv func(string) string, id string) string {
	name := "worker-" + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '_'
	}, id)
	if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "pluto", name)
	}
	if h := getenv("HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".local", "state", "pluto", name)
	}
	return ""
}

// builtinHandlers says which built-in handlers a worker serves and how:
// noop always; shell and http only when asked for, since each acts on the
// network's behalf (shell runs commands, http makes requests from the
// worker's network position).
type builtinHandlers struct {
	shell           bool
	shellInheritEnv bool // the worker's whole environment, not a clean one
	http            bool
	sensors         bool             // file-sensor and http-sensor
	httpAllow       *netguard.Policy // beside public addresses; nil: none
}

// configure checks the handler flags — --shell-inherit-env and
// --http-allow only mean something with the handler they tune — and
// parses --http-allow.
func (b *builtinHandlers) configure(httpAllow []string) error {
	if b.shellInheritEnv && !b.shell {
		return usageErrorf("--shell-inherit-env needs --shell")
	}
	if len(httpAllow) > 0 && !b.http && !b.sensors {
		return usageErrorf("--http-allow needs --http or --sensors (the handlers that make requests are off without them)")
	}
	p, err := netguard.Parse(executor.HTTPAllowName, httpAllow)
	if err != nil {
		return usageErrorf("invalid --http-allow: %v", err)
	}
	b.httpAllow = p
	return nil
}

// shellEnv describes the environment of shell runs, for the start-up log.
func (b builtinHandlers) shellEnv() string {
	switch {
	case !b.shell:
		return ""
	case b.shellInheritEnv:
		return "inherited"
	}
	return "clean"
}

func (b builtinHandlers) mux() *worker.Mux {
	mux := worker.NewMux()
	mux.Handle(executor.TypeNoop, executor.Noop())
	if b.http {
		mux.Handle(executor.TypeHTTP, executor.HTTP(executor.HTTPOptions{Policy: b.httpAllow}))
	}
	if b.shell {
		mux.Handle(executor.TypeShell, executor.Shell(executor.ShellOptions{InheritEnv: b.shellInheritEnv}))
	}
	if b.sensors {
		mux.Handle(executor.TypeFileSensor, executor.FileSensor())
		mux.Handle(executor.TypeHTTPSensor, executor.HTTPSensor(b.httpAllow))
	}
	return mux
}

// builtinMux is the handler set of pluto dev's local worker: http (public
// destinations only) and noop always, shell when enabled. pluto dev
// listens on loopback for a single user, which is why http stays on there.
func builtinMux(shell bool) *worker.Mux {
	return builtinHandlers{shell: shell, http: true, sensors: true}.mux()
}
