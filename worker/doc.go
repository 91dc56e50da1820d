// Package worker is the Go SDK for Pluto workers: processes that execute
// the runs a Pluto server dispatches.
//
// The API is shaped like net/http. A [Handler] processes one attempt of a
// run, as an http.Handler serves one request; [HandlerFunc] adapts a
// function; a [Mux] routes runs by type as http.ServeMux routes by path;
// [Middleware] wraps handlers. [New] builds a [Worker] from [Options] and
// [Worker.Run] serves until its context ends; [Serve] does both and drains
// on SIGINT/SIGTERM, like http.ListenAndServe:
//
//	mux := worker.NewMux()
//	mux.HandleFunc("email.send", func(ctx context.Context, r *worker.Run) error {
//		var p struct{ To string }
//		if err := r.Decode(&p); err != nil {
//			return err // already marked NoRetry
//		}
//		r.Logger().Info("sending", "to", p.To)
//		return r.SetResult(map[string]string{"status": "sent"})
//	})
//	err := worker.Serve(worker.Options{Servers: []string{"pluto:7071"}, Handler: mux})
//
// A handler that returns nil succeeds; an error fails the attempt and the
// server retries the run if its policy allows, unless the error is wrapped
// with [NoRetry]. Panics fail the attempt with the panic message.
//
// # The stream
//
// A worker dials a server (it never listens) and holds one bidirectional
// gRPC stream (WorkerService.Connect in proto/pluto/v1/pluto.proto). It
// introduces itself with a Hello — ID, group, capacity, the types its Mux
// handles, and the runs it still holds from an earlier connection — and the
// server answers Welcome, naming the held attempts that are no longer
// current ("stale"): the worker cancels those and forgets their results.
// If the stream fails, the worker reconnects with jittered exponential
// back-off (100 ms to 5 s), trying Options.Servers in turn; runs keep running
// meanwhile and their results wait for the next stream.
//
// # Credits and the window
//
// The worker holds at most Capacity+Prefetch runs: its window, announced in
// the Hello and changed with Credits messages. The server never has more
// runs outstanding on the worker than the window, so runs are pushed without
// a request per run, and the Prefetch runs wait in a local FIFO so that a
// freed slot is refilled at once. Capacity long-lived runner goroutines take
// runs from that FIFO; the receive loop only queues, so it never waits on a
// handler. A window of zero pauses dispatch: that is how drains work.
//
// # Batching
//
// Every report travels through one outbox per worker, and one sender
// goroutine per stream empties it: it blocks until something is queued, then
// sends everything queued since its last send as a few messages — one Acks
// with every pending start, LogBatches with every pending log line, Results
// with every pending result. While a send is in flight the next batch
// accumulates, so the number of messages falls as the load rises, without
// timers. An ack still waiting when its run's result is queued is dropped:
// the result implies the start.
//
// # Fencing
//
// Every report carries the attempt number the run was dispatched with. The
// attempt is the fencing token: the server rejects reports about an attempt
// that is no longer current (the run was reassigned after this worker was
// presumed dead, or cancelled). A result is kept until the server
// acknowledges it (ResultAcks, accepted or rejected) and is sent again on
// every new stream until then.
//
// # Outcomes
//
// A handler returning nil reports SUCCEEDED. If it returns an error after
// the server cancelled the run (CancelRun) the attempt is CANCELLED; after
// the run's timeout or deadline passed (enforced locally through the
// handler's context) it is TIMED_OUT; otherwise FAILED. [context.Cause] of
// the handler's context is [ErrRunCancelled], [ErrRunTimedOut],
// [ErrDrainTimeout] or [ErrStaleRun] accordingly. A run cancelled while it
// still waited in the local FIFO is reported CANCELLED without running, with
// started_unix_ms 0.
//
// # Drain
//
// When Run's context ends (or the server sends Shutdown, or [Worker.RunWithSignals]
// gets SIGTERM) the worker drains: it sends Credits{window: 0} so no new
// runs come, lets the runs it holds finish, delivers their results, waits
// for them to be acknowledged and returns. Runs still running after
// Options.DrainTimeout have their contexts cancelled (cause
// [ErrDrainTimeout], reported FAILED so the retry policy applies); runs that
// had not started by then are abandoned and the server requeues them when
// the stream closes. The server can also drain a worker without stopping it
// (Drain{resume: false}) and resume it later.
package worker
