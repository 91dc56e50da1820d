// Package server wires one Pluto server process: the store, the engine,
// the HTTP JSON API (with /healthz and /readyz) and the gRPC worker and
// client services. Tests start a whole server in-process on random ports
// with Start.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/console"
	"github.com/pluto-sched/pluto/internal/engine"
	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
	"github.com/pluto-sched/pluto/internal/metrics"
	"github.com/pluto-sched/pluto/internal/store"
)

// Config configures a server. Zero values mean defaults.
type Config struct {
	// Store is a store URL: "sqlite:PATH" (default sqlite:./pluto-data/pluto.db)
	// or "postgres://…". Ignored when OpenedStore is set.
	Store string
	// OpenedStore is a store the caller opened; the server does not close it.
	OpenedStore store.Store
	HTTPAddr    string // default 127.0.0.1:7070; ":0" picks a free port
	GRPCAddr    string // default 127.0.0.1:7071
	ServerID    string // default hostname-pid
	// HeartbeatInterval is how often workers heartbeat (default 5s); a
	// worker is suspect after 1.5 intervals of silence and dead after three.
	HeartbeatInterval time.Duration
	// MaxPayload caps a run's payload in bytes (default 1 MiB).
	MaxPayload int64
	// StopTimeout bounds a graceful stop (default 30s): the wait for runs
	// in flight on this server's workers, then flushing and closing, which
	// get the last fifth of it (at most 5s). See Stop.
	StopTimeout time.Duration
	// StopWorkersOnExit tells every connected worker to shut down (drain
	// and exit) when the server stops gracefully (Pluto's behaviour).
	StopWorkersOnExit bool
	Logger            *slog.Logger
	// Engine tunes the scheduler; Store, ServerID, Logger and
	// HeartbeatInterval are filled from this Config.
	Engine engine.Config
	// Auth configures authentication; on unless Auth.Disabled.
	Auth AuthConfig
	// PprofAddr, if set, serves net/http/pprof there: a loopback address
	// only (pprof.go).
	PprofAddr string
	// HTTPTLS and GRPCTLS, if set, make the listeners serve TLS (the same
	// configuration may serve both). PeerTLS is what this server trusts
	// when it forwards a request to another server of its cluster over
	// https (nil: the system's CAs). See tls.go.
	HTTPTLS, GRPCTLS, PeerTLS *tls.Config
}

// Server is a running Pluto server.
type Server struct {
	cfg       Config
	log       *slog.Logger
	store     store.Store
	ownsStore bool
	eng       *engine.Engine
	httpSrv   *http.Server
	grpcSrv   *grpc.Server
	httpLn    net.Listener
	grpcLn    net.Listener
	workers   *workerService
	streams   atomic.Pointer[workerService] // workers, once it exists (notifications come earlier)
	metrics   *metrics.Metrics
	feed      *changeFeed // live updates of the console
	console   *console.Console
	pprofSrv  *http.Server
	pprofLn   net.Listener
	sec       *security

	maxPayload  *payloadLimit // live (Reconfigure)
	stopTimeout atomic.Int64  // live, a time.Duration
	stopWorkers atomic.Bool   // live: StopWorkersOnExit
	msgMax      int           // gRPC message size limit, fixed at start

	stopping chan struct{} // closed when Stop begins: refuses new work, ends long polls
	stopOnce sync.Once
	stopErr  error
	done     chan struct{}
	serveErr chan error
}

