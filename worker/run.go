package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// Output stream names used in log lines. "log" is the stream of
// [Run.Logger]; executors write a command's output to "stdout" and "stderr"
// with [Run.Output].
const (
	StreamLog    = "log"
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// maxLineBytes splits output lines longer than this into several log lines.
const maxLineBytes = 64 << 10

// Run is one attempt of a run, handed to a [Handler]. It is to a Handler
// what an *http.Request plus its ResponseWriter are to an http.Handler: it
// carries the input (type, payload, attempt, deadline) and collects the
// output (result, log lines).
//
// Its methods are safe for concurrent use by the handler's goroutines.
type Run struct {
	id      string
	attempt int32
	typ     string
	group   string
	job     string
	logical time.Time // the run's slot (zero: none)
	created time.Time
	// A fan-out's child: its parent, index and the number of children
	// (shardCount 0: not a child).
	parent            string
	shard, shardCount int
	payload           json.RawMessage
	maxAttempts       int32
	// from the task; the effective deadline is computed when the run starts.
	taskDeadline time.Time
	timeout      time.Duration
	deadline     time.Time

	sink     lineSink
	merge    bool // a merge run (IsMerge)
	logLevel slog.Leveler

	// Fields below are owned by the Worker and guarded by Worker.mu. The
	// one-byte fields sit together, so that Run stays in its size class.
	cancel       context.CancelCauseFunc
	started      time.Time
	seq          uint64 // finish order, for resending results in order
	state        runState
	resultQueued bool      // result built; an unsent ack is dropped
	stale        bool      // server said the attempt is stale: report nothing
	mapped       bool      // a MapAck made (or found) its children: Result.mapped (mapsend.go)
	disk         diskState // where the result store has it
	report       *plutov1.Result

	// logCap is 0 until the server says the run's log is capped
	// (LogsCapped); then 1 + the lines dropped unsent since the last
	// report (logcap.go). Atomic: handlers' goroutines count without a lock.
	logCap atomic.Int64
	// The run's log caps from its task (0: not said) and what this
	// attempt sent so far, guarded by the worker's mu (emitLine): past a
	// cap the attempt caps itself, as on a LogsCapped (logcap.go).
	capLines, capBytes   int64
	sentLines, sentBytes int64

	mu     sync.Mutex // guards the fields below
	result json.RawMessage
	logger *slog.Logger
	outs   []*lineWriter
}

type runState uint8

const (
	stateQueued    runState = iota // held locally, waiting for a slot
	stateRunning                   // a handler is running it
	stateFinished                  // result queued, waiting for ResultAcks
	stateAbandoned                 // dropped (stale, or drain expired) before it started
)

// lineSink receives the log and output lines of a run. text is the line's
// bytes, as the handler wrote them (any bytes, no newline); the sink owns
// it.
type lineSink interface {
	emitLine(r *Run, stream, level string, text []byte, t time.Time)
}

// ID returns the run's ID.
func (r *Run) ID() string { return r.id }

// Attempt returns the attempt number (1 for the first). It is the fencing
// token of every report about this attempt.
func (r *Run) Attempt() int { return int(r.attempt) }

// MaxAttempts returns the most attempts the run may have (0: unknown).
func (r *Run) MaxAttempts() int { return int(r.maxAttempts) }

// Type returns the handler type the run names.
func (r *Run) Type() string { return r.typ }

// Group returns the worker group the run targets.
func (r *Run) Group() string { return r.group }

// Job returns the name of the job the run was created from ("" for one-shot
// submissions).
func (r *Run) Job() string { return r.job }

// LogicalTime is the slot the run belongs to — its cron fire time, or the
// time a trigger or a backfill gave it — and the zero time for a run with
// none (a plain submission or trigger).
func (r *Run) LogicalTime() time.Time { return r.logical }

// CreatedAt is when the run was created (zero from a server that does not
// say).
func (r *Run) CreatedAt() time.Time { return r.created }

// Shard is the run's place in a fan-out: its index (0 to count-1) among
// its parent's children, and their number. count is 0 for a run that is
// not a fan-out's child.
func (r *Run) Shard() (index, count int) { return r.shard, r.shardCount }

// ParentID is the ID of the fan-out's parent of which the run is a child
// ("" for none).
func (r *Run) ParentID() string { return r.parent }

// Payload returns the run's JSON payload (nil when it has none). The caller
// must not modify it.
func (r *Run) Payload() json.RawMessage { return r.payload }

// Decode unmarshals the payload into v. An empty payload is JSON null and
// leaves v unchanged. A payload that does not decode fails with an error
// marked [NoRetry]: retrying cannot fix it.
func (r *Run) Decode(v any) error {
	if len(r.payload) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.payload, v); err != nil {
		return NoRetry(fmt.Errorf("payload: %w", err))
	}
	return nil
}

// Deadline returns when the attempt must be finished: the earlier of the
// run's deadline and its start plus its timeout. ok is false when it has
// neither. The handler's context carries the same deadline.
func (r *Run) Deadline() (deadline time.Time, ok bool) {
	return r.deadline, !r.deadline.IsZero()
}

