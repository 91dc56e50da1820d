package worker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"

	plutov1 "github.com/pluto-sched/pluto/internal/gen/pluto/v1"
)

// Defaults for Options.
const (
	DefaultGroup        = "default"
	DefaultDrainTimeout = 30 * time.Second
)

// Options configure a Worker. Zero values take the documented defaults.
type Options struct {
	// Servers are the gRPC addresses (host:port) of Pluto servers. The
	// worker connects to the first; when a connection fails it tries the
	// next, in order, with jittered exponential back-off (100 ms to 5 s).
	// Required.
	Servers []string

	// ID names the worker; default "<hostname>-<pid>". A worker that
	// reconnects under the same ID keeps the runs it holds.
	ID string

	// Group is the worker group to serve (default "default").
	Group string

	// Capacity is the most runs processed at once (default
	// runtime.NumCPU()). The worker keeps this many runner goroutines.
	Capacity int

	// Prefetch is how many runs beyond Capacity the worker holds, queued
	// locally, so that the next run is already here when a slot frees
	// (default Capacity; -1 for none).
	Prefetch int

	// Handler processes runs. Usually a *Mux. Required.
	Handler Handler

	// Types are the run types announced to the server. Default: the
	// handler's Types() (a *Mux has it), read again on every connection.
	Types []string

	// Logger receives the worker's own diagnostics (connections, drain).
	// Default slog.Default(). Handlers log with Run.Logger instead.
	Logger *slog.Logger

	// RunLogLevel is the minimum level of Run.Logger (default Info).
	RunLogLevel slog.Leveler

	// DrainTimeout bounds how long a draining worker waits for running
	// handlers before it cancels their contexts (default 30 s).
	DrainTimeout time.Duration

	// Token is the API token the worker authenticates with (role worker),
	// sent as "authorization: Bearer <token>" on its stream. Empty: none
	// (a server that requires tokens refuses the worker). A refused token
	// is retried at the longest back-off, with an error logged each time.
	Token string

	// DialOptions are added to the gRPC client options (after the default
	// insecure transport credentials, so credentials given here win).
	DialOptions []grpc.DialOption

	// TLS, if set, connects to the servers over TLS with this
	// configuration: RootCAs to trust a private CA, a client certificate
	// (Certificates or GetClientCertificate) for servers that require one.
	// The server name checked is each server address's host. Nil:
	// plaintext.
	TLS *tls.Config

	// Version is reported to the server (shown in the console).
	Version string

	// ResultDir, if set, is a directory where the worker keeps the results
	// of finished attempts that no server has acknowledged yet, so that
	// they survive the worker process: a worker started again on the same
	// directory delivers them. Results a healthy stream delivers at once
	// never touch the disk; see "Results on disk" in the package
	// documentation for what is written when. For a restarted worker's
	// results to be accepted it must come back under the same ID (set ID:
	// the default contains the process ID). The directory is created if
	// needed and locked while the worker runs; two workers must not share
	// one. Empty: results are kept in memory only.
	ResultDir string
}

// A CommandFunc answers a remote command sent to the worker by an operator
// (POST /api/v1/workers/{id}/command). Its result is encoded as JSON.
type CommandFunc func(ctx context.Context, args json.RawMessage) (any, error)

// Stats is a snapshot of a worker's state.
type Stats struct {
	Running   int    // handlers running
	Queued    int    // runs held locally, waiting for a slot
	Unacked   int    // results not yet acknowledged by the server
	Stored    int    // of those, results in the result store (Options.ResultDir)
	Window    int    // runs the worker currently accepts (0 while draining)
	Connected bool   // a stream to a server is up
	Server    string // address of that server
	Draining  bool
}

