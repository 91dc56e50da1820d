package engine

// Remote control of workers (pluto worker drain|resume|
// shutdown|restart, POST /workers/{id}/{drain|resume|shutdown|restart|
// command}, POST /groups/{group}/command). The master–slave "command
// pattern": the server sends a named command with JSON arguments on the
// worker's stream and the worker answers with a CommandReply carrying the
// same command id.
//
// What the engine remembers, and for how long:
//
//   - Drain is remembered by this server for the worker's session: no run
//     is dispatched to it until Resume. A worker that reconnects to this
//     server while its old session is still here (a network blip, or the
//     process crashed and came back under the same ID before it was
//     declared dead) stays drained: the new session inherits the drain and
//     the worker is told again. The worker SDK also remembers a drain
//     across reconnects by itself (it announces a window of zero in its
//     Hello), so a drained worker that fails over to another server of a
//     cluster takes nothing there either, and any server can resume it.
//     Once the session is gone (the worker was declared dead, or it left),
//     a worker that connects again under the same ID starts fresh.
//   - Shutdown and Restart are sent once; the worker drains (finishes what
//     it holds, taking nothing new) and ends its stream. The server stops
//     dispatching to it at once. A new connection under the same ID after
//     a shutdown or restart (the restarted process) does not inherit the
//     drain.
//   - A command waits for its reply up to a timeout. A worker that did not
//     announce the command's name in its Hello is answered at once with an
//     "unknown command" error, without asking it. Pending commands of a
//     session whose stream closes fail with "worker disconnected"; a late
//     reply (after the timeout, or on another stream) is dropped.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Command limits.
const (
	// DefaultCommandTimeout is how long a command waits for replies when
	// the caller gives no timeout.
	DefaultCommandTimeout = 10 * time.Second
	// MaxCommandTimeout bounds a command's timeout.
	MaxCommandTimeout = 5 * time.Minute
	// MaxCommandArgs caps a command's JSON arguments in bytes.
	MaxCommandArgs = 1 << 20
)

// Errors of remote control.
var (
	// ErrWorkerDisconnected: the worker has a session on this server whose
	// stream is closed (it is suspect, waiting to reconnect or be declared
	// dead), so nothing can be sent to it now.
	ErrWorkerDisconnected = errors.New("worker disconnected")
	// ErrWorkerLeaving: the worker was told to shut down or restart; it
	// takes no further control request.
	ErrWorkerLeaving = errors.New("worker is shutting down")
)

// Command reply errors reported per worker (CommandReply.Error).
const (
	CommandTimeout      = "timeout"
	CommandDisconnected = "worker disconnected"
)

// CommandReply is one worker's answer to a command. Error is empty when
// the worker's handler succeeded; Result is its JSON result then.
type CommandReply struct {
	Worker string
	Server string // the server the worker is connected to
	Result json.RawMessage
	Error  string

	at time.Time // when the reply arrived
}

// OK reports whether the worker answered without an error.
func (r CommandReply) OK() bool { return r.Error == "" }

// sessionControl is a session's remote-control state. Guarded by e.disp.mu.
type sessionControl struct {
	pending map[string]chan CommandReply // command id → the waiter
	leaving bool                         // Shutdown was sent
}

// Command ids are unique per server process and across processes (a random
// prefix), so that a reply a worker kept across a reconnect, or sent to a
// restarted server, can never be taken for the answer to another command.
var (
	commandPrefix = func() string {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}()
	commandSeq atomic.Uint64
)

func newCommandID() string {
	return "c" + commandPrefix + "-" + strconv.FormatUint(commandSeq.Add(1), 10)
}

// controlled returns the worker's session for a control request: an
// error wrapping store.ErrNotFound when this server has none,
// ErrWorkerDisconnected when its stream is closed. Called with e.disp.mu held.
func (e *Engine) controlled(workerID string) (*Session, error) {
	if !e.serving() {
		return nil, ErrStopped
	}
	s := e.disp.sessions[workerID]
	if s == nil {
		return nil, fmt.Errorf("no worker %q is connected to server %s: %w", workerID, e.cfg.ServerID, store.ErrNotFound)
	}
	if s.closed {
		return nil, fmt.Errorf("worker %q: its stream to server %s is closed (%s): %w", workerID, e.cfg.ServerID, s.state, ErrWorkerDisconnected)
	}
	return s, nil
}

// DrainWorker stops dispatching to a worker and tells it to take no new
// runs; it finishes the runs it holds (running or prefetched). resume
// undoes it: the worker takes runs again. It returns the worker as it is
// now. See the top of this file for how long a drain is remembered.
func (e *Engine) DrainWorker(workerID string, resume bool) (WorkerInfo, error) {
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	s, err := e.controlled(workerID)
	if err != nil {
		return WorkerInfo{}, err
	}
	if s.ctl.leaving {
		return s.info(), fmt.Errorf("worker %q: %w", workerID, ErrWorkerLeaving)
	}
	s.draining = !resume
	s.conn.Drain(resume)
	if resume {
		e.kick(s.g) // assigns waiting runs first
	}
	e.log.Info("worker drain", "worker", workerID, "resume", resume)
	info := s.info()
	if resume {
		info.Draining = false // its window follows when the worker answers
	}
	return info, nil
}

