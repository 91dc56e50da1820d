package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pluto-sched/pluto/internal/engine"
	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
	"github.com/pluto-sched/pluto/internal/store"
)

// workerService adapts worker streams to engine sessions: it converts
// messages and owns the stream's single sender. Scheduling decisions all
// live in the engine.
type workerService struct {
	plutov1.UnimplementedWorkerServiceServer
	eng    *engine.Engine
	log    *slog.Logger
	msgMax int // the server's own gRPC send limit

	mu    sync.Mutex
	conns map[*streamConn]string // the name of the token each stream authenticated with

	// linesIn counts the log lines received from workers (one add per
	// batch), so that tests can tell lines the workers did not send.
	linesIn atomic.Int64
}

func newWorkerService(eng *engine.Engine, log *slog.Logger, msgMax int) *workerService {
	return &workerService{eng: eng, log: log, msgMax: msgMax, conns: make(map[*streamConn]string)}
}

// closeToken ends the streams that authenticated with token name ("":
// any token): it was revoked. The workers reconnect and are refused.
func (w *workerService) closeToken(name string) {
	w.mu.Lock()
	var conns []*streamConn
	for c, tok := range w.conns {
		if name == "" || tok == name {
			conns = append(conns, c)
		}
	}
	w.mu.Unlock()
	for _, c := range conns {
		c.Close("token revoked")
	}
}

// closeAll ends every worker stream (server stopping) once the messages
// queued on it are sent; workers reconnect.
func (w *workerService) closeAll() {
	w.mu.Lock()
	conns := make([]*streamConn, 0, len(w.conns))
	for c := range w.conns {
		conns = append(conns, c)
	}
	w.mu.Unlock()
	for _, c := range conns {
		c.closeAfterFlush("server stopping")
	}
}

func (w *workerService) Connect(stream plutov1.WorkerService_ConnectServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHello()
	if h == nil {
		return status.Error(codes.InvalidArgument, "the first message must be a hello")
	}
	if err := checkGroup(stream.Context(), h.GetGroup()); err != nil {
		return grpcAuthError(err)
	}
	hello := helloFromProto(h, w.msgMax)
	c := newStreamConn(stream, hello.MaxMessage)
	sess, stale, err := w.eng.Connect(stream.Context(), hello, c)
	if err != nil {
		var fe *engine.FieldError
		switch {
		case errors.As(err, &fe):
			return status.Error(codes.InvalidArgument, fe.Error())
		case errors.Is(err, engine.ErrDuplicateWorker):
			return status.Errorf(codes.AlreadyExists, "worker id %q is connected from another process (instance); this one is refused while that one is alive", h.WorkerId)
		case errors.Is(err, engine.ErrStopped):
			return status.Error(codes.Unavailable, "server stopping")
		}
		return status.Error(codes.Internal, err.Error())
	}
	welcome := &plutov1.Welcome{ServerId: w.eng.ServerID(), HeartbeatIntervalMs: sess.HeartbeatInterval().Milliseconds()}
	for _, r := range stale {
		welcome.Stale = append(welcome.Stale, &plutov1.RunRef{RunId: r.RunID, Attempt: int32(r.Attempt)})
	}
	if err := stream.Send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Welcome{Welcome: welcome}}); err != nil {
		sess.Close(err)
		return err
	}
	p := principal(stream.Context())
	w.mu.Lock()
	w.conns[c] = p.Name
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.conns, c)
		w.mu.Unlock()
	}()
	if !p.ExpiresAt.IsZero() {
		// The stream outlives no token: it ends when the token expires.
		t := time.AfterFunc(time.Until(p.ExpiresAt), func() { c.Close("token expired") })
		defer t.Stop()
	}
	w.log.Debug("worker connected", "worker", h.WorkerId, "group", h.Group, "capacity", h.Capacity)

	senderDone := make(chan struct{})
	go func() { defer close(senderDone); c.sendLoop() }()
	recvErr := make(chan error, 1)
	go func() { recvErr <- w.recvLoop(stream, sess) }()

	var end error
	select {
	case end = <-recvErr:
	case <-c.done:
		end = errors.New(c.reason())
	}
	if errors.Is(end, io.EOF) {
		sess.Close(engine.ErrWorkerLeft) // the worker closed its side: it drained and left
	} else {
		sess.Close(end)
	}
	c.Close("stream ended")
	select {
	case <-senderDone:
	case <-time.After(5 * time.Second): // a peer that stopped reading; returning cancels the stream
	}
	if errors.Is(end, io.EOF) {
		return nil
	}
	if c.reason() != "" && c.reason() != "stream ended" {
		return status.Error(codes.Aborted, c.reason())
	}
	return nil
}

