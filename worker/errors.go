package worker

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. The run-ending ones are set as the cause of a run's
// context (read them with [context.Cause]) so a handler can tell why it was
// stopped.
var (
	// ErrRestart is returned by [Worker.Run] when the server asked the worker
	// to restart (Shutdown{restart: true}); the caller should re-exec itself
	// or exit so that a supervisor restarts it.
	ErrRestart = errors.New("worker: restart requested by server")

	// ErrUnknownType is wrapped by the error a [Mux] returns for a run whose
	// type has no handler.
	ErrUnknownType = errors.New("worker: no handler for run type")

	// ErrRunCancelled is the context cause when the server cancelled the run
	// (a user cancelled it, or it was replaced). The attempt is reported
	// CANCELLED.
	ErrRunCancelled = errors.New("worker: run cancelled by server")

	// ErrRunTimedOut is the context cause when the run's timeout or deadline
	// passed. The attempt is reported TIMED_OUT.
	ErrRunTimedOut = errors.New("worker: run timed out")

	// ErrDrainTimeout is the context cause when the worker was draining and
	// the run did not finish within Options.DrainTimeout. The attempt is
	// reported FAILED (so that the server's retry policy applies).
	ErrDrainTimeout = errors.New("worker: drain timeout exceeded")

	// ErrStaleRun is the context cause when the server told the worker, on
	// reconnect, that this attempt is no longer current. Nothing is reported
	// for it.
	ErrStaleRun = errors.New("worker: attempt is stale")
)

// Poke reports that the run is not done yet and should run again after d
// (a sensor waiting for a file or an endpoint): the server puts it back to
// pending until then, the worker's slot is free meanwhile, and the attempt
// is not counted against the run's retries. d is kept between 1 s and 24 h
// by the server. A handler returns it as its error.
func Poke(d time.Duration) error { return &pokeError{after: d} }

// PokeAfter reports whether err, or an error it wraps, is a [Poke], and
// its delay.
func PokeAfter(err error) (time.Duration, bool) {
	var p *pokeError
	if errors.As(err, &p) {
		return p.after, true
	}
	return 0, false
}

type pokeError struct{ after time.Duration }

func (p *pokeError) Error() string { return fmt.Sprintf("not done yet: poke again in %s", p.after) }

// NoRetry marks err as a failure that retrying cannot fix (bad input, a
// permanent refusal): the attempt is reported with no_retry set and the
// server does not retry the run even if attempts are left. NoRetry(nil) is
// nil.
func NoRetry(err error) error {
	if err == nil {
		return nil
	}
	var nr *noRetryError
	if errors.As(err, &nr) {
		return err
	}
	return &noRetryError{err: err}
}

// IsNoRetry reports whether err, or an error it wraps, was marked with
// [NoRetry].
func IsNoRetry(err error) bool {
	var nr *noRetryError
	return errors.As(err, &nr)
}

type noRetryError struct{ err error }

func (e *noRetryError) Error() string { return e.err.Error() }
func (e *noRetryError) Unwrap() error { return e.err }

// optionError names the Options field that failed validation.
type optionError struct {
	field string
	msg   string
}

func (e *optionError) Error() string {
	return fmt.Sprintf("worker: Options.%s: %s", e.field, e.msg)
}
