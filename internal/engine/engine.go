// Package engine is Pluto's scheduler: it decides when runs are ready and
// which worker gets them, and moves every run through its lifecycle with
// each change committed to the store before anyone is told about it.
//
// # Shape
//
// The engine is a set of components around one write path, each owning
// its state and its lock:
//
//	clients: Submit, Cancel, Retry, Job*    workers: Connect, Ack, Results, …
//	         │                                       │
//	         ▼                                       ▼
//	   ┌─ dispatcher + sessions (one lock) ──────────────────────┐
//	   │  groups, ready queues, claims in flight, flights,       │◀─ monitor,
//	   │  orphans, worker credits, per-run timeouts              │   reconciler
//	   └───────────────────────────┬─────────────────────────────┘
//	                               │ ops
//	                               ▼
//	                 committer: the only writer ──▶ store.Tx per batch
//	                               ▲   (an op's callback runs after its commit)
//	                               │ ops
//	   lease ──a term won──▶ promoter, cron loop, deliverer (leader only)
//	   (own lock)            unblocker;  waiters (Wait's registry)
//
// Lock order: the dispatcher's lock or the lease's may be held while
// taking the lock of a leader component, the unblocker, the waiters or the
// committer's queue; none of those takes the dispatcher's or the lease's
// lock while holding its own, and the dispatcher's and the lease's are
// never held together.
//
//   - committer (committer.go, ops.go): the only writer. State changes are
//     queued as ops, one kind each (insertOp, finishOp, claimOp, txOp, …),
//     and applied in one store transaction per batch (group commit); an
//     op's callback runs only after its batch committed. While one batch
//     commits the next accumulates, so batches grow with load and a lone
//     submit on an idle system commits at once.
//   - log writer (logwriter.go): workers' log lines, in store
//     transactions of their own (group commit, per-run caps), so a run
//     printing fast never slows the scheduling batches; followers of a
//     run's log (logfollow.go) wake when its lines commit.
//   - dispatcher (dispatch.go): per group, claims queued runs from the store
//     when its workers have free credits, keeps claimed runs in a priority
//     queue and hands each to a worker chosen by a pure routing function
//     (routing.go). Claims are event driven: a commit that may have created
//     work (a submit, a requeue, a promotion) or freed a slot kicks the
//     group; nothing polls.
//   - sessions (session.go): one per connected worker; credits (window −
//     held runs), acks, results, heartbeats. They share the dispatcher's
//     lock: assigning a run changes a queue, a worker's credits and the
//     run's flight together. The liveness monitor (monitor.go) moves
//     sessions alive → suspect → dead and requeues a dead worker's runs
//     with a new attempt.
//   - per-run timeouts (finish.go), on the dispatcher's lock.
//   - leader components, activated when this server wins a term and
//     deactivated when it loses it or stops: the promoter (promote.go)
//     moves pending runs to queued when their time comes; the cron loop
//     (cron.go) fires jobs' slots; the deliverer (feedback.go) POSTs
//     outcomes to callback URLs. The unblocker (cron.go) releases blocked
//     runs when a job's run ends.
//   - reconciler (reconcile.go): every ReconcileInterval, compares the
//     store with what the components drive and repairs the difference.
//   - components with goroutines of their own follow one lifecycle
//     (lifecycle.go): started in dependency order, stopped in reverse.
//
// # A run's life, and who moves it
//
//	submit ──▶ pending ──promoter──▶ queued ◀── submit, retry (user),
//	             ▲                     │         unblocker (from blocked),
//	             │                     │         lost attempt (monitor,
//	             │         dispatcher  │         sessions, reconciler)
//	             │  (claim: attempt+1) ▼
//	             │                 dispatched ──session (ack)──▶ running
//	             │                     │                           │
//	             └── failed attempt, ──┴──── session (result), ────┘
//	                 attempts left           timeout (finish.go)
//	                                               │
//	                                               ▼
//	            succeeded | failed | timed_out | cancelled (user) | skipped (cron)
//
// The store is the source of truth: each arrow is an op committed before
// anyone is told (docs/state-machine.md has every transition).
//
// # Errors
//
// A failed store write is never logged and dropped: the committer applies
// it again, with backoff, until it commits; a change whose commit answer
// was lost is re-derived from the store; what still slips through is the
// reconciler's (committer.go has the whole policy). A caller that gives up
// before its op was taken withdraws it, so its error is the truth.
//
// # Invariants
//
//   - A dispatch is committed (status dispatched, attempt N) before the task
//     is sent; a result is committed before the worker is told it was
//     accepted and before any waiter is woken; a submit is committed before
//     it is acknowledged.
//   - The attempt number is a fencing token: every report names its
//     attempt, and the store rejects a report for any other attempt.
//   - A worker never holds more than its window (capacity + prefetch).
//
// # Several servers
//
// Servers sharing a store each claim runs for their own workers (claims
// never overlap), renew a registration under which they hold their runs,
// and hear each other's changes through store notifications (notify.go).
// One holds the leader lease and runs the singleton loops (leader.go).
//
// Two servers can briefly both believe they lead: the old leader acts for
// at most the lease TTL before it notices. That is safe because every
// leader-only write is a conditional, idempotent change in the store — the
// promoter moves only pending runs whose time has come, the reaper requeues
// only active runs whose server is stale — so it has the same effect done
// twice, or on two servers, as done once (TestTwoLeadersAreHarmless runs
// three leaders at once). Reports are fenced by attempt and by holding
// server, so a server that lost a run can no longer change it.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pluto-sched/pluto/internal/clock"
	"github.com/pluto-sched/pluto/internal/store"
)

