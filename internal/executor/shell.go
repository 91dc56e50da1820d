package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/pluto-sched/pluto/worker"
)

// Defaults for ShellOptions.
const (
	DefaultMaxOutput      = 64 << 10
	DefaultMaxStreamBytes = 8 << 20
	DefaultWaitDelay      = 5 * time.Second
)

// ShellOptions configure the shell executor. Zero values take defaults.
type ShellOptions struct {
	// Shell runs the command as `Shell -c cmd` (default "/bin/sh").
	Shell string
	// MaxOutput is how many bytes of stdout, and of stderr, the result
	// keeps: the last ones, after a truncation marker (default 64 KiB).
	MaxOutput int
	// MaxStreamBytes bounds the output streamed as log lines, per stream
	// (default 8 MiB); the result capture is not affected.
	MaxStreamBytes int64
	// Env is the base environment. Default: MinimalEnv(os.Environ()), a few
	// harmless variables of the worker's; with InheritEnv, os.Environ().
	Env []string
	// InheritEnv makes the worker's whole environment the default base
	// (pluto worker --shell-inherit-env). Off, because a worker's
	// environment often holds secrets (tokens, cloud credentials) that
	// anyone who may submit a shell run could otherwise print.
	InheritEnv bool
	// Dir is the working directory when the payload names none (default:
	// the worker's).
	Dir string
	// WaitDelay is how long a cancelled command's process group has between
	// SIGTERM and SIGKILL, and how long output is awaited from processes
	// left behind by a command that exited (default 5 s).
	WaitDelay time.Duration
}

// ShellPayload is the payload of a "shell" run.
type ShellPayload struct {
	Cmd string            `json:"cmd"`
	Env map[string]string `json:"env,omitempty"`
	Dir string            `json:"dir,omitempty"`
}

// ShellResult is the result of a "shell" run. ExitCode is -1 when the
// command did not exit normally (killed by a signal, or not started).
type ShellResult struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// Shell returns the shell executor. See the package documentation: register
// it only when the worker was started with shell execution enabled.
func Shell(opts ShellOptions) worker.Handler {
	if opts.Shell == "" {
		opts.Shell = "/bin/sh"
	}
	if opts.MaxOutput <= 0 {
		opts.MaxOutput = DefaultMaxOutput
	}
	if opts.MaxStreamBytes <= 0 {
		opts.MaxStreamBytes = DefaultMaxStreamBytes
	}
	if opts.WaitDelay <= 0 {
		opts.WaitDelay = DefaultWaitDelay
	}
	if opts.Env == nil {
		opts.Env = os.Environ()
		if !opts.InheritEnv {
			opts.Env = MinimalEnv(opts.Env)
		}
	}
	return worker.HandlerFunc(func(ctx context.Context, r *worker.Run) error {
		return runShell(ctx, r, &opts)
	})
}

func runShell(ctx context.Context, r *worker.Run, opts *ShellOptions) error {
	var p ShellPayload
	if err := r.Decode(&p); err != nil {
		return err
	}
	if strings.TrimSpace(p.Cmd) == "" {
		return worker.NoRetry(errors.New("payload.cmd: required"))
	}
	dir := p.Dir
	if dir == "" {
		dir = opts.Dir
	}
	if dir != "" {
		if fi, err := os.Stat(dir); err != nil {
			return fmt.Errorf("payload.dir: %w", err)
		} else if !fi.IsDir() {
			return fmt.Errorf("payload.dir: %s is not a directory", dir)
		}
	}
	env, err := shellEnv(opts.Env, r, p.Env)
	if err != nil {
		return err
	}

	stdout := &capture{max: opts.MaxOutput, stream: r.Output(worker.StreamStdout), streamMax: opts.MaxStreamBytes}
	stderr := &capture{max: opts.MaxOutput, stream: r.Output(worker.StreamStderr), streamMax: opts.MaxStreamBytes}
	cmd := exec.CommandContext(ctx, opts.Shell, "-c", p.Cmd)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	// Own process group, so cancel reaches grandchildren. Pdeathsig kills
	// the shell if the worker dies (SIGKILL, OOM): its run is requeued with
	// a new attempt, and the old command must not keep running beside it.
	// (Linux delivers it when the thread that started the child exits; Go
	// ends threads only for goroutines that die locked to one, which the
	// worker never does.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// On cancel the whole group gets SIGTERM; after WaitDelay exec kills
	// the shell and closes the pipes, and killGroup below SIGKILLs the rest.
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = opts.WaitDelay

	err = cmd.Start()
	if err == nil {
		err = cmd.Wait()
		// Nothing the command started outlives the run.
		signalGroup(cmd.Process.Pid, syscall.SIGKILL)
	}
	res := ShellResult{ExitCode: -1}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	if serr := r.SetResult(res); serr != nil {
		return serr
	}

	var exitErr *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay) && res.ExitCode == 0:
		// ErrWaitDelay with exit 0: the command succeeded but left
		// processes holding its output; they were killed.
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("shell: %w (command killed)", ctx.Err())
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("shell: command killed by signal %v", ws.Signal())
		}
		return fmt.Errorf("shell: command failed with exit code %d", res.ExitCode)
	default:
		return fmt.Errorf("shell: %w", err)
	}
}

