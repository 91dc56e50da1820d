package engine

import (
	"context"
	"strings"
	"sync"

	"github.com/pluto-sched/pluto/internal/store"
)

// The log writer
//
// Workers' log lines are not written by the committer: a run printing fast
// would fill the scheduling transactions with lines and slow every other
// run's dispatch. The log writer has its own queue and goroutine and
// writes lines in store transactions of their own (Store.LogTx, which
// never waits for Store.Tx), by group commit: while one transaction is in
// flight the next lines accumulate, and they are written as soon as it
// ends — never on a timer. A failed write is tried again with backoff
// (retryDelay) until it commits or the engine stops; on stop the queued
// lines are written within the stop's deadline.
//
// Back-pressure stays with the sessions (Session.Logs): a session's lines
// not yet written are capped at maxSessionLogBytes, so a worker printing
// faster than the store writes is slowed, not buffered without bound.
//
// Caps: the store enforces each run's log cap in the transaction that
// appends (store.LogAppendParams) and says which runs are capped; the
// writer remembers them (up to maxCappedRuns) and drops their further
// lines before they are queued, counting them into the next write, so a
// run printing 100,000 lines costs the store almost nothing after its
// first 10,000. The session holding the run's current attempt is told
// once (LogsCapped, logcapped.go), so that its worker stops sending the
// lines at all and reports only their number (addDropped). Counted drops
// take a ticket like lines do: a finish waits for its run's count.
//
// Order with results: a run's finish is not committed before the lines its
// worker sent ahead of the result (pushFinishes waits for them, logAfter),
// so a follower that sees the run terminal and reads once more has every
// such line. Lines sent after the result (late lines of a recently
// reported attempt) are still stored, but a follower may have ended.
//
// After a commit the writer wakes this server's followers of the runs
// written, and publishes TopicLogs for the runs that a follower on any
// server watches (logfollow.go).

// maxCappedRuns bounds the writer's memory of capped runs; a run it
// forgot is capped by the store all the same.
const maxCappedRuns = 10000

// maxLogBatch is the most lines one log transaction writes. Log
// transactions (Store.LogTx) do not hold the scheduling ones up — SQLite
// keeps log lines in a file of their own — but a bound keeps each short,
// so that a finish waiting for its run's lines is not stuck behind
// another run's burst for long, and the lines reach followers as they
// come: 2,000 take SQLite about 3–4 ms. Fewer, larger transactions cost
// less CPU for a burst (each commit rewrites the B-trees' last pages):
// storing a capped run's 10,000 lines took the server 33 ms of CPU at 500
// a transaction, 23.5 ms at 2,000 (2-core VM, with the chunks' copy gone
// too; 5,000 saved about 2 ms more but makes a commit ~10 ms).
const maxLogBatch = 2000

type logWriter struct {
	e *Engine

	mu      sync.Mutex
	queue   []logAdd
	dropped map[string]int64  // lines of capped runs dropped before queueing
	pending map[string]uint64 // run → ticket of its last queued line or drop count
	queued  map[string]uint64 // run → ticket of its last queued line (takeDropped)
	ticket  uint64            // of the last add
	flushed uint64            // every line up to this ticket is written
	afters  []logAfter
	capped  map[string]struct{}
	order   []string // capped runs, oldest first (eviction)
	closed  bool
	wake    chan struct{} // 1-buffered
	done    chan struct{} // closed when run returns
	cancel  context.CancelFunc
}

// logAdd is one add's lines.
type logAdd struct {
	lines  []store.LogLine
	done   func()
	ticket uint64
}

// logAfter is a callback waiting until the lines up to ticket are written.
type logAfter struct {
	ticket uint64
	fn     func()
}

// logBatch is what one write takes.
type logBatch struct {
	lines   []store.LogLine
	dones   []func()
	dropped map[string]int64
	ticket  uint64
}

func newLogWriter(e *Engine) *logWriter {
	return &logWriter{
		e:       e,
		pending: make(map[string]uint64),
		queued:  make(map[string]uint64),
		capped:  make(map[string]struct{}),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
}

// start runs the writer's goroutine.
func (w *logWriter) start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.mu.Lock()
	w.cancel = cancel
	w.mu.Unlock()
	go w.run(ctx)
}

// stop writes what is queued and ends the goroutine; if ctx ends first
// the write in progress is abandoned (its lines are lost, and logged).
func (w *logWriter) stop(ctx context.Context) {
	w.mu.Lock()
	cancel := w.cancel
	w.closed = true
	w.signal()
	w.mu.Unlock()
	if cancel == nil {
		return
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		cancel()
		<-w.done
	}
	cancel()
}

