package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// The runner pool: Capacity long-lived goroutines take runs from the local
// FIFO. Finishing one run and starting the next take a single lock
// acquisition, and nothing on this path allocates beyond the run's context
// and its two report messages.

// runner is one slot of the pool.
func (w *Worker) runner() {
	var (
		done *Run
		res  *plutov1.Result
	)
	for {
		r, ctx, stop := w.next(done, res)
		if r == nil {
			return
		}
		res = w.execute(ctx, r)
		stop()
		done = r
	}
}

// next records the result of the run this runner just finished (if any),
// then waits for a queued run and starts it. It returns a nil Run when the
// pool is closed.
func (w *Worker) next(done *Run, res *plutov1.Result) (*Run, context.Context, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if done != nil {
		w.finishLocked(done, res)
	}
	for {
		if w.closed {
			return nil, nil, nil
		}
		r := w.dequeueLocked()
		if r == nil {
			w.workCond.Wait()
			continue
		}
		if r.state != stateQueued {
			continue // cancelled or abandoned while queued
		}
		now := time.Now()
		r.state = stateRunning
		r.started = now
		w.queued--
		w.running++
		r.deadline = r.taskDeadline
		if r.timeout > 0 {
			if d := now.Add(r.timeout); r.deadline.IsZero() || d.Before(r.deadline) {
				r.deadline = d
			}
		}
		ctx, cancel := context.WithCancelCause(w.runCtx)
		r.cancel = cancel
		stop := func() { cancel(nil) }
		if !r.deadline.IsZero() {
			var cancelT context.CancelFunc
			ctx, cancelT = context.WithDeadlineCause(ctx, r.deadline, ErrRunTimedOut)
			stop = func() { cancelT(); cancel(nil) }
		}
		w.outAcks = append(w.outAcks, r)
		w.signal(w.wake)
		return r, ctx, stop
	}
}

func (w *Worker) dequeueLocked() *Run {
	if w.qhead == len(w.queue) {
		return nil
	}
	r := w.queue[w.qhead]
	w.queue[w.qhead] = nil
	w.qhead++
	if w.qhead == len(w.queue) {
		w.queue, w.qhead = w.queue[:0], 0
	} else if w.qhead >= 1024 && w.qhead*2 >= len(w.queue) {
		n := copy(w.queue, w.queue[w.qhead:])
		clear(w.queue[n:])
		w.queue, w.qhead = w.queue[:n], 0
	}
	return r
}

// execute calls the handler and builds the attempt's Result.
func (w *Worker) execute(ctx context.Context, r *Run) *plutov1.Result {
	var err error
	if ctx.Err() != nil {
		// Deadline already past, or cancelled between start and here.
		err = context.Cause(ctx)
	} else {
		err = callHandler(ctx, w.handler, r)
	}
	r.flushOutputs()
	finished := time.Now()
	res := &plutov1.Result{
		RunId:          r.id,
		Attempt:        r.attempt,
		Result:         r.Result(),
		StartedUnixMs:  r.started.UnixMilli(),
		FinishedUnixMs: finished.UnixMilli(),
	}
	res.Outcome, res.Error, res.NoRetry = classify(ctx, err)
	if d, ok := PokeAfter(err); ok && ctx.Err() == nil {
		res.Outcome, res.Error, res.PokeAfterMs = plutov1.Outcome_OUTCOME_POKE, nil, max(d.Milliseconds(), 1)
	}
	if n := len(res.Result); n > MaxResultBytes {
		// Sent as it is, the message would be refused by the server, and
		// refused again after every reconnect: the run would never end.
		res.Result = nil
		res.Outcome, res.NoRetry = plutov1.Outcome_OUTCOME_FAILED, true
		res.Error = []byte(fmt.Sprintf("the handler's result is %d bytes; the limit is %d", n, MaxResultBytes))
	}
	return res
}

// MaxResultBytes caps a run's result (Run.SetResult). A larger result fails
// the run, without retries: the server takes at least 16 MiB per message,
// and a result that does not fit would be refused on every resend.
const MaxResultBytes = 8 << 20