// SetResult sets the attempt's result to v encoded as JSON (a
// json.RawMessage or []byte is taken as already encoded JSON). The result is
// reported whether the handler then succeeds or fails; the last call wins.
// A result over MaxResultBytes fails the run.
func (r *Run) SetResult(v any) error {
	var b []byte
	switch v := v.(type) {
	case json.RawMessage:
		b = v
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			return fmt.Errorf("worker: SetResult: %w", err)
		}
	}
	if len(b) > 0 && !json.Valid(b) {
		return fmt.Errorf("worker: SetResult: invalid JSON")
	}
	r.mu.Lock()
	r.result = b
	r.mu.Unlock()
	return nil
}

// Result returns the JSON set by [Run.SetResult] (nil if none).
func (r *Run) Result() json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.result
}

// Logger returns a logger whose records become the run's log lines (stream
// "log", with their level), sent to the server in batches and shown live in
// the console and by `pluto run logs -f`. Attributes are appended to the
// message as key=value.
func (r *Run) Logger() *slog.Logger {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.logger == nil {
		lv := r.logLevel
		if lv == nil {
			lv = slog.LevelInfo
		}
		r.logger = slog.New(&runLogHandler{r: r, level: lv})
	}
	return r.logger
}

// Output returns a writer whose lines become log lines of the run on the
// given stream (conventionally [StreamStdout] or [StreamStderr]). Anything
// may be written: the bytes are sent as written (less one CR before each
// newline), a line longer than 64 KiB is sent as several, and a partial
// last line is sent when the handler returns. The same writer is returned
// for the same stream; it may be written by one goroutine at a time.
func (r *Run) Output(stream string) io.Writer {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.outs {
		if w.stream == stream {
			return w
		}
	}
	w := &lineWriter{stream: stream}
	// LogLine.stream is a proto string: a name that is not UTF-8 would make
	// every LogBatch carrying it unencodable and break the stream.
	name := strings.ToValidUTF8(stream, "\uFFFD")
	w.out = func(line []byte, _ bool) {
		if !r.dropCapped() { // before the copy: a capped run's lines cost a count
			r.emit(name, "", bytes.Clone(line), time.Time{})
		}
	}
	r.outs = append(r.outs, w)
	return w
}

func (r *Run) emit(stream, level string, text []byte, t time.Time) {
	if r.sink == nil || r.dropCapped() {
		return
	}
	if t.IsZero() {
		t = time.Now()
	}
	r.sink.emitLine(r, stream, level, text, t)
}

// flushOutputs sends the partial last lines of the output writers.
func (r *Run) flushOutputs() {
	r.mu.Lock()
	outs := r.outs
	r.mu.Unlock()
	for _, w := range outs {
		w.flush()
	}
}

// lineWriter splits what is written into lines. A handler may write
// anything (binary data, invalid UTF-8, no newline at all), so nothing about
// the input is assumed: a line longer than maxLineBytes is sent as several
// pieces of at most maxLineBytes, cut before a UTF-8 sequence where there is
// one in its last bytes, and at most maxLineBytes+1 bytes are buffered
// however much arrives without a newline. The bytes are sent as written,
// except one CR before each LF, which is dropped (CRLF line endings).
type lineWriter struct {
	// out receives each line or piece; eol is true for the last piece of a
	// line that ended with a newline. line is only valid during the call.
	out    func(line []byte, eol bool)
	stream string
	size   int // the longest piece; 0: maxLineBytes (tests use smaller ones)
	mu     sync.Mutex
	buf    []byte // the start of the current line; at most size+1 bytes
}

func (w *lineWriter) limit() int {
	if w.size > 0 {
		return w.size
	}
	return maxLineBytes
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.fill(p)
			break
		}
		line := p[:i]
		p = p[i+1:]
		if len(w.buf) > 0 {
			w.fill(line)
			line = w.buf
		}
		w.pieces(trimCR(line), true)
		w.buf = w.buf[:0]
	}
	return n, nil
}

// fill adds p (no newline in it) to the current line, sending pieces as
// they fill. One byte more than a piece is kept back, so that a line of
// exactly size bytes followed by CR LF is still sent as one line.
func (w *lineWriter) fill(p []byte) {
	size := w.limit()
	for len(p) > 0 {
		k := min(len(p), size+2-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		for len(w.buf) > size+1 {
			cut := runeCut(w.buf, size)
			w.out(w.buf[:cut], false)
			w.buf = w.buf[:copy(w.buf, w.buf[cut:])]
		}
	}
}

// pieces sends line in pieces of at most size bytes; the last one carries
// eol.
func (w *lineWriter) pieces(line []byte, eol bool) {
	size := w.limit()
	for len(line) > size {
		cut := runeCut(line, size)
		w.out(line[:cut], false)
		line = line[cut:]
	}
	w.out(line, eol)
}

// flush sends the partial last line, as written.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.pieces(w.buf, false)
		w.buf = w.buf[:0]
	}
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

// runeCut returns where to cut b (len(b) > n > 0) so that the first piece
// has at most n bytes: n, moved back by up to three bytes so as not to split
// a UTF-8 sequence. Bytes that are no UTF-8 (no rune start near n) are cut
// at n. The result is always at least 1.
func runeCut(b []byte, n int) int {
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return n
}

