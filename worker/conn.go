package worker

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// Stream session parameters.
const (
	minBackoff       = 100 * time.Millisecond
	maxBackoff       = 5 * time.Second
	welcomeTimeout   = 10 * time.Second
	defaultHeartbeat = 5 * time.Second

	// maxPendingLogs and maxPendingLogBytes bound the log lines waiting to
	// be sent (while the server is away, or output outruns the stream);
	// further lines are dropped and counted. With the batch the sender is
	// sending, log lines hold at most twice this.
	maxPendingLogs     = 50000
	maxPendingLogBytes = 16 << 20
	// A Results or LogBatch message is cut at about this many bytes or
	// items, well under gRPC's default 4 MiB message limit.
	maxBatchBytes = 1 << 20
	maxBatchItems = 4096
	// maxRecvBytes is the largest message (a Dispatch) the worker accepts;
	// the Hello announces it.
	maxRecvBytes = 64 << 20

	// gRPC's minimum ping interval is 10 s; the server permits pings every
	// 5 s (internal/server).
	keepaliveTime    = 10 * time.Second
	keepaliveTimeout = 5 * time.Second
)

// connPool keeps one grpc.ClientConn per server address for the life of Run.
type connPool struct {
	opts  []grpc.DialOption
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newConnPool(tlsCfg *tls.Config, extra []grpc.DialOption) *connPool {
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)),
		// gRPC's own reconnect back-off (1 s up to 120 s by default) would
		// otherwise dominate ours.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  minBackoff,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   maxBackoff,
			},
			MinConnectTimeout: 5 * time.Second,
		}),
		// A server behind a silent partition (packets dropped, nothing
		// closed) sends nothing while the worker keeps sending heartbeats,
		// and TCP alone would take ~15 minutes to notice. After keepaliveTime
		// without hearing from it the worker pings; no answer within
		// keepaliveTimeout closes the connection and the worker fails over,
		// in about the time the server takes to declare it dead.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
	}
	return &connPool{opts: append(opts, extra...), conns: make(map[string]*grpc.ClientConn)}
}

func (p *connPool) client(addr string) (plutov1.WorkerServiceClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cc, ok := p.conns[addr]
	if !ok {
		var err error
		if cc, err = grpc.NewClient(addr, p.opts...); err != nil {
			return nil, err
		}
		p.conns[addr] = cc
	}
	return plutov1.NewWorkerServiceClient(cc), nil
}

func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, cc := range p.conns {
		cc.Close()
		delete(p.conns, addr)
	}
}

