package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/pluto-sched/pluto/worker"
)

// A Mux routes runs by type; middleware wraps every handler. Handlers are
// tested with runs built by NewTestRun.
func ExampleMux() {
	mux := worker.NewMux()
	mux.Use(func(next worker.Handler) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, r *worker.Run) error {
			start := time.Now()
			err := next.ProcessRun(ctx, r)
			r.Logger().Info("done", "type", r.Type(), "ok", err == nil, "slow", time.Since(start) > time.Minute)
			return err
		})
	})
	mux.HandleFunc("email.send", func(ctx context.Context, r *worker.Run) error {
		var p struct {
			To string `json:"to"`
		}
		if err := r.Decode(&p); err != nil {
			return err
		}
		if p.To == "" {
			return worker.NoRetry(fmt.Errorf("payload.to: required"))
		}
		r.Logger().Info("sending", "to", p.To)
		return r.SetResult(map[string]string{"status": "sent", "to": p.To})
	})

	run := worker.NewTestRun(worker.TestRun{
		Type:    "email.send",
		Payload: json.RawMessage(`{"to":"ada@example.com"}`),
		Log:     os.Stdout,
	})
	err := mux.ProcessRun(context.Background(), run)
	fmt.Println("err:", err)
	fmt.Println("result:", string(run.Result()))

	bad := worker.NewTestRun(worker.TestRun{Type: "email.send", Payload: json.RawMessage(`{}`)})
	err = mux.ProcessRun(context.Background(), bad)
	fmt.Println("err:", err, "no retry:", worker.IsNoRetry(err))
	// Output:
	// log info: sending to=ada@example.com
	// log info: done type=email.send ok=true slow=false
	// err: <nil>
	// result: {"status":"sent","to":"ada@example.com"}
	// err: payload.to: required no retry: true
}

// Output streams become the run's live log lines, one per line.
func ExampleRun_Output() {
	run := worker.NewTestRun(worker.TestRun{Type: "report", Log: os.Stdout})
	fmt.Fprintf(run.Output(worker.StreamStdout), "rows: %d\nbytes: %d", 42, 1<<10)
	run.FlushOutput() // the worker does this when the handler returns
	// Output:
	// stdout: rows: 42
	// stdout: bytes: 1024
}

// A complete worker program: it serves two run types until SIGINT or
// SIGTERM, then drains (no new runs; running ones finish within
// DrainTimeout; results are delivered) and exits.
func Example() {
	mux := worker.NewMux()
	mux.HandleFunc("resize", func(ctx context.Context, r *worker.Run) error {
		var p struct{ URL string }
		if err := r.Decode(&p); err != nil {
			return err
		}
		select { // real work would watch ctx the same way
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
		return r.SetResult(map[string]string{"thumbnail": p.URL + "?w=128"})
	})
	mux.HandleFunc("noop", func(context.Context, *worker.Run) error { return nil })

	w, err := worker.New(worker.Options{
		Servers:      []string{"pluto-1:7071", "pluto-2:7071"},
		Group:        "images",
		Capacity:     8,
		DrainTimeout: time.Minute,
		Handler:      mux,
	})
	if err != nil {
		log.Fatal(err)
	}
	w.HandleCommand("flush-cache", func(ctx context.Context, args json.RawMessage) (any, error) {
		return map[string]int{"flushed": 0}, nil
	})
	if err := w.RunWithSignals(context.Background()); err != nil {
		log.Fatal(err) // worker.ErrRestart: exit so the supervisor restarts us
	}
}

// A worker authenticates with a token of role worker, created with
// "pluto token create --name NAME --role worker"; take it from the
// environment or a secret store rather than the source. (The server here
// is an in-process stand-in that accepts only that token.)
func ExampleOptions_token() {
	token := "plt_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG" // e.g. os.Getenv("PLUTO_TOKEN")
	server, err := startStandIn(token)
	if err != nil {
		log.Fatal(err)
	}
	defer server.stop()

	mux := worker.NewMux()
	mux.HandleFunc("noop", func(context.Context, *worker.Run) error { return nil })
	w, err := worker.New(worker.Options{
		Servers: []string{server.addr},
		Token:   token, // sent as "authorization: Bearer <token>"
		Handler: mux,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for !w.Stats().Connected {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("connected:", w.Stats().Server == server.addr)
	cancel() // drain and leave
	fmt.Println("stopped:", <-done)
	// Output:
	// connected: true
	// stopped: <nil>
}

// Serve is the one-call form, like http.ListenAndServe.
func ExampleServe() {
	mux := worker.NewMux()
	mux.HandleFunc("noop", func(context.Context, *worker.Run) error { return nil })
	log.Fatal(worker.Serve(worker.Options{Servers: []string{"127.0.0.1:7071"}, Handler: mux}))
}

// A handler that waits for something outside Pluto pokes: the run goes
// back to pending for the delay, holding no slot and using up no attempt.
// LogicalTime is the run's slot (its cron fire time, or a backfill's day).
func ExamplePoke() {
	export := worker.HandlerFunc(func(ctx context.Context, r *worker.Run) error {
		day := r.LogicalTime().Format("2006-01-02")
		if _, err := os.Stat("/data/exports/" + day + "/_SUCCESS"); err != nil {
			return worker.Poke(30 * time.Second) // not there yet: look again in 30 s
		}
		return nil
	})
	r := worker.NewTestRun(worker.TestRun{Type: "export-ready", LogicalTime: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)})
	d, poked := worker.PokeAfter(export.ProcessRun(context.Background(), r))
	fmt.Println(poked, d)
	// Output: true 30s
}
