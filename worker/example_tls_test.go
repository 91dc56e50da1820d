package worker_test

import (
	"context"
	"crypto/tls"
	"log"

	"github.com/pluto-sched/pluto/worker"
)

// A worker that connects over TLS, presenting a client certificate
// (servers started with --tls-client-ca require one). The servers'
// certificates are checked against the system's CAs here; set RootCAs for
// a private CA (client.WithTLS shows how). `pluto worker --tls-cert` also
// reads a renewed certificate from disk at the next connection.
func ExampleOptions_tls() {
	cert, err := tls.LoadX509KeyPair("/etc/pluto/tls/worker.pem", "/etc/pluto/tls/worker-key.pem")
	if err != nil {
		log.Fatal(err)
	}
	mux := worker.NewMux()
	mux.HandleFunc("noop", func(context.Context, *worker.Run) error { return nil })
	log.Fatal(worker.Serve(worker.Options{
		Servers: []string{"pluto-1:7071", "pluto-2:7071"},
		Handler: mux,
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}))
}
