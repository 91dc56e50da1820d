package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// The profiler (Config.PprofAddr, pluto server --pprof): net/http/pprof
// on a listener of its own, loopback only. It is off by default, has no
// authentication of its own — a profile shows memory, including payloads
// and tokens in flight — and so must never share the API's port or leave
// the machine; reach it over SSH.

// startPprof serves the profiler on addr, which must be a loopback address.
func (s *Server) startPprof(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("server: pprof address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("server: pprof address %q: must be a loopback address (the profiler has no authentication)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: pprof listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s.pprofSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.pprofLn = ln
	go func() {
		if err := s.pprofSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("pprof listener failed", "err", err)
		}
	}()
	s.log.Info("profiler listening (loopback only)", "addr", ln.Addr().String())
	return nil
}

// PprofAddr is the profiler's bound address ("" when off).
func (s *Server) PprofAddr() string {
	if s.pprofLn == nil {
		return ""
	}
	return s.pprofLn.Addr().String()
}

func (s *Server) stopPprof() {
	if s.pprofSrv != nil {
		_ = s.pprofSrv.Close()
	}
}
