package worker

import (
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pluto-sched/pluto/internal/bearer"
)

// checkToken validates Options.Token (empty is allowed: no token).
func checkToken(token string) error {
	if token == "" {
		return nil
	}
	if err := bearer.Check(token); err != nil {
		return &optionError{"Token", err.Error()}
	}
	return nil
}

// dialOptions are the caller's DialOptions, after the token's per-call
// credentials so that the caller's options still come last.
func (w *Worker) dialOptions() []grpc.DialOption {
	if w.opts.Token == "" {
		return w.opts.DialOptions
	}
	return append([]grpc.DialOption{grpc.WithPerRPCCredentials(bearer.Token(w.opts.Token))}, w.opts.DialOptions...)
}

// authRefused reports whether the server refused the worker's token
// (missing, unknown, revoked, expired) or its permission to connect.
func authRefused(err error) bool {
	c := status.Code(err)
	return c == codes.Unauthenticated || c == codes.PermissionDenied
}

// authRetryDelay is the wait after an authentication refusal: the
// longest back-off at once, since retrying sooner cannot help (the token
// must be fixed or granted first), with jitter down to 80% so that the
// workers of a revoked token do not come back in step.
func authRetryDelay() time.Duration {
	return maxBackoff - rand.N(maxBackoff/5+1)
}

// logAuthRefused logs one refusal as an error that says what to fix.
func (w *Worker) logAuthRefused(addr string, err error, retryIn time.Duration) {
	st := status.Convert(err)
	var msg string
	if st.Code() == codes.PermissionDenied {
		msg = "the server refused this worker: its token may not connect workers (use a token of role worker: pluto token create --role worker)"
	} else {
		msg = "the server refused this worker's token: missing, unknown, revoked or expired (set Options.Token, or pluto worker --token / PLUTO_TOKEN, to a valid token of role worker)"
	}
	w.log.Error(fmt.Sprintf("%s; retrying in %s", msg, retryIn.Round(time.Second)),
		"server", addr, "code", st.Code().String(), "reason", st.Message())
}