// Worker executes runs dispatched by Pluto servers. Create it with [New] and
// start it with [Worker.Run] (or [Worker.RunWithSignals], or [Serve]).
type Worker struct {
	opts     Options
	handler  Handler
	log      *slog.Logger
	hostname string
	window   int32 // capacity + prefetch
	// instance tells this Worker from another process using the same ID:
	// the server refuses a second live instance (ALREADY_EXISTS) but lets
	// this one's reconnects replace its old stream.
	instance string

	cmdMu    sync.RWMutex
	commands map[string]CommandFunc

	started    atomic.Bool
	runCtx     context.Context // parent of run contexts; outlives the caller's ctx
	runCancel  context.CancelCauseFunc
	shutdownCh chan bool // server's Shutdown; value is restart
	// leaving is set once the drain is over: the sender then ends the
	// stream cleanly (CloseSend), so the server forgets the worker at once
	// instead of holding it suspect until the dead timeout; left is
	// closed when that session has ended.
	leaving   bool
	left      chan struct{}
	abortCh   chan struct{}
	abortOnce sync.Once
	cmdWG     sync.WaitGroup

	// wake signals the sender that something was queued; changed signals
	// the drain loop that runs finished or results were acknowledged.
	wake    chan struct{}
	changed chan struct{}

	// drainGrace bounds the wait for result acknowledgements once no run is
	// active any more (tests shorten it).
	drainGrace time.Duration

	mu       sync.Mutex
	workCond *sync.Cond // runners wait here for queued runs
	held     map[runKey]*Run
	queue    []*Run // local FIFO; entries whose state is no longer queued are skipped
	qhead    int
	queued   int
	running  int
	seq      uint64
	closed   bool // runners exit
	draining bool // window 0 for good (Run's ctx ended or server Shutdown)
	paused   bool // window 0 until the server resumes (Drain{resume:false})

	connected bool
	server    string

	// outbox: what the sender sends next.
	outCredits   bool
	outAcks      []*Run
	outResults   []*plutov1.Result
	outLogs      []*plutov1.LogLine
	outReplies   []*plutov1.CommandReply
	outHeartbeat *plutov1.Heartbeat
	outLogBytes  int            // text bytes in outLogs
	droppedLogs  int            // log lines dropped since the last send
	dropped      []droppedLines // the same, by attempt
	capped       []*Run         // attempts whose log the server capped, running or not yet counted (logcap.go)
	outMaps      []*plutov1.Map // Run.Map requests to send (mapsend.go)

	// maps are the Run.Map calls waiting for their MapAck, oldest first
	// for each attempt; mapResend is how long one waits on a stream
	// before it is sent again (tests shorten it).
	maps      map[runKey][]*pendingMap
	mapResend time.Duration

	// The result store (Options.ResultDir; see persist.go). store is nil
	// without one and set before Run starts any goroutine. The fields
	// after persistWake are guarded by mu.
	store        resultStore
	openStore    func(dir string) (resultStore, []*plutov1.Result, error) // tests replace it
	persistTick  time.Duration                                            // tests shorten it
	storeFailing bool                                                     // persister only
	persistWake  chan struct{}
	unsaved      []unsavedRun // results in memory only, in finish order (entries that no longer need saving are skipped)
	unsavedHead  int
	persistEpoch uint64   // persister ticks
	persistIdle  bool     // the persister waits for persistWake without ticking
	outRemove    []runKey // stored results that were acknowledged: tombstones to write
	stored       int      // results in the store
	storeClosed  bool
}

type runKey struct {
	id      string
	attempt int32
}