// Config configures an engine. Zero values mean defaults.
type Config struct {
	Store    store.Store
	Clock    clock.Clock // default clock.Real
	ServerID string
	Logger   *slog.Logger

	// HeartbeatInterval is how often workers heartbeat (default 5s). A
	// worker is suspect after SuspectAfter (default 1.5 intervals) without
	// a message and dead after DeadAfter (default three intervals).
	HeartbeatInterval time.Duration
	SuspectAfter      time.Duration
	DeadAfter         time.Duration

	// MaxPayload caps a run's payload in bytes (default 1 MiB).
	MaxPayload int64
	// LogMaxLines and LogMaxBytes cap each run's log, all its attempts
	// together (defaults 10,000 lines and 1 MiB of text): lines past
	// either cap are dropped and counted, and one marker line says so.
	LogMaxLines int64
	LogMaxBytes int64
	// ClaimBatch caps the runs claimed per group per claim (default 512).
	ClaimBatch int
	// MaxBatch caps the ops applied in one transaction (default 8192).
	MaxBatch int
	// Committers is how many transactions may be in flight at once
	// (default 1 on an exclusive store, whose single writer gains nothing
	// from more, and 2 on a shared one, where a second transaction hides
	// the round trips of the first). Batches are independent: every change
	// is conditional, so transactions in flight together may commit in
	// either order.
	Committers int
	// RetryBase and RetryMax bound the exponential retry backoff
	// (defaults 1s and 10m); each delay is jittered.
	RetryBase time.Duration
	RetryMax  time.Duration
	// DefaultRouting is used when a run names none (default least-recent).
	DefaultRouting string
	// NewID makes run IDs (default r_ + ULID).
	NewID func() string
	// LeaseTTL is how long the leader lease and a server's registration
	// last without renewal (default 10s); RenewInterval is how often they
	// are renewed (default 2s). A server's runs go back to the queue when
	// its registration is older than LeaseTTL.
	LeaseTTL      time.Duration
	RenewInterval time.Duration
	// AdvertiseHTTP and AdvertiseGRPC are this server's addresses as shown
	// in the cluster listing.
	AdvertiseHTTP string
	AdvertiseGRPC string
	// Standby servers serve clients and workers and dispatch, but never
	// take the leader lease, so they never run the leader's loops (Mars'
	// pre-release mode). Some server must not be a standby, or delayed
	// runs are never promoted.
	Standby bool
	// ExclusiveStore says this server is the only one using its store (the
	// embedded SQLite store is locked to one process). On start it then
	// recovers every active run, whichever server id held it before, so a
	// restart under a new id loses nothing; on a shared store it recovers
	// only its own and the leader requeues those of servers that are gone.
	ExclusiveStore bool
	// ReconcileInterval is how often the reconciler compares the store with
	// what the engine drives and repairs the difference (default 30s;
	// reconcile.go).
	ReconcileInterval time.Duration
	// MaxLostAttempts is how many attempts of a run may be lost with their
	// worker (it died, or reconnected without the run) before the run
	// fails instead of going back to the queue (default 3). Lost attempts
	// are not failures: they do not use up the run's retries.
	MaxLostAttempts int
	// MisfireGrace is how late a cron slot may fire and still count as on
	// time (default 5s); a slot later than that was missed and the job's
	// misfire policy decides what becomes of it.
	MisfireGrace time.Duration
	// Retention is how long the leader keeps finished runs, per status
	// (retention.go); the zero value keeps them for ever.
	Retention Retention
	// OnNotify, if set, sees every store notification this server hears
	// (before the engine acts on it; not with the engine locked), and
	// OnRelisten is called after the notification connection came back
	// (what was published meanwhile was missed). The server uses them for
	// its token cache.
	OnNotify func(store.Notification)
	// Observer, if set, sees what the engine does, for metrics
	// (observer.go).
	Observer   Observer
	OnRelisten func()
	// OnTerminal, if set, is called once for every run that reaches a
	// terminal status, after that status is committed. It runs on engine
	// goroutines with the engine locked and must not block.
	OnTerminal func(id string, status store.RunStatus)

	// Feedback (feedback.go): a run's outcome POSTed to its callback URL.
	// CallbackExpiry is how long after a run ends its delivery is retried
	// (default 24h); CallbackTimeout caps one POST (default 10s);
	// CallbackConcurrency caps the POSTs in flight (default 16).
	// CallbackAllow widens the destinations beyond public addresses: CIDRs,
	// IPs, host names and *.wildcards (feedback_http.go). CallbackClient
	// replaces the HTTP client (tests).
	CallbackExpiry      time.Duration
	CallbackTimeout     time.Duration
	CallbackConcurrency int
	CallbackAllow       []string
	CallbackClient      CallbackDoer
	// CallbackBody encodes the run POSTed to its callback URL. The engine
	// keeps no wire format of its own: the server passes the API's run
	// shape. Default: the store's Run as encoding/json writes it.
	CallbackBody func(*store.Run) ([]byte, error)
	// AlertBody encodes an alert POSTed to a webhook in the json format
	// (alerts_deliver.go), as the API shows it; default: the store's
	// Alert as encoding/json writes it.
	AlertBody func(*store.Alert) ([]byte, error)
}