// connectLoop keeps one session up until ctx is done, failing over through
// the servers in order with jittered exponential back-off.
func (w *Worker) connectLoop(ctx context.Context, pool *connPool) {
	delay := minBackoff
	for i := 0; ; i = (i + 1) % len(w.opts.Servers) {
		addr := w.opts.Servers[i]
		welcomed, err := w.session(ctx, pool, addr)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		leaving := w.leaving
		w.mu.Unlock()
		if leaving {
			close(w.left) // the stream ended after the worker closed its side
			<-ctx.Done()
			return
		}
		if welcomed {
			delay = minBackoff
		}
		d := delay/2 + rand.N(delay/2+1)
		delay = min(2*delay, maxBackoff)
		if authRefused(err) {
			d, delay = authRetryDelay(), maxBackoff
		}
		w.logSessionEnd(addr, welcomed, err, d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// logSessionEnd logs why a session ended, once per attempt.
func (w *Worker) logSessionEnd(addr string, welcomed bool, err error, retryIn time.Duration) {
	switch {
	case authRefused(err):
		w.logAuthRefused(addr, err, retryIn)
	case welcomed:
		w.log.Warn("disconnected from server", "server", addr, "err", err)
	case status.Code(err) == codes.AlreadyExists:
		// Two processes with one ID: the server keeps the first. This one
		// retries with the usual back-off and takes over once the other is
		// gone, but the operator must hear about it: it is a configuration
		// error (or the previous process is still alive).
		w.log.Error(fmt.Sprintf("worker ID %q is in use by another process connected to the server; retrying until it goes away (give each worker process its own ID)", w.opts.ID),
			"server", addr, "retry_in", retryIn.Round(time.Millisecond), "err", err)
	default:
		w.log.Warn("cannot connect to server", "server", addr, "err", err)
	}
}

// session runs one stream: Hello, Welcome, then a send loop, a heartbeat
// loop and the receive loop until the stream fails or ctx ends. welcomed
// reports whether the server accepted the worker.
func (w *Worker) session(ctx context.Context, pool *connPool, addr string) (welcomed bool, err error) {
	client, err := pool.client(addr)
	if err != nil {
		return false, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Connect(sctx)
	if err != nil {
		return false, err
	}
	if err := stream.Send(&plutov1.WorkerMessage{Msg: &plutov1.WorkerMessage_Hello{Hello: w.hello()}}); err != nil {
		if errors.Is(err, io.EOF) {
			// The server ended the stream (e.g. refused the token before
			// reading anything): Recv returns its status.
			_, err = stream.Recv()
		}
		return false, err
	}
	timer := time.AfterFunc(welcomeTimeout, cancel)
	msg, err := stream.Recv()
	timer.Stop()
	if err != nil {
		return false, err
	}
	wel := msg.GetWelcome()
	if wel == nil {
		return false, fmt.Errorf("worker: server sent %T before Welcome", msg.GetMsg())
	}
	w.welcomed(wel, addr)
	defer w.disconnected()
	w.log.Info("connected", "server", addr, "server_id", wel.GetServerId(), "stale", len(wel.GetStale()))

	interval := time.Duration(wel.GetHeartbeatIntervalMs()) * time.Millisecond
	if interval <= 0 {
		interval = defaultHeartbeat
	}
	var wg sync.WaitGroup
	var sendErr error
	wg.Go(func() {
		if sendErr = w.sendLoop(sctx, stream); sendErr != nil {
			cancel()
		}
	})
	wg.Go(func() { w.heartbeatLoop(sctx, interval) })
	err = w.recvLoop(stream)
	cancel()
	wg.Wait()
	if sendErr != nil {
		err = sendErr
	}
	return true, err
}

// hello builds the Hello for a new stream.
func (w *Worker) hello() *plutov1.Hello {
	w.mu.Lock()
	held := make([]*plutov1.RunRef, 0, len(w.held))
	for k, r := range w.held {
		ref := &plutov1.RunRef{RunId: k.id, Attempt: k.attempt}
		if !r.started.IsZero() {
			// The Ack may have been lost with the old stream: the start
			// time lets the server time the run out from its real start.
			ref.StartedUnixMs = r.started.UnixMilli()
		}
		held = append(held, ref)
	}
	window := w.effectiveWindow()
	draining := w.draining || w.paused
	w.mu.Unlock()
	slices.SortFunc(held, func(a, b *plutov1.RunRef) int {
		if c := strings.Compare(a.RunId, b.RunId); c != 0 {
			return c
		}
		return int(a.Attempt - b.Attempt)
	})
	return &plutov1.Hello{
		WorkerId:     w.opts.ID,
		Group:        w.opts.Group,
		Capacity:     int32(w.opts.Capacity),
		HandlerTypes: w.types(),
		Version:      w.opts.Version,
		Hostname:     w.hostname,
		Window:       window,
		Held:         held,
		Commands:     w.commandNames(),
		// The server splits dispatches to fit what the worker accepts.
		MaxMessageBytes: maxRecvBytes,
		Instance:        w.instance,
		// Window 0 means "take nothing" only with draining set; without it
		// the server would read it as "no window given".
		Draining: draining,
	}
}

// welcomed applies the Welcome: stale held runs are cancelled and
// forgotten, and the outbox is rebuilt for the new stream (acks of running
// runs, every unacknowledged result in finish order).
func (w *Worker) welcomed(wel *plutov1.Welcome, addr string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ref := range wel.GetStale() {
		key := runKey{ref.GetRunId(), ref.GetAttempt()}
		r := w.held[key]
		if r == nil {
			continue
		}
		delete(w.held, key)
		r.stale = true
		switch r.state {
		case stateQueued:
			r.state = stateAbandoned
			w.queued--
		case stateRunning:
			r.cancel(ErrStaleRun)
		case stateFinished:
			w.forgetResultLocked(r) // rejected, in effect: final
		}
	}
	clear(w.outAcks)
	w.outAcks = w.outAcks[:0]
	var finished []*Run
	for _, r := range w.held {
		switch r.state {
		case stateRunning:
			w.outAcks = append(w.outAcks, r)
		case stateFinished:
			finished = append(finished, r)
		}
	}
	slices.SortFunc(finished, func(a, b *Run) int { return int(a.seq - b.seq) })
	w.outResults = make([]*plutov1.Result, 0, len(finished))
	for _, r := range finished {
		w.outResults = append(w.outResults, r.report)
	}
	w.outHeartbeat = nil
	w.requeueMapsLocked() // a Map or its answer may have been lost with the old stream
	if w.effectiveWindow() == 0 {
		w.outCredits = true
	}
	w.connected, w.server = true, addr
	w.notifyChangedLocked()
	w.signal(w.wake)
}

func (w *Worker) disconnected() {
	w.mu.Lock()
	w.connected, w.server = false, ""
	w.mu.Unlock()
	if w.store != nil {
		w.signal(w.persistWake) // store what waits for an ack that will not come
	}
}

// sendLoop is the only goroutine that sends on the stream after the Hello.
// It blocks until something is queued, then sends everything queued since
// its last send in as few messages as possible: while one Send is in flight
// (or blocked by flow control), the next batch accumulates.
func (w *Worker) sendLoop(ctx context.Context, stream grpc.BidiStreamingClient[plutov1.WorkerMessage, plutov1.ServerMessage]) error {
	var msgs []*plutov1.WorkerMessage
	for {
		msgs = w.take(msgs[:0])
		if len(msgs) == 0 {
			w.mu.Lock()
			leaving := w.leaving
			w.mu.Unlock()
			if leaving {
				// Everything is sent: end our side; the server ends its
				// side and the receive loop sees the end of the stream.
				return stream.CloseSend()
			}
			select {
			case <-w.wake:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		for _, m := range msgs {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
		clear(msgs)
	}
}

// take empties the outbox into messages: Credits, one Acks, LogBatches
// (lines, then counts of lines dropped unsent), Maps, Results,
// CommandReplies, Heartbeat — in that order, so that a run's log lines and
// its count of dropped lines arrive before its result, and its start before
// its Map.
func (w *Worker) take(msgs []*plutov1.WorkerMessage) []*plutov1.WorkerMessage {
	w.mu.Lock()
	if w.outCredits {
		w.outCredits = false
		msgs = append(msgs, &plutov1.WorkerMessage{Msg: &plutov1.WorkerMessage_Credits{
			Credits: &plutov1.Credits{Window: w.effectiveWindow()},
		}})
	}
	if len(w.outAcks) > 0 {
		var acks []*plutov1.Ack
		for _, r := range w.outAcks {
			// A queued result implies the start: its ack is dropped.
			if r.resultQueued || r.state != stateRunning {
				continue
			}
			if acks == nil {
				acks = make([]*plutov1.Ack, 0, len(w.outAcks))
			}
			acks = append(acks, &plutov1.Ack{RunId: r.id, Attempt: r.attempt, StartedUnixMs: r.started.UnixMilli()})
		}
		clear(w.outAcks)
		w.outAcks = w.outAcks[:0]
		if len(acks) > 0 {
			msgs = append(msgs, &plutov1.WorkerMessage{Msg: &plutov1.WorkerMessage_Acks{Acks: &plutov1.Acks{Acks: acks}}})
		}
	}
	logs, results, replies, hb := w.outLogs, w.outResults, w.outReplies, w.outHeartbeat
	w.outLogs, w.outResults, w.outReplies, w.outHeartbeat = nil, nil, nil, nil
	maps := w.outMaps
	w.outMaps = nil
	w.outLogBytes = 0
	dropped, droppedRuns := w.droppedLogs, w.dropped
	w.droppedLogs, w.dropped = 0, nil
	capDrops := w.logDropsLocked()
	w.mu.Unlock()

	if dropped > 0 {
		w.log.Warn("run log lines dropped: too many waiting to be sent", "lines", dropped, "runs", len(droppedRuns))
		logs = append(logs, droppedMarkers(droppedRuns)...)
	}
	for len(logs) > 0 {
		n, size := 0, 0
		for n < len(logs) && n < maxBatchItems && size < maxBatchBytes {
			size += len(logs[n].Text) + len(logs[n].RunId) + 32
			n++
		}
		msgs = append(msgs, &plutov1.WorkerMessage{Msg: &plutov1.WorkerMessage_Logs{Logs: &plutov1.LogBatch{Lines: logs[:n:n]}}})
		logs = logs[n:]
	}
	msgs = logDropBatches(msgs, capDrops)
	for _, m := range maps { // one each: a Map may hold MaxMapBytes
		msgs = append(msgs, &plutov1.WorkerMessage{Msg: &plutov1.WorkerMessage_Map{Map: m}})
	}
	for len(results) > 0 {
		n, size := 0, 0
		for n < len(results) && n < maxBatchItems && size < maxBatchBytes {
			size += len(results[n].Result) + len(results[n].Error) + len(results[n].RunId) + 48
			n++
		}
		msgs = append(msgs, &plutov1.WorkerMessage{Msg: &plutov1.WorkerMessage_Results{Results: &plutov1.Results{Results: results[:n:n]}}})
		results = results[n:]
	}
	for _, rep := range replies {
		msgs = append(msgs, &plutov1.WorkerMessage{Msg: &plutov1.WorkerMessage_CommandReply{CommandReply: rep}})
	}
	if hb != nil {
		msgs = append(msgs, &plutov1.WorkerMessage{Msg: &plutov1.WorkerMessage_Heartbeat{Heartbeat: hb}})
	}
	return msgs
}

// recvLoop handles what the server sends. It never blocks on a handler:
// dispatched runs go to the local queue, commands run in their own
// goroutine.
func (w *Worker) recvLoop(stream grpc.BidiStreamingClient[plutov1.WorkerMessage, plutov1.ServerMessage]) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		switch m := msg.GetMsg().(type) {
		case *plutov1.ServerMessage_Dispatch:
			w.mu.Lock()
			for _, t := range m.Dispatch.GetTasks() {
				w.enqueueLocked(t)
			}
			w.mu.Unlock()
		case *plutov1.ServerMessage_Cancel:
			w.mu.Lock()
			w.cancelLocked(m.Cancel)
			w.mu.Unlock()
		case *plutov1.ServerMessage_ResultAcks:
			w.mu.Lock()
			for _, a := range m.ResultAcks.GetAcks() {
				key := runKey{a.GetRunId(), a.GetAttempt()}
				if r := w.held[key]; r != nil && r.state == stateFinished {
					delete(w.held, key)
					w.forgetResultLocked(r) // accepted or rejected: final either way
				}
			}
			w.notifyChangedLocked()
			w.mu.Unlock()
		case *plutov1.ServerMessage_Drain:
			w.mu.Lock()
			w.paused = !m.Drain.GetResume()
			w.outCredits = true
			w.mu.Unlock()
			w.signal(w.wake)
			w.log.Info("drain requested by server", "resume", m.Drain.GetResume())
		case *plutov1.ServerMessage_Shutdown:
			w.requestShutdown(m.Shutdown.GetRestart())
		case *plutov1.ServerMessage_Command:
			w.command(m.Command)
		case *plutov1.ServerMessage_LogsCapped:
			w.mu.Lock()
			w.logsCappedLocked(m.LogsCapped.GetRuns())
			w.mu.Unlock()
		case *plutov1.ServerMessage_MapAck:
			w.mu.Lock()
			w.mapAckLocked(m.MapAck)
			w.mu.Unlock()
		case *plutov1.ServerMessage_Welcome:
			w.log.Warn("unexpected second Welcome ignored")
		}
	}
}

// command answers a remote command through the handler registered with
// HandleCommand.
func (w *Worker) command(c *plutov1.Command) {
	w.cmdMu.RLock()
	f := w.commands[c.GetName()]
	w.cmdMu.RUnlock()
	if f == nil {
		w.queueReply(&plutov1.CommandReply{CommandId: c.GetCommandId(), Error: "unknown command"})
		return
	}
	w.cmdWG.Go(func() {
		rep := &plutov1.CommandReply{CommandId: c.GetCommandId()}
		var args json.RawMessage
		if len(c.GetArgs()) > 0 {
			args = c.GetArgs()
		}
		ctx, cancel := w.runCtx, context.CancelFunc(func() {})
		if ms := c.GetTimeoutMs(); ms > 0 { // nobody waits for the answer after that
			ctx, cancel = context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
		}
		v, err := callCommand(ctx, f, args)
		cancel()
		if err == nil {
			rep.Reply, err = json.Marshal(v)
		}
		if err != nil {
			// A proto string: it must be UTF-8 for the reply to be sent.
			rep.Error = strings.ToValidUTF8(err.Error(), "\uFFFD")
			rep.Reply = nil
		}
		w.queueReply(rep)
	})
}

func callCommand(ctx context.Context, f CommandFunc, args json.RawMessage) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f(ctx, args)
}

func (w *Worker) queueReply(rep *plutov1.CommandReply) {
	w.mu.Lock()
	w.outReplies = append(w.outReplies, rep)
	w.mu.Unlock()
	w.signal(w.wake)
}

// heartbeatLoop queues a Heartbeat with the worker's load every interval.
func (w *Worker) heartbeatLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var s loadSampler
	s.sample()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cpu, mem := s.sample()
		w.mu.Lock()
		w.outHeartbeat = &plutov1.Heartbeat{
			Running:  int32(w.running),
			Capacity: int32(w.opts.Capacity),
			Cpu:      cpu,
			MemBytes: mem,
		}
		w.mu.Unlock()
		w.signal(w.wake)
	}
}
