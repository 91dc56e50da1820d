package worker

import plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"

// Capped logs
//
// The server caps each run's log (10,000 lines or 1 MiB by default) and
// drops the lines past the cap. Once a run is capped it says so with
// LogsCapped, naming the attempts this worker holds. From then on the
// attempt's lines are not sent, nor even copied or formatted: they are
// counted (Run.logCap), and the count goes to the server in a LogBatch's
// dropped entries, so that the run's count of dropped lines stays exact.
// Counts are taken with everything else the sender sends, so an attempt's
// count is on its way before (or with) its result. Lines a handler's
// goroutines print after it returned are counted but may not be reported.

// The task also carries the run's caps: an attempt that has sent one line
// past either caps itself the same way without waiting for the server's
// notice, which a handler printing a burst would outrun (100,000 lines
// are printed in 0.2 s, before the server has written the first 10,000).
// The line past the cap is sent, so the server stores the cap's marker.
// The server counts every attempt of a run together, so it may cap a
// retry sooner; it enforces the caps whatever a worker sends.

// capSelfLocked counts a line of n bytes that r sends, and caps r once it
// has sent one past a cap of its task. Called with w.mu held.
func (w *Worker) capSelfLocked(r *Run, n int) {
	if r.capLines <= 0 && r.capBytes <= 0 {
		return
	}
	r.sentLines++
	r.sentBytes += int64(n)
	if (r.capLines > 0 && r.sentLines > r.capLines || r.capBytes > 0 && r.sentBytes > r.capBytes) && r.logCap.CompareAndSwap(0, 1) {
		w.capped = append(w.capped, r)
	}
}

// dropCapped counts a line of a capped run and reports true, or reports
// false if the run's log is not capped: the line is to be sent.
func (r *Run) dropCapped() bool {
	if r.logCap.Load() == 0 {
		return false
	}
	r.logCap.Add(1)
	return true
}

// logsCappedLocked applies a LogsCapped: the attempts' lines are dropped
// from now on, and so are those still waiting to be sent (the server
// would drop them), counted instead. Attempts the worker does not hold are
// ignored.
func (w *Worker) logsCappedLocked(refs []*plutov1.RunRef) {
	var told map[runKey]*Run
	for _, ref := range refs {
		key := runKey{ref.GetRunId(), ref.GetAttempt()}
		r := w.held[key]
		if r == nil || !r.logCap.CompareAndSwap(0, 1) {
			continue
		}
		if told == nil {
			told = make(map[runKey]*Run, len(refs))
		}
		told[key] = r
		w.capped = append(w.capped, r)
	}
	if len(told) == 0 {
		return
	}
	keep := w.outLogs[:0]
	for _, l := range w.outLogs {
		if r := told[runKey{l.GetRunId(), l.GetAttempt()}]; r != nil {
			r.logCap.Add(1)
			w.outLogBytes -= len(l.GetText())
			continue
		}
		keep = append(keep, l)
	}
	clear(w.outLogs[len(keep):])
	w.outLogs = keep
	// Lines the backlog dropped would go out as one marker line, which
	// the server would drop as one line: they are counted here instead.
	rest := w.dropped[:0]
	for _, d := range w.dropped {
		if r := told[d.key]; r != nil {
			r.logCap.Add(int64(d.n))
			w.droppedLogs -= d.n
			continue
		}
		rest = append(rest, d)
	}
	w.dropped = rest
	w.signal(w.wake)
}

// logDropsLocked takes the counts of lines dropped unsent since the last
// send, and forgets the capped attempts whose handler has returned.
func (w *Worker) logDropsLocked() []*plutov1.LogDrop {
	var out []*plutov1.LogDrop
	keep := w.capped[:0]
	for _, r := range w.capped {
		if n := r.logCap.Swap(1) - 1; n > 0 {
			out = append(out, &plutov1.LogDrop{RunId: r.id, Attempt: r.attempt, Lines: n})
		}
		if r.state == stateQueued || r.state == stateRunning {
			keep = append(keep, r)
		}
	}
	clear(w.capped[len(keep):])
	w.capped = keep
	return out
}

// logDropBatches returns drops as LogBatch messages of at most
// maxBatchItems entries.
func logDropBatches(msgs []*plutov1.WorkerMessage, drops []*plutov1.LogDrop) []*plutov1.WorkerMessage {
	for len(drops) > 0 {
		n := min(len(drops), maxBatchItems)
		msgs = append(msgs, &plutov1.WorkerMessage{Msg: &plutov1.WorkerMessage_Logs{Logs: &plutov1.LogBatch{Dropped: drops[:n:n]}}})
		drops = drops[n:]
	}
	return msgs
}