// classify maps a handler's return and its context to an outcome, the
// error to report and no_retry.
func classify(ctx context.Context, err error) (plutov1.Outcome, []byte, bool) {
	if err == nil {
		return plutov1.Outcome_OUTCOME_SUCCEEDED, nil, false
	}
	// Result.error is bytes: the message goes out as the handler made it
	// (the server makes text of it), capped because one huge error would
	// make a Results message the server refuses, again on every reconnect.
	msg := err.Error()
	cause := context.Cause(ctx)
	if cause != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && !errors.Is(err, cause) {
		// The handler returned ctx.Err(); say why the context ended.
		msg = cause.Error()
	}
	why := capError(msg)
	switch {
	case errors.Is(cause, ErrRunCancelled):
		return plutov1.Outcome_OUTCOME_CANCELLED, why, false
	case errors.Is(cause, ErrRunTimedOut):
		return plutov1.Outcome_OUTCOME_TIMED_OUT, why, IsNoRetry(err)
	}
	return plutov1.Outcome_OUTCOME_FAILED, why, IsNoRetry(err)
}

// maxErrorBytes caps Result.error; the server keeps no more than this.
const maxErrorBytes = 64 << 10

func capError(msg string) []byte {
	if len(msg) <= maxErrorBytes {
		return []byte(msg)
	}
	return []byte(msg[:runeCut([]byte(msg), maxErrorBytes)])
}

// finishLocked records a finished run's result and queues it for sending.
func (w *Worker) finishLocked(r *Run, res *plutov1.Result) {
	w.running--
	r.cancel = nil
	if len(w.maps) > 0 {
		w.endMapsLocked(runKey{r.id, r.attempt})
	}
	res.Mapped = r.mapped
	if r.stale {
		r.state = stateAbandoned
		// The server no longer wants to hear about this attempt.
		w.notifyChangedLocked()
		return
	}
	r.state = stateFinished
	w.queueResultLocked(r, res)
}

// queueResultLocked keeps res until the server acknowledges it, and queues
// it for the sender.
func (w *Worker) queueResultLocked(r *Run, res *plutov1.Result) {
	w.seq++
	r.seq = w.seq
	r.report = res
	r.resultQueued = true
	w.outResults = append(w.outResults, res)
	if w.store != nil {
		w.unsavedLocked(r)
	}
	w.signal(w.wake)
	w.notifyChangedLocked()
}

func (w *Worker) notifyChangedLocked() {
	if w.draining {
		w.signal(w.changed)
	}
}