// ShutdownWorker tells a worker to drain and exit (restart: drain and
// start again — `pluto worker` re-executes itself; the worker SDK's Run
// returns worker.ErrRestart). Nothing more is dispatched to it. Asking a
// worker that is already leaving again is not an error.
func (e *Engine) ShutdownWorker(workerID string, restart bool) (WorkerInfo, error) {
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	s, err := e.controlled(workerID)
	if err != nil {
		return WorkerInfo{}, err
	}
	s.ctl.leaving = true
	s.draining = true
	s.conn.Shutdown(restart)
	e.log.Info("worker shutdown requested", "worker", workerID, "restart", restart)
	return s.info(), nil
}

// WorkerCommand sends the command name with args to one worker and waits
// up to timeout (0: DefaultCommandTimeout) for its reply. Per-worker
// failures are in the reply (Error: the handler's error, "timeout",
// "worker disconnected", unknown command); the error return is for a
// request that could not be sent: invalid input (*FieldError), no such
// worker here (store.ErrNotFound), ErrWorkerDisconnected, or ctx ending.
func (e *Engine) WorkerCommand(ctx context.Context, workerID, name string, args json.RawMessage, timeout time.Duration) (CommandReply, error) {
	args, timeout, err := checkCommand(name, args, timeout)
	if err != nil {
		return CommandReply{}, err
	}
	e.disp.mu.Lock()
	s, err := e.controlled(workerID)
	if err != nil {
		e.disp.mu.Unlock()
		return CommandReply{}, err
	}
	deadline := e.clk.Now().Add(timeout)
	p := e.sendCommand(s, name, args, timeout)
	e.disp.mu.Unlock()
	out, err := e.awaitReplies(ctx, []pendingCommand{p}, deadline)
	if err != nil {
		return CommandReply{}, err
	}
	return out[0], nil
}

// GroupCommand sends the command to every worker of the group connected
// to this server and waits up to timeout for all replies; a worker that
// does not answer in time is reported with Error "timeout". Replies are
// ordered by worker id. A group with no connected worker here is
// store.ErrNotFound.
func (e *Engine) GroupCommand(ctx context.Context, group, name string, args json.RawMessage, timeout time.Duration) ([]CommandReply, error) {
	if strings.TrimSpace(group) == "" {
		return nil, &FieldError{Field: "group", Message: "is required"}
	}
	args, timeout, err := checkCommand(name, args, timeout)
	if err != nil {
		return nil, err
	}
	e.disp.mu.Lock()
	if !e.serving() {
		e.disp.mu.Unlock()
		return nil, ErrStopped
	}
	var targets []*Session
	if g := e.disp.groups[group]; g != nil {
		for _, s := range g.sessions {
			if !s.closed && e.disp.sessions[s.hello.WorkerID] == s {
				targets = append(targets, s)
			}
		}
	}
	if len(targets) == 0 {
		e.disp.mu.Unlock()
		return nil, fmt.Errorf("no worker of group %q is connected to server %s: %w", group, e.cfg.ServerID, store.ErrNotFound)
	}
	slices.SortFunc(targets, func(a, b *Session) int { return strings.Compare(a.hello.WorkerID, b.hello.WorkerID) })
	deadline := e.clk.Now().Add(timeout)
	ps := make([]pendingCommand, len(targets))
	for i, s := range targets {
		ps[i] = e.sendCommand(s, name, args, timeout)
	}
	e.disp.mu.Unlock()
	return e.awaitReplies(ctx, ps, deadline)
}

// checkCommand validates a command and applies the default timeout.
func checkCommand(name string, args json.RawMessage, timeout time.Duration) (json.RawMessage, time.Duration, error) {
	switch {
	case strings.TrimSpace(name) == "":
		return nil, 0, &FieldError{Field: "name", Message: "is required"}
	case len(name) > 200:
		return nil, 0, &FieldError{Field: "name", Message: "is longer than 200 bytes"}
	case len(args) > MaxCommandArgs:
		return nil, 0, &FieldError{Field: "args", Message: fmt.Sprintf("is %d bytes; the limit is %d", len(args), MaxCommandArgs)}
	case len(args) > 0 && !json.Valid(args):
		return nil, 0, &FieldError{Field: "args", Message: "is not valid JSON"}
	case timeout < 0:
		return nil, 0, &FieldError{Field: "timeout", Message: "must not be negative"}
	case timeout > MaxCommandTimeout:
		return nil, 0, &FieldError{Field: "timeout", Message: fmt.Sprintf("must be at most %s", MaxCommandTimeout)}
	}
	if timeout == 0 {
		timeout = DefaultCommandTimeout
	}
	if string(args) == "null" {
		args = nil
	}
	return args, timeout, nil
}

// pendingCommand is one command sent (or answered at once).
type pendingCommand struct {
	s     *Session
	id    string
	ch    chan CommandReply // nil: answered at once (reply)
	reply CommandReply
}

