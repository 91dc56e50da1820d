package bench

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/pluto-sched/pluto/internal/tlsconf"
	"github.com/pluto-sched/pluto/internal/tlsconf/certgen"
)

// benchTLS is what Options.TLS turns on: throwaway certificates in a
// temporary directory, served the way a deployment would serve them —
// through internal/tlsconf, which looks at the files (at most once a
// second, on a handshake) — with mutual TLS on gRPC: the workers and the
// client present client certificates.
type benchTLS struct {
	server *tls.Config // HTTP and gRPC, client certificates required on gRPC
	http   *tls.Config // HTTP: no client certificate asked for
	client *tls.Config // trusts the CA, presents a client certificate
}

// setupTLS writes the certificates and loads them; cleanup removes them.
func setupTLS(opts Options) (*benchTLS, func(), error) {
	dir, err := os.MkdirTemp("", "pluto-bench-tls-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	fail := func(err error) (*benchTLS, func(), error) {
		cleanup()
		return nil, nil, fmt.Errorf("bench: tls: %w", err)
	}
	b, err := certgen.WriteBundle(dir)
	if err != nil {
		return fail(err)
	}
	bt := &benchTLS{}
	if bt.server, err = (tlsconf.ServerFiles{Cert: b.ServerCert, Key: b.ServerKey, ClientCA: b.CAFile}).Config(opts.Logger); err != nil {
		return fail(err)
	}
	if bt.http, err = (tlsconf.ServerFiles{Cert: b.ServerCert, Key: b.ServerKey}).Config(opts.Logger); err != nil {
		return fail(err)
	}
	if bt.client, err = (tlsconf.ClientFiles{CA: b.CAFile, Cert: b.ClientCert, Key: b.ClientKey}).Config(opts.Logger); err != nil {
		return fail(err)
	}
	return bt, cleanup, nil
}

// workerTLS is the workers' TLS configuration (nil: plaintext).
func (o Options) workerTLS() *tls.Config {
	if o.tls == nil {
		return nil
	}
	return o.tls.client
}

// httpClient is the client of the HTTP API (cron mode).
func (o Options) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.tls != nil {
		// The transport writes to its configuration (NextProtos): a copy.
		tr.TLSClientConfig = o.tls.client.Clone()
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
