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
// handles, the runs it still holds from an earlier connection, the largest
// message it accepts (64 MiB) and an instance token — and the server
// answers Welcome, naming the held attempts that are no longer current
// ("stale"): the worker cancels those and forgets their results. If the
// stream fails, the worker reconnects with jittered exponential back-off
// (100 ms to 5 s), trying Options.Servers in turn; runs keep running
// meanwhile and their results wait for the next stream.
//
// The instance token is random, made once per [Worker], and the same in
// every Hello of that Worker: the server lets a reconnect of the same
// instance replace its old stream, but refuses (ALREADY_EXISTS) a second
// process connecting under an ID whose first process is still connected.
// A refused worker logs an error naming its ID on each attempt and keeps
// retrying with the same back-off, so it takes over once the other process
// is gone; two processes must not share an ID.
//
// # Credits and the window
//
// The worker holds at most Capacity+Prefetch runs: its window, announced in
// the Hello and changed with Credits messages. The server never has more
// runs outstanding on the worker than the window, so runs are pushed without
// a request per run, and the Prefetch runs wait in a local FIFO so that a
// freed slot is refilled at once. Capacity long-lived runner goroutines take
// runs from that FIFO; the receive loop only queues, so it never waits on a
// handler. A window of zero pauses dispatch: that is how drains work. A
// Hello with window 0 also sets draining, because the server reads a bare
// window 0 in a Hello as "no window given".
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
// # Output
//
// What a handler writes to [Run.Output] becomes the run's log lines, sent
// as the bytes written: binary data, invalid UTF-8 and NUL bytes included
// (LogLine.text is bytes; the server stores text, replacing invalid UTF-8
// and NULs). Lines are split at newlines, one CR before each newline is
// dropped, and a line longer than 64 KiB is sent as several, cut before a
// UTF-8 sequence where there is one; however much arrives without a
// newline, the writer buffers no more than one such piece. The error a
// handler returns is sent as it is too (Result.error is bytes), cut to its
// first 64 KiB, the most the server keeps.
//
// Lines waiting to be sent are capped (50,000 lines, 16 MiB): when a
// handler prints faster than the stream takes it, or while no server is
// connected, further lines are dropped and the run's log gets a line
// "[pluto: N lines dropped: …]" (stream "log", level "warn") after the ones
// that were kept. Memory stays bounded and the stream is never broken by
// what a handler prints.
//
// The server caps each run's log (10,000 lines or 1 MiB by default). Once
// a run is past its cap the server says so, and the worker stops sending
// the attempt's lines: they are counted instead (not even copied or
// formatted), and the count reaches the server before the result, so the
// run's count of dropped lines stays exact. Writing and logging go on
// without blocking; the lines just go nowhere.
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
// # Results on disk
//
// With Options.ResultDir the worker also keeps, in an append-only log in
// that directory, the results no server has acknowledged, so they outlive
// the process. The invariant, with its window stated:
//
//	A result whose handler returned is acknowledged by a server (accepted
//	or rejected: both are final), or in the result store (fsync'd), or it
//	is less than two persist ticks old (100–200 ms, plus one batched write)
//	and the worker holds it in memory.
//
// So the disk is written only when delivery is slow or impossible:
//
//   - Stream up: results go out at once, as without a store; one not
//     acknowledged within two ticks of the persister (every 100 ms) is
//     appended, with everything else that waited as long, in one write and
//     one fsync. A healthy server acknowledges within milliseconds, so the
//     hot path costs one slice append per result and no system call.
//   - Stream down (between the end of a stream and the next Welcome): a
//     finishing result is written at once, without waiting for a tick; the
//     results waiting for an acknowledgement when a stream ends are written
//     then too. A stream that is dead but not yet noticed (a half-open
//     connection) falls under the first case.
//   - Run returning: every result not acknowledged by then is written
//     before Run returns (unless the write fails: that is logged). Only a
//     handler that ignores its cancelled context beyond the drain grace
//     period can finish too late for that.
//
// A process crash inside the window loses that result: the server declares
// the worker dead and requeues the run with a new attempt, so the work is
// done again rather than lost. When a stored result is acknowledged, or a
// Welcome lists it as stale, a tombstone is appended (not fsync'd: after a
// crash such a result may be sent once more, and the server rejects it).
// Write errors are logged; the results stay in memory and the write is
// retried every tick.
//
// On start, Run opens the store before it connects. The stored results are
// finished runs the worker holds: the Hello lists them, and after the
// Welcome they are sent as Results; the server's fencing decides. A result
// is accepted if its attempt is still current — the worker came back under
// the same ID (Options.ID; the default contains the process ID, so set
// it) before the server declared it dead (three heartbeat intervals,
// 15 s by default), or the server restarted meanwhile and still waits for
// the run's worker — and rejected otherwise (the run was requeued,
// cancelled or finished), by a ResultAck or as stale in the Welcome.
// Either answer removes it from the store.
//
// The log's format (length, CRC-32C and a protobuf Result per record; a
// torn record at the end, from a crash mid-write, is detected and ignored),
// its compaction (temporary file, fsync, rename, directory fsync) and its
// lock are described in resultstore.go.
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
// Every CancelRun is answered with a Result. For an attempt the worker
// holds it is that attempt's own result (when the handler returns, at once
// if it had not started, or the one already waiting for its
// acknowledgement). For an attempt it does not hold — unknown, finished and
// acknowledged, or another attempt of the run — the answer comes at once:
// CANCELLED with the error "not held by this worker", so that the server
// does not wait for a result that will never come. That answer is not kept
// or resent.
//
// # Drain
//
// When Run's context ends (or the server sends Shutdown, or [Worker.RunWithSignals]
// gets SIGTERM) the worker drains: it sends Credits{window: 0} (and, should
// it reconnect meanwhile, a Hello with window 0 and draining) so no new
// runs come, lets the runs it holds finish, delivers their results, waits
// for them to be acknowledged and returns. Runs still running after
// Options.DrainTimeout have their contexts cancelled (cause
// [ErrDrainTimeout], reported FAILED so the retry policy applies); runs that
// had not started by then are abandoned and the server requeues them when
// the stream closes. The server can also drain a worker without stopping it
// (Drain{resume: false}) and resume it later.
//
// # Remote control
//
// Operators control a worker through any server (pluto worker
// drain|resume|shutdown|restart ID, POST /api/v1/workers/{id}/…):
//
//   - drain: the window goes to zero and stays there, across reconnects
//     (the Hello announces it), until resume; the held runs finish.
//   - shutdown: the worker drains as above and Run returns nil.
//   - restart: the same, and Run returns [ErrRestart]: the program decides
//     what a restart is. `pluto worker` re-executes itself; a program under
//     a supervisor can simply exit.
//
// Custom commands (pluto worker command ID|--group G NAME, POST
// /api/v1/workers/{id}/command, POST /api/v1/groups/{group}/command) reach
// the handlers registered with [Worker.HandleCommand] before Run; their
// names are announced in the Hello, and the server answers a command the
// worker did not announce itself. A handler runs in its own goroutine with a
// context that ends when the server stops waiting for the answer (the
// command's timeout) or when Run returns; what it returns is sent as JSON.
package worker