func (c *Config) defaults() error {
	if c.Store == nil {
		return errors.New("engine: Config.Store is required")
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.ServerID == "" {
		c.ServerID = "server"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 5 * time.Second
	}
	if c.SuspectAfter <= 0 {
		// One interval missed, with slack for a heartbeat in flight.
		c.SuspectAfter = c.HeartbeatInterval * 3 / 2
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = 3 * c.HeartbeatInterval
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = 1 << 20
	}
	if c.LogMaxLines <= 0 {
		c.LogMaxLines = DefaultLogMaxLines
	}
	if c.LogMaxBytes <= 0 {
		c.LogMaxBytes = DefaultLogMaxBytes
	}
	if c.ClaimBatch <= 0 {
		c.ClaimBatch = 512
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 8192
	}
	if c.Committers <= 0 {
		c.Committers = 1
		if !c.ExclusiveStore {
			c.Committers = 2
		}
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 10 * time.Minute
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = defaultReconcileInterval
	}
	if c.MaxLostAttempts <= 0 {
		c.MaxLostAttempts = 3
	}
	if c.MisfireGrace <= 0 {
		c.MisfireGrace = 5 * time.Second
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 10 * time.Second
	}
	if c.RenewInterval <= 0 {
		c.RenewInterval = 2 * time.Second
	}
	if c.RenewInterval >= c.LeaseTTL {
		return fmt.Errorf("engine: RenewInterval (%v) must be shorter than LeaseTTL (%v)", c.RenewInterval, c.LeaseTTL)
	}
	if c.DefaultRouting == "" {
		c.DefaultRouting = RoutingLeastRecent
	}
	if !knownRouting(c.DefaultRouting) {
		return fmt.Errorf("engine: unknown default routing %q", c.DefaultRouting)
	}
	if c.CallbackBody == nil {
		c.CallbackBody = func(r *store.Run) ([]byte, error) { return json.Marshal(r) }
	}
	if c.AlertBody == nil {
		c.AlertBody = func(a *store.Alert) ([]byte, error) { return json.Marshal(a) }
	}
	if c.NewID == nil {
		c.NewID = newRunID
	}
	return nil
}

// The default per-run log caps.
const (
	DefaultLogMaxLines = 10000
	DefaultLogMaxBytes = 1 << 20
)

// Engine is the scheduler of one server.
type Engine struct {
	cfg Config
	st  store.Store
	clk clock.Clock
	log *slog.Logger

	ops     *opQueue   // the committer's queue
	commits *committer // the only writer (committer.go)

	// The components with their own state and lock.
	promote  *promoter              // promote.go
	cron     *cronLoop              // cron.go
	feedback *deliverer[*store.Run] // callback deliveries, leader only (feedback.go)
	// netPolicy is where callbacks and alert webhooks may go
	// (feedback_http.go); set in New, then read only.
	netPolicy *callbackPolicy
	unblock   *unblocker  // releases blocked runs of jobs (cron.go)
	gate      *gate       // decides runs waiting on upstream jobs (deps.go)
	alerts    *alerter    // alert rules, alerts and their webhooks (alerts.go)
	joins     *joiner     // ends fan-out parents as their children end (fanout.go)
	backfill  *backfiller // drives backfills on the leader (backfill.go)
	monitor   *monitor    // liveness (monitor.go)
	recon     *reconciler // reconcile.go
	waiters   waiters     // Wait calls, by run (control.go)
	logw      *logWriter  // log lines, in transactions of their own (logwriter.go)
	// logFollow are the FollowLogs registrations, by run (logfollow.go).
	logFollow waiters
	lead      leadership // leader.go

	disp dispatcher // groups, sessions and the runs this server holds (dispatch.go)

	wmu        sync.Mutex
	watched    watchSet // runs some server waits for
	logWatches watchSet // runs whose log some server follows

	// state is the engine's lifecycle. It changes with e.disp.mu held, so
	// it is stable for the dispatcher and the sessions; it is atomic so
	// that the components with locks of their own read it without taking
	// the dispatcher's.
	state     atomic.Int32       // a lifecycle
	cancelBG  context.CancelFunc // ends background loops (listener)
	leaseDone chan struct{}      // closed when the lease loop exits
	stopMon   chan struct{}
	wg        sync.WaitGroup
	stopOnce  sync.Once

	liveCfg   atomic.Pointer[Live] // the settings Reconfigure changes (reconfig.go)
	quiescing atomic.Bool          // Quiesce began (quiesce.go)
	drainSig  chan struct{}        // wakes Quiesce's wait; 1-buffered
	// retentionWake starts a retention sweep now; 1-buffered
	// (retention.go).
	retentionWake chan struct{}
}

type lifecycle int32

const (
	stateNew lifecycle = iota
	stateRunning
	stateDraining // Quiesce: no new work, in-flight runs finish (quiesce.go)
	stateStopping
	stateStopped
)

// New makes an engine; Start runs it.
func New(cfg Config) (*Engine, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:        cfg,
		st:         cfg.Store,
		clk:        cfg.Clock,
		log:        cfg.Logger,
		watched:    make(watchSet),
		logWatches: make(watchSet),
		stopMon:    make(chan struct{}),
		leaseDone:  make(chan struct{}),
		drainSig:   make(chan struct{}, 1),

		retentionWake: make(chan struct{}, 1),
	}
	e.disp = dispatcher{
		groups:   make(map[string]*group),
		sessions: make(map[string]*Session),
		flights:  make(map[string]*flight),
		orphans:  make(map[string]*flight),
		settling: make(map[string]int),
	}
	e.commits = newCommitter(e)
	e.logw = newLogWriter(e)
	e.monitor = &monitor{e: e}
	e.promote = &promoter{e: e}
	e.cron = &cronLoop{e: e}
	e.recon = &reconciler{e: e}
	e.unblock = &unblocker{e: e}
	e.gate = &gate{e: e}
	e.backfill = &backfiller{e: e}
	e.ops = e.commits.ops
	e.liveCfg.Store(liveFromConfig(&e.cfg))
	if err := e.initFeedback(); err != nil {
		return nil, err
	}
	e.alerts = &alerter{e: e}
	e.joins = &joiner{e: e}
	e.alerts.life, e.alerts.stop = context.WithCancel(context.Background())
	e.alerts.deliv = &deliverer[*store.Alert]{e: e, kind: alertKind{e: e}, client: e.feedback.client}
	return e, nil
}