// fromUnixMs is a time from Unix ms (0: the zero time).
func fromUnixMs(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// enqueueLocked adds a dispatched task to the local FIFO.
func (w *Worker) enqueueLocked(t *plutov1.Task) {
	key := runKey{t.GetRunId(), t.GetAttempt()}
	if _, dup := w.held[key]; dup {
		w.log.Warn("duplicate dispatch ignored", "run_id", key.id, "attempt", key.attempt)
		return
	}
	r := &Run{
		id:          t.GetRunId(),
		attempt:     t.GetAttempt(),
		typ:         t.GetType(),
		group:       t.GetGroup(),
		job:         t.GetJob(),
		payload:     t.GetPayload(),
		maxAttempts: t.GetMaxAttempts(),
		timeout:     time.Duration(t.GetTimeoutMs()) * time.Millisecond,
		sink:        w,
		merge:       t.GetMerge(),
		logLevel:    w.opts.RunLogLevel,
		capLines:    t.GetLogMaxLines(),
		capBytes:    t.GetLogMaxBytes(),
		logical:     fromUnixMs(t.GetLogicalTimeUnixMs()),
		created:     fromUnixMs(t.GetCreatedUnixMs()),
		parent:      t.GetParentId(),
		shard:       int(t.GetShard()),
		shardCount:  int(t.GetShardCount()),
	}
	if len(r.payload) == 0 {
		r.payload = nil
	}
	if ms := t.GetDeadlineUnixMs(); ms > 0 {
		r.taskDeadline = time.UnixMilli(ms)
	}
	w.held[key] = r
	w.queue = append(w.queue, r)
	w.queued++
	w.workCond.Signal()
}

// cancelLocked handles CancelRun, which always gets a Result: a running
// run's context is cancelled and its result follows when the handler
// returns; a run still queued locally is reported CANCELLED without being
// started; a finished run's result is already on its way (it is sent until
// acknowledged). An attempt the worker does not hold at all (unknown, or
// finished and acknowledged) is answered at once with a CANCELLED result
// saying so, so that the server does not wait for one to free its slot.
func (w *Worker) cancelLocked(c *plutov1.CancelRun) {
	var r *Run
	if c.GetAttempt() != 0 {
		r = w.held[runKey{c.GetRunId(), c.GetAttempt()}]
	} else {
		for k, h := range w.held {
			if k.id == c.GetRunId() && (r == nil || h.attempt > r.attempt) {
				r = h
			}
		}
	}
	if r == nil {
		// Nothing to keep or resend: this answer concerns no run the
		// worker has; if it is lost with the stream, the next Hello's held
		// list tells the server the same.
		w.outResults = append(w.outResults, &plutov1.Result{
			RunId:          c.GetRunId(),
			Attempt:        c.GetAttempt(),
			Outcome:        plutov1.Outcome_OUTCOME_CANCELLED,
			Error:          []byte(notHeld),
			FinishedUnixMs: time.Now().UnixMilli(),
		})
		w.signal(w.wake)
		return
	}
	cause := ErrRunCancelled
	if c.GetReason() != "" {
		cause = fmt.Errorf("%w: %s", ErrRunCancelled, c.GetReason())
	}
	switch r.state {
	case stateRunning:
		r.cancel(cause)
	case stateQueued:
		w.queued--
		r.state = stateFinished
		w.queueResultLocked(r, &plutov1.Result{
			RunId:          r.id,
			Attempt:        r.attempt,
			Outcome:        plutov1.Outcome_OUTCOME_CANCELLED,
			Error:          []byte(cause.Error()),
			FinishedUnixMs: time.Now().UnixMilli(),
		})
	}
}

// notHeld is the error of the answer to a CancelRun for an attempt the
// worker does not hold.
const notHeld = "not held by this worker"

// emitLine queues a log line for the sender (the Worker is the lineSink of
// its runs). The text goes out as the bytes the handler wrote: the server
// makes text of it. When output comes faster than the stream takes it (or
// while no server is connected) the backlog is capped, in lines and in
// bytes, so a handler printing without end cannot exhaust the worker's
// memory: further lines are dropped, and counted so that the run's log says
// how many are missing (droppedMarkers).
func (w *Worker) emitLine(r *Run, stream, level string, text []byte, t time.Time) {
	line := &plutov1.LogLine{
		RunId:   r.id,
		Attempt: r.attempt,
		UnixMs:  t.UnixMilli(),
		Stream:  stream,
		Level:   level,
		Text:    text,
	}
	w.mu.Lock()
	if r.dropCapped() { // the server's LogsCapped came while the line was on its way here
		w.mu.Unlock()
		return
	}
	if len(w.outLogs) >= maxPendingLogs || w.outLogBytes+len(text) > maxPendingLogBytes {
		w.dropLineLocked(runKey{r.id, r.attempt})
		w.mu.Unlock()
		return
	}
	w.outLogs = append(w.outLogs, line)
	w.outLogBytes += len(text)
	w.capSelfLocked(r, len(text))
	w.mu.Unlock()
	w.signal(w.wake)
}

// droppedLines counts the log lines of one attempt dropped since the last
// send.
type droppedLines struct {
	key runKey
	n   int
}

func (w *Worker) dropLineLocked(key runKey) {
	w.droppedLogs++
	for i := range w.dropped {
		if w.dropped[i].key == key {
			w.dropped[i].n++
			return
		}
	}
	w.dropped = append(w.dropped, droppedLines{key, 1})
}

// droppedMarkers returns, for each attempt that lost log lines, a line
// saying how many, to be sent after the lines that were kept.
func droppedMarkers(dropped []droppedLines) []*plutov1.LogLine {
	now := time.Now().UnixMilli()
	lines := make([]*plutov1.LogLine, len(dropped))
	for i, d := range dropped {
		lines[i] = &plutov1.LogLine{
			RunId:   d.key.id,
			Attempt: d.key.attempt,
			UnixMs:  now,
			Stream:  StreamLog,
			Level:   "warn",
			Text:    fmt.Appendf(nil, "[pluto: %d lines dropped: output came faster than it could be sent to the server]", d.n),
		}
	}
	return lines
}
