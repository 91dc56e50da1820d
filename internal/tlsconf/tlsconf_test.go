package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pluto-sched/pluto/internal/tlsconf/certgen"
)

// TestMain fails the package if a test leaves a goroutine behind (the
// handshake tests start two per handshake).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newCA(t *testing.T, name string) *certgen.CA {
	t.Helper()
	ca, err := certgen.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *certgen.CA, o certgen.Options) *certgen.Leaf {
	t.Helper()
	l, err := ca.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func write(t *testing.T, dir, name string, l *certgen.Leaf) (string, string) {
	t.Helper()
	c, k, err := l.Write(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func writeCA(t *testing.T, dir, name string, cas ...*certgen.CA) string {
	t.Helper()
	var b []byte
	for _, ca := range cas {
		b = append(b, ca.PEM...)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// clock is a time tests move on, so a reload needs no sleep.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// handshake connects a client and a server over a pipe and returns the
// client's and the server's errors, and the certificate the client saw.
func handshake(t *testing.T, server, client *tls.Config) (cerr, serr error, leaf *x509.Certificate) {
	t.Helper()
	// Loopback TCP, not net.Pipe: a pipe has no buffer, and the two sides
	// of a failing handshake both write (an alert) and deadlock.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	deadline := time.Now().Add(10 * time.Second)
	_ = a.SetDeadline(deadline)
	_ = b.SetDeadline(deadline)
	sc, cc := tls.Server(a, server), tls.Client(b, client)
	done := make(chan error, 1)
	go func() {
		err := sc.Handshake()
		if err == nil {
			// TLS 1.3 checks a client certificate after the client's side
			// is done: read so that the server's verdict reaches it.
			_, err = sc.Read(make([]byte, 1))
		}
		a.Close()
		done <- err
	}()
	cerr = cc.Handshake()
	if cerr == nil {
		leaf = cc.ConnectionState().PeerCertificates[0]
		_, cerr = cc.Write([]byte("x"))
		if cerr == nil {
			_, cerr = cc.Read(make([]byte, 1)) // EOF once the server is done, or its alert
			if cerr != nil && cerr.Error() == "EOF" {
				cerr = nil
			}
		}
	}
	b.Close()
	serr = <-done
	return cerr, serr, leaf
}

func clientConfig(ca *certgen.CA) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: MinVersion}
}

func TestKeyPairReloadsWhenFilesChange(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "ca")
	first := issue(t, ca, certgen.Options{Name: "first", Hosts: certgen.LocalHosts})
	cf, kf := write(t, dir, "server", first)
	var logs bytes.Buffer
	pair, err := LoadKeyPair(cf, kf, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	pair.w.now = clk.now
	cn := func() string { return leafOf(t, pair.Certificate()).Subject.CommonName }
	if got := cn(); got != "first" {
		t.Fatalf("loaded %q", got)
	}

	second := issue(t, ca, certgen.Options{Name: "second-with-a-longer-name", Hosts: certgen.LocalHosts})
	write(t, dir, "server", second)
	if got := cn(); got != "first" {
		t.Fatalf("within the check interval: got %q, want the old certificate", got)
	}
	clk.add(CheckInterval)
	if got := cn(); got != "second-with-a-longer-name" {
		t.Fatalf("after a change: got %q", got)
	}
	_, _, leaf := handshake(t, Server(pair, nil), clientConfig(ca))
	if leaf == nil || leaf.Subject.CommonName != "second-with-a-longer-name" {
		t.Fatalf("handshake saw %v", leaf)
	}

	// A half-done rotation (a new certificate, the old key) keeps the
	// previous pair and says so.
	third := issue(t, ca, certgen.Options{Name: "third", Hosts: certgen.LocalHosts})
	if err := os.WriteFile(cf, third.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	clk.add(CheckInterval)
	if got := cn(); got != "second-with-a-longer-name" {
		t.Fatalf("mismatched key: got %q, want the previous certificate", got)
	}
	if !strings.Contains(logs.String(), "still using the previous one") {
		t.Fatalf("no log of the failed reload: %s", logs.String())
	}
	// The key arrives: the pair is complete again.
	if err := os.WriteFile(kf, third.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	clk.add(CheckInterval)
	if got := cn(); got != "third" {
		t.Fatalf("after the key: got %q", got)
	}
	// A file that vanishes (mid-rename) changes nothing.
	if err := os.Remove(cf); err != nil {
		t.Fatal(err)
	}
	clk.add(CheckInterval)
	if got := cn(); got != "third" {
		t.Fatalf("missing file: got %q", got)
	}
}

func leafOf(t *testing.T, c *tls.Certificate) *x509.Certificate {
	t.Helper()
	if c.Leaf != nil {
		return c.Leaf
	}
	l, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadKeyPair(filepath.Join(dir, "no.pem"), filepath.Join(dir, "no-key.pem"), nil); err == nil {
		t.Fatal("missing files loaded")
	}
	if _, err := LoadKeyPair("a.pem", "", nil); err == nil {
		t.Fatal("a certificate without a key loaded")
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not PEM"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCAPool(junk, nil); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("junk CA: %v", err)
	}
	if _, err := (ClientFiles{CA: junk}).Config(nil); err == nil {
		t.Fatal("junk client CA loaded")
	}
}

func TestServerAndClient(t *testing.T) {
	dir := t.TempDir()
	ca, other := newCA(t, "ca"), newCA(t, "other")
	sc, sk := write(t, dir, "server", issue(t, ca, certgen.Options{Name: "server", Hosts: certgen.LocalHosts}))
	srv, err := ServerFiles{Cert: sc, Key: sk}.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	caFile := writeCA(t, dir, "ca.pem", ca)
	good, err := ClientFiles{CA: caFile}.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	good.ServerName = "localhost"
	if cerr, serr, _ := handshake(t, srv, good); cerr != nil || serr != nil {
		t.Fatalf("right CA: client %v, server %v", cerr, serr)
	}

	wrong, err := ClientFiles{CA: writeCA(t, dir, "other.pem", other)}.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	wrong.ServerName = "localhost"
	if cerr, _, _ := handshake(t, srv, wrong); cerr == nil || !strings.Contains(cerr.Error(), "unknown authority") {
		t.Fatalf("wrong CA: %v", cerr)
	}

	ec, ek := write(t, dir, "expired", issue(t, ca, certgen.Options{Name: "old", Hosts: certgen.LocalHosts,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}))
	expired, err := ServerFiles{Cert: ec, Key: ek}.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cerr, _, _ := handshake(t, expired, good); cerr == nil || !strings.Contains(cerr.Error(), "expired") {
		t.Fatalf("expired server certificate: %v", cerr)
	}
	if srv.MinVersion != tls.VersionTLS12 || good.MinVersion != tls.VersionTLS12 {
		t.Fatal("TLS 1.2 is not the minimum")
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := newCA(t, "ca"), newCA(t, "other")
	sc, sk := write(t, dir, "server", issue(t, ca, certgen.Options{Name: "server", Hosts: certgen.LocalHosts}))
	clientCA := writeCA(t, dir, "clients.pem", ca)
	pool, err := LoadCAPool(clientCA, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	pool.w.now = clk.now
	pair, err := LoadKeyPair(sc, sk, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := Server(pair, pool)
	caFile := writeCA(t, dir, "ca.pem", ca)
	withCert := func(from *certgen.CA, name string) *tls.Config {
		c, k := write(t, dir, name, issue(t, from, certgen.Options{Name: name, Client: true}))
		cfg, err := ClientFiles{CA: caFile, Cert: c, Key: k}.Config(nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ServerName = "localhost"
		return cfg
	}
	bare, err := ClientFiles{CA: caFile}.Config(nil)
	if err != nil {
		t.Fatal(err)
	}
	bare.ServerName = "localhost"

	if cerr, serr, _ := handshake(t, srv, withCert(ca, "worker")); cerr != nil || serr != nil {
		t.Fatalf("client certificate of the right CA: client %v, server %v", cerr, serr)
	}
	if _, serr, _ := handshake(t, srv, bare); serr == nil || !strings.Contains(serr.Error(), "didn't provide a certificate") {
		t.Fatalf("no client certificate: server %v", serr)
	}
	foreign := withCert(other, "intruder")
	if _, serr, _ := handshake(t, srv, foreign); serr == nil || !strings.Contains(serr.Error(), "unknown authority") {
		t.Fatalf("client certificate of another CA: server %v", serr)
	}

	// The client CA file now trusts the other CA too: reloaded, without a
	// new server configuration.
	writeCA(t, dir, "clients.pem", ca, other)
	clk.add(CheckInterval)
	if cerr, serr, _ := handshake(t, srv, foreign); cerr != nil || serr != nil {
		t.Fatalf("after the client CA file changed: client %v, server %v", cerr, serr)
	}
}