// Start recovers state from the store and starts the engine's loops: runs
// that were held by workers when the server last stopped become orphans
// that reconnecting workers may reclaim; those not reclaimed within
// DeadAfter are requeued with a new attempt.
func (e *Engine) Start(ctx context.Context) error {
	if e.lifecycle() != stateNew {
		return errors.New("engine: already started")
	}

	held := store.RunListActiveParams{ServerID: e.cfg.ServerID}
	if e.cfg.ExclusiveStore {
		held.ServerID = ""
	}
	active, err := e.st.RunListActive(ctx, held)
	if err != nil {
		return fmt.Errorf("engine: recover active runs: %w", err)
	}
	if err := e.adoptRecovered(ctx, active); err != nil {
		return err
	}
	e.disp.mu.Lock()
	now := e.now()
	for _, r := range active {
		f := newFlight(r)
		f.orphanedAt = now
		e.disp.orphans[r.ID] = f
	}
	e.setState(stateRunning)
	e.disp.mu.Unlock()

	bg, cancel := context.WithCancel(context.Background())
	e.cancelBG = cancel
	if err := e.commits.Start(ctx); err != nil {
		return err
	}
	e.logw.start()
	e.alerts.warm()
	for _, c := range []component{e.monitor, e.recon} {
		if err := c.Start(ctx); err != nil {
			return err
		}
	}
	e.wg.Add(1)
	go e.leaseLoop()
	if !e.cfg.ExclusiveStore {
		e.wg.Add(1)
		go e.listenLoop(bg)
	}
	if len(active) > 0 {
		grace := e.live().DeadAfter
		e.log.Info("recovered runs held by workers", "runs", len(active), "grace", grace)
		e.clk.AfterFunc(grace, e.requeueOrphans)
	}
	return nil
}