// New validates opts and returns a Worker. The error names the offending
// Options field.
func New(opts Options) (*Worker, error) {
	if len(opts.Servers) == 0 {
		return nil, &optionError{"Servers", "at least one server address is required"}
	}
	for i, s := range opts.Servers {
		if s == "" {
			return nil, &optionError{fmt.Sprintf("Servers[%d]", i), "empty address"}
		}
	}
	if opts.Handler == nil {
		return nil, &optionError{"Handler", "required"}
	}
	if opts.Capacity < 0 {
		return nil, &optionError{"Capacity", "must not be negative"}
	}
	if opts.Capacity == 0 {
		opts.Capacity = runtime.NumCPU()
	}
	switch {
	case opts.Prefetch < -1:
		return nil, &optionError{"Prefetch", "must be -1 (none), 0 (default: Capacity) or positive"}
	case opts.Prefetch == -1:
		opts.Prefetch = 0
	case opts.Prefetch == 0:
		opts.Prefetch = opts.Capacity
	}
	if opts.Capacity+opts.Prefetch > 1<<30 {
		return nil, &optionError{"Capacity", "too large"}
	}
	if opts.DrainTimeout < 0 {
		return nil, &optionError{"DrainTimeout", "must not be negative"}
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.Group == "" {
		opts.Group = DefaultGroup
	}
	if err := checkToken(opts.Token); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	if opts.ID == "" {
		opts.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Servers = slices.Clone(opts.Servers)
	opts.Types = slices.Clone(opts.Types)
	w := &Worker{
		opts:       opts,
		handler:    opts.Handler,
		log:        opts.Logger.With("worker_id", opts.ID),
		hostname:   host,
		window:     int32(opts.Capacity + opts.Prefetch),
		instance:   newInstance(),
		commands:   make(map[string]CommandFunc),
		shutdownCh: make(chan bool, 1),
		left:       make(chan struct{}),
		abortCh:    make(chan struct{}),
		wake:       make(chan struct{}, 1),
		changed:    make(chan struct{}, 1),
		drainGrace: 5 * time.Second,
		mapResend:  mapResendInterval,
		held:       make(map[runKey]*Run),

		persistTick: defaultPersistTick,
		persistWake: make(chan struct{}, 1),
	}
	w.openStore = w.openFileResultStore
	w.workCond = sync.NewCond(&w.mu)
	if len(w.types()) == 0 {
		return nil, &optionError{"Types", "no run types: register handlers on the Mux before New, or set Options.Types"}
	}
	// Names travel as protobuf strings: one that is not UTF-8 would make
	// every Hello unencodable and the worker retry "cannot connect" forever.
	names := map[string]string{"ID": opts.ID, "Group": opts.Group, "Version": opts.Version}
	for i, t := range w.types() {
		names[fmt.Sprintf("Types[%d]", i)] = t
	}
	for field, v := range names {
		if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			return nil, &optionError{field, "must be UTF-8 text without NUL bytes"}
		}
	}
	return w, nil
}

// newInstance returns a random token (128 bits, hex).
func newInstance() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// ID returns the worker's ID.
func (w *Worker) ID() string { return w.opts.ID }

// types returns the run types to announce.
func (w *Worker) types() []string {
	if len(w.opts.Types) > 0 {
		return w.opts.Types
	}
	if t, ok := w.handler.(interface{ Types() []string }); ok {
		return t.Types()
	}
	return nil
}

// HandleCommand registers f to answer remote commands called name. Register
// commands before Run: their names are announced when the worker connects.
// A command nobody registered is answered with the error "unknown command".
func (w *Worker) HandleCommand(name string, f CommandFunc) {
	if name == "" || f == nil {
		panic("worker: HandleCommand: empty name or nil func")
	}
	w.cmdMu.Lock()
	defer w.cmdMu.Unlock()
	w.commands[name] = f
}

func (w *Worker) commandNames() []string {
	w.cmdMu.RLock()
	defer w.cmdMu.RUnlock()
	names := make([]string, 0, len(w.commands))
	for n := range w.commands {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Stats returns a snapshot of the worker's state.
func (w *Worker) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := Stats{
		Running:   w.running,
		Queued:    w.queued,
		Window:    int(w.effectiveWindow()),
		Connected: w.connected,
		Server:    w.server,
		Draining:  w.draining || w.paused,
		Stored:    w.stored,
	}
	for _, r := range w.held {
		if r.state == stateFinished {
			s.Unacked++
		}
	}
	return s
}

// Run connects to a server and processes runs until ctx is done or the
// server sends Shutdown; then it drains: it announces a window of zero so
// no new runs come, lets the runs it holds finish (cancelling their contexts
// once DrainTimeout has passed), delivers their results and returns. It
// returns nil after a drain, [ErrRestart] when the server asked for a
// restart. Connection failures are not errors: Run reconnects, rotating
// through Options.Servers, while runs keep running. With
// Options.ResultDir, Run first opens the result store (an error if it
// cannot) and last stores the results no server acknowledged. Run may be
// called once.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("worker: Run called more than once")
	}
	if err := w.openResultStore(); err != nil {
		return err
	}
	base := context.WithoutCancel(ctx)
	w.runCtx, w.runCancel = context.WithCancelCause(base)
	defer w.runCancel(ErrDrainTimeout)

	var runners sync.WaitGroup
	for range w.opts.Capacity {
		runners.Go(w.runner)
	}

	var persister sync.WaitGroup
	persistCtx, stopPersister := context.WithCancel(base)
	defer stopPersister()
	if w.store != nil {
		persister.Go(func() { w.persistLoop(persistCtx) })
	}

	sessCtx, stopSessions := context.WithCancel(base)
	defer stopSessions()
	conns := newConnPool(w.opts.TLS, w.dialOptions())
	defer conns.close()
	var connector sync.WaitGroup
	connector.Go(func() { w.connectLoop(sessCtx, conns) })

	restart := false
	select {
	case <-ctx.Done():
		w.log.Info("draining", "reason", context.Cause(ctx))
	case restart = <-w.shutdownCh:
		w.log.Info("draining", "reason", "shutdown requested by server", "restart", restart)
	}
	w.drain()
	w.leave()

	stopSessions()
	connector.Wait()

	w.mu.Lock()
	w.closed = true
	w.workCond.Broadcast()
	w.mu.Unlock()
	w.runCancel(ErrDrainTimeout)
	if !waitTimeout(&runners, w.drainGrace) {
		w.log.Warn("handlers did not return after their context was cancelled")
	}
	stopPersister()
	persister.Wait()
	w.closeResultStore()
	w.cmdWG.Wait()
	if restart {
		return ErrRestart
	}
	return nil
}

