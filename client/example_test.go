package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/pluto-sched/pluto/client"
)

// Submit a run and wait for its result. serverAddr is a Pluto server's
// gRPC address, such as "127.0.0.1:7071" (here an in-process stand-in
// whose workers echo the payload back).
func Example() {
	c, err := client.Dial(serverAddr, client.WithToken("my-client-token"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	run, err := c.Submit(ctx, client.RunSpec{
		Type:    "echo",
		Group:   "default",
		Payload: map[string]string{"greeting": "hello"},
		Retries: 2,
		Timeout: 30 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}

	run, err = c.Wait(ctx, run.ID)
	if err != nil {
		log.Fatal(err)
	}
	if !run.Succeeded() {
		log.Fatalf("run %s %s: %s", run.ID, run.Status, run.Error)
	}
	var out struct {
		Greeting string `json:"greeting"`
	}
	if err := run.DecodeResult(&out); err != nil {
		log.Fatal(err)
	}
	fmt.Println(run.Status, out.Greeting)
	// Output: succeeded hello
}

// Connect to several servers; the client fails over between them.
func ExampleDial() {
	c, err := client.Dial("pluto-1:7071,pluto-2:7071,pluto-3:7071",
		client.WithToken("my-client-token"),
		client.WithTimeout(10*time.Second),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}

// Page through the failed runs of a group.
func ExampleClient_List() {
	c, err := client.Dial(serverAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	for _, n := range []int{1, 2, 3} {
		if _, err := c.Submit(ctx, client.RunSpec{Type: "report", Group: "reports", Payload: n}); err != nil {
			log.Fatal(err)
		}
	}

	opts := client.ListOptions{
		Group:  "reports",
		Status: []client.Status{client.StatusQueued},
		Limit:  2,
	}
	for {
		page, err := c.List(ctx, opts)
		if err != nil {
			log.Fatal(err)
		}
		for _, run := range page.Runs {
			fmt.Println(run.Type, run.Status, string(run.Payload))
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
	// Output:
	// report queued 3
	// report queued 2
	// report queued 1
}

// ListAll follows the cursors for you.
func ExampleClient_ListAll() {
	c, err := client.Dial(serverAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	for range 5 {
		if _, err := c.Submit(ctx, client.RunSpec{Type: "cleanup", Group: "janitors"}); err != nil {
			log.Fatal(err)
		}
	}

	n := 0
	for run, err := range c.ListAll(ctx, client.ListOptions{Group: "janitors", Limit: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		if run.Type == "cleanup" {
			n++
		}
	}
	fmt.Println(n, "runs")
	// Output: 5 runs
}

// Submit many runs in one request; an idempotency key makes the batch
// safe to resend.
func ExampleClient_SubmitBatch() {
	c, err := client.Dial(serverAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	specs := []client.RunSpec{
		{Type: "thumbnail", Group: "images", Payload: map[string]string{"image": "a.png"}, Key: "thumb-a"},
		{Type: "thumbnail", Group: "images", Payload: map[string]string{"image": "b.png"}, Key: "thumb-b"},
	}
	for range 2 { // the second time nothing new is created
		runs, err := c.SubmitBatch(ctx, specs)
		if err != nil {
			log.Fatal(err)
		}
		for _, run := range runs {
			fmt.Println(run.Key, run.Existing)
		}
	}
	// Output:
	// thumb-a false
	// thumb-b false
	// thumb-a true
	// thumb-b true
}

// Tell which input field the server rejected.
func ExampleFieldError() {
	c, err := client.Dial(serverAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, err = c.Submit(context.Background(), client.RunSpec{Group: "default"}) // no Type
	var fe *client.FieldError
	if errors.As(err, &fe) {
		fmt.Printf("field %q: %s\n", fe.Field, fe.Message)
	}
	_, err = c.Get(context.Background(), "r_does_not_exist")
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output:
	// field "type": is required
	// true
}

// Keep submissions in a local spool while no server answers; the client
// sends them when one does, and their idempotency keys make sure each
// becomes exactly one run.
func ExampleWithSpool() {
	dir, err := os.MkdirTemp("", "pluto-spool-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	spec := client.RunSpec{Type: "email.send", Group: "mail", Payload: map[string]string{"to": "ada@example.com"}, Key: "welcome-ada"}

	// No server answers at downAddr: the spec goes to the spool, on disk.
	c, err := client.Dial(downAddr, client.WithSpool(dir),
		client.WithSpoolErrorHandler(func(spec client.RunSpec, err error) {
			log.Printf("run %s rejected, see %s/dead.jsonl: %v", spec.Key, dir, err)
		}))
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Submit(ctx, spec)
	var spooled *client.SpooledError
	switch {
	case errors.As(err, &spooled):
		fmt.Println("spooled", spooled.Keys[0], "- waiting:", c.SpoolLen())
	case err != nil:
		log.Fatal(err) // rejected (ErrInvalid, …): not spooled
	}
	c.Close()

	// Later a client on the same spool (here a new one, as after a
	// restart, of a server that came back at serverAddr) delivers it.
	c, err = client.Dial(serverAddr, client.WithSpool(dir))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.FlushSpool(ctx); err != nil { // optional: wait for delivery
		log.Fatal(err)
	}
	fmt.Println("waiting:", c.SpoolLen())

	// The key names the run: submitting again creates nothing.
	run, err := c.Submit(ctx, spec)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(run.Key, "existing:", run.Existing)
	// Output:
	// spooled welcome-ada - waiting: 1
	// waiting: 0
	// welcome-ada existing: true
}