// adoptRecovered makes this server the holder of active runs that an
// earlier process of an exclusive store held under another server id, so
// that fenced reports for them are accepted.
func (e *Engine) adoptRecovered(ctx context.Context, active []*store.Run) error {
	var ps []store.RunAdoptParams
	for _, r := range active {
		if r.ServerID != e.cfg.ServerID {
			ps = append(ps, store.RunAdoptParams{ID: r.ID, Attempt: r.Attempt, ServerID: e.cfg.ServerID})
			r.ServerID = e.cfg.ServerID
		}
	}
	if len(ps) == 0 {
		return nil
	}
	err := e.st.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.RunAdopt(ctx, ps)
		return err
	})
	if err != nil {
		return fmt.Errorf("engine: adopt recovered runs: %w", err)
	}
	return nil
}

// Stop stops intake, flushes every queued state change to the store and
// stops the loops. Runs held by workers stay dispatched/running in the
// store; the next start recovers them. While workers still hold runs the
// server's registration is left to expire instead of being removed, so
// that other servers do not requeue runs that are still running before
// their workers can fail over with them. Call Quiesce first to let
// in-flight runs finish. Safe to call more than once.
func (e *Engine) Stop(ctx context.Context) error {
	e.stopOnce.Do(func() {
		e.disp.mu.Lock()
		started := e.serving()
		held := e.heldByWorkers(false)
		e.setState(stateStopping)
		for _, s := range e.disp.sessions {
			s.stopTimers()
		}
		e.disp.mu.Unlock()
		// Under the lease's lock: a renewal that won a term before the
		// state changed has activated the leader's components by now, and
		// one after it sees the engine stopping and activates nothing.
		e.lead.mu.Lock()
		e.promote.deactivate()
		e.cron.deactivate()
		e.feedback.deactivate()
		e.alerts.deactivate()
		e.lead.mu.Unlock()
		if !started {
			e.disp.mu.Lock()
			e.setState(stateStopped)
			e.disp.mu.Unlock()
			return
		}
		e.cancelBG()
		close(e.stopMon)
		e.monitor.Stop()
		e.recon.Stop()
		select {
		case <-e.leaseDone:
		case <-ctx.Done():
		}
		e.resign(ctx, held > 0) // the committer still runs: leader loops may be mid-write
		done := make(chan struct{})
		go func() {
			e.logw.stop(ctx) // before the committer: finishes may wait for lines (logAfter)
			e.commits.Stop()
			e.wg.Wait()
			e.promote.arming.Wait()
			e.cron.arming.Wait()
			e.feedback.running.Wait()
			e.alerts.wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
		}
		e.disp.mu.Lock()
		e.setState(stateStopped)
		e.disp.mu.Unlock()
	})
	return nil
}

