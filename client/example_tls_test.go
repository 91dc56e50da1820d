package client_test

import (
	"crypto/tls"
	"crypto/x509"
	"log"
	"os"

	"github.com/pluto-sched/pluto/client"
)

// Connect over TLS to servers whose certificates a private CA issued,
// presenting a client certificate for servers started with
// --tls-client-ca (mutual TLS).
func ExampleWithTLS() {
	caPEM, err := os.ReadFile("/etc/pluto/tls/ca.pem")
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		log.Fatal("no CA certificate in ca.pem")
	}
	cert, err := tls.LoadX509KeyPair("/etc/pluto/tls/app.pem", "/etc/pluto/tls/app-key.pem")
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.Dial("pluto-1:7071,pluto-2:7071", client.WithTLS(&tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}
