// Package executor holds the handlers built into `pluto worker`: "shell"
// runs a command, "http" makes a request, "noop" does nothing (for `pluto
// bench` and tests). Each is a worker.Handler; register them on a
// worker.Mux under the Type* names.
//
// # Security
//
// The shell executor runs whatever command a run's payload names, as the
// worker's user: anyone who can submit a run of type "shell" to the group
// can execute code on the worker. It must therefore only be registered when
// the operator asked for it — `pluto worker --shell` — never by default.
// The HTTP executor makes requests from the worker's network position
// (server-side request forgery if untrusted clients can submit runs); it is
// registered only on request too — `pluto worker --http` — and connects to
// public addresses only unless its allow-list (HTTPOptions.Policy, `pluto
// worker --http-allow`) names others. See internal/netguard for what is
// public and how every connection, redirects included, is checked.
//
// # Shell
//
// Payload {"cmd": "…", "env": {…}, "dir": "…"}: cmd is run by `/bin/sh -c`
// in dir (default: the worker's working directory) with a clean
// environment — the worker's PATH (DefaultPath if unset), HOME, USER,
// LOGNAME, LANG, LC_ALL, LC_CTYPE, TZ and TMPDIR (MinimalEnv), not the rest
// of the worker's environment, which may hold secrets — plus PLUTO_RUN_ID,
// PLUTO_ATTEMPT, PLUTO_RUN_TYPE, PLUTO_JOB (and, in a fan-out's child,
// PLUTO_SHARD, PLUTO_SHARD_COUNT and PLUTO_PARENT_ID) and env. A worker started with
// --shell-inherit-env (ShellOptions.InheritEnv) passes its whole
// environment instead of the clean one. The command runs in its own
// process group; when the run is cancelled
// or times out the whole group gets SIGTERM, and SIGKILL after WaitDelay, so
// grandchildren die too; processes left in the group when the command exits
// are killed as well. stdout and stderr are streamed line by line as the
// run's log (streams "stdout" and "stderr") and their last MaxOutput bytes
// kept in the result {"exit_code": N, "stdout": "…", "stderr": "…"}, which
// is set even when the command fails. A non-zero exit fails the attempt.
//
// # HTTP
//
// Payload {"method": "POST", "url": "…", "headers": {…}, "body": "…",
// "timeout": "10s"} (method default GET, timeout default 30s). Result
// {"status": N, "headers": {…}, "body": "…"} with the body capped at MaxBody
// bytes ("truncated": true when cut). A 2xx status succeeds; any other fails
// the attempt with the status in the error. Redirects are followed, up to
// MaxRedirects (default 5), each checked like the first request. A URL
// with credentials (user:password@) is refused — a run's payload is shown
// to whoever may read the run; credentials belong in a header — and so is
// a destination the network policy refuses; neither is retried.
//
// Payload errors name the field (payload.cmd, payload.url…) and are marked
// worker.NoRetry: retrying the same payload cannot succeed.
package executor

import (
	"context"

	"github.com/pluto-sched/pluto/worker"
)

// Run types of the built-in executors.
const (
	TypeShell = "shell"
	TypeHTTP  = "http"
	TypeNoop  = "noop"
)

// Noop returns a handler that succeeds at once with a null result.
func Noop() worker.Handler {
	return worker.HandlerFunc(func(context.Context, *worker.Run) error { return nil })
}
