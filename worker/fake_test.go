package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// waitTime bounds every wait for a condition in these tests.
const waitTime = 10 * time.Second

// fakeServer is an in-test WorkerService: a real grpc.Server on loopback
// whose streams are driven by the test through fakeConns.
type fakeServer struct {
	plutov1.UnimplementedWorkerServiceServer
	addr        string
	conns       chan *fakeConn
	heartbeatMs int64
	autoAck     atomic.Bool // answer every Results with ResultAcks
	// stale, if set, chooses the Welcome's stale list for the n-th stream
	// (n from 1).
	stale  func(n int, h *plutov1.Hello) []*plutov1.RunRef
	nconns atomic.Int32
	// refuse makes Connect fail before the Welcome (a server that is down).
	refuse atomic.Bool
	// refuseWith, if it holds an error, is what Connect fails with before
	// the Welcome; attempts counts the Hellos received.
	refuseWith atomic.Pointer[error]
	attempts   atomic.Int32
	// reject, if set, chooses the results autoAck rejects (accepted false).
	reject func(r *plutov1.Result) bool
}

func startFake(t *testing.T, opts ...grpc.ServerOption) *fakeServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{addr: lis.Addr().String(), conns: make(chan *fakeConn, 16), heartbeatMs: 60_000}
	f.autoAck.Store(true)
	s := grpc.NewServer(opts...)
	plutov1.RegisterWorkerServiceServer(s, f)
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(lis) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return f
}

func (f *fakeServer) Connect(stream plutov1.WorkerService_ConnectServer) error {
	m, err := stream.Recv()
	if err != nil {
		return err
	}
	h := m.GetHello()
	if h == nil {
		return errors.New("first message is not a Hello")
	}
	f.attempts.Add(1)
	if f.refuse.Load() {
		return errors.New("fake: refusing connections")
	}
	if err := f.refuseWith.Load(); err != nil {
		return *err
	}
	n := int(f.nconns.Add(1))
	c := &fakeConn{
		n:       n,
		hello:   h,
		out:     make(chan *plutov1.ServerMessage, 1024),
		kill:    make(chan error, 1),
		changed: make(chan struct{}),
	}
	wel := &plutov1.Welcome{ServerId: "fake", HeartbeatIntervalMs: f.heartbeatMs}
	if f.stale != nil {
		wel.Stale = f.stale(n, h)
	}
	if err := stream.Send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Welcome{Welcome: wel}}); err != nil {
		return err
	}
	f.conns <- c
	ctx := stream.Context()
	go func() {
		defer c.add(nil)
		for {
			m, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					// The worker closed its side (it left): end the
					// stream, as the real server does.
					select {
					case c.kill <- nil:
					default:
					}
				}
				return
			}
			c.add(m)
			if rs := m.GetResults(); rs != nil && f.autoAck.Load() {
				acks := &plutov1.ResultAcks{}
				for _, r := range rs.GetResults() {
					acks.Acks = append(acks.Acks, &plutov1.ResultAck{RunId: r.GetRunId(), Attempt: r.GetAttempt(), Accepted: f.reject == nil || !f.reject(r)})
				}
				select {
				case c.out <- &plutov1.ServerMessage{Msg: &plutov1.ServerMessage_ResultAcks{ResultAcks: acks}}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	for {
		select {
		case m := <-c.out:
			if err := stream.Send(m); err != nil {
				return err
			}
		case err := <-c.kill:
			return err
		case <-ctx.Done():
			return nil
		}
	}
}

// next returns the next stream a worker opened.
func (f *fakeServer) next(t *testing.T) *fakeConn {
	t.Helper()
	select {
	case c := <-f.conns:
		return c
	case <-time.After(waitTime):
		t.Fatal("timed out waiting for a worker to connect")
		return nil
	}
}

// fakeConn is one worker stream as the server sees it.
type fakeConn struct {
	n     int
	hello *plutov1.Hello
	out   chan *plutov1.ServerMessage
	kill  chan error

	mu      sync.Mutex
	msgs    []*plutov1.WorkerMessage
	closed  bool
	changed chan struct{}
}

func (c *fakeConn) add(m *plutov1.WorkerMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m == nil {
		c.closed = true
	} else {
		c.msgs = append(c.msgs, m)
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *fakeConn) send(m *plutov1.ServerMessage) { c.out <- m }

func (c *fakeConn) dispatch(tasks ...*plutov1.Task) {
	c.send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Dispatch{Dispatch: &plutov1.Dispatch{Tasks: tasks}}})
}

func (c *fakeConn) cancel(id string, attempt int32) {
	c.send(&plutov1.ServerMessage{Msg: &plutov1.ServerMessage_Cancel{Cancel: &plutov1.CancelRun{RunId: id, Attempt: attempt}}})
}

// close ends the stream with an error, as a failing server would.
func (c *fakeConn) close() { c.kill <- errors.New("fake: stream closed by test") }