func (c *Config) defaults() error {
	if c.Store == "" && c.OpenedStore == nil {
		c.Store = "sqlite:" + filepath.Join("pluto-data", "pluto.db")
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:7070"
	}
	if c.GRPCAddr == "" {
		c.GRPCAddr = "127.0.0.1:7071"
	}
	if c.ServerID == "" {
		host, _ := os.Hostname()
		c.ServerID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 5 * time.Second
	}
	if c.HeartbeatInterval < 0 {
		return fmt.Errorf("server: heartbeat interval must be positive")
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = 1 << 20
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return nil
}

// Start opens the store, starts the engine and begins serving. It returns
// once both listeners are bound.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, done: make(chan struct{}), stopping: make(chan struct{}), serveErr: make(chan error, 2),
		maxPayload: newPayloadLimit(cfg.MaxPayload)}
	s.stopTimeout.Store(int64(cfg.StopTimeout))
	s.stopWorkers.Store(cfg.StopWorkersOnExit)
	if cfg.OpenedStore != nil {
		s.store = cfg.OpenedStore
	} else {
		st, err := OpenStore(ctx, cfg.Store, cfg.Logger)
		if err != nil {
			return nil, err
		}
		s.store, s.ownsStore = st, true
	}
	fail := func(err error) (*Server, error) {
		if s.eng != nil {
			_ = s.eng.Stop(context.Background())
		}
		if s.sec != nil {
			s.sec.close()
		}
		s.stopPprof()
		for _, ln := range []net.Listener{s.httpLn, s.grpcLn} {
			if ln != nil {
				_ = ln.Close()
			}
		}
		if s.ownsStore {
			_ = s.store.Close()
		}
		return nil, err
	}

	var err error
	if s.grpcLn, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return fail(fmt.Errorf("server: grpc listen %s: %w", cfg.GRPCAddr, err))
	}
	if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return fail(fmt.Errorf("server: http listen %s: %w", cfg.HTTPAddr, err))
	}
	s.httpLn = tlsListener(s.httpLn, cfg.HTTPTLS)

	if cfg.PprofAddr != "" {
		if err := s.startPprof(cfg.PprofAddr); err != nil {
			return fail(err)
		}
	}
	if s.sec, err = s.setupAuth(ctx); err != nil {
		return fail(err)
	}
	s.sec.revoked = s.closeTokenStreams
	if s.sec.tokens != nil {
		s.sec.tokens.revoked = s.closeTokenStreams
	}
	s.metrics = metrics.New()
	ecfg := cfg.Engine
	s.feed = newChangeFeed()
	ecfg.Observer = withFeed{Observer: s.metrics, feed: s.feed}
	ecfg.OnNotify, ecfg.OnRelisten = s.sec.notified, s.sec.relistened
	ecfg.Store = s.store
	ecfg.CallbackBody = func(r *store.Run) ([]byte, error) { return json.Marshal(apijson.FromRun(r)) }
	ecfg.AlertBody = func(a *store.Alert) ([]byte, error) { return json.Marshal(apijson.FromAlert(a)) }
	ecfg.ServerID = cfg.ServerID
	ecfg.Logger = cfg.Logger
	ecfg.HeartbeatInterval = cfg.HeartbeatInterval
	ecfg.MaxPayload = cfg.MaxPayload
	ecfg.ExclusiveStore = s.store.Name() == "sqlite"
	ecfg.AdvertiseHTTP = s.httpLn.Addr().String()
	ecfg.AdvertiseGRPC = s.grpcLn.Addr().String()
	eng, err := engine.New(ecfg)
	if err != nil {
		return fail(err)
	}
	s.eng = eng
	s.metrics.SetSource(eng)
	if err := eng.Start(ctx); err != nil {
		s.eng = nil
		return fail(err)
	}

	// A batch of runs or results can be several payloads large.
	s.msgMax = max(16<<20, int(cfg.MaxPayload)*4+(4<<20))
	s.grpcSrv = grpc.NewServer(
		grpc.UnaryInterceptor(s.sec.authn.unaryInterceptor),
		grpc.StreamInterceptor(s.sec.authn.streamInterceptor),
		grpcCreds(cfg.GRPCTLS),
		grpc.MaxRecvMsgSize(s.msgMax),
		grpc.MaxSendMsgSize(s.msgMax),
		// Find dead TCP peers (a worker host that vanished) even when
		// nothing is being sent.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	s.workers = newWorkerService(eng, cfg.Logger, s.msgMax)
	s.streams.Store(s.workers)
	plutov1.RegisterWorkerServiceServer(s.grpcSrv, s.workers)
	csvc := newClientServiceLive(eng, s.maxPayload, s.stopping)
	csvc.audit = s.sec.audit
	plutov1.RegisterClientServiceServer(s.grpcSrv, csvc)
	g, err := newGuard(guardOptions{AllowedOrigins: cfg.Auth.AllowedOrigins, AllowedHosts: cfg.Auth.AllowedHosts, Advertised: s.HTTPAddr()})
	if err != nil {
		return fail(err)
	}

	hopts := HTTPOptions{
		MaxPayload: cfg.MaxPayload, ServerID: cfg.ServerID, StoreName: s.store.Name(),
		Logger: cfg.Logger, Stopping: s.stopping, limit: s.maxPayload, peers: newPeerClient(cfg.PeerTLS),
		Auth: s.sec.authn, Audit: s.sec.audit, Tokens: s.sec.tokens, guard: g, Metrics: s.metrics.Handler(),
	}
	api := newHTTPHandler(eng, hopts)
	if s.console, err = newConsole(api, s.sec.authn, s.feed, s.stopping, hopts); err != nil {
		return fail(err)
	}
	s.httpSrv = &http.Server{
		Handler:           &site{api: api, console: s.console, guard: g},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          httpErrorLog(cfg.Logger),
	}
	go func() { s.serveErr <- s.grpcSrv.Serve(s.grpcLn) }()
	go func() {
		err := s.httpSrv.Serve(s.httpLn)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.serveErr <- err
	}()
	s.log.Info("pluto server started", "id", cfg.ServerID, "http", s.HTTPAddr(), "grpc", s.GRPCAddr(), "store", s.store.Name())
	return s, nil
}