// RunWithSignals is Run with SIGINT and SIGTERM turned into a drain: the
// first signal starts it, a second one cuts it short (running contexts are
// cancelled at once).
func (w *Worker) RunWithSignals(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sigc := make(chan os.Signal, 2)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigc)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	wg.Go(func() {
		select {
		case s := <-sigc:
			cancel(fmt.Errorf("signal %v", s))
		case <-done:
			return
		}
		select {
		case <-sigc:
			w.abort()
		case <-done:
		}
	})
	return w.Run(ctx)
}

// Serve creates a worker from opts and runs it until SIGINT or SIGTERM,
// then drains it: the worker equivalent of http.ListenAndServe.
func Serve(opts Options) error {
	w, err := New(opts)
	if err != nil {
		return err
	}
	return w.RunWithSignals(context.Background())
}

// leaveTimeout bounds how long a drained worker waits for the server to
// end its stream after it closed its side.
const leaveTimeout = 2 * time.Second

// leave ends the current stream cleanly after the drain: the server then
// knows the worker left on purpose (it requeues whatever it still held at
// once and drops the session) rather than waiting for it to be declared
// dead.
func (w *Worker) leave() {
	w.mu.Lock()
	w.leaving = true
	w.mu.Unlock()
	w.signal(w.wake)
	t := time.NewTimer(leaveTimeout)
	defer t.Stop()
	select {
	case <-w.left:
	case <-t.C:
	}
}

// abort ends the drain period now.
func (w *Worker) abort() {
	w.abortOnce.Do(func() { close(w.abortCh) })
}

// drain closes the window, waits for the held runs to finish and their
// results to be acknowledged, within DrainTimeout plus a grace period.
func (w *Worker) drain() {
	w.mu.Lock()
	w.draining = true
	w.outCredits = true
	w.mu.Unlock()
	w.signal(w.wake)

	drainTimer := time.NewTimer(w.opts.DrainTimeout)
	defer drainTimer.Stop()
	var grace *time.Timer
	var graceC <-chan time.Time
	startGrace := func(d time.Duration) {
		if grace == nil {
			grace = time.NewTimer(d)
			graceC = grace.C
		}
	}
	defer func() {
		if grace != nil {
			grace.Stop()
		}
	}()
	abortC := w.abortCh
	for {
		w.mu.Lock()
		held, active := len(w.held), w.running+w.queued
		w.mu.Unlock()
		if held == 0 {
			return
		}
		if active == 0 {
			startGrace(w.drainGrace)
		}
		select {
		case <-w.changed:
		case <-drainTimer.C:
			w.expire(ErrDrainTimeout)
			startGrace(w.drainGrace)
		case <-abortC:
			abortC = nil
			w.expire(ErrDrainTimeout)
			startGrace(min(w.drainGrace, time.Second))
		case <-graceC:
			w.mu.Lock()
			n := 0
			for _, r := range w.held {
				if r.state == stateFinished {
					n++
				}
			}
			w.mu.Unlock()
			if w.store != nil {
				w.log.Warn("drain: results not acknowledged in time; they go to the result store", "results", n)
			} else {
				w.log.Warn("drain: giving up on undelivered results", "results", n)
			}
			return
		}
	}
}

// expire abandons the runs not started yet (the server requeues them when
// the stream closes) and cancels the running ones with cause.
func (w *Worker) expire(cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, r := range w.held {
		switch r.state {
		case stateQueued:
			r.state = stateAbandoned
			w.queued--
			delete(w.held, k)
		case stateRunning:
			r.cancel(cause)
		}
	}
}

// signal does a non-blocking send on a 1-buffered channel.
func (w *Worker) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// effectiveWindow must be called with w.mu held.
func (w *Worker) effectiveWindow() int32 {
	if w.draining || w.paused {
		return 0
	}
	return w.window
}

// requestShutdown makes Run drain and return (ErrRestart if restart).
func (w *Worker) requestShutdown(restart bool) {
	select {
	case w.shutdownCh <- restart:
	default:
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