// snapshot returns the messages received so far.
func (c *fakeConn) snapshot() []*plutov1.WorkerMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*plutov1.WorkerMessage(nil), c.msgs...)
}

// waitFor blocks until pred holds for the messages received so far.
func (c *fakeConn) waitFor(t *testing.T, what string, pred func(msgs []*plutov1.WorkerMessage) bool) []*plutov1.WorkerMessage {
	t.Helper()
	timeout := time.NewTimer(waitTime)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		msgs := c.msgs
		ok := pred(msgs)
		ch := c.changed
		c.mu.Unlock()
		if ok {
			return msgs
		}
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("stream %d: timed out waiting for %s; got %d messages", c.n, what, len(msgs))
		}
	}
}

func (c *fakeConn) waitResults(t *testing.T, n int) map[string]*plutov1.Result {
	t.Helper()
	msgs := c.waitFor(t, "results", func(msgs []*plutov1.WorkerMessage) bool { return len(results(msgs)) >= n })
	byID := make(map[string]*plutov1.Result)
	for _, r := range results(msgs) {
		byID[r.GetRunId()] = r
	}
	return byID
}

func (c *fakeConn) waitResult(t *testing.T, id string) *plutov1.Result {
	t.Helper()
	var res *plutov1.Result
	c.waitFor(t, "result of "+id, func(msgs []*plutov1.WorkerMessage) bool {
		for _, r := range results(msgs) {
			if r.GetRunId() == id {
				res = r
				return true
			}
		}
		return false
	})
	return res
}

// waitAttempt waits for the result of one attempt of run id.
func (c *fakeConn) waitAttempt(t *testing.T, id string, attempt int32) *plutov1.Result {
	t.Helper()
	var res *plutov1.Result
	c.waitFor(t, fmt.Sprintf("result of %s attempt %d", id, attempt), func(msgs []*plutov1.WorkerMessage) bool {
		for _, r := range results(msgs) {
			if r.GetRunId() == id && r.GetAttempt() == attempt {
				res = r
				return true
			}
		}
		return false
	})
	return res
}

func results(msgs []*plutov1.WorkerMessage) []*plutov1.Result {
	var out []*plutov1.Result
	for _, m := range msgs {
		out = append(out, m.GetResults().GetResults()...)
	}
	return out
}

func acks(msgs []*plutov1.WorkerMessage) []*plutov1.Ack {
	var out []*plutov1.Ack
	for _, m := range msgs {
		out = append(out, m.GetAcks().GetAcks()...)
	}
	return out
}

func credits(msgs []*plutov1.WorkerMessage) []int32 {
	var out []int32
	for _, m := range msgs {
		if c := m.GetCredits(); c != nil {
			out = append(out, c.GetWindow())
		}
	}
	return out
}

func task(id, typ string) *plutov1.Task {
	return &plutov1.Task{RunId: id, Attempt: 1, Type: typ, Group: "default"}
}

// runWorker starts w.Run in the background; stop cancels its context and
// returns Run's error. Cleanup stops it too.
type running struct {
	w      *Worker
	cancel context.CancelFunc
	errc   chan error
	once   sync.Once
	err    error
}

func startWorker(t *testing.T, opts Options) *running {
	t.Helper()
	return startWorkerWith(t, opts, nil)
}

// startWorkerWith is startWorker with tweak applied to the Worker before
// Run (to shorten its internal timings).
func startWorkerWith(t *testing.T, opts Options, tweak func(*Worker)) *running {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discardLogger
	}
	w, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	w.drainGrace = 2 * time.Second
	if tweak != nil {
		tweak(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- w.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

func (r *running) wait(t *testing.T) error {
	t.Helper()
	r.once.Do(func() {
		select {
		case r.err = <-r.errc:
		case <-time.After(waitTime + 30*time.Second):
			t.Fatal("Run did not return")
		}
	})
	return r.err
}

// gate is a handler that blocks until released (or its context ends) and
// reports when it starts.
type gate struct {
	started chan string
	release chan struct{}
	causes  chan error
}

func newGate() *gate {
	return &gate{started: make(chan string, 1024), release: make(chan struct{}), causes: make(chan error, 1024)}
}

func (g *gate) ProcessRun(ctx context.Context, r *Run) error {
	g.started <- r.ID()
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		g.causes <- context.Cause(ctx)
		return ctx.Err()
	}
}

func (g *gate) waitStarted(t *testing.T) string {
	t.Helper()
	select {
	case id := <-g.started:
		return id
	case <-time.After(waitTime):
		t.Fatal("timed out waiting for a handler to start")
		return ""
	}
}

func (g *gate) waitCause(t *testing.T) error {
	t.Helper()
	select {
	case err := <-g.causes:
		return err
	case <-time.After(waitTime):
		t.Fatal("timed out waiting for a handler's context to end")
		return nil
	}
}