// closeTokenStreams ends the worker streams of a revoked token.
func (s *Server) closeTokenStreams(name string) {
	if w := s.streams.Load(); w != nil {
		w.closeToken(name)
	}
}

// HTTPAddr is the bound HTTP address (host:port).
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// GRPCAddr is the bound gRPC address (host:port).
func (s *Server) GRPCAddr() string { return s.grpcLn.Addr().String() }

// HTTPURL is the base URL of the HTTP API.
func (s *Server) HTTPURL() string {
	if s.cfg.HTTPTLS != nil {
		return "https://" + s.HTTPAddr()
	}
	return "http://" + s.HTTPAddr()
}

// Store returns the server's store.
func (s *Server) Store() store.Store { return s.store }

// Stop shuts the server down gracefully, within the stop timeout (or
// ctx's deadline, if earlier):
//
//  1. It takes no new work: submissions, retries and job triggers answer
//     503 (gRPC Unavailable), /readyz answers 503, long polls end, new
//     worker connections are refused, queued runs are no longer claimed
//     and the leader lease is given up. Reads keep working.
//  2. It waits for the runs already on its workers (running, or
//     prefetched) to finish, committing their results as they come —
//     until none is left or four fifths of the timeout (all but at most
//     5s) have passed. With StopWorkersOnExit every worker is told to
//     shut down first: it drains and exits.
//  3. It flushes every pending write to the store, delivers the result
//     acknowledgements, closes the worker streams (workers reconnect,
//     elsewhere or after a restart), the listeners and the store.
//
// Runs still on workers when the wait ends stay dispatched/running in the
// store: their workers keep them and report them to the server they
// reconnect to — this one after a restart (which recovers them) or
// another one sharing the store (which adopts them). Runs queued and never
// dispatched stay queued. Nothing acknowledged is lost and no attempt runs
// twice. Safe to call more than once.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		defer close(s.done)
		timeout := time.Duration(s.stopTimeout.Load())
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		close(s.stopping)
		var errs []error

		began := time.Now()
		wctx, wcancel := context.WithCancel(ctx)
		if dl, ok := ctx.Deadline(); ok {
			wctx, wcancel = context.WithDeadline(ctx, dl.Add(-min(timeout/5, 5*time.Second)))
		}
		res, err := s.eng.Quiesce(wctx, engine.QuiesceOptions{StopWorkers: s.stopWorkers.Load()})
		wcancel()
		switch {
		case err != nil:
			s.log.Warn("graceful stop: engine not running", "err", err)
		case res.Left == 0:
			s.log.Info("graceful stop: every run in flight finished", "runs", res.InFlight, "took", time.Since(began).Round(time.Millisecond))
		default:
			s.log.Warn("graceful stop: deadline reached with runs still on workers; they stay in the store and are recovered when their workers reconnect",
				"left", res.Left, "in_flight", res.InFlight, "waited", time.Since(began).Round(time.Millisecond))
		}

		if err := s.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		// Flush before the worker streams close, so the acknowledgements
		// of the last results reach the workers.
		if err := s.eng.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
		// The streams end once their queued messages are sent; the gRPC
		// server then stops without cutting in-flight replies.
		s.workers.closeAll()
		stopped := make(chan struct{})
		go func() { s.grpcSrv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			s.grpcSrv.Stop()
			<-stopped
		}
		s.sec.close() // after the listeners: the last calls' entries are written
		s.stopPprof()
		if s.ownsStore {
			if err := s.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close store: %w", err))
			}
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// Done is closed when the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err returns a listener's fatal error, if any, without blocking.
func (s *Server) Err() error {
	select {
	case err := <-s.serveErr:
		return err
	default:
		return nil
	}
}

// OpenStore opens a store from its URL.
func OpenStore(ctx context.Context, url string, log *slog.Logger) (store.Store, error) {
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return openPostgres(ctx, url)
	default:
		return openSQLite(ctx, url)
	}
}