func (w *workerService) recvLoop(stream plutov1.WorkerService_ConnectServer, sess *engine.Session) error {
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		switch msg := m.Msg.(type) {
		case *plutov1.WorkerMessage_Heartbeat:
			hb := msg.Heartbeat
			sess.Heartbeat(engine.Load{Running: int(hb.Running), Capacity: int(hb.Capacity), CPU: hb.Cpu, MemBytes: hb.MemBytes})
		case *plutov1.WorkerMessage_Credits:
			sess.SetWindow(int(msg.Credits.Window))
		case *plutov1.WorkerMessage_Acks:
			acks := make([]engine.Ack, len(msg.Acks.Acks))
			for i, a := range msg.Acks.Acks {
				acks[i] = engine.Ack{RunID: a.RunId, Attempt: int(a.Attempt), StartedAt: fromMillis(a.StartedUnixMs)}
			}
			sess.Ack(acks)
		case *plutov1.WorkerMessage_Results:
			rs := make([]engine.Result, len(msg.Results.Results))
			for i, r := range msg.Results.Results {
				rs[i] = engine.Result{
					RunID: r.RunId, Attempt: int(r.Attempt), Outcome: outcomeFromProto(r.Outcome),
					Result: r.Result, Error: storedText(r.Error, maxErrorBytes), NoRetry: r.NoRetry,
					PokeAfter: time.Duration(r.PokeAfterMs) * time.Millisecond,
					StartedAt: fromMillis(r.StartedUnixMs), FinishedAt: fromMillis(r.FinishedUnixMs),
					Mapped: r.Mapped,
				}
			}
			sess.Results(rs)
		case *plutov1.WorkerMessage_Logs:
			w.logBatch(sess, msg.Logs)
		case *plutov1.WorkerMessage_Map:
			m := msg.Map
			parts := make([]json.RawMessage, len(m.Parts))
			for i, p := range m.Parts {
				parts[i] = p
			}
			sess.Map(engine.MapRequest{RunID: m.RunId, Attempt: int(m.Attempt), Parts: parts,
				MinSuccess: m.MinSuccess, Merge: m.Merge})
		case *plutov1.WorkerMessage_CommandReply:
			rep := msg.CommandReply
			sess.CommandReply(rep.CommandId, rep.Reply, rep.Error)
		case *plutov1.WorkerMessage_Hello:
			return status.Error(codes.InvalidArgument, "hello sent twice")
		}
	}
}

// logBatch hands a LogBatch to the session: its lines, then the counts of
// lines the worker dropped unsent (which the session fences and bounds).
func (w *workerService) logBatch(sess *engine.Session, b *plutov1.LogBatch) {
	w.linesIn.Add(int64(len(b.Lines)))
	if len(b.Lines) > 0 {
		lines := make([]store.LogLine, len(b.Lines))
		for i, l := range b.Lines {
			lines[i] = store.LogLine{RunID: l.RunId, Attempt: int(l.Attempt), Time: fromMillis(l.UnixMs), Stream: l.Stream, Level: l.Level, Text: logText(l.Text)}
		}
		sess.Logs(lines)
	}
	if len(b.Dropped) > 0 {
		drops := make([]engine.LogDrop, len(b.Dropped))
		for i, d := range b.Dropped {
			drops[i] = engine.LogDrop{RunID: d.RunId, Attempt: int(d.Attempt), Lines: d.Lines}
		}
		sess.LogDrops(drops)
	}
}

// dispatchSlack is kept free in every dispatch message for gRPC's and
// protobuf's own framing.
const dispatchSlack = 1 << 10

// helloFromProto converts a hello; the message limit is the smaller of
// what the worker takes and what this server sends.
func helloFromProto(h *plutov1.Hello, sendMax int) engine.Hello {
	held := make([]engine.RunRef, len(h.Held))
	for i, r := range h.Held {
		held[i] = engine.RunRef{RunID: r.RunId, Attempt: int(r.Attempt)}
		if ms := r.GetStartedUnixMs(); ms > 0 {
			held[i].StartedAt = time.UnixMilli(ms)
		}
	}
	limit := int(h.MaxMessageBytes)
	if limit <= 0 {
		limit = engine.DefaultMaxMessage
	}
	limit = max(min(limit, sendMax)-dispatchSlack, dispatchSlack)
	return engine.Hello{
		WorkerID: h.WorkerId, Group: h.Group, Capacity: int(h.Capacity), Window: int(h.Window), Draining: h.Draining,
		Types: h.HandlerTypes, Version: h.Version, Hostname: h.Hostname, Held: held, Commands: h.Commands,
		Instance: h.Instance, MaxMessage: limit,
	}
}

