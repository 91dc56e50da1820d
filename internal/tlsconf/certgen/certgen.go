// Package certgen makes throwaway certificates: a CA and the server and
// client certificates it issues, as PEM. Tests use it (expired
// certificates, a second CA), and so does `pluto bench --tls`, which needs
// certificates for one run and none to keep. Nothing here is meant for a
// real deployment: use your own PKI there.
package certgen

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte // the certificate
}

// NewCA makes a self-signed CA valid from an hour ago for a day.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("certgen: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certgen: %w", err)
	}
	return &CA{Cert: cert, Key: key, PEM: pemBlock("CERTIFICATE", der)}, nil
}

// Leaf is what Issue makes.
type Leaf struct {
	Options
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// Options describe a certificate to issue.
type Options struct {
	Name string // common name
	// Hosts are DNS names and IP addresses the certificate is valid for
	// (a server's).
	Hosts []string
	// Client makes a client certificate (extended key usage clientAuth);
	// otherwise a server certificate.
	Client bool
	// NotBefore and NotAfter default to an hour ago and a day from now; a
	// NotAfter in the past makes an expired certificate.
	NotBefore, NotAfter time.Time
}

// Issue makes a certificate signed by ca.
func (ca *CA) Issue(o Options) (*Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: o.Name},
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if o.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, h := range o.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("certgen: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certgen: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certgen: %w", err)
	}
	return &Leaf{Options: o, Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", keyDER)}, nil
}

// Write writes the certificate to dir/name.pem and the key to
// dir/name-key.pem (mode 0600), returning their paths.
func (l *Leaf) Write(dir, name string) (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, l.CertPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("certgen: %w", err)
	}
	if err := os.WriteFile(keyFile, l.KeyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("certgen: %w", err)
	}
	return certFile, keyFile, nil
}

// LocalHosts are the names a server on this machine is reached by.
var LocalHosts = []string{"localhost", "127.0.0.1", "::1"}

// Bundle is a CA and a server and a client certificate it issued, written
// to a directory.
type Bundle struct {
	CA                    *CA
	CAFile                string // ca.pem
	ServerCert, ServerKey string // server.pem, server-key.pem (for LocalHosts)
	ClientCert, ClientKey string // client.pem, client-key.pem
}

// WriteBundle makes a CA, a server certificate for LocalHosts and a client
// certificate, and writes them to dir.
func WriteBundle(dir string) (*Bundle, error) {
	ca, err := NewCA("pluto test CA")
	if err != nil {
		return nil, err
	}
	b := &Bundle{CA: ca, CAFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(b.CAFile, ca.PEM, 0o644); err != nil {
		return nil, fmt.Errorf("certgen: %w", err)
	}
	srv, err := ca.Issue(Options{Name: "pluto server", Hosts: LocalHosts})
	if err != nil {
		return nil, err
	}
	if b.ServerCert, b.ServerKey, err = srv.Write(dir, "server"); err != nil {
		return nil, err
	}
	cl, err := ca.Issue(Options{Name: "pluto worker", Client: true})
	if err != nil {
		return nil, err
	}
	if b.ClientCert, b.ClientKey, err = cl.Write(dir, "client"); err != nil {
		return nil, err
	}
	return b, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
