package tlsconf

import (
	"crypto/tls"
	"log/slog"
)

// Server is the configuration of a listener serving pair's certificate.
// With clientCA every client must present a certificate issued by one of
// its CAs (mutual TLS); the pool is read again when its file changes.
func Server(pair *KeyPair, clientCA *CAPool) *tls.Config {
	cfg := &tls.Config{MinVersion: MinVersion, GetCertificate: pair.GetCertificate}
	if clientCA == nil {
		return cfg
	}
	// ClientCAs is a fixed field, so each handshake gets a copy of the
	// configuration holding the pool of the moment. Handshakes are rare
	// (gRPC keeps its connections), so the copy costs nothing that shows.
	base := cfg.Clone()
	base.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.ClientCAs = clientCA.Pool()
		return c, nil
	}
	return cfg
}

// ServerFiles are the files of a listener's TLS: its certificate and key,
// and optionally the CAs its clients' certificates must come from.
type ServerFiles struct {
	Cert, Key string
	ClientCA  string // "": no client certificate asked for
}

// Config loads the files (they must be valid now) into a configuration
// that reloads them when they change.
func (f ServerFiles) Config(log *slog.Logger) (*tls.Config, error) {
	pair, err := LoadKeyPair(f.Cert, f.Key, log)
	if err != nil {
		return nil, err
	}
	var ca *CAPool
	if f.ClientCA != "" {
		if ca, err = LoadCAPool(f.ClientCA, log); err != nil {
			return nil, err
		}
	}
	return Server(pair, ca), nil
}

// ClientFiles are a client's TLS files: the CAs it trusts (none: the
// system's) and its own certificate, for servers that require one.
type ClientFiles struct {
	CA        string
	Cert, Key string
}

// Empty reports whether no file is named.
func (f ClientFiles) Empty() bool { return f == ClientFiles{} }

// Config loads the files (they must be valid now). The client certificate
// is read again when its files change, so a long-running worker picks up
// a renewed one at its next connection; the CA file is read once (trusting
// a new CA takes a restart — renewing the server's certificate under the
// same CA does not).
func (f ClientFiles) Config(log *slog.Logger) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: MinVersion}
	if f.CA != "" {
		pool, err := readPool(f.CA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if f.Cert != "" || f.Key != "" {
		pair, err := LoadKeyPair(f.Cert, f.Key, log)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = pair.GetClientCertificate
	}
	return cfg, nil
}
