package server

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pluto-sched/pluto/internal/engine"
)

// Live is the part of a server's configuration that can change while it
// runs (Server.Reconfigure); everything else in Config needs a restart.
type Live struct {
	// HeartbeatInterval: workers connecting from now on are told it;
	// connected workers keep theirs until they reconnect (the worker
	// protocol tells the interval only in the welcome), and are judged by
	// the longer of the two, so shortening it never kills them.
	HeartbeatInterval time.Duration
	// MaxPayload caps a run's payload (HTTP, gRPC and the engine). The
	// gRPC message size limit is fixed when the server starts: payloads
	// above (that limit − 4 MiB) / 4 need a restart to pass over gRPC.
	MaxPayload   int64
	MisfireGrace time.Duration
	RetryBase    time.Duration
	RetryMax     time.Duration
	// Retention: how long finished runs are kept; the leader applies a
	// change at once.
	Retention engine.Retention
	// StopTimeout and StopWorkersOnExit shape the next graceful stop.
	StopTimeout       time.Duration
	StopWorkersOnExit bool
}

// Reconfigure applies new live settings. Invalid settings (a zero or
// negative value, retry base above max) change nothing and return an error
// naming the field.
func (s *Server) Reconfigure(l Live) error {
	if l.StopTimeout <= 0 {
		return fmt.Errorf("server: reconfigure: %w", &engine.FieldError{Field: "stop_timeout", Message: fmt.Sprintf("must be positive, not %s", l.StopTimeout)})
	}
	el := s.eng.Live()
	el.HeartbeatInterval, el.SuspectAfter, el.DeadAfter = l.HeartbeatInterval, 0, 0
	el.MaxPayload, el.MisfireGrace, el.RetryBase, el.RetryMax = l.MaxPayload, l.MisfireGrace, l.RetryBase, l.RetryMax
	el.Retention = l.Retention
	if err := s.eng.Reconfigure(el); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.maxPayload.set(l.MaxPayload)
	s.stopTimeout.Store(int64(l.StopTimeout))
	s.stopWorkers.Store(l.StopWorkersOnExit)
	if grpcMax := int64(s.msgMax-4<<20) / 4; l.MaxPayload > grpcMax {
		s.log.Warn("max-payload is above what gRPC messages carry until a restart; larger payloads pass over HTTP only",
			"max_payload", l.MaxPayload, "grpc_limit", grpcMax)
	}
	return nil
}

// Live returns the live settings in force.
func (s *Server) Live() Live {
	el := s.eng.Live()
	return Live{
		HeartbeatInterval: el.HeartbeatInterval, MaxPayload: s.maxPayload.get(), MisfireGrace: el.MisfireGrace,
		RetryBase: el.RetryBase, RetryMax: el.RetryMax, StopTimeout: time.Duration(s.stopTimeout.Load()),
		StopWorkersOnExit: s.stopWorkers.Load(), Retention: el.Retention,
	}
}

// payloadLimit is a max payload that Reconfigure changes while the
// transports read it.
type payloadLimit struct{ n atomic.Int64 }

func newPayloadLimit(n int64) *payloadLimit {
	l := &payloadLimit{}
	l.n.Store(n)
	return l
}

func (l *payloadLimit) get() int64 {
	if l == nil {
		return 0
	}
	return l.n.Load()
}

func (l *payloadLimit) set(n int64) { l.n.Store(n) }

// errIntakeClosed is the answer to work offered to a server that is
// stopping: 503 over HTTP, Unavailable over gRPC. Clients send it to
// another server or retry later (the retrying client spools it).
var errIntakeClosed = errors.New("server is stopping and accepts no new runs; send them to another server or retry later")

// closed reports whether ch is closed (a nil ch never is).
func closed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// intake wraps an HTTP handler that creates runs (submit, retry, trigger):
// once the server stops it answers 503 with Retry-After.
func (h *httpAPI) intake(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if closed(h.opts.Stopping) {
			w.Header().Set("Retry-After", "1")
			writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable, Message: errIntakeClosed.Error()})
			return
		}
		next(w, r)
	}
}

// intakeClosed is the gRPC answer to work offered while stopping, or nil.
func (s *clientService) intakeClosed() error {
	if closed(s.stopping) {
		return status.Error(codes.Unavailable, errIntakeClosed.Error())
	}
	return nil
}