// sendCommand sends a command to s, or answers it at once when the
// worker did not announce it. Called with e.disp.mu held.
func (e *Engine) sendCommand(s *Session, name string, args json.RawMessage, timeout time.Duration) pendingCommand {
	p := pendingCommand{s: s, reply: CommandReply{Worker: s.hello.WorkerID, Server: e.cfg.ServerID}}
	if !slices.Contains(s.hello.Commands, name) {
		known := "none"
		if len(s.hello.Commands) > 0 {
			known = strings.Join(s.hello.Commands, ", ")
		}
		p.reply.Error = fmt.Sprintf("unknown command %q (worker %s answers: %s)", name, s.hello.WorkerID, known)
		return p
	}
	p.id, p.ch = newCommandID(), make(chan CommandReply, 1)
	if s.ctl.pending == nil {
		s.ctl.pending = make(map[string]chan CommandReply)
	}
	s.ctl.pending[p.id] = p.ch
	s.conn.Command(p.id, name, args, timeout)
	return p
}

// awaitReplies waits until every pending command is answered or the
// deadline passes, or ctx ends (an error). A reply that arrived after the
// deadline counts as none: the worker is reported with "timeout". (The
// deadline is taken before the commands are sent, so the worker's own,
// which starts when it receives the command, is never earlier: a handler
// that ran out of time is a timeout, not the handler's error.)
func (e *Engine) awaitReplies(ctx context.Context, ps []pendingCommand, deadline time.Time) ([]CommandReply, error) {
	defer e.forgetCommands(ps)
	expired := make(chan struct{})
	t := e.clk.AfterFunc(max(0, deadline.Sub(e.clk.Now())), func() { close(expired) })
	defer t.Stop()
	out := make([]CommandReply, len(ps))
	for i, p := range ps {
		if p.ch == nil {
			out[i] = p.reply
			continue
		}
		var r CommandReply
		got := false
		select {
		case r = <-p.ch:
			got = true
		case <-expired:
			select {
			case r = <-p.ch:
				got = true
			default:
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if !got || r.at.After(deadline) {
			r = p.reply
			r.Error = CommandTimeout
		}
		out[i] = r
	}
	return out, nil
}

// forgetCommands drops the waiters of commands that were not answered.
func (e *Engine) forgetCommands(ps []pendingCommand) {
	e.disp.mu.Lock()
	defer e.disp.mu.Unlock()
	for _, p := range ps {
		if p.ch != nil {
			delete(p.s.ctl.pending, p.id)
		}
	}
}

// CommandReply delivers a worker's answer to the command with this id. An
// answer nobody waits for (late, or unknown) is dropped.
func (s *Session) CommandReply(id string, result json.RawMessage, errMsg string) {
	e := s.e
	e.disp.mu.Lock()
	s.touch()
	ch := s.ctl.pending[id]
	delete(s.ctl.pending, id)
	e.disp.mu.Unlock()
	if ch == nil {
		return
	}
	r := CommandReply{Worker: s.hello.WorkerID, Server: e.cfg.ServerID, Error: errMsg, at: e.clk.Now()}
	if errMsg == "" {
		r.Result = result
	}
	ch <- r // buffered, and the only send: it was taken out of pending
}

// failCommands answers every pending command of s with "worker
// disconnected" (its stream is gone). Called with e.disp.mu held.
func (s *Session) failCommands() {
	for id, ch := range s.ctl.pending {
		ch <- CommandReply{Worker: s.hello.WorkerID, Server: s.e.cfg.ServerID, Error: CommandDisconnected, at: s.e.clk.Now()}
		delete(s.ctl.pending, id)
	}
}

// inheritControl carries a drain the server asked for over to the new
// session of a worker that reconnected while its old session was still
// here (unless the old one was told to shut down: the new connection is
// the restarted worker). Called with e.disp.mu held, before the new session
// can be dispatched to.
func (s *Session) inheritControl(old *Session) {
	if old == nil || !old.draining || old.ctl.leaving {
		return
	}
	s.draining = true
	s.conn.Drain(false)
	s.e.log.Info("reconnected worker stays drained", "worker", s.hello.WorkerID)
}

// info is the session's WorkerInfo. Called with e.disp.mu held.
func (s *Session) info() WorkerInfo {
	return WorkerInfo{
		ID: s.hello.WorkerID, Group: s.hello.Group, State: s.state,
		Capacity: s.hello.Capacity, Window: s.window, Running: len(s.held),
		CPU: s.load.CPU, MemBytes: s.load.MemBytes, Handlers: slices.Clone(s.hello.Types),
		Version: s.hello.Version, Hostname: s.hello.Hostname, ConnectedAt: s.connectedAt,
		LastHeartbeat: s.lastSeen, Server: s.e.cfg.ServerID,
		Draining: s.draining || s.window == 0, Leaving: s.ctl.leaving,
		Commands: slices.Clone(s.hello.Commands), Loads: s.loads.list(),
	}
}
