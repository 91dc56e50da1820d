package worker

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// tokenGate is a stream interceptor that refuses streams, before the
// handler reads anything, unless they carry "Bearer <accept>" — what the
// server's interceptor does.
type tokenGate struct {
	accept atomic.Pointer[string]
	seen   atomic.Pointer[string] // the last authorization metadata
	calls  atomic.Int32
}

func (g *tokenGate) intercept(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	g.calls.Add(1)
	md, _ := metadata.FromIncomingContext(ss.Context())
	got := strings.Join(md.Get("authorization"), ",")
	g.seen.Store(&got)
	if a := g.accept.Load(); a == nil || got != "Bearer "+*a {
		return status.Error(codes.Unauthenticated, "unknown token")
	}
	return h(srv, ss)
}

// A worker sends its token on the stream. Refused, it waits the longest
// back-off (not a tight loop), logs one clear error per attempt, and gets
// in once the token is accepted.
func TestTokenRefusedBacksOffToMax(t *testing.T) {
	t.Parallel()
	g := &tokenGate{}
	f := startFake(t, grpc.StreamInterceptor(g.intercept))
	var log syncBuffer
	mux := NewMux()
	mux.HandleFunc("noop", noop)
	const token = "plt_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
	startWorker(t, Options{Servers: []string{f.addr}, Token: token, Handler: mux,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})

	// After the first refusal the next attempt is at least 4 s away.
	time.Sleep(1500 * time.Millisecond)
	if n := g.calls.Load(); n != 1 {
		t.Fatalf("%d attempts in 1.5 s after a refused token; want 1 (wait the longest back-off)", n)
	}
	if seen := g.seen.Load(); seen == nil || *seen != "Bearer "+token {
		t.Errorf("authorization metadata %v, want the bearer token", seen)
	}
	errorLine := []string{"level=ERROR", "refused this worker's token", "code=Unauthenticated", `reason="unknown token"`, "retrying in"}
	if n := log.count(errorLine...); n != 1 {
		t.Errorf("%d errors naming the refusal for 1 attempt; want 1. Log:\n%s", n, log.String())
	}
	if strings.Contains(log.String(), token) || log.count("cannot connect") != 0 {
		t.Errorf("log holds the token or a vague warning:\n%s", log.String())
	}

	accepted := token
	g.accept.Store(&accepted)
	f.next(t)
	if n := g.calls.Load(); n != 2 {
		t.Errorf("%d attempts before getting in; want 2", n)
	}
}

// PermissionDenied (a token whose role may not connect workers) is
// treated the same way, with a message that names the role to use.
func TestPermissionDeniedBacksOffToMax(t *testing.T) {
	t.Parallel()
	f := startFake(t)
	denied := status.Error(codes.PermissionDenied, "role viewer may not worker-stream")
	f.refuseWith.Store(&denied)
	var log syncBuffer
	mux := NewMux()
	mux.HandleFunc("noop", noop)
	startWorker(t, Options{Servers: []string{f.addr}, Token: "plt_viewer", Handler: mux,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	time.Sleep(1500 * time.Millisecond)
	if n := f.attempts.Load(); n != 1 {
		t.Fatalf("%d attempts in 1.5 s after PermissionDenied; want 1", n)
	}
	for deadline := time.Now().Add(2 * time.Second); log.count("level=ERROR", "role worker", "code=PermissionDenied") != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no error naming the role. Log:\n%s", log.String())
		}
	}
}

func TestNewRefusesBadToken(t *testing.T) {
	mux := NewMux()
	mux.HandleFunc("noop", noop)
	for _, tok := range []string{"plt_ x", "plt_x\n", "plt_é"} {
		_, err := New(Options{Servers: []string{"x:1"}, Handler: mux, Token: tok})
		if err == nil || !strings.Contains(err.Error(), "Options.Token") || strings.Contains(err.Error(), tok) {
			t.Errorf("New with token %q: %v; want an error naming Options.Token, not quoting it", tok, err)
		}
	}
}