// signal wakes the goroutine. Called with w.mu held.
func (w *logWriter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// filter drops the lines of runs known to be capped (counting them for
// the store and the observer) and returns the rest, reusing lines.
func (w *logWriter) filter(lines []store.LogLine) []store.LogLine {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.capped) == 0 || w.closed { // closed: add refuses them all
		return lines
	}
	keep := lines[:0]
	n := 0
	t := w.ticket + 1 // the drops' ticket (take)
	for i := 0; i < len(lines); {
		// A run's lines come together: they are looked up and counted
		// a run at a time.
		id, j := lines[i].RunID, i+1
		for j < len(lines) && lines[j].RunID == id {
			j++
		}
		if _, ok := w.capped[id]; ok {
			if w.dropped == nil {
				w.dropped = make(map[string]int64)
			}
			w.dropped[id] += int64(j - i)
			w.pending[id] = t
			n += j - i
		} else {
			keep = append(keep, lines[i:j]...)
		}
		i = j
	}
	if n > 0 {
		w.ticket = t
		w.e.cfg.Observer.LogLinesDropped(n)
		w.signal()
	}
	return keep
}

// addDropped counts lines that workers dropped unsent (Session.LogDrops)
// into the next write, each count at most maxLogDrop.
func (w *logWriter) addDropped(add map[string]int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if w.dropped == nil {
		w.dropped = make(map[string]int64, len(add))
	}
	w.ticket++
	var n int64
	for id, k := range add {
		w.dropped[id] = min(w.dropped[id]+k, maxLogDrop)
		w.pending[id] = w.ticket
		n += k
	}
	w.e.cfg.Observer.LogLinesDropped(int(n))
	w.signal()
}

// add queues lines; done runs once they are written (or abandoned at
// stop). False, and done is not called, if the writer has stopped.
func (w *logWriter) add(lines []store.LogLine, done func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	w.ticket++
	for _, l := range lines {
		w.pending[l.RunID] = w.ticket
		w.queued[l.RunID] = w.ticket
	}
	w.queue = append(w.queue, logAdd{lines: lines, done: done, ticket: w.ticket})
	w.signal()
	return true
}

// after runs fn once the queued lines of runs ids are written, and
// returns true; false (fn not called) if none of them has lines queued.
func (w *logWriter) after(ids []string, fn func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	var t uint64
	for _, id := range ids {
		t = max(t, w.pending[id])
	}
	if t == 0 {
		return false
	}
	w.afters = append(w.afters, logAfter{ticket: t, fn: fn})
	return true
}

// take returns the queued lines, about maxLogBatch at most; ok is false
// once the writer is closed and nothing is left.
func (w *logWriter) take() (b logBatch, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 && len(w.dropped) == 0 {
		return b, !w.closed
	}
	b = logBatch{ticket: w.flushed}
	total := 0
	for i := 0; i < len(w.queue) && total < maxLogBatch; i++ {
		total += len(w.queue[i].lines)
	}
	b.lines = make([]store.LogLine, 0, min(total, maxLogBatch))
	n := 0
	for n < len(w.queue) && len(b.lines)+len(w.queue[n].lines) <= maxLogBatch {
		a := w.queue[n]
		b.lines = append(b.lines, a.lines...)
		b.dones = append(b.dones, a.done)
		b.ticket = a.ticket
		n++
	}
	if n < len(w.queue) && len(b.lines) < maxLogBatch/2 {
		// The next add is large (a worker's message holds up to 4,096
		// lines): its head goes now, the rest stays queued with its
		// ticket and done, so that no transaction outgrows maxLogBatch.
		// The batch's ticket stays at the last whole add.
		a := &w.queue[n]
		k := maxLogBatch - len(b.lines)
		b.lines = append(b.lines, a.lines[:k]...)
		a.lines = a.lines[k:]
	}
	b.dropped = w.takeDropped(b.ticket)
	if n == len(w.queue) {
		// Every add and every drop counted so far is in b: the drops'
		// tickets are done with it too.
		b.ticket = w.ticket
	}
	rest := copy(w.queue, w.queue[n:])
	clear(w.queue[rest:])
	w.queue = w.queue[:rest]
	return b, true
}

// takeDropped returns the drop counts to write with a batch whose last
// add has ticket last: those of runs with no line queued after it. A
// run's count waits for its queued lines (a worker sends its lines before
// the count of those it dropped after them): the store keeps no line of a
// run that has dropped one, so a count written first would drop the lines
// before it, and their cap marker with them. Called with w.mu held.
func (w *logWriter) takeDropped(last uint64) map[string]int64 {
	var d map[string]int64
	for id, k := range w.dropped {
		if w.queued[id] > last {
			continue
		}
		if d == nil {
			d = make(map[string]int64, len(w.dropped))
		}
		d[id] = k
		delete(w.dropped, id)
	}
	return d
}

