package main

// Remote control of workers:
//
//	pluto worker get ID
//	pluto worker drain|resume|shutdown|restart ID
//	pluto worker command ID NAME | --group G NAME  [--args JSON] [--timeout D]
//
// and the built-in commands every `pluto worker` answers (ping, stats).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/worker"
)

// workerControlCmds are the subcommands of `pluto worker` that talk to a
// server about a worker.
func (a *app) workerControlCmds() []*cobra.Command {
	return []*cobra.Command{
		a.newWorkerGetCmd(),
		a.newWorkerActionCmd("drain", "Stop sending runs to a worker; it finishes the ones it holds",
			`The worker takes no new runs and finishes the ones it holds (running or
prefetched); the other workers of its group take the new runs. It stays
connected and drained until "pluto worker resume ID" — also across a
reconnect. Any server of a cluster may be asked: one that does not have the
worker sends the request on to the server that does.`),
		a.newWorkerActionCmd("resume", "Let a drained worker take runs again", ""),
		a.newWorkerActionCmd("shutdown", "Ask a worker to drain and exit",
			`The worker takes no new runs, finishes the ones it holds (up to its
--drain-timeout), reports them and exits with status 0. A supervisor that
restarts workers on exit (systemd Restart=always, Kubernetes) starts it
again; use it with Restart=on-failure to stop a worker for good.`),
		a.newWorkerActionCmd("restart", "Ask a worker to drain and start again",
			`The worker takes no new runs, finishes the ones it holds, then starts
again in place: "pluto worker" re-executes itself with the same arguments
and environment (same process ID, so the same default ID) and reconnects. A
program using the Go worker SDK gets worker.ErrRestart from Run and decides.`),
		a.newWorkerCommandCmd(),
	}
}

func (a *app) newWorkerGetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one worker",
		Args:  exactArgs("worker ID"),
	}
	co := a.addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return show(cmd, co, a.stdout, http.MethodGet, "/workers/"+url.PathEscape(args[0]), func(wk apiWorker) error {
			printWorkers(a.stdout, []apiWorker{wk})
			return nil
		})
	}
	return cmd
}

func (a *app) newWorkerActionCmd(action, short, long string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   action + " ID",
		Short: short,
		Long:  long,
		Args:  exactArgs("worker ID"),
	}
	co := a.addClientFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return show(cmd, co, a.stdout, http.MethodPost, "/workers/"+url.PathEscape(args[0])+"/"+action, func(wk apiWorker) error {
			printWorkerAction(a.stdout, action, wk)
			return nil
		})
	}
	return cmd
}

func printWorkerAction(w io.Writer, action string, wk apiWorker) {
	holds := fmt.Sprintf("the %d run(s) it holds", wk.Running)
	switch action {
	case "drain":
		fmt.Fprintf(w, "worker %s draining: it takes no new runs and finishes %s (server %s)\n", wk.ID, holds, wk.Server)
	case "resume":
		fmt.Fprintf(w, "worker %s resumed: it takes runs again (server %s)\n", wk.ID, wk.Server)
	case "shutdown":
		fmt.Fprintf(w, "worker %s shutting down: it finishes %s, then exits (server %s)\n", wk.ID, holds, wk.Server)
	case "restart":
		fmt.Fprintf(w, "worker %s restarting: it finishes %s, then starts again (server %s)\n", wk.ID, holds, wk.Server)
	}
}

