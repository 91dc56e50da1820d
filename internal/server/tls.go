package server

import (
	"crypto/tls"
	"log"
	"log/slog"
	"net"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// TLS (docs/security.md): Config.HTTPTLS wraps the HTTP listener,
// Config.GRPCTLS gives the gRPC server its credentials (with a client CA
// in it, workers and clients must present a certificate: mutual TLS), and
// Config.PeerTLS is what this server trusts when it forwards a request to
// another server of its cluster. internal/tlsconf builds them from files
// that are read again when they change.

// grpcCreds is the gRPC server's transport security: TLS with cfg, or
// plaintext without it.
func grpcCreds(cfg *tls.Config) grpc.ServerOption {
	if cfg == nil {
		return grpc.EmptyServerOption{}
	}
	return grpc.Creds(credentials.NewTLS(cfg))
}

// tlsListener serves TLS on ln when cfg is set.
func tlsListener(ln net.Listener, cfg *tls.Config) net.Listener {
	if cfg == nil {
		return ln
	}
	return tls.NewListener(ln, cfg)
}

// newPeerClient is the client that asks the other servers of a cluster
// (askPeer): peerHTTP, trusting cfg's CAs instead of the system's when
// cfg is set. Peers are asked over https when the request being answered
// came over TLS (this server serves TLS, and so, in a cluster configured
// alike, do they).
func newPeerClient(cfg *tls.Config) *http.Client {
	if cfg == nil {
		return peerHTTP
	}
	tr := peerHTTP.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg.Clone()
	c := *peerHTTP
	c.Transport = tr
	return &c
}

// httpErrorLog sends what net/http logs by itself — mostly failed TLS
// handshakes: a client that does not trust the certificate, plain HTTP on
// the TLS port, scanners — to the server's log at Info, instead of the
// process's standard error.
func httpErrorLog(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelInfo)
}
