package config

import "fmt"

// TLS are the server's TLS files (docs/security.md). A pair given for one
// listener (http-tls-*, grpc-tls-*) wins over the shared one (tls-*).
type TLS struct {
	Cert, Key         string // both listeners
	HTTPCert, HTTPKey string
	GRPCCert, GRPCKey string
	// ClientCA makes the gRPC port require client certificates issued by
	// these CAs (workers and the Go client: mutual TLS).
	ClientCA string
	// PeerCA is what this server trusts when it asks the other servers of
	// its cluster over https (default: the system's CAs).
	PeerCA string
}

// tlsKeys are the TLS settings, at the end of Keys. None is live: a
// running server reads the files again when they change, which is what a
// certificate renewal needs; pointing at other files takes a restart.
var tlsKeys = [...]Key{
	{Name: "tls-cert", kind: kString, field: func(s *Server) any { return &s.TLS.Cert },
		Usage: "PEM certificate (chain) served on both --http and --grpc; with --tls-key turns TLS on (reloaded when the file changes)"},
	{Name: "tls-key", kind: kString, field: func(s *Server) any { return &s.TLS.Key },
		Usage: "PEM private key of --tls-cert"},
	{Name: "http-tls-cert", kind: kString, field: func(s *Server) any { return &s.TLS.HTTPCert },
		Usage: "PEM certificate for --http only (instead of --tls-cert)"},
	{Name: "http-tls-key", kind: kString, field: func(s *Server) any { return &s.TLS.HTTPKey },
		Usage: "PEM private key of --http-tls-cert"},
	{Name: "grpc-tls-cert", kind: kString, field: func(s *Server) any { return &s.TLS.GRPCCert },
		Usage: "PEM certificate for --grpc only (instead of --tls-cert)"},
	{Name: "grpc-tls-key", kind: kString, field: func(s *Server) any { return &s.TLS.GRPCKey },
		Usage: "PEM private key of --grpc-tls-cert"},
	{Name: "tls-client-ca", kind: kString, field: func(s *Server) any { return &s.TLS.ClientCA },
		Usage: "PEM CA certificates: the gRPC port requires workers and clients to present a certificate they issued (mutual TLS; reloaded when the file changes)"},
	{Name: "tls-peer-ca", kind: kString, field: func(s *Server) any { return &s.TLS.PeerCA },
		Usage: "PEM CA certificates trusted when this server asks the other servers of its cluster over https (default: the system's)"},
}

// HTTPPair is the certificate and key the HTTP listener serves ("" for
// none: plaintext).
func (t TLS) HTTPPair() (cert, key string) {
	if t.HTTPCert != "" || t.HTTPKey != "" {
		return t.HTTPCert, t.HTTPKey
	}
	return t.Cert, t.Key
}

// GRPCPair is the certificate and key the gRPC listener serves.
func (t TLS) GRPCPair() (cert, key string) {
	if t.GRPCCert != "" || t.GRPCKey != "" {
		return t.GRPCCert, t.GRPCKey
	}
	return t.Cert, t.Key
}

// validateTLS checks that certificates come with their keys and that the
// CAs have a TLS listener to apply to. Whether the files load is checked
// when the server starts.
func (l *Loaded) validateTLS() []error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, &Error{Key: name, Source: l.Origin[name], Msg: fmt.Sprintf(format, args...)})
	}
	t := l.TLS
	for _, p := range []struct{ cert, key, certVal, keyVal string }{
		{"tls-cert", "tls-key", t.Cert, t.Key},
		{"http-tls-cert", "http-tls-key", t.HTTPCert, t.HTTPKey},
		{"grpc-tls-cert", "grpc-tls-key", t.GRPCCert, t.GRPCKey},
	} {
		switch {
		case p.certVal != "" && p.keyVal == "":
			bad(p.key, "required with %s", p.cert)
		case p.certVal == "" && p.keyVal != "":
			bad(p.cert, "required with %s", p.key)
		}
	}
	if c, _ := t.GRPCPair(); t.ClientCA != "" && c == "" {
		bad("tls-client-ca", "needs TLS on the gRPC port (tls-cert or grpc-tls-cert)")
	}
	if c, _ := t.HTTPPair(); t.PeerCA != "" && c == "" {
		bad("tls-peer-ca", "needs TLS on the HTTP port (tls-cert or http-tls-cert): servers ask each other over https only when they serve it")
	}
	return errs
}