func (e *Engine) lifecycle() lifecycle { return lifecycle(e.state.Load()) }

// setState moves the engine to l. Called with e.disp.mu held.
func (e *Engine) setState(l lifecycle) { e.state.Store(int32(l)) }

func (e *Engine) running() bool { return e.lifecycle() == stateRunning }

// serving is running, or draining in a graceful stop: the engine takes no
// new work but still tends what it holds (results, timeouts, liveness).
func (e *Engine) serving() bool {
	l := e.lifecycle()
	return l == stateRunning || l == stateDraining
}

// Ready reports whether the engine is running and its store answers.
func (e *Engine) Ready(ctx context.Context) error {
	if !e.running() {
		return ErrStopped
	}
	if _, err := e.st.RunGet(ctx, "r_readiness_probe"); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("engine: store: %w", err)
	}
	return nil
}

// Get returns a run.
func (e *Engine) Get(ctx context.Context, id string) (*store.Run, error) {
	return e.st.RunGet(ctx, id)
}

// Fanout reads a fan-out's join state (ErrNotFound for a run that is not
// a parent).
func (e *Engine) Fanout(ctx context.Context, parentID string) (*store.Fanout, error) {
	return e.st.FanoutRead(ctx, parentID)
}

// List pages runs, newest first.
func (e *Engine) List(ctx context.Context, p store.RunListParams) (store.RunPage, error) {
	for _, s := range p.Statuses {
		if !s.Valid() {
			return store.RunPage{}, &FieldError{Field: "status", Message: fmt.Sprintf("unknown status %q", s)}
		}
	}
	if p.Limit < 0 || p.Limit > 1000 {
		return store.RunPage{}, &FieldError{Field: "limit", Message: "must be between 1 and 1000"}
	}
	page, err := e.st.RunList(ctx, p)
	if errors.Is(err, store.ErrInvalidCursor) {
		return page, &FieldError{Field: "cursor", Message: "is not a cursor this server issued"}
	}
	return page, err
}

// Logs pages a run's log lines.
func (e *Engine) Logs(ctx context.Context, p store.LogListParams) ([]store.LogEntry, error) {
	return e.st.LogList(ctx, p)
}

// LogStats returns a run's log counters.
func (e *Engine) LogStats(ctx context.Context, id string) (store.LogStats, error) {
	return e.st.LogStats(ctx, id)
}

// RunAttempts returns the recorded earlier attempts of a run, in attempt
// order (store.AttemptStore).
func (e *Engine) RunAttempts(ctx context.Context, id string) ([]store.Attempt, error) {
	return e.st.RunAttempts(ctx, id)
}

// now is the engine's clock, truncated to the store's precision so that
// what the engine remembers equals what it wrote.
func (e *Engine) now() time.Time { return e.clk.Now().Truncate(time.Microsecond) }

// ServerID is this server's id.
func (e *Engine) ServerID() string { return e.cfg.ServerID }

// HeartbeatInterval is the interval workers are told to heartbeat at.
func (e *Engine) HeartbeatInterval() time.Duration { return e.live().HeartbeatInterval }

// fence is the server id that fences this server's reports: only while it
// holds a run may it change it. On an exclusive store no other server can
// take a run over, so there is nothing to fence and the cheaper statement
// is used.
func (e *Engine) fence() string {
	if e.cfg.ExclusiveStore {
		return ""
	}
	return e.cfg.ServerID
}