// MinimalEnvNames are the variables MinimalEnv keeps: what commands
// commonly need to work (find programs, a home, the user, locale, time
// zone, temporary files) and that hold no secrets.
var MinimalEnvNames = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"}

// DefaultPath is PATH in MinimalEnv when environ has none.
const DefaultPath = "/usr/local/bin:/usr/bin:/bin"

// MinimalEnv returns the variables of environ (NAME=value entries) named in
// MinimalEnvNames, with PATH set to DefaultPath if environ has none: the
// base environment of shell runs unless the worker opts into its own.
func MinimalEnv(environ []string) []string {
	var env []string
	path := false
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains(MinimalEnvNames, name) {
			env = append(env, kv)
			path = path || name == "PATH"
		}
	}
	if !path {
		env = append(env, "PATH="+DefaultPath)
	}
	return env
}

// shellEnv is base, then the run's PLUTO_* variables, then the payload's
// variables in name order; later entries win.
func shellEnv(base []string, r *worker.Run, extra map[string]string) ([]string, error) {
	env := slices.Clip(base)
	env = append(env,
		"PLUTO_RUN_ID="+r.ID(),
		"PLUTO_ATTEMPT="+strconv.Itoa(r.Attempt()),
		"PLUTO_RUN_TYPE="+r.Type(),
		"PLUTO_JOB="+r.Job(),
	)
	if i, n := r.Shard(); n > 0 { // a fan-out's child
		env = append(env, "PLUTO_SHARD="+strconv.Itoa(i), "PLUTO_SHARD_COUNT="+strconv.Itoa(n), "PLUTO_PARENT_ID="+r.ParentID())
	}
	names := make([]string, 0, len(extra))
	for k := range extra {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(extra[k], 0) {
			return nil, worker.NoRetry(fmt.Errorf("payload.env: invalid variable %q", k))
		}
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		env = append(env, k+"="+extra[k])
	}
	return env, nil
}

// signalGroup signals every process of the group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// capture streams what a command writes to the run's output and keeps the
// last max bytes for the result.
type capture struct {
	max       int
	buf       []byte
	total     int64
	stream    io.Writer
	streamMax int64
	streamed  int64
}

func (c *capture) Write(p []byte) (int, error) {
	c.total += int64(len(p))
	if c.streamed < c.streamMax {
		s := p
		if rest := c.streamMax - c.streamed; int64(len(s)) > rest {
			s = s[:rest]
		}
		c.stream.Write(s)
		c.streamed += int64(len(s))
		if c.streamed >= c.streamMax {
			fmt.Fprintf(c.stream, "\n[pluto: output beyond %d bytes is not streamed]\n", c.streamMax)
		}
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) > 2*c.max {
		n := copy(c.buf, c.buf[len(c.buf)-c.max:])
		c.buf = c.buf[:n]
	}
	return len(p), nil
}

// String returns the captured output; if more than max bytes were written,
// a marker saying how many were dropped precedes the last max bytes.
func (c *capture) String() string {
	if c.total <= int64(c.max) {
		return string(c.buf)
	}
	tail := c.buf[len(c.buf)-min(len(c.buf), c.max):]
	for i := 0; i < utf8.UTFMax && len(tail) > 0 && !utf8.RuneStart(tail[0]); i++ {
		tail = tail[1:]
	}
	return fmt.Sprintf("[pluto: %d bytes truncated]\n", c.total-int64(len(tail))) + string(tail)
}
