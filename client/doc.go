// Package client is the Go SDK for submitting work to Pluto and watching it.
//
// It speaks the gRPC ClientService of a Pluto server (default port 7071):
//
//	c, err := client.Dial("127.0.0.1:7071", client.WithToken(os.Getenv("PLUTO_TOKEN")))
//	if err != nil { … }
//	defer c.Close()
//
//	run, err := c.Submit(ctx, client.RunSpec{
//		Type:    "email.send",
//		Group:   "mail",
//		Payload: map[string]string{"to": "ops@example.com"},
//		Retries: 3,
//		Key:     "welcome-mail-42", // idempotency key: resubmitting is safe
//	})
//	if err != nil { … }
//	run, err = c.Wait(ctx, run.ID) // until succeeded, failed, cancelled, …
//	var out struct{ MessageID string `json:"message_id"` }
//	err = run.DecodeResult(&out)
//
// # Several servers
//
// Dial accepts a comma-separated list of addresses ("a:7071,b:7071,c:7071").
// The client connects to the first one that answers and moves to the next
// when its server goes away, so a client of a multi-server deployment keeps
// working while servers restart. Get, List, Wait and Cancel are retried
// when a server is unavailable, and so is a submission whose specs all
// carry a Key (the key makes resending safe). A submission without keys,
// and Retry, return ErrUnavailable instead: the request may have been
// applied before its server went away.
//
// # Clients that survive an absent server
//
// With WithSpool, submissions that no server takes — none answers, or the
// answer does not come — are kept in a local spool directory (fsynced)
// and a background goroutine of the client delivers them, in order and in
// batches, when a server answers again:
//
//	c, err := client.Dial("a:7071,b:7071", client.WithSpool("/var/lib/app/pluto-spool"),
//		client.WithSpoolErrorHandler(func(spec client.RunSpec, err error) {
//			log.Printf("run %s rejected: %v", spec.Key, err) // also in dead.jsonl
//		}))
//	…
//	_, err = c.Submit(ctx, spec)
//	if errors.Is(err, client.ErrSpooled) {
//		// On disk; it will be delivered. Do not submit it again.
//	}
//
// Every spec without a Key gets a generated one. Every spooled spec is
// delivered at least once — after a crash, by the next client on the same
// directory — and, thanks to its key, creates at most one run. A spec a
// server rejects as invalid is moved to a dead-letter file and reported,
// never retried for ever nor dropped. Rejections of a direct submission
// (ErrInvalid, …) are returned as usual, never spooled. FlushSpool waits
// for the spool to drain; SpoolLen tells what is waiting. See WithSpool.
//
// # Errors
//
// Errors the server returns are decoded from the gRPC status: use
// errors.Is with ErrNotFound, ErrConflict, ErrUnavailable,
// ErrPayloadTooLarge, ErrInvalid, ErrUnauthenticated and ErrPermissionDenied,
// and errors.As with *FieldError to learn which input field was rejected.
// A call whose context ends returns the context's error (errors.Is(err,
// context.DeadlineExceeded)). Every server error is also an *Error carrying
// the gRPC code, and status.FromError still works on it. A submission that
// a spool kept matches ErrSpooled (and is a *SpooledError), not the error
// that made it go to the spool.
//
// # JSON
//
// Run marshals to the JSON shape of the HTTP API (GET /api/v1/runs/{id}), so
// a Run from this package and one fetched with curl look the same, and Run
// can decode the HTTP API's responses.
package client
