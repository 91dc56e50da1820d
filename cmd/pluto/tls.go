package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/spf13/pflag"

	"github.com/pluto-sched/pluto/internal/config"
	"github.com/pluto-sched/pluto/internal/server"
	"github.com/pluto-sched/pluto/internal/tlsconf"
)

// The TLS files of clients and workers, by flag or environment.
const (
	envTLSCA   = "PLUTO_TLS_CA"
	envTLSCert = "PLUTO_TLS_CERT"
	envTLSKey  = "PLUTO_TLS_KEY"
)

// addTLSFlags defines --tls-ca, --tls-cert and --tls-key on f, into files;
// what dials is told by who (the help text).
func (a *app) addTLSFlags(f *pflag.FlagSet, files *tlsconf.ClientFiles, who string) {
	f.StringVar(&files.CA, "tls-ca", a.getenv(envTLSCA), "PEM CA certificates "+who+" trusts instead of the system's (env "+envTLSCA+")")
	f.StringVar(&files.Cert, "tls-cert", a.getenv(envTLSCert), "PEM client certificate, for servers that require one (--tls-client-ca; env "+envTLSCert+")")
	f.StringVar(&files.Key, "tls-key", a.getenv(envTLSKey), "PEM private key of --tls-cert (env "+envTLSKey+")")
}

// clientTLS loads the client's TLS files into c's transport: they apply
// to https:// server URLs (and redirects to them).
func clientTLS(c *apiClient, files tlsconf.ClientFiles) error {
	if files.Empty() {
		return nil
	}
	cfg, err := files.Config(nil)
	if err != nil {
		return usageErrorf("%v", err)
	}
	c.hc.Transport.(*http.Transport).TLSClientConfig = cfg
	return nil
}

// workerTLS is the TLS of `pluto worker`: on with --tls or any TLS file.
type workerTLS struct {
	on    bool
	files tlsconf.ClientFiles
}

func (a *app) addWorkerTLSFlags(f *pflag.FlagSet) *workerTLS {
	w := &workerTLS{}
	f.BoolVar(&w.on, "tls", false, "connect to the servers over TLS (implied by --tls-ca, --tls-cert, --tls-key; alone: the system's CAs)")
	a.addTLSFlags(f, &w.files, "the worker")
	return w
}

// config is the worker's TLS configuration, nil for plaintext. The client
// certificate is read again when its files change (a renewal reaches the
// next connection).
func (w *workerTLS) config(log *slog.Logger) (*tls.Config, error) {
	if !w.on && w.files.Empty() {
		return nil, nil
	}
	cfg, err := w.files.Config(log)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return cfg, nil
}

// loadServerTLS loads the server's TLS files into cfg. Files that do not
// load now stop the start; later changes are read as they come.
func loadServerTLS(cfg *server.Config, t config.TLS, log *slog.Logger) error {
	var err error
	if cert, key := t.HTTPPair(); cert != "" {
		if cfg.HTTPTLS, err = (tlsconf.ServerFiles{Cert: cert, Key: key}).Config(log); err != nil {
			return fmt.Errorf("--http TLS: %w", err)
		}
	}
	if cert, key := t.GRPCPair(); cert != "" {
		if cfg.GRPCTLS, err = (tlsconf.ServerFiles{Cert: cert, Key: key, ClientCA: t.ClientCA}).Config(log); err != nil {
			return fmt.Errorf("--grpc TLS: %w", err)
		}
	}
	if t.PeerCA != "" {
		if cfg.PeerTLS, err = (tlsconf.ClientFiles{CA: t.PeerCA}).Config(log); err != nil {
			return fmt.Errorf("--tls-peer-ca: %w", err)
		}
	}
	log.Info("tls", "http", cfg.HTTPTLS != nil, "grpc", cfg.GRPCTLS != nil, "client_certificates", t.ClientCA != "")
	return nil
}
