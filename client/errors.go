package client

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors, matched with errors.Is against any error this package
// returns.
var (
	// ErrNotFound: no run has that ID (gRPC NotFound).
	ErrNotFound = errors.New("pluto: not found")
	// ErrConflict: the run is not in a state that allows the operation, for
	// example retrying a run that is still running (gRPC FailedPrecondition,
	// Aborted or AlreadyExists).
	ErrConflict = errors.New("pluto: conflict")
	// ErrUnavailable: no server answered, or the server is shutting down
	// (gRPC Unavailable). The call may succeed if repeated.
	ErrUnavailable = errors.New("pluto: unavailable")
	// ErrPayloadTooLarge: a payload or the whole request is over the
	// server's limit (gRPC ResourceExhausted).
	ErrPayloadTooLarge = errors.New("pluto: payload too large")
	// ErrInvalid: the request was rejected as invalid (gRPC
	// InvalidArgument). Use errors.As with *FieldError to learn the field.
	ErrInvalid = errors.New("pluto: invalid request")
	// ErrUnauthenticated: the token is missing or not valid (gRPC
	// Unauthenticated).
	ErrUnauthenticated = errors.New("pluto: unauthenticated")
	// ErrPermissionDenied: the token's role may not do this (gRPC
	// PermissionDenied).
	ErrPermissionDenied = errors.New("pluto: permission denied")
	// ErrSpooled: no server took the submission; the client's spool
	// (WithSpool) keeps it and will deliver it. It comes as a
	// *SpooledError holding the idempotency keys. Do not submit again.
	ErrSpooled = errors.New("pluto: spooled for later delivery")
)

// SpooledError is the error of Submit and SubmitBatch on a client with a
// spool (WithSpool) when no server took the submission and the spool kept
// it instead: the specs are on disk and the client's sender will deliver
// them. errors.Is matches it with ErrSpooled only — not with the cause's
// sentinel (ErrUnavailable, context.DeadlineExceeded, …), because the
// caller must not submit it again: the cause is in Cause.
type SpooledError struct {
	// Keys holds the idempotency key of each spec, in order; the client
	// generated those the specs lacked. The run a spec becomes carries its
	// key.
	Keys []string
	// Cause is why no server took the submission.
	Cause error
}

func (e *SpooledError) Error() string {
	return fmt.Sprintf("pluto: %d run(s) spooled for later delivery (%v)", len(e.Keys), e.Cause)
}

// Is reports whether target is ErrSpooled.
func (e *SpooledError) Is(target error) bool { return target == ErrSpooled }

// Error is an error returned by a Pluto server. errors.Is matches it
// against the sentinel for its code (ErrNotFound for NotFound, …) and
// status.FromError recovers the original gRPC status.
type Error struct {
	Code    codes.Code
	Message string
	st      *status.Status
}

func (e *Error) Error() string {
	return fmt.Sprintf("pluto: %s (%s)", e.Message, e.Code)
}

// Unwrap returns the sentinel for the error's code, or nil.
func (e *Error) Unwrap() error { return sentinelFor(e.Code) }

// GRPCStatus returns the gRPC status the server sent.
func (e *Error) GRPCStatus() *status.Status { return e.st }

// FieldError reports invalid input in one named field of a request, for
// example {Field: "payload", Message: "not valid JSON"}. It matches
// ErrInvalid with errors.Is.
type FieldError struct {
	Field   string
	Message string
	st      *status.Status
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("pluto: invalid %s: %s", e.Field, e.Message)
}

// Is reports whether target is ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// GRPCStatus returns the gRPC status the server sent (InvalidArgument), or
// a status describing a field error detected by the client.
func (e *FieldError) GRPCStatus() *status.Status {
	if e.st != nil {
		return e.st
	}
	return status.New(codes.InvalidArgument, e.Field+": "+e.Message)
}

func sentinelFor(c codes.Code) error {
	switch c {
	case codes.NotFound:
		return ErrNotFound
	case codes.FailedPrecondition, codes.Aborted, codes.AlreadyExists:
		return ErrConflict
	case codes.Unavailable:
		return ErrUnavailable
	case codes.ResourceExhausted:
		return ErrPayloadTooLarge
	case codes.InvalidArgument, codes.OutOfRange:
		return ErrInvalid
	case codes.Unauthenticated:
		return ErrUnauthenticated
	case codes.PermissionDenied:
		return ErrPermissionDenied
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	case codes.Canceled:
		return context.Canceled
	}
	return nil
}

// decodeError turns an RPC error into this package's errors. If ctx has
// ended, its error is returned as is.
func decodeError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if st.Code() == codes.InvalidArgument {
		for _, d := range st.Details() {
			br, ok := d.(*errdetails.BadRequest)
			if !ok || len(br.GetFieldViolations()) == 0 {
				continue
			}
			fv := br.GetFieldViolations()[0]
			return &FieldError{Field: fv.GetField(), Message: fv.GetDescription(), st: st}
		}
	}
	return &Error{Code: st.Code(), Message: st.Message(), st: st}
}
