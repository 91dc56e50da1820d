package server

import (
	"net/http"
	"strings"

	"github.com/pluto-sched/pluto/internal/console"
)

// site is the HTTP port's handler: the JSON API (/api/, /metrics and the
// health checks) and the web console (everything else).
type site struct {
	api     http.Handler
	console http.Handler
	guard   *guard
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if s.console == nil || strings.HasPrefix(p, "/api/") || p == "/api" || p == "/metrics" || p == "/healthz" || p == "/readyz" {
		s.api.ServeHTTP(w, r)
		return
	}
	// The console takes forms, so the API's JSON-only rule does not apply;
	// the Host and Origin checks do (CSRF tokens and SameSite cookies do
	// the rest: session.go in the console).
	if err := s.guard.checkOrigin(r); err != nil {
		http.Error(w, err.Message, err.Status)
		return
	}
	s.console.ServeHTTP(w, r)
}

// newConsole builds the console over the API handler.
func newConsole(api http.Handler, a *authenticator, feed console.ChangeFeed, stopping <-chan struct{}, opts HTTPOptions) (*console.Console, error) {
	co := console.Options{API: api, AuthDisabled: a == nil, Changes: feed, Stopping: stopping, Logger: opts.Logger}
	if a != nil {
		co.Verify = a.v.Verify
	}
	return console.New(co)
}

// ConsoleLoginURL returns a one-time address that signs its first visitor
// in to this server's console with token (pluto dev prints it).
func (s *Server) ConsoleLoginURL(token string) (string, error) {
	p, err := s.console.LoginLink(token)
	if err != nil {
		return "", err
	}
	return s.HTTPURL() + p, nil
}
