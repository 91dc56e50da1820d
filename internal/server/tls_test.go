package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/client"
	"github.com/pluto-sched/pluto/internal/tlsconf"
	"github.com/pluto-sched/pluto/internal/tlsconf/certgen"
	"github.com/pluto-sched/pluto/worker"
)

// tlsEnv is a CA with a server certificate for 127.0.0.1 in files.
type tlsEnv struct {
	dir          string
	ca, other    *certgen.CA
	caFile       string
	cert, key    string // the server's
	clientCAFile string // the CA workers' certificates must come from
}

func newTLSEnv(t *testing.T) *tlsEnv {
	t.Helper()
	dir := t.TempDir()
	b, err := certgen.WriteBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	other, err := certgen.NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	return &tlsEnv{dir: dir, ca: b.CA, other: other, caFile: b.CAFile, cert: b.ServerCert, key: b.ServerKey, clientCAFile: b.CAFile}
}

// serverTLS is the listeners' configuration; mtls asks for client
// certificates.
func (e *tlsEnv) serverTLS(t *testing.T, mtls bool) *tls.Config {
	t.Helper()
	f := tlsconf.ServerFiles{Cert: e.cert, Key: e.key}
	if mtls {
		f.ClientCA = e.clientCAFile
	}
	cfg, err := f.Config(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// clientTLS trusts ca and, if from is set, presents a client certificate
// it issued.
func (e *tlsEnv) clientTLS(t *testing.T, ca, from *certgen.CA) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if from != nil {
		l, err := from.Issue(certgen.Options{Name: "worker", Client: true})
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

func httpsGet(cfg *tls.Config, url string) (int, string, error) {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	res, err := hc.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), nil
}

// startTLSWorker runs a noop worker with cfg until the test ends.
func startTLSWorker(t *testing.T, addr, id string, cfg *tls.Config) *worker.Worker {
	t.Helper()
	w, err := worker.New(worker.Options{
		Servers: []string{addr}, ID: id, Capacity: 1, TLS: cfg, Logger: slog.New(slog.DiscardHandler),
		Handler: worker.HandlerFunc(func(context.Context, *worker.Run) error { return nil }), Types: []string{"noop"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// submitAndWait submits a noop run over gRPC with cfg and waits for it.
func submitAndWait(t *testing.T, addr string, cfg *tls.Config) *client.Run {
	t.Helper()
	c, err := client.Dial(addr, client.WithTLS(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := c.Submit(ctx, client.RunSpec{Type: "noop", Group: "default"})
	if err != nil {
		t.Fatalf("submit over TLS: %v", err)
	}
	if r, err = c.Wait(ctx, r.ID); err != nil {
		t.Fatalf("wait over TLS: %v", err)
	}
	return r
}

func TestTLSServesHTTPAndGRPC(t *testing.T) {
	e := newTLSEnv(t)
	cfg := e.serverTLS(t, false)
	srv := startCtlServer(t, Config{HTTPTLS: cfg, GRPCTLS: cfg})
	if !strings.HasPrefix(srv.HTTPURL(), "https://") {
		t.Fatalf("HTTPURL %s", srv.HTTPURL())
	}
	good := e.clientTLS(t, e.ca, nil)
	if code, body, err := httpsGet(good, srv.HTTPURL()+"/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("https /healthz: %d %s %v", code, body, err)
	}
	// Plain HTTP on the TLS port is refused.
	if code, _, err := httpsGet(nil, "http://"+srv.HTTPAddr()+"/healthz"); err == nil && code == http.StatusOK {
		t.Fatal("plain HTTP served on the TLS port")
	}
	// A client trusting another CA refuses the server.
	if _, _, err := httpsGet(e.clientTLS(t, e.other, nil), srv.HTTPURL()+"/healthz"); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("https with the wrong CA: %v", err)
	}
	c, err := client.Dial(srv.GRPCAddr(), client.WithTLS(e.clientTLS(t, e.other, nil)), client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.List(context.Background(), client.ListOptions{Limit: 1}); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("gRPC with the wrong CA: %v", err)
	}

	startTLSWorker(t, srv.GRPCAddr(), "w1", good)
	if r := submitAndWait(t, srv.GRPCAddr(), good); r.Status != client.StatusSucceeded {
		t.Fatalf("run over TLS: %s", r.Status)
	}
}

func TestTLSExpiredServerCertificateIsRefused(t *testing.T) {
	e := newTLSEnv(t)
	l, err := e.ca.Issue(certgen.Options{Name: "old", Hosts: certgen.LocalHosts,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if e.cert, e.key, err = l.Write(e.dir, "expired"); err != nil {
		t.Fatal(err)
	}
	cfg := e.serverTLS(t, false)
	srv := startCtlServer(t, Config{HTTPTLS: cfg, GRPCTLS: cfg})
	good := e.clientTLS(t, e.ca, nil)
	if _, _, err := httpsGet(good, srv.HTTPURL()+"/healthz"); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("https to an expired certificate: %v", err)
	}
	c, err := client.Dial(srv.GRPCAddr(), client.WithTLS(good), client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.List(context.Background(), client.ListOptions{Limit: 1}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("gRPC to an expired certificate: %v", err)
	}
}

// TestMutualTLSRefusesWorkersWithoutTheRightCertificate: with a client CA
// on the gRPC port, a worker without a certificate or with one of another
// CA never connects; one with a certificate of the CA does and runs runs.
// HTTP asks for no certificate.
func TestMutualTLSRefusesWorkersWithoutTheRightCertificate(t *testing.T) {
	e := newTLSEnv(t)
	srv := startCtlServer(t, Config{HTTPTLS: e.serverTLS(t, false), GRPCTLS: e.serverTLS(t, true)})
	bare := startTLSWorker(t, srv.GRPCAddr(), "bare", e.clientTLS(t, e.ca, nil))
	foreign := startTLSWorker(t, srv.GRPCAddr(), "foreign", e.clientTLS(t, e.ca, e.other))
	good := e.clientTLS(t, e.ca, e.ca)
	ok := startTLSWorker(t, srv.GRPCAddr(), "ok", good)
	awaitStats(t, ok, func(s worker.Stats) bool { return s.Connected })
	if r := submitAndWait(t, srv.GRPCAddr(), good); r.Status != client.StatusSucceeded || r.WorkerID != "ok" {
		t.Fatalf("run over mTLS: %s on %q", r.Status, r.WorkerID)
	}
	// The others have been trying (100 ms back-off) all along.
	for _, w := range []*worker.Worker{bare, foreign} {
		if w.Stats().Connected {
			t.Fatalf("worker %s connected without a valid client certificate", w.ID())
		}
	}
	if code, _, err := httpsGet(e.clientTLS(t, e.ca, nil), srv.HTTPURL()+"/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("HTTP without a client certificate: %d %v", code, err)
	}
}

// TestTLSCertificateRotation: the server's files are replaced on disk; a
// new connection sees the new certificate, without a restart.
func TestTLSCertificateRotation(t *testing.T) {
	e := newTLSEnv(t)
	cfg := e.serverTLS(t, false)
	srv := startCtlServer(t, Config{HTTPTLS: cfg, GRPCTLS: cfg})
	good := e.clientTLS(t, e.ca, nil)
	peer := func(addr string, protos ...string) string {
		c := good.Clone()
		c.ServerName, c.NextProtos = "127.0.0.1", protos
		conn, err := tls.Dial("tcp", addr, c)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if h, g := peer(srv.HTTPAddr()), peer(srv.GRPCAddr(), "h2"); h != "pluto server" || g != "pluto server" {
		t.Fatalf("before: %q, %q", h, g)
	}
	l, err := e.ca.Issue(certgen.Options{Name: "renewed", Hosts: certgen.LocalHosts})
	if err != nil {
		t.Fatal(err)
	}
	// As a rotation tool would: write beside, rename over.
	tmp := filepath.Join(e.dir, "new")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	c, k, err := l.Write(tmp, "server")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(k, e.key); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(c, e.cert); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for peer(srv.HTTPAddr()) != "renewed" || peer(srv.GRPCAddr(), "h2") != "renewed" {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate is not served")
		}
		time.Sleep(100 * time.Millisecond) // files are looked at once a second
	}
	if r, err := httpsGetOK(good, srv.HTTPURL()+"/healthz"); err != nil {
		t.Fatalf("after rotation: %s %v", r, err)
	}
}

func httpsGetOK(cfg *tls.Config, url string) (string, error) {
	code, body, err := httpsGet(cfg, url)
	if err == nil && code != http.StatusOK {
		return body, io.ErrUnexpectedEOF
	}
	return body, err
}

// TestTLSClusterPeers: two servers on PostgreSQL serving TLS; the worker
// listing asked of one includes the other's workers, fetched over https
// trusting PeerTLS.
func TestTLSClusterPeers(t *testing.T) {
	pg := ctlPostgres(t)
	e := newTLSEnv(t)
	cfg := e.serverTLS(t, false)
	peers := e.clientTLS(t, e.ca, nil)
	s1 := startCtlServer(t, Config{Store: pg, ServerID: "s1", HTTPTLS: cfg, GRPCTLS: cfg, PeerTLS: peers})
	s2 := startCtlServer(t, Config{Store: pg, ServerID: "s2", HTTPTLS: cfg, GRPCTLS: cfg, PeerTLS: peers})
	startTLSWorker(t, s1.GRPCAddr(), "w1", peers)
	startTLSWorker(t, s2.GRPCAddr(), "w2", peers)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body, err := httpsGet(peers, s1.HTTPURL()+"/api/v1/workers")
		if err == nil && strings.Contains(body, `"w1"`) && strings.Contains(body, `"w2"`) && !strings.Contains(body, "unreachable") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers via s1: %s %v", body, err)
		}
		time.Sleep(100 * time.Millisecond) // registration and worker connections
	}
}