// runLogHandler is the slog.Handler behind Run.Logger.
type runLogHandler struct {
	r      *Run
	level  slog.Leveler
	attrs  string // preformatted attributes from WithAttrs
	prefix string // group prefix for keys, "a.b."
}

func (h *runLogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *runLogHandler) Handle(_ context.Context, rec slog.Record) error {
	if h.r.dropCapped() { // before formatting
		return nil
	}
	var b strings.Builder
	b.WriteString(rec.Message)
	b.WriteString(h.attrs)
	rec.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.prefix, a)
		return true
	})
	h.r.emit(StreamLog, levelName(rec.Level), []byte(b.String()), rec.Time)
	return nil
}

func (h *runLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		appendAttr(&b, h.prefix, a)
	}
	h2 := *h
	h2.attrs = b.String()
	return &h2
}

func (h *runLogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

func appendAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			appendAttr(b, p, g)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(prefix)
	b.WriteString(a.Key)
	b.WriteByte('=')
	var s string
	if a.Value.Kind() == slog.KindTime {
		s = a.Value.Time().Format(time.RFC3339Nano)
	} else {
		s = a.Value.String()
	}
	if needsQuote(s) {
		s = strconv.Quote(s)
	}
	b.WriteString(s)
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for _, c := range s {
		if c <= ' ' || c == '=' || c == '"' || c == 0x7f || !strconv.IsPrint(c) {
			return true
		}
	}
	return false
}

// levelName is the level as sent in LogLine.level: "debug", "info", "warn",
// "error" (with an offset such as "info+2" for levels in between).
func levelName(l slog.Level) string {
	switch l {
	case slog.LevelDebug:
		return "debug"
	case slog.LevelInfo:
		return "info"
	case slog.LevelWarn:
		return "warn"
	case slog.LevelError:
		return "error"
	}
	return strings.ToLower(l.String())
}

// TestRun describes a Run built by [NewTestRun], to unit-test handlers and
// middleware without a server. Zero fields get defaults: ID "run-test",
// Attempt 1, Group "default".
type TestRun struct {
	ID          string
	Attempt     int
	MaxAttempts int
	Type        string
	Group       string
	Job         string
	LogicalTime time.Time
	CreatedAt   time.Time
	Payload     json.RawMessage
	Deadline    time.Time
	// Log receives the run's log and output lines, one per line, formatted
	// "<stream> <level>: <text>" (or "<stream>: <text>" for output lines).
	// Nil discards them.
	Log io.Writer
	// LogLevel is the minimum level of Run.Logger (default Info).
	LogLevel slog.Leveler
	// Merge makes the run a merge run (IsMerge); its Payload then holds
	// {"parent": ..., "results": [...]}.
	Merge bool
	// ParentID, Shard and ShardCount make the run a fan-out's child
	// (Run.ParentID, Run.Shard).
	ParentID          string
	Shard, ShardCount int
	// Map, if set, is called by Run.Map, once the parts are validated,
	// with the parts as encoded and the options; what it returns is what
	// Map returns (its error as it is). Nil: Map makes nothing and returns
	// MapResult{Children: len(parts)}, as a server making them would.
	Map func(parts []json.RawMessage, opt MapOptions) (MapResult, error)
}

// NewTestRun returns a Run as a worker would hand it to a handler, for tests.
func NewTestRun(t TestRun) *Run {
	if t.ID == "" {
		t.ID = "run-test"
	}
	if t.Attempt == 0 {
		t.Attempt = 1
	}
	if t.Group == "" {
		t.Group = "default"
	}
	r := &Run{
		id:          t.ID,
		attempt:     int32(t.Attempt),
		maxAttempts: int32(t.MaxAttempts),
		typ:         t.Type,
		group:       t.Group,
		job:         t.Job,
		logical:     t.LogicalTime,
		created:     t.CreatedAt,
		payload:     t.Payload,
		deadline:    t.Deadline,
		logLevel:    t.LogLevel,
		merge:       t.Merge,
		parent:      t.ParentID,
		shard:       t.Shard,
		shardCount:  t.ShardCount,
	}
	if t.Log != nil || t.Map != nil {
		r.sink = &testSink{w: t.Log, mapFn: t.Map}
	}
	return r
}

// FlushOutput sends the partial last lines written to [Run.Output], as the
// worker does when a handler returns. Only tests of handlers need it.
func (r *Run) FlushOutput() { r.flushOutputs() }

// testSink is the sink of a test run: TestRun.Log (nil: lines are
// dropped) and TestRun.Map (mapreduce.go).
type testSink struct {
	mu    sync.Mutex
	w     io.Writer
	mapFn func(parts []json.RawMessage, opt MapOptions) (MapResult, error)
}

func (s *testSink) emitLine(_ *Run, stream, level string, text []byte, _ time.Time) {
	if s.w == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if level == "" {
		fmt.Fprintf(s.w, "%s: %s\n", stream, text)
	} else {
		fmt.Fprintf(s.w, "%s %s: %s\n", stream, level, text)
	}
}
