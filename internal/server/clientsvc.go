package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pluto-sched/pluto/internal/auth"
	"github.com/pluto-sched/pluto/internal/engine"
	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
	"github.com/pluto-sched/pluto/internal/store"
)

// maxWaitPoll caps one Wait long poll. A client that wants to wait longer
// calls Wait again (the client SDK loops), which keeps every RPC short
// enough for proxies and load balancers and lets a client fail over to
// another server between polls.
const maxWaitPoll = 60 * time.Second

// clientService adapts the engine to the gRPC ClientService. It only
// converts messages and errors; all behaviour lives in the engine.
type clientService struct {
	plutov1.UnimplementedClientServiceServer
	eng      Engine
	limit    *payloadLimit // nil: no limit here (the engine still checks)
	maxWait  time.Duration
	stopping <-chan struct{}
	audit    *auditLog // nil: no audit (tests of other parts)
}

// newClientService adapts the engine to the gRPC ClientService. Payloads
// larger than maxPayload bytes (when > 0) are refused with
// ResourceExhausted.
func newClientService(eng Engine, maxPayload int64) plutov1.ClientServiceServer {
	return newClientServiceStopping(eng, maxPayload, nil)
}

// newClientServiceStopping is newClientService whose Wait long polls end
// early, answering with the run as it is now, once stopping is closed.
// Close it before grpc.Server.GracefulStop so that waiting clients do not
// hold the shutdown for up to a poll (60 s); the SDK polls again and, after
// the GOAWAY, reaches another server.
//
// Once stopping is closed, Submit and Retry answer Unavailable: the server
// takes no new work while it stops.
func newClientServiceStopping(eng Engine, maxPayload int64, stopping <-chan struct{}) plutov1.ClientServiceServer {
	var limit *payloadLimit
	if maxPayload > 0 {
		limit = newPayloadLimit(maxPayload)
	}
	return newClientServiceLive(eng, limit, stopping)
}

// newClientServiceLive is newClientServiceStopping with a max payload that
// can change while it serves.
func newClientServiceLive(eng Engine, limit *payloadLimit, stopping <-chan struct{}) *clientService {
	return &clientService{eng: eng, limit: limit, maxWait: maxWaitPoll, stopping: stopping}
}

// Submit submits every spec of the request in one engine call and returns
// the runs in request order, with existing[i] true when runs[i] already
// existed under its idempotency key.
func (s *clientService) Submit(ctx context.Context, req *plutov1.SubmitRequest) (*plutov1.SubmitResponse, error) {
	if err := s.intakeClosed(); err != nil {
		return nil, err
	}
	specs := make([]engine.SubmitSpec, len(req.GetRuns()))
	maxPayload := s.limit.get()
	for i, rs := range req.GetRuns() {
		spec, err := specFromPB(rs, i, len(specs), maxPayload)
		if err != nil {
			return nil, grpcStatusError(err)
		}
		specs[i] = spec
	}
	resp := &plutov1.SubmitResponse{}
	if len(specs) == 0 {
		return resp, nil
	}
	if err := checkSpecs(ctx, specs); err != nil {
		return nil, grpcAuthError(err)
	}
	results, err := s.eng.Submit(ctx, specs)
	s.audit.recordGRPC(principal(ctx), "run.submit", submitTarget(specs, results), err)
	if err != nil {
		return nil, grpcStatusError(err)
	}
	if len(results) != len(specs) {
		return nil, status.Errorf(codes.Internal, "engine returned %d results for %d runs", len(results), len(specs))
	}
	resp.Runs = make([]*plutov1.Run, len(results))
	resp.Existing = make([]bool, len(results))
	for i, r := range results {
		resp.Runs[i] = runToPB(r.Run)
		resp.Existing[i] = r.Existing
	}
	return resp, nil
}

// Get returns one run.
func (s *clientService) Get(ctx context.Context, req *plutov1.GetRequest) (*plutov1.Run, error) {
	if err := requireRunID(req.GetId()); err != nil {
		return nil, err
	}
	if err := s.runScope(ctx, req.GetId()); err != nil {
		return nil, err
	}
	r, err := s.eng.Get(ctx, req.GetId())
	if err != nil {
		return nil, grpcStatusError(err)
	}
	return runToPB(r), nil
}

// List returns one page of runs, newest first.
func (s *clientService) List(ctx context.Context, req *plutov1.ListRequest) (*plutov1.ListResponse, error) {
	p, err := listParamsFromPB(req)
	if err != nil {
		return nil, grpcStatusError(err)
	}
	if err := scopeList(ctx, &p); err != nil {
		return nil, grpcAuthError(err)
	}
	page, err := s.eng.List(ctx, p)
	if err != nil {
		return nil, grpcStatusError(err)
	}
	resp := &plutov1.ListResponse{Runs: make([]*plutov1.Run, len(page.Runs)), NextCursor: page.NextCursor}
	for i, r := range page.Runs {
		resp.Runs[i] = runToPB(r)
	}
	return resp, nil
}

