package worker

import (
	"context"
	"fmt"
	"runtime"
)

// A Handler processes one attempt of a run.
//
// ProcessRun returns nil when the work succeeded; the attempt is then
// reported SUCCEEDED with the result set by [Run.SetResult]. Any other
// return fails the attempt; wrap the error with [NoRetry] to tell the server
// not to retry. ctx is cancelled when the server cancels the run, when its
// timeout passes, or when a draining worker runs out of time;
// [context.Cause] tells which.
//
// Like an http.Handler, a Handler is called concurrently (up to
// Options.Capacity at once) and must not retain r after returning.
type Handler interface {
	ProcessRun(ctx context.Context, r *Run) error
}

// HandlerFunc adapts an ordinary function to a [Handler].
type HandlerFunc func(ctx context.Context, r *Run) error

// ProcessRun calls f(ctx, r).
func (f HandlerFunc) ProcessRun(ctx context.Context, r *Run) error { return f(ctx, r) }

// Middleware wraps a Handler with behaviour of its own (logging, metrics,
// tracing, authorisation…). Middlewares passed to [Mux.Use] run in the order
// given: the first one is the outermost.
type Middleware func(Handler) Handler

// Chain applies mws to h so that mws[0] is the outermost.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Recover is a Middleware that turns a panic in the wrapped handler into an
// error ("panic: <value>"), so the attempt fails instead of the process
// crashing. The stack is written to the run's log. [NewMux] installs it by
// default, and the Worker itself recovers from panics as a last resort.
func Recover() Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, r *Run) (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = panicError(r, p)
				}
			}()
			return next.ProcessRun(ctx, r)
		})
	}
}

func panicError(r *Run, p any) error {
	buf := make([]byte, 16<<10)
	buf = buf[:runtime.Stack(buf, false)]
	if r != nil {
		r.Logger().Error("handler panicked", "panic", fmt.Sprint(p), "stack", string(buf))
	}
	return fmt.Errorf("panic: %v", p)
}

// callHandler runs h and converts a panic into an error.
func callHandler(ctx context.Context, h Handler, r *Run) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError(r, p)
		}
	}()
	return h.ProcessRun(ctx, r)
}
