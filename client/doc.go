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
// # Errors
//
// Errors the server returns are decoded from the gRPC status: use
// errors.Is with ErrNotFound, ErrConflict, ErrUnavailable,
// ErrPayloadTooLarge, ErrInvalid, ErrUnauthenticated and ErrPermissionDenied,
// and errors.As with *FieldError to learn which input field was rejected.
// A call whose context ends returns the context's error (errors.Is(err,
// context.DeadlineExceeded)). Every server error is also an *Error carrying
// the gRPC code, and status.FromError still works on it.
//
// # JSON
//
// Run marshals to the JSON shape of the HTTP API (GET /api/v1/runs/{id}), so
// a Run from this package and one fetched with curl look the same, and Run
// can decode the HTTP API's responses.
package client