// Wait is a long poll: it returns the run once it is terminal, or as it is
// now when timeout_ms (0 or above the cap: the cap, 60 s) passes first or
// the server starts stopping. Reaching the poll's end is not an error; the
// caller polls again.
func (s *clientService) Wait(ctx context.Context, req *plutov1.WaitRequest) (*plutov1.Run, error) {
	if err := requireRunID(req.GetId()); err != nil {
		return nil, err
	}
	if err := s.runScope(ctx, req.GetId()); err != nil {
		return nil, err
	}
	d := time.Duration(req.GetTimeoutMs()) * time.Millisecond
	if d <= 0 || d > s.maxWait {
		d = s.maxWait
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if s.stopping != nil {
		go func() {
			select {
			case <-s.stopping:
				cancel()
			case <-wctx.Done():
			}
		}()
	}
	r, err := s.eng.Wait(wctx, req.GetId())
	if err == nil {
		return runToPB(r), nil
	}
	// The poll ended (timeout or stopping) while the caller still waits.
	// The error may not wrap the context's (a store interrupted mid-query
	// reports its own), so judge by the contexts, not by err.
	pollEnded := wctx.Err() != nil && ctx.Err() == nil
	if !pollEnded {
		return nil, grpcStatusError(err)
	}
	if r == nil {
		// The engine returns the current run with ctx.Err(), unless its read
		// was cut short: read it again (a real error shows up here too).
		if r, err = s.eng.Get(ctx, req.GetId()); err != nil {
			return nil, grpcStatusError(err)
		}
	}
	return runToPB(r), nil
}

// Cancel cancels a run wherever it is; cancelling a terminal run returns
// it unchanged.
func (s *clientService) Cancel(ctx context.Context, req *plutov1.CancelRequest) (*plutov1.Run, error) {
	if err := requireRunID(req.GetId()); err != nil {
		return nil, err
	}
	if err := s.runScope(ctx, req.GetId()); err != nil {
		return nil, err
	}
	r, err := s.eng.Cancel(ctx, req.GetId(), req.GetReason())
	s.audit.recordGRPC(principal(ctx), "run.cancel", req.GetId(), err)
	if err != nil {
		return nil, grpcStatusError(err)
	}
	return runToPB(r), nil
}

// Retry requeues a terminal run that did not succeed.
func (s *clientService) Retry(ctx context.Context, req *plutov1.RetryRequest) (*plutov1.Run, error) {
	if err := requireRunID(req.GetId()); err != nil {
		return nil, err
	}
	if err := s.intakeClosed(); err != nil {
		return nil, err
	}
	if err := s.runScope(ctx, req.GetId()); err != nil {
		return nil, err
	}
	r, err := s.eng.Retry(ctx, req.GetId())
	s.audit.recordGRPC(principal(ctx), "run.retry", req.GetId(), err)
	if err != nil {
		return nil, grpcStatusError(err)
	}
	return runToPB(r), nil
}

// runScope checks that the caller may act on run id (its group).
func (s *clientService) runScope(ctx context.Context, id string) error {
	if err := runGroupCheck(ctx, s.eng, id); err != nil {
		if errors.Is(err, auth.ErrForbidden) {
			return grpcAuthError(err)
		}
		return grpcStatusError(err)
	}
	return nil
}

// submitTarget names what a submit created, for the audit log: the run,
// or the first of a batch and how many.
func submitTarget(specs []engine.SubmitSpec, res []engine.SubmitResult) string {
	if len(res) == 0 || res[0].Run == nil {
		return ""
	}
	if len(res) == 1 {
		return res[0].Run.ID
	}
	return fmt.Sprintf("%s (+%d)", res[0].Run.ID, len(specs)-1)
}

func requireRunID(id string) error {
	if id == "" {
		return grpcStatusError(&engine.FieldError{Field: "id", Message: "required"})
	}
	return nil
}

// grpcStatusError maps an engine or store error to a gRPC status error:
//
//	*engine.FieldError          InvalidArgument (+ errdetails.BadRequest naming the field)
//	store.ErrNotFound           NotFound
//	store.ErrConflict           FailedPrecondition
//	engine.ErrPayloadTooLarge   ResourceExhausted
//	engine.ErrStopped           Unavailable
//	store.ErrClosed             Unavailable
//	context.DeadlineExceeded    DeadlineExceeded
//	context.Canceled            Canceled
//	a gRPC status error         unchanged
//	anything else               Internal (message kept)
func grpcStatusError(err error) error {
	if err == nil {
		return nil
	}
	var fe *engine.FieldError
	if errors.As(err, &fe) {
		st := status.New(codes.InvalidArgument, err.Error())
		if ds, derr := st.WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: fe.Field, Description: fe.Message}},
		}); derr == nil {
			st = ds
		}
		return st.Err()
	}
	var code codes.Code
	switch {
	case errors.Is(err, store.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, store.ErrConflict):
		code = codes.FailedPrecondition
	case errors.Is(err, engine.ErrPayloadTooLarge):
		code = codes.ResourceExhausted
	case errors.Is(err, engine.ErrStopped), errors.Is(err, store.ErrClosed):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	default:
		if st, ok := status.FromError(err); ok {
			return st.Err()
		}
		code = codes.Internal
	}
	return status.Error(code, err.Error())
}