func (w *logWriter) run(ctx context.Context) {
	defer close(w.done)
	for {
		b, ok := w.take()
		if !ok {
			return
		}
		if len(b.lines) == 0 && len(b.dones) == 0 && len(b.dropped) == 0 {
			select {
			case <-w.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		res, err := w.write(ctx, b)
		if err != nil {
			w.e.log.Error("log lines not written: the engine stopped first", "lines", len(b.lines), "err", err)
		}
		w.written(b, res)
	}
}

// write appends b in a transaction of its own, trying again with backoff
// until it commits or ctx ends.
func (w *logWriter) write(ctx context.Context, b logBatch) (store.LogAppendResult, error) {
	live := w.e.live()
	p := store.LogAppendParams{Lines: b.lines, Dropped: b.dropped, MaxLines: live.LogMaxLines, MaxBytes: live.LogMaxBytes}
	for try := 1; ; try++ {
		var res store.LogAppendResult
		err := w.e.st.LogTx(ctx, func(tx store.LogTx) error {
			var err error
			if res, err = tx.LogAppend(ctx, p); err != nil {
				return err
			}
			return w.e.publishLogs(ctx, tx, b.lines)
		})
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return res, err
		}
		d := retryDelay(try)
		w.e.log.Warn("writing log lines failed; trying again", "lines", len(b.lines), "try", try, "in", d, "err", err)
		if !w.e.sleep(ctx, d) {
			return res, ctx.Err()
		}
	}
}

// written completes b: the sessions get their log space back, finishes
// waiting for these lines go on, followers wake.
func (w *logWriter) written(b logBatch, res store.LogAppendResult) {
	w.mu.Lock()
	w.flushed = b.ticket
	for id, t := range w.pending {
		if t <= b.ticket {
			delete(w.pending, id)
		}
	}
	for id, t := range w.queued {
		if t <= b.ticket {
			delete(w.queued, id)
		}
	}
	for _, id := range res.Capped {
		w.remember(id)
	}
	var ready []func()
	rest := w.afters[:0]
	for _, a := range w.afters {
		if a.ticket <= b.ticket {
			ready = append(ready, a.fn)
		} else {
			rest = append(rest, a)
		}
	}
	clear(w.afters[len(rest):])
	w.afters = rest
	w.mu.Unlock()
	if res.Dropped > 0 {
		w.e.cfg.Observer.LogLinesDropped(res.Dropped)
	}
	if len(res.Capped) > 0 {
		w.e.tellCapped(res.Capped)
	}
	for _, fn := range b.dones {
		fn()
	}
	for _, fn := range ready {
		fn()
	}
	w.e.logFollow.wakeAll(runIDs(b.lines))
}

// remember notes a capped run, forgetting the oldest beyond maxCappedRuns.
// Called with w.mu held.
func (w *logWriter) remember(id string) {
	if _, ok := w.capped[id]; ok {
		return
	}
	if len(w.order) >= maxCappedRuns {
		delete(w.capped, w.order[0])
		w.order = w.order[1:]
	}
	w.capped[id] = struct{}{}
	w.order = append(w.order, id)
}

// runIDs are the distinct runs of lines, in first appearance order.
func runIDs(lines []store.LogLine) []string {
	var (
		ids  []string
		seen = make(map[string]struct{})
	)
	for i, l := range lines {
		if i > 0 && lines[i-1].RunID == l.RunID {
			continue // the common case: a run's lines arrive together
		}
		if _, ok := seen[l.RunID]; !ok {
			seen[l.RunID] = struct{}{}
			ids = append(ids, l.RunID)
		}
	}
	return ids
}

// publishLogs tells other servers, in tx, which of the runs written have
// followers (TopicLogs, ids comma-separated under maxNotifyPayload). An
// exclusive store has no other server: its followers are woken directly.
func (e *Engine) publishLogs(ctx context.Context, tx store.LogTx, lines []store.LogLine) error {
	if e.cfg.ExclusiveStore {
		return nil
	}
	var b strings.Builder
	for _, id := range runIDs(lines) {
		if !e.logWatched(id) {
			continue
		}
		if b.Len() > 0 && b.Len()+len(id)+1 > maxNotifyPayload {
			if err := tx.Notify(ctx, store.Notification{Topic: store.TopicLogs, Payload: b.String()}); err != nil {
				return err
			}
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(id)
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.Notify(ctx, store.Notification{Topic: store.TopicLogs, Payload: b.String()})
}
