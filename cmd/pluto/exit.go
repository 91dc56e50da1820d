package main

import (
	"errors"
	"fmt"
)

// Exit codes of the pluto command.
const (
	exitOK      = 0 // success
	exitFailure = 1 // the command ran and failed: server error, run not found, run did not succeed, unreachable server
	exitUsage   = 2 // the command line was wrong: unknown command or flag, missing argument, invalid flag value
)

// exitError carries an exit code with the error to print.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports a wrong command line (exit 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// failure marks err as a failure of the command (exit 1) unless it already
// carries a code.
func failure(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitFailure, err: err}
}

// failf reports a failure (exit 1).
func failf(format string, args ...any) error {
	return &exitError{code: exitFailure, err: fmt.Errorf(format, args...)}
}

// exitCode is the process exit code for an error returned by the command
// tree. Errors that do not come from a command's RunE (they come from cobra
// itself: unknown command or flag, bad flag value, wrong number of
// arguments, flags that exclude each other) are usage errors.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitUsage
}
