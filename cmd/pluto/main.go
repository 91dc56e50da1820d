// Command pluto is Pluto's single binary: the server (pluto server), a
// laptop setup with a local worker (pluto dev), a worker (pluto worker) and
// the client commands that talk to a server's HTTP JSON API (pluto submit,
// pluto run …, pluto worker ls).
//
// Exit codes: 0 success; 1 the command failed (server error, run not
// found, run did not succeed, server unreachable); 2 usage error (unknown
// command or flag, missing argument, invalid flag value).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := newApp(os.Stdin, os.Stdout, os.Stderr, os.Getenv).run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