func (a *app) newWorkerCommandCmd() *cobra.Command {
	var (
		group   string
		args    string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "command ID NAME | command --group G NAME",
		Short: "Send a custom command to a worker, or to every worker of a group",
		Long: `Send the command NAME, with --args as its JSON arguments, to the worker ID
or to every worker of --group (on every server of a cluster), and print
each worker's reply. A worker answers the commands it registered
(worker.HandleCommand in the Go SDK); every "pluto worker" answers

  ping    {"pong": true, "id", "version", "go", "pid", "hostname", "uptime"}
  stats   its counters: running, queued, unacked, stored, window,
          connected, server, draining

A worker that does not answer within --timeout is reported with the error
"timeout"; one that does not know the command says so. The command exits 1
if any worker did not answer successfully.`,
		Example: `  pluto worker command w1 ping
  pluto worker command --group reports stats -o json
  pluto worker command w1 flush-cache --args '{"region":"eu"}' --timeout 30s`,
	}
	co := a.addClientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&group, "group", "", "send to every worker of this group instead of one worker")
	f.StringVar(&args, "args", "", "the command's arguments, a JSON value")
	f.DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the replies (at most 5m)")
	cmd.Args = func(cmd *cobra.Command, pos []string) error {
		if group != "" {
			return exactArgs("command name")(cmd, pos)
		}
		return exactArgs("worker ID (or --group G)", "command name")(cmd, pos)
	}
	cmd.RunE = func(cmd *cobra.Command, pos []string) error {
		if timeout <= 0 || timeout > 5*time.Minute {
			return usageErrorf("invalid --timeout %s: want more than 0 and at most 5m", timeout)
		}
		body := apijson.Command{Name: pos[len(pos)-1], Timeout: timeout.String()}
		if args != "" {
			if !json.Valid([]byte(args)) {
				return usageErrorf("invalid --args: not a JSON value: %s", args)
			}
			body.Args = json.RawMessage(args)
		}
		c, err := co.client()
		if err != nil {
			return err
		}
		path := "/workers/" + url.PathEscape(pos[0]) + "/command"
		if group != "" {
			path = "/groups/" + url.PathEscape(group) + "/command"
		}
		raw, err := c.doTimeout(cmd.Context(), timeout+c.requestTimeout, http.MethodPost, path, nil, body)
		if err != nil {
			return err
		}
		reps, err := decode[apijson.CommandReplies](raw)
		if err != nil {
			return err
		}
		if co.json() {
			if err := printJSON(a.stdout, raw); err != nil {
				return err
			}
		} else {
			printCommandReplies(a.stdout, reps.Items)
		}
		for _, u := range reps.Unreachable {
			fmt.Fprintf(a.stderr, "pluto: server %s (%s) did not answer: %s\n", u.Server, u.HTTP, u.Error)
		}
		failed := 0
		for _, it := range reps.Items {
			if !it.OK {
				failed++
			}
		}
		if failed > 0 {
			return failf("%d of %d worker(s) did not answer %q successfully", failed, len(reps.Items), body.Name)
		}
		if len(reps.Unreachable) > 0 {
			return failf("%d server(s) could not be asked", len(reps.Unreachable))
		}
		return nil
	}
	return cmd
}

func printCommandReplies(w io.Writer, items []apijson.CommandReply) {
	tw := newTable(w)
	fmt.Fprintln(tw, "WORKER\tSERVER\tOK\tREPLY")
	for _, it := range items {
		reply := "error: " + it.Error
		if it.OK {
			var buf bytes.Buffer
			if json.Compact(&buf, it.Result) == nil {
				reply = buf.String()
			} else {
				reply = string(it.Result)
			}
		}
		if r := []rune(reply); len(r) > 200 {
			reply = string(r[:200]) + "…"
		}
		ok := "yes"
		if !it.OK {
			ok = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Worker, orDash(optStr(it.Server)), ok, strings.ReplaceAll(reply, "\n", " "))
	}
	_ = tw.Flush()
}

func optStr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// workerState is the STATE column: the liveness, or what the worker was
// asked to do while it is alive.
func workerState(wk apiWorker) string {
	switch {
	case wk.State != "alive":
		return wk.State
	case wk.Leaving:
		return "leaving"
	case wk.Draining:
		return "draining"
	}
	return wk.State
}

// buildVersion is this binary's version as Go recorded it: the module
// version, or the VCS revision of a development build.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

// workerStatsJSON is the reply of the built-in stats command.
type workerStatsJSON struct {
	Running   int    `json:"running"`
	Queued    int    `json:"queued"`
	Unacked   int    `json:"unacked"`
	Stored    int    `json:"stored"`
	Window    int    `json:"window"`
	Connected bool   `json:"connected"`
	Server    string `json:"server"`
	Draining  bool   `json:"draining"`
}

// registerBuiltinCommands gives a worker the remote commands every `pluto
// worker` answers: ping and stats.
func registerBuiltinCommands(w *worker.Worker, version string) {
	started := time.Now()
	host, _ := os.Hostname()
	w.HandleCommand("ping", func(context.Context, json.RawMessage) (any, error) {
		return map[string]any{
			"pong": true, "id": w.ID(), "version": version, "go": runtime.Version(),
			"pid": os.Getpid(), "hostname": host, "uptime": time.Since(started).Round(time.Second).String(),
		}, nil
	})
	w.HandleCommand("stats", func(context.Context, json.RawMessage) (any, error) {
		s := w.Stats()
		return workerStatsJSON{
			Running: s.Running, Queued: s.Queued, Unacked: s.Unacked, Stored: s.Stored, Window: s.Window,
			Connected: s.Connected, Server: s.Server, Draining: s.Draining,
		}, nil
	})
}