// Handler output arrives as bytes (a handler may print anything). What is
// stored is text: invalid UTF-8 and NUL bytes (which PostgreSQL's text
// refuses, failing the whole batch) become U+FFFD, and a line longer than
// the cap is cut, so no output can fail a commit or grow a row unbounded.
const (
	maxLogLineBytes = 64 << 10
	maxErrorBytes   = 64 << 10
)

func storedText(b []byte, limit int) string {
	if len(b) > limit {
		b = b[:limit]
	}
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 {
		return string(b)
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// logText is a log line as stored: a line over maxLogLineBytes (the
// worker SDK splits long lines, but any client may send one) is cut and
// says so, rather than failing or bloating the write.
func logText(b []byte) string {
	if len(b) <= maxLogLineBytes {
		return storedText(b, maxLogLineBytes)
	}
	return storedText(b, maxLogLineBytes) + fmt.Sprintf(" … [line cut: %d of %d bytes kept]", maxLogLineBytes, len(b))
}

func outcomeFromProto(o plutov1.Outcome) engine.Outcome {
	switch o {
	case plutov1.Outcome_OUTCOME_SUCCEEDED:
		return engine.OutcomeSucceeded
	case plutov1.Outcome_OUTCOME_CANCELLED:
		return engine.OutcomeCancelled
	case plutov1.Outcome_OUTCOME_TIMED_OUT:
		return engine.OutcomeTimedOut
	case plutov1.Outcome_OUTCOME_POKE:
		return engine.OutcomePoke
	default:
		return engine.OutcomeFailed
	}
}

// unixMillis is t in Unix ms, 0 for the zero time.
func unixMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// streamConn is the engine.Conn of one stream: the engine queues messages
// without blocking and one sender goroutine writes them in order, merging
// neighbouring dispatches and result acks into one message each.
type streamConn struct {
	stream plutov1.WorkerService_ConnectServer
	limit  int // the largest dispatch message the worker takes, in bytes

	mu           sync.Mutex
	lastDispatch int // bytes in the last queued message, if a dispatch
	queue        []*plutov1.ServerMessage
	spare        []*plutov1.ServerMessage
	closed       bool
	why          string
	wake         chan struct{}
	done         chan struct{}
	// closing: close once the queue is sent (closeAfterFlush).
	closing    bool
	closingWhy string
}

func newStreamConn(s plutov1.WorkerService_ConnectServer, limit int) *streamConn {
	return &streamConn{stream: s, limit: limit, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (c *streamConn) reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.why
}

// maxAcks is how many result acks one message carries at most: an ack
// takes at most ackBytes, and a message stays under the worker's limit.
func (c *streamConn) maxAcks() int { return max(1, c.limit/ackBytes) }

// ackBytes bounds one ResultAck in a message (a run ID of up to 200 bytes,
// the attempt, the flag and framing).
const ackBytes = 256

// enqueueDispatch queues a dispatch of size bytes, merged into the last
// queued message if that is a dispatch with room for it.
func (c *streamConn) enqueueDispatch(d *plutov1.Dispatch, size int) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if n := len(c.queue); n > 0 && c.lastDispatch+size <= c.limit {
		if last, ok := c.queue[n-1].Msg.(*plutov1.ServerMessage_Dispatch); ok {
			last.Dispatch.Tasks = append(last.Dispatch.Tasks, d.Tasks...)
			c.lastDispatch += size
			c.mu.Unlock()
			return
		}
	}
	c.queue = append(c.queue, &plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Dispatch{Dispatch: d}})
	c.lastDispatch = size
	c.mu.Unlock()
	c.signal()
}

func (c *streamConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *streamConn) enqueue(m *plutov1.ServerMessage) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	// Merge result acks into the last message when it is one too.
	if n := len(c.queue); n > 0 {
		switch last := c.queue[n-1].Msg.(type) {
		case *plutov1.ServerMessage_ResultAcks:
			if a, ok := m.Msg.(*plutov1.ServerMessage_ResultAcks); ok && len(last.ResultAcks.Acks)+len(a.ResultAcks.Acks) <= c.maxAcks() {
				last.ResultAcks.Acks = append(last.ResultAcks.Acks, a.ResultAcks.Acks...)
				c.mu.Unlock()
				return
			}
		}
	}
	c.queue = append(c.queue, m)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *streamConn) sendLoop() {
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		c.mu.Lock()
		batch := c.queue
		c.queue = c.spare[:0]
		c.mu.Unlock()
		for i, m := range batch {
			if err := c.stream.Send(m); err != nil {
				c.Close("send: " + err.Error())
				return
			}
			batch[i] = nil
		}
		c.mu.Lock()
		c.spare = batch[:0]
		finished, why := c.closing && len(c.queue) == 0, c.closingWhy
		c.mu.Unlock()
		if finished {
			c.Close(why)
			return
		}
	}
}

