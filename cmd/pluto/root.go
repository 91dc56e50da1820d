package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/tlsconf"
)

// extraCommands are top-level commands defined in other files of this
// package that register themselves from an init function, e.g. in bench.go:
//
//	func init() { extraCommands = append(extraCommands, newBenchCmd) }
//
// Their RunE errors exit 1; cobra's own errors (flags, arguments) exit 2.
var extraCommands []func() *cobra.Command

const (
	defaultServerURL = "http://127.0.0.1:7070"
	envServer        = "PLUTO_SERVER"
	envToken         = "PLUTO_TOKEN"
)

// app holds what commands need from the process, so tests can run the
// command tree in-process.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// reexec replaces the process (a worker asked by its server to restart).
	reexec func() error
}

func newApp(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) *app {
	return &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, reexec: reexecSelf}
}

// reexecSelf replaces the process with a fresh copy of itself (same
// arguments and environment).
func reexecSelf() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, os.Environ())
}

// run executes the command line and returns the exit code, printing errors
// to stderr.
func (a *app) run(ctx context.Context, args []string) int {
	root := a.newRootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	fmt.Fprintf(a.stderr, "pluto: %v\n", err)
	if code == exitUsage && cmd != nil {
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

func (a *app) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "pluto",
		Short: "Pluto, a distributed task scheduler",
		Long: `Pluto stores work durably, decides when it runs and which worker runs it,
and shows it all live.

Client commands talk to a server's HTTP API: --server (env PLUTO_SERVER,
default ` + defaultServerURL + `), --token (env PLUTO_TOKEN), -o table|json.

` + tokenHelp + `

Exit codes: 0 success; 1 the command failed (server error, run not found,
run did not succeed, server unreachable); 2 usage error.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.AddCommand(
		a.newServerCmd(),
		a.newDevCmd(),
		a.newWorkerCmd(),
		a.newSubmitCmd(),
		a.newRunCmd(),
		a.newJobCmd(),
		a.newBackfillCmd(),
		a.newAlertCmd(),
		a.newClusterCmd(),
		a.newStatsCmd(),
		a.newCronCmd(),
		a.newTokenCmd(),
		a.newAuditCmd(),
	)
	for _, f := range extraCommands {
		root.AddCommand(f())
	}
	markFailures(root)
	return root
}

// markFailures makes every RunE error in the tree a failure (exit 1) unless
// it already carries an exit code.
func markFailures(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error { return failure(run(cmd, args)) }
	}
	for _, sub := range c.Commands() {
		markFailures(sub)
	}
}

// groupCmd is a command that only holds subcommands: without arguments it
// prints its help; an unknown subcommand is a usage error.
func groupCmd(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
}

// exactArgs is cobra.ExactArgs with names in the message.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return usageErrorf("missing %s", strings.Join(names[len(args):], ", "))
		}
		if len(args) > len(names) {
			return usageErrorf("unexpected argument %q", args[len(names)])
		}
		return nil
	}
}

// clientOpts are the flags every client command takes.
type clientOpts struct {
	server string
	token  string
	output string
	// tokenSet and getenv pick the token (resolveToken, devtoken.go).
	tokenSet func() bool
	getenv   func(string) string
	tls      tlsconf.ClientFiles // tls.go
}

func (a *app) addClientFlags(cmd *cobra.Command) *clientOpts {
	o := &clientOpts{getenv: a.getenv}
	server := a.getenv(envServer)
	if server == "" {
		server = defaultServerURL
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", server, "HTTP URL of a Pluto server (env "+envServer+")")
	f.StringVar(&o.token, "token", a.getenv(envToken), "API token, sent as a bearer token (env "+envToken+"; see pluto --help for the dev token)")
	o.tokenSet = func() bool { return f.Changed("token") }
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	a.addTLSFlags(f, &o.tls, "the client")
	return o
}

// client checks the client flags and returns an API client.
func (o *clientOpts) client() (*apiClient, error) {
	switch o.output {
	case "table", "json":
	default:
		return nil, usageErrorf("invalid --output %q: want table or json", o.output)
	}
	base, err := parseServerURL(o.server)
	if err != nil {
		return nil, usageErrorf("invalid --server %q: %v", o.server, err)
	}
	ts, err := resolveToken(o.tokenSet(), o.token, o.getenv, base.Hostname())
	if err != nil {
		return nil, err
	}
	c := newAPIClient(base, ts.token)
	c.tokenFrom = ts
	if err := clientTLS(c, o.tls); err != nil {
		return nil, err
	}
	return c, nil
}

func (o *clientOpts) json() bool { return o.output == "json" }

// parseServerURL accepts http(s)://host[:port][/prefix] or host:port.
func parseServerURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme must be http or https")
	}
	if u.Host == "" {
		return nil, fmt.Errorf("no host")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// printJSON prints a JSON document indented, as the API sent it.
func printJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		_, err = w.Write(raw)
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}
