package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/pluto-sched/pluto/internal/auth"
	"github.com/pluto-sched/pluto/internal/console"
	"github.com/pluto-sched/pluto/internal/engine"
	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
	"github.com/pluto-sched/pluto/internal/store"
)

// Authentication. Every call but /healthz and /readyz carries a bearer
// token (HTTP "Authorization: Bearer plt_…", gRPC "authorization"
// metadata); the authenticator turns it into an auth.Principal, which the
// request's context carries to the handlers. What a call needs is
// declared once: for HTTP in the route table (httproutes.go), for gRPC in
// grpcPerms below. Handlers of runs, jobs and workers also check the
// principal's groups (a token may be limited to some).

// authenticator verifies tokens. A nil *authenticator (auth disabled, in
// tests of other parts) lets every call through as an unlimited admin.
type authenticator struct {
	v *auth.Verifier
}

// anonymousAdmin is the principal of every call when auth is off.
var anonymousAdmin = &auth.Principal{Name: "anonymous", Role: auth.RoleAdmin}

type principalKey struct{}

func withPrincipal(ctx context.Context, p *auth.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// principal is the caller of a request: verified, or anonymousAdmin when
// auth is off.
func principal(ctx context.Context) *auth.Principal {
	if p, ok := ctx.Value(principalKey{}).(*auth.Principal); ok {
		return p
	}
	return anonymousAdmin
}

// verify checks a bearer header value. Errors: auth.ErrUnauthenticated
// (401), or the store's (503: never let a request through on a failed
// lookup).
func (a *authenticator) verify(ctx context.Context, header string) (*auth.Principal, error) {
	if a == nil {
		return anonymousAdmin, nil
	}
	return a.v.VerifyHeader(ctx, header)
}

// verifyRequest authenticates an HTTP request: its bearer token, or else
// the console's session cookie — then a request that changes something
// must also carry the session's CSRF token (X-CSRF-Token), which another
// site's page cannot know.
func (a *authenticator) verifyRequest(r *http.Request) (*auth.Principal, error) {
	header := r.Header.Get("Authorization")
	if a == nil || header != "" {
		return a.verify(r.Context(), header)
	}
	ck, err := r.Cookie(console.SessionCookie)
	if err != nil || ck.Value == "" {
		return a.verify(r.Context(), header) // no credentials: the usual 401
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	default:
		got := r.Header.Get("X-CSRF-Token")
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(console.CSRFToken(ck.Value))) != 1 {
			return nil, fmt.Errorf("%w: a session cookie needs the X-CSRF-Token header on %s", auth.ErrUnauthenticated, r.Method)
		}
	}
	return a.v.Verify(r.Context(), ck.Value)
}

// grpcPerms is what each gRPC method needs.
var grpcPerms = map[string]auth.Permission{
	plutov1.WorkerService_Connect_FullMethodName: auth.PermWorkerStream,
	plutov1.ClientService_Submit_FullMethodName:  auth.PermSubmit,
	plutov1.ClientService_Get_FullMethodName:     auth.PermRead,
	plutov1.ClientService_List_FullMethodName:    auth.PermRead,
	plutov1.ClientService_Wait_FullMethodName:    auth.PermRead,
	plutov1.ClientService_Cancel_FullMethodName:  auth.PermRunWrite,
	plutov1.ClientService_Retry_FullMethodName:   auth.PermRunWrite,
}

// grpcAuth authenticates and authorizes one gRPC call by its method.
func (a *authenticator) grpcAuth(ctx context.Context, method string) (context.Context, error) {
	if a == nil {
		return ctx, nil
	}
	perm, ok := grpcPerms[method]
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "method %s is not open to any role", method)
	}
	var header string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			header = v[0]
		}
	}
	p, err := a.verify(ctx, header)
	if err != nil {
		return nil, grpcAuthError(err)
	}
	if err := p.Authorize(perm); err != nil {
		return nil, grpcAuthError(err)
	}
	return withPrincipal(ctx, p), nil
}

// grpcAuthError maps an authentication or authorization failure.
func grpcAuthError(err error) error {
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, auth.ErrForbidden):
		return status.Error(codes.PermissionDenied, err.Error())
	default:
		return status.Errorf(codes.Unavailable, "checking the token: %v", err)
	}
}

func (a *authenticator) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	ctx, err := a.grpcAuth(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return next(ctx, req)
}

func (a *authenticator) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	ctx, err := a.grpcAuth(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return next(srv, &authedStream{ServerStream: ss, ctx: ctx})
}

// authedStream is a server stream whose context carries the principal.
type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authedStream) Context() context.Context { return s.ctx }

// httpAuthError is the HTTP answer to an authentication or authorization
// failure.
func httpAuthError(err error) *apiError {
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		return &apiError{Status: http.StatusUnauthorized, Code: codeUnauthenticated, Message: authMessage(err)}
	case errors.Is(err, auth.ErrForbidden):
		return &apiError{Status: http.StatusForbidden, Code: codeForbidden, Message: authMessage(err)}
	default:
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: fmt.Sprintf("checking the token: %v", err)}
	}
}

// authMessage drops the package prefix of auth's errors.
func authMessage(err error) string {
	msg := err.Error()
	for _, p := range []string{"auth: forbidden: ", "auth: "} {
		if len(msg) > len(p) && msg[:len(p)] == p {
			return msg[len(p):]
		}
	}
	return msg
}

// groupForbidden is the error for a principal acting outside its groups.
func groupForbidden(p *auth.Principal, group string) error {
	return fmt.Errorf("%w: token %q may act only on groups %v, not %q", auth.ErrForbidden, p.Name, p.Groups, group)
}

// checkGroup returns nil when ctx's principal may act on group.
func checkGroup(ctx context.Context, group string) error {
	if p := principal(ctx); !p.AllowsGroup(group) {
		return groupForbidden(p, group)
	}
	return nil
}

// runGroupCheck returns nil when ctx's principal may act on run id: a
// principal limited to groups costs a read of the run; a run that does
// not exist passes (the handler answers 404 for it).
func runGroupCheck(ctx context.Context, eng Engine, id string) error {
	p := principal(ctx)
	if len(p.Groups) == 0 {
		return nil
	}
	run, err := eng.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && run == nil) {
		return nil
	}
	if err != nil {
		return err
	}
	return checkGroup(ctx, run.Group)
}

// scopeList limits a run listing to the principal's groups: a token
// limited to one group lists that group; one limited to several must name
// one of them (the store filters by one group).
func scopeList(ctx context.Context, p *store.RunListParams) error {
	pr := principal(ctx)
	switch {
	case len(pr.Groups) == 0:
		return nil
	case p.Group == "" && len(pr.Groups) == 1:
		p.Group = pr.Groups[0]
		return nil
	case p.Group == "":
		return fmt.Errorf("%w: token %q may list only groups %v: pass group=", auth.ErrForbidden, pr.Name, pr.Groups)
	}
	return checkGroup(ctx, p.Group)
}

// checkSpecs returns nil when the principal may submit every spec.
func checkSpecs(ctx context.Context, specs []engine.SubmitSpec) error {
	for _, sp := range specs {
		if err := checkGroup(ctx, sp.Group); err != nil {
			return err
		}
	}
	return nil
}