// closeAfterFlush closes the stream once every message queued so far has
// been sent (a peer that stopped reading holds it until the gRPC server is
// stopped hard).
func (c *streamConn) closeAfterFlush(reason string) {
	c.mu.Lock()
	if c.closed || c.closing {
		c.mu.Unlock()
		return
	}
	c.closing, c.closingWhy = true, reason
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Dispatch queues tasks in messages of at most the worker's limit (the
// engine fails a run whose task alone would not fit, so each does).
func (c *streamConn) Dispatch(tasks []engine.Task) {
	for len(tasks) > 0 {
		d, size, n := &plutov1.Dispatch{}, 0, 0
		for ; n < len(tasks); n++ {
			ts := tasks[n].Size()
			if n > 0 && size+ts > c.limit {
				break
			}
			t := &tasks[n]
			d.Tasks = append(d.Tasks, &plutov1.Task{
				RunId: t.RunID, Attempt: int32(t.Attempt), Type: t.Type, Payload: t.Payload,
				TimeoutMs: t.Timeout.Milliseconds(), Group: t.Group, Job: t.Job, MaxAttempts: int32(t.MaxAttempts),
				LogMaxLines: t.LogMaxLines, LogMaxBytes: t.LogMaxBytes,
				LogicalTimeUnixMs: unixMillis(t.LogicalTime), CreatedUnixMs: unixMillis(t.CreatedAt),
				ParentId: t.Parent, Shard: int32(t.Shard), ShardCount: int32(t.ShardCount), Merge: t.Merge,
			})
			size += ts
		}
		c.enqueueDispatch(d, size)
		tasks = tasks[n:]
	}
}

func (c *streamConn) Cancel(ref engine.RunRef, reason string) {
	c.enqueue(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Cancel{Cancel: &plutov1.CancelRun{RunId: ref.RunID, Attempt: int32(ref.Attempt), Reason: reason}}})
}

func (c *streamConn) ResultAcks(acks []engine.ResultAck) {
	ra := &plutov1.ResultAcks{Acks: make([]*plutov1.ResultAck, len(acks))}
	for i, a := range acks {
		ra.Acks[i] = &plutov1.ResultAck{RunId: a.RunID, Attempt: int32(a.Attempt), Accepted: a.Accepted}
	}
	c.enqueue(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_ResultAcks{ResultAcks: ra}})
}

func (c *streamConn) LogsCapped(refs []engine.RunRef) {
	lc := &plutov1.LogsCapped{Runs: make([]*plutov1.RunRef, len(refs))}
	for i, r := range refs {
		lc.Runs[i] = &plutov1.RunRef{RunId: r.RunID, Attempt: int32(r.Attempt)}
	}
	c.enqueue(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_LogsCapped{LogsCapped: lc}})
}

func (c *streamConn) MapAck(a engine.MapAck) {
	c.enqueue(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_MapAck{MapAck: &plutov1.MapAck{
		RunId: a.RunID, Attempt: int32(a.Attempt), Children: int32(a.Children), Existing: a.Existing, Error: a.Error,
	}}})
}

func (c *streamConn) Drain(resume bool) {
	c.enqueue(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Drain{Drain: &plutov1.Drain{Resume: resume}}})
}

func (c *streamConn) Shutdown(restart bool) {
	c.enqueue(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Shutdown{Shutdown: &plutov1.Shutdown{Restart: restart}}})
}

func (c *streamConn) Command(id, name string, args json.RawMessage, timeout time.Duration) {
	c.enqueue(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Command{Command: &plutov1.Command{
		CommandId: id, Name: name, Args: args, TimeoutMs: timeout.Milliseconds(),
	}}})
}

func (c *streamConn) Close(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed, c.why = true, reason
	close(c.done)
}
