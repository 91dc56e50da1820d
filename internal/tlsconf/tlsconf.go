// Package tlsconf builds the TLS configurations of Pluto's servers,
// workers and clients from PEM files, and keeps them fresh: a certificate,
// key or CA file replaced on disk is used by the next handshake, without a
// restart (certificate rotation).
//
// Nothing polls: a file is looked at (stat) when a handshake needs it, at
// most once per second, and read again only when its modification time or
// size changed. A replacement that does not parse (a half-written file, a
// certificate whose key is not written yet) is logged and the previous
// certificate stays in use, so a rotation in progress never takes the
// server off the air.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CheckInterval is how often, at most, a file is looked at again.
const CheckInterval = time.Second

// MinVersion is the oldest TLS version Pluto speaks.
const MinVersion = tls.VersionTLS12

// stamp identifies one version of a file: enough to notice a replacement
// (rename or rewrite) without reading it.
type stamp struct {
	mod  time.Time
	size int64
}

func stat(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// watched is a value loaded from files, loaded again when one of them
// changes. load parses the files; it runs under mu.
type watched[T any] struct {
	what  string // "certificate", "CA" (for the log)
	files []string
	load  func() (T, error)
	log   *slog.Logger
	now   func() time.Time // tests move time on

	mu      sync.Mutex
	val     T
	stamps  []stamp
	checked time.Time
}

func newWatched[T any](what string, files []string, load func() (T, error), log *slog.Logger) (*watched[T], error) {
	if log == nil {
		log = slog.Default()
	}
	w := &watched[T]{what: what, files: files, load: load, log: log, now: time.Now}
	stamps, err := w.stat()
	if err != nil {
		return nil, err
	}
	v, err := load()
	if err != nil {
		return nil, err
	}
	w.val, w.stamps, w.checked = v, stamps, w.now()
	return w, nil
}

func (w *watched[T]) stat() ([]stamp, error) {
	out := make([]stamp, len(w.files))
	for i, f := range w.files {
		s, err := stat(f)
		if err != nil {
			return nil, fmt.Errorf("tls %s: %w", w.what, err)
		}
		out[i] = s
	}
	return out, nil
}

// get returns the current value, loading the files again first if a
// second has passed since they were last looked at and one has changed.
// A file that is missing or does not parse is logged once per change and
// the old value kept.
func (w *watched[T]) get() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	if now.Sub(w.checked) < CheckInterval {
		return w.val
	}
	w.checked = now
	stamps, err := w.stat()
	if err != nil {
		// Between a delete and a create during a rotation: try again next
		// time, without a log line per handshake.
		return w.val
	}
	if equalStamps(stamps, w.stamps) {
		return w.val
	}
	// Remember the new stamps whatever the outcome: a file that failed to
	// parse is not read again until it changes once more.
	w.stamps = stamps
	v, err := w.load()
	if err != nil {
		w.log.Error("tls: a changed file does not load; still using the previous one", "what", w.what, "files", w.files, "err", err)
		return w.val
	}
	w.val = v
	w.log.Info("tls: reloaded", "what", w.what, "files", w.files)
	return w.val
}

func equalStamps(a, b []stamp) bool {
	for i := range a {
		if !a[i].mod.Equal(b[i].mod) || a[i].size != b[i].size {
			return false
		}
	}
	return true
}

// KeyPair is a certificate and its private key, read from two PEM files
// (the certificate file may hold the chain after the leaf) and read again
// when they change.
type KeyPair struct {
	w *watched[*tls.Certificate]
}

// LoadKeyPair reads a certificate and key; they must parse now. log (nil:
// slog.Default()) hears of reloads and failed ones.
func LoadKeyPair(certFile, keyFile string, log *slog.Logger) (*KeyPair, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: a certificate needs both its certificate and its key file")
	}
	load := func() (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: loading %s and %s: %w", certFile, keyFile, err)
		}
		return &c, nil
	}
	w, err := newWatched("certificate", []string{certFile, keyFile}, load, log)
	if err != nil {
		return nil, err
	}
	return &KeyPair{w: w}, nil
}

// Certificate is the current certificate.
func (k *KeyPair) Certificate() *tls.Certificate { return k.w.get() }

// GetCertificate is the tls.Config callback of a server.
func (k *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.w.get(), nil
}

// GetClientCertificate is the tls.Config callback of a client. It sends
// the certificate whatever CAs the server names: a mismatch is the
// server's to report, and it says more than a handshake without one.
func (k *KeyPair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.w.get(), nil
}

// CAPool is a set of CA certificates read from a PEM file and read again
// when it changes.
type CAPool struct {
	w *watched[*x509.CertPool]
}

// LoadCAPool reads a PEM file of CA certificates; it must hold at least
// one now.
func LoadCAPool(file string, log *slog.Logger) (*CAPool, error) {
	load := func() (*x509.CertPool, error) { return readPool(file) }
	w, err := newWatched("CA", []string{file}, load, log)
	if err != nil {
		return nil, err
	}
	return &CAPool{w: w}, nil
}

// Pool is the current pool.
func (p *CAPool) Pool() *x509.CertPool { return p.w.get() }

func readPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tls CA: %s holds no PEM certificate", file)
	}
	return pool, nil
}
