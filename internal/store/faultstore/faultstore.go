// Package faultstore wraps a store.Store and injects the faults a real
// database shows: calls that fail (a busy or broken database), calls that
// are slow, writes that commit and then report an error (the connection
// broke after COMMIT was sent), closed connections, and lost notification
// connections. It is the storage half of Pluto's deterministic simulation
// (internal/sim, docs/simulation.md) and is usable on its own in tests.
//
// Every fault is decided by a seeded math/rand/v2 source, one stream per
// method ("Tx", "Tx.RunClaim", "RunGet", ...), so the decisions for a
// method depend only on the seed and on how many times that method was
// called: a run replays its faults exactly as long as the calls come in the
// same order. Inside a testing/synctest bubble injected latency is a
// time.Sleep on the fake clock.
//
// The wrapper implements every method of store.Store and store.Tx by
// delegation, explicitly: a method added to either interface fails to
// compile here instead of bypassing the faults.
//
// Besides faults it can
//
//   - report every committed transaction's calls to an observer
//     (Options.OnCommit), including those it then reports as failed, so a
//     checker knows exactly what the store holds;
//   - deliver notifications between servers (Options.Bus) the way
//     PostgreSQL's LISTEN/NOTIFY does, on a store that has none (SQLite),
//     so several engines can share one store in a test.
package faultstore

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Faults is a fault profile: per-call probabilities (0 to 1). The zero
// value injects nothing.
type Faults struct {
	// Error: the call fails before it has any effect, with an error that
	// looks like a busy database.
	Error float64
	// Closed: the call fails before it has any effect, with a
	// closed-connection error.
	Closed float64
	// CommitError: a write (Tx, LeaderElect, LeaderResign,
	// ServerHeartbeat, ServerRemove) commits and then returns an error.
	CommitError float64
	// Latency: the call is delayed by up to MaxLatency (a transaction's
	// calls are delayed inside the transaction, holding it open).
	Latency    float64
	MaxLatency time.Duration
	// Slow, if not nil, limits latency to the methods for which it returns
	// true. (Inside a synctest bubble a goroutine waiting for a sync.Mutex
	// is not durably blocked, so fake time stops while one waits for a
	// caller that holds the mutex across a delayed store call: exclude
	// such calls from latency.)
	Slow func(method string) bool
	// Methods, if not nil, limits the faults to the methods for which it
	// returns true. Method names are the Store method ("Tx", "RunGet",
	// "Listen", ...) or "Tx." and the Tx method ("Tx.RunClaim").
	Methods func(method string) bool
}

func (f Faults) active() bool {
	return f.Error > 0 || f.Closed > 0 || f.CommitError > 0 || (f.Latency > 0 && f.MaxLatency > 0)
}

// Kind is a kind of injected failure.
type Kind int

const (
	// KindError is a transient failure before the call had any effect.
	KindError Kind = iota + 1
	// KindClosed is a closed connection before the call had any effect.
	KindClosed
	// KindCommitError is a write that committed but reported an error.
	KindCommitError
)

func (k Kind) String() string {
	switch k {
	case KindError:
		return "error"
	case KindClosed:
		return "closed"
	case KindCommitError:
		return "commit-error"
	}
	return "none"
}

// Fault is an injected error. Closed-connection faults wrap
// sql.ErrConnDone; none wraps a store sentinel (store.ErrNotFound,
// store.ErrConflict, store.ErrClosed), so a caller cannot mistake one for
// an answer.
type Fault struct {
	Method string
	Kind   Kind
}

func (f *Fault) Error() string {
	switch f.Kind {
	case KindClosed:
		return fmt.Sprintf("faultstore: %s: %v (injected)", f.Method, sql.ErrConnDone)
	case KindCommitError:
		return fmt.Sprintf("faultstore: %s: connection reset after COMMIT (injected; the write committed)", f.Method)
	}
	return fmt.Sprintf("faultstore: %s: database is locked (injected)", f.Method)
}

// Unwrap makes a closed-connection fault match sql.ErrConnDone.
func (f *Fault) Unwrap() error {
	if f.Kind == KindClosed {
		return sql.ErrConnDone
	}
	return nil
}

// Call is one successful call inside a committed transaction: the method
// ("RunFinish"), its params and its result, as the wrapped store saw them.
// Params and Result alias the caller's and the store's values: an observer
// must copy what it keeps and must not modify them.
type Call struct {
	Method string
	Params any
	Result any
}

// Commit is one committed transaction.
type Commit struct {
	Calls []Call
	// Reported is the error the caller got although the transaction
	// committed (a KindCommitError fault), or nil.
	Reported error
}

// Options configure a Store.
type Options struct {
	// Seed seeds the fault decisions.
	Seed uint64
	// Faults is the initial profile (SetFaults changes it).
	Faults Faults
	// OnCommit, if set, is called after every committed transaction, on
	// the goroutine that called Tx, before Tx returns. It must not call
	// the store.
	OnCommit func(Commit)
	// Bus, if set, carries notifications: Tx.Notify publishes on it when
	// the transaction commits and Listen receives from it, instead of the
	// wrapped store. Give every Store that wraps the same database the
	// same Bus.
	Bus *Bus
}

// Stats counts the faults injected so far.
type Stats struct {
	Calls   int // calls that could be faulted
	Errors  int
	Closed  int
	Commits int // commit-then-error
	Delays  int
	Delay   time.Duration // total injected latency
}

// Store is a fault-injecting store.Store.
type Store struct {
	inner store.Store
	opts  Options

	closeOnce sync.Once
	closing   chan struct{} // closed by Close: ends Bus listeners

	mu     sync.Mutex
	faults Faults
	rngs   map[string]*rand.Rand
	stats  Stats
}

var (
	_ store.Store = (*Store)(nil)
	_ store.Tx    = (*tx)(nil)
)

// New wraps inner.
func New(inner store.Store, opts Options) *Store {
	return &Store{inner: inner, opts: opts, faults: opts.Faults, rngs: make(map[string]*rand.Rand), closing: make(chan struct{})}
}

// Inner is the wrapped store.
func (s *Store) Inner() store.Store { return s.inner }

// SetFaults replaces the fault profile; the zero Faults turns faults off.
func (s *Store) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Faults returns the current profile.
func (s *Store) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Stats returns the faults injected so far.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// decision is what happens to one call.
type decision struct {
	delay time.Duration
	fault Kind // 0: none
}

// decide draws the fate of one call of method. Three numbers are drawn
// from the method's own stream whatever the profile, so one method's
// decisions do not shift when another's probabilities change.
func (s *Store) decide(method string, write bool) decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	if !f.active() || (f.Methods != nil && !f.Methods(method)) {
		return decision{}
	}
	r := s.rngs[method]
	if r == nil {
		h := fnv.New64a()
		h.Write([]byte(method))
		r = rand.New(rand.NewPCG(s.opts.Seed, h.Sum64()))
		s.rngs[method] = r
	}
	lat, x, frac := r.Float64(), r.Float64(), r.Float64()
	s.stats.Calls++
	var d decision
	if lat < f.Latency && f.MaxLatency > 0 && (f.Slow == nil || f.Slow(method)) {
		d.delay = time.Duration(frac*float64(f.MaxLatency)) + time.Microsecond
		s.stats.Delays++
		s.stats.Delay += d.delay
	}
	switch {
	case x < f.Error:
		d.fault = KindError
		s.stats.Errors++
	case x < f.Error+f.Closed:
		d.fault = KindClosed
		s.stats.Closed++
	case write && x < f.Error+f.Closed+f.CommitError:
		d.fault = KindCommitError
		s.stats.Commits++
	}
	return d
}

// before applies a call's delay and returns its error if it fails before
// having any effect.
func (s *Store) before(ctx context.Context, method string, write bool) (decision, error) {
	d := s.decide(method, write)
	if d.delay > 0 {
		t := time.NewTimer(d.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return d, ctx.Err()
		}
	}
	if d.fault == KindError || d.fault == KindClosed {
		return d, &Fault{Method: method, Kind: d.fault}
	}
	return d, nil
}

// after turns a successful write into a commit-then-error if so decided.
func after(d decision, method string, err error) error {
	if err == nil && d.fault == KindCommitError {
		return &Fault{Method: method, Kind: KindCommitError}
	}
	return err
}

// read runs a read-only call.
func read[R any](s *Store, ctx context.Context, method string, f func() (R, error)) (R, error) {
	if _, err := s.before(ctx, method, false); err != nil {
		var zero R
		return zero, err
	}
	return f()
}

// write runs a store-level write (outside Tx).
func write[R any](s *Store, ctx context.Context, method string, f func() (R, error)) (R, error) {
	d, err := s.before(ctx, method, true)
	if err != nil {
		var zero R
		return zero, err
	}
	r, err := f()
	return r, after(d, method, err)
}

// Name implements store.Store (never faulted).
func (s *Store) Name() string { return s.inner.Name() }

// Close implements store.Store (never faulted).
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	return s.inner.Close()
}

// Tx implements store.Store. A fault decided for "Tx" fails the call before
// the transaction begins or, for KindCommitError, after it committed; the
// transaction's own calls are decided one by one ("Tx.RunClaim", ...) and
// a failed one fails fn, which rolls the transaction back.
func (s *Store) Tx(ctx context.Context, fn func(tx store.Tx) error) error {
	d, err := s.before(ctx, "Tx", true)
	if err != nil {
		return err
	}
	var t *tx
	err = s.inner.Tx(ctx, func(itx store.Tx) error {
		t = &tx{s: s, inner: itx, notify: itx} // afresh for every attempt a backend makes
		defer func() { t.done = true }()
		return fn(t)
	})
	if err != nil {
		return err
	}
	return s.committed(t, after(d, "Tx", nil))
}

// LogTx implements store.Store as Tx does: a fault decided for "LogTx"
// fails the call before the transaction begins or after it committed,
// and its calls are decided as a Tx's ("Tx.LogAppend", "Tx.Notify").
func (s *Store) LogTx(ctx context.Context, fn func(tx store.LogTx) error) error {
	d, err := s.before(ctx, "LogTx", true)
	if err != nil {
		return err
	}
	var t *tx
	err = s.inner.LogTx(ctx, func(itx store.LogTx) error {
		t = &tx{s: s, logs: itx, notify: itx}
		defer func() { t.done = true }()
		return fn(logTx{t})
	})
	if err != nil {
		return err
	}
	return s.committed(t, after(d, "LogTx", nil))
}

// committed reports a committed transaction's calls and publishes its
// notifications; err is what the call returns.
func (s *Store) committed(t *tx, err error) error {
	if t == nil {
		return err
	}
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(Commit{Calls: t.calls, Reported: err})
	}
	if s.opts.Bus != nil && len(t.notes) > 0 {
		s.opts.Bus.publish(t.notes)
	}
	return err
}

// RunGet implements store.Store.
func (s *Store) RunGet(ctx context.Context, id string) (*store.Run, error) {
	return read(s, ctx, "RunGet", func() (*store.Run, error) { return s.inner.RunGet(ctx, id) })
}

// RunGetByKey implements store.Store.
func (s *Store) RunGetByKey(ctx context.Context, key string) (*store.Run, error) {
	return read(s, ctx, "RunGetByKey", func() (*store.Run, error) { return s.inner.RunGetByKey(ctx, key) })
}

// RunList implements store.Store.
func (s *Store) RunList(ctx context.Context, p store.RunListParams) (store.RunPage, error) {
	return read(s, ctx, "RunList", func() (store.RunPage, error) { return s.inner.RunList(ctx, p) })
}

// RunListActive implements store.Store.
func (s *Store) RunListActive(ctx context.Context, p store.RunListActiveParams) ([]*store.Run, error) {
	return read(s, ctx, "RunListActive", func() ([]*store.Run, error) { return s.inner.RunListActive(ctx, p) })
}

// RunNextPendingAt implements store.Store.
func (s *Store) RunNextPendingAt(ctx context.Context) (time.Time, error) {
	return read(s, ctx, "RunNextPendingAt", func() (time.Time, error) { return s.inner.RunNextPendingAt(ctx) })
}

// RunCountByGroup implements store.Store.
func (s *Store) RunCountByGroup(ctx context.Context) ([]store.GroupCount, error) {
	return read(s, ctx, "RunCountByGroup", func() ([]store.GroupCount, error) { return s.inner.RunCountByGroup(ctx) })
}

// RunStats implements store.Store.
func (s *Store) RunStats(ctx context.Context, p store.StatsParams) (store.Stats, error) {
	return read(s, ctx, "RunStats", func() (store.Stats, error) { return s.inner.RunStats(ctx, p) })
}

// LogList implements store.Store.
func (s *Store) LogList(ctx context.Context, p store.LogListParams) ([]store.LogEntry, error) {
	return read(s, ctx, "LogList", func() ([]store.LogEntry, error) { return s.inner.LogList(ctx, p) })
}

// LogStats implements store.Store.
func (s *Store) LogStats(ctx context.Context, runID string) (store.LogStats, error) {
	return read(s, ctx, "LogStats", func() (store.LogStats, error) { return s.inner.LogStats(ctx, runID) })
}

// RunAttempts implements store.Store.
func (s *Store) RunAttempts(ctx context.Context, runID string) ([]store.Attempt, error) {
	return read(s, ctx, "RunAttempts", func() ([]store.Attempt, error) { return s.inner.RunAttempts(ctx, runID) })
}

// JobGet implements store.JobStore.
func (s *Store) JobGet(ctx context.Context, name string) (*store.Job, error) {
	return read(s, ctx, "JobGet", func() (*store.Job, error) { return s.inner.JobGet(ctx, name) })
}

// JobList implements store.JobStore.
func (s *Store) JobList(ctx context.Context) ([]*store.Job, error) {
	return read(s, ctx, "JobList", func() ([]*store.Job, error) { return s.inner.JobList(ctx) })
}

// BackfillGet implements store.BackfillStore.
func (s *Store) BackfillGet(ctx context.Context, id string) (*store.Backfill, error) {
	return read(s, ctx, "BackfillGet", func() (*store.Backfill, error) { return s.inner.BackfillGet(ctx, id) })
}

// BackfillList implements store.BackfillStore.
func (s *Store) BackfillList(ctx context.Context, limit int) ([]*store.Backfill, error) {
	return read(s, ctx, "BackfillList", func() ([]*store.Backfill, error) { return s.inner.BackfillList(ctx, limit) })
}

// JobNextFire implements store.JobStore.
func (s *Store) JobNextFire(ctx context.Context) (time.Time, error) {
	return read(s, ctx, "JobNextFire", func() (time.Time, error) { return s.inner.JobNextFire(ctx) })
}

// CallbackNextAt implements store.CallbackStore.
func (s *Store) CallbackNextAt(ctx context.Context) (time.Time, error) {
	return read(s, ctx, "CallbackNextAt", func() (time.Time, error) { return s.inner.CallbackNextAt(ctx) })
}

// AlertList implements store.AlertStore.
func (s *Store) AlertList(ctx context.Context, p store.AlertListParams) ([]*store.Alert, error) {
	return read(s, ctx, "AlertList", func() ([]*store.Alert, error) { return s.inner.AlertList(ctx, p) })
}

// AlertNextAt implements store.AlertStore.
func (s *Store) AlertNextAt(ctx context.Context) (time.Time, error) {
	return read(s, ctx, "AlertNextAt", func() (time.Time, error) { return s.inner.AlertNextAt(ctx) })
}

// GroupAlertsList implements store.AlertStore.
func (s *Store) GroupAlertsList(ctx context.Context) (map[string]*store.AlertRules, error) {
	return read(s, ctx, "GroupAlertsList", func() (map[string]*store.AlertRules, error) { return s.inner.GroupAlertsList(ctx) })
}

// FanoutListJoinable implements store.FanoutStore.
func (s *Store) FanoutListJoinable(ctx context.Context, limit int) ([]*store.Fanout, error) {
	return read(s, ctx, "FanoutListJoinable", func() ([]*store.Fanout, error) { return s.inner.FanoutListJoinable(ctx, limit) })
}

func (s *Store) FanoutRead(ctx context.Context, parentID string) (*store.Fanout, error) {
	return read(s, ctx, "FanoutRead", func() (*store.Fanout, error) { return s.inner.FanoutRead(ctx, parentID) })
}

// LeaderElect implements store.Store.
func (s *Store) LeaderElect(ctx context.Context, p store.LeaderElectParams) (store.Leader, error) {
	return write(s, ctx, "LeaderElect", func() (store.Leader, error) { return s.inner.LeaderElect(ctx, p) })
}

// LeaderResign implements store.Store.
func (s *Store) LeaderResign(ctx context.Context, serverID string, term int64) error {
	_, err := write(s, ctx, "LeaderResign", func() (struct{}, error) {
		return struct{}{}, s.inner.LeaderResign(ctx, serverID, term)
	})
	return err
}

// LeaderGet implements store.Store.
func (s *Store) LeaderGet(ctx context.Context) (store.Leader, error) {
	return read(s, ctx, "LeaderGet", func() (store.Leader, error) { return s.inner.LeaderGet(ctx) })
}

// ServerHeartbeat implements store.Store.
func (s *Store) ServerHeartbeat(ctx context.Context, si store.ServerInfo) error {
	_, err := write(s, ctx, "ServerHeartbeat", func() (struct{}, error) {
		return struct{}{}, s.inner.ServerHeartbeat(ctx, si)
	})
	return err
}

// ServerList implements store.Store.
func (s *Store) ServerList(ctx context.Context) ([]store.ServerInfo, error) {
	return read(s, ctx, "ServerList", func() ([]store.ServerInfo, error) { return s.inner.ServerList(ctx) })
}

// ServerRemove implements store.Store.
func (s *Store) ServerRemove(ctx context.Context, id string) error {
	_, err := write(s, ctx, "ServerRemove", func() (struct{}, error) {
		return struct{}{}, s.inner.ServerRemove(ctx, id)
	})
	return err
}

// Listen implements store.Store. A fault fails it at once, as a lost
// notification connection does (callers listen again). With a Bus it
// receives what every Store on that Bus publishes.
func (s *Store) Listen(ctx context.Context, fn func(store.Notification)) error {
	if _, err := s.before(ctx, "Listen", false); err != nil {
		return err
	}
	if s.opts.Bus != nil {
		select {
		case <-s.closing:
			return fmt.Errorf("faultstore: Listen: %w", store.ErrClosed)
		default:
		}
		if err := s.opts.Bus.listen(ctx, s.closing, fn); err != nil {
			return err
		}
		return fmt.Errorf("faultstore: Listen: %w", store.ErrClosed)
	}
	return s.inner.Listen(ctx, fn)
}

// tx wraps one attempt of a transaction: a Tx's (inner) or a LogTx's
// (logs).
type tx struct {
	s      *Store
	inner  store.Tx
	logs   store.LogTx
	notify interface {
		Notify(ctx context.Context, n store.Notification) error
	}
	calls []Call
	notes []store.Notification
	done  bool
}

// txCall runs one call inside the transaction: a fault fails it without
// calling the wrapped store (the caller's error rolls the transaction
// back); a success is recorded for OnCommit.
func txCall[P, R any](t *tx, ctx context.Context, method string, p P, f func() (R, error)) (R, error) {
	if t.done {
		var zero R
		return zero, fmt.Errorf("faultstore: Tx.%s: the transaction has ended", method)
	}
	if _, err := t.s.before(ctx, "Tx."+method, false); err != nil {
		var zero R
		return zero, err
	}
	r, err := f()
	if err == nil && t.s.opts.OnCommit != nil {
		t.calls = append(t.calls, Call{Method: method, Params: p, Result: r})
	}
	return r, err
}

func (t *tx) RunInsert(ctx context.Context, runs []store.RunInsertParams) ([]store.RunInsertResult, error) {
	return txCall(t, ctx, "RunInsert", runs, func() ([]store.RunInsertResult, error) { return t.inner.RunInsert(ctx, runs) })
}

func (t *tx) RunClaim(ctx context.Context, p store.RunClaimParams) ([]*store.Run, error) {
	return txCall(t, ctx, "RunClaim", p, func() ([]*store.Run, error) { return t.inner.RunClaim(ctx, p) })
}

func (t *tx) RunStart(ctx context.Context, p []store.RunStartParams) ([]bool, error) {
	return txCall(t, ctx, "RunStart", p, func() ([]bool, error) { return t.inner.RunStart(ctx, p) })
}

func (t *tx) RunFinish(ctx context.Context, p []store.RunFinishParams) ([]store.RunFinishResult, error) {
	return txCall(t, ctx, "RunFinish", p, func() ([]store.RunFinishResult, error) { return t.inner.RunFinish(ctx, p) })
}

func (t *tx) RunCancel(ctx context.Context, p store.RunCancelParams) (store.RunCancelResult, error) {
	return txCall(t, ctx, "RunCancel", p, func() (store.RunCancelResult, error) { return t.inner.RunCancel(ctx, p) })
}

func (t *tx) RunRetry(ctx context.Context, p store.RunRetryParams) (*store.Run, error) {
	return txCall(t, ctx, "RunRetry", p, func() (*store.Run, error) { return t.inner.RunRetry(ctx, p) })
}

func (t *tx) RunPromote(ctx context.Context, p store.RunPromoteParams) ([]*store.Run, error) {
	return txCall(t, ctx, "RunPromote", p, func() ([]*store.Run, error) { return t.inner.RunPromote(ctx, p) })
}

// logTx is the store.LogTx of one LogTx call.
type logTx struct{ t *tx }

func (l logTx) LogAppend(ctx context.Context, p store.LogAppendParams) (store.LogAppendResult, error) {
	return txCall(l.t, ctx, "LogAppend", p, func() (store.LogAppendResult, error) { return l.t.logs.LogAppend(ctx, p) })
}

func (l logTx) Notify(ctx context.Context, n store.Notification) error { return l.t.Notify(ctx, n) }

func (t *tx) RunAdopt(ctx context.Context, p []store.RunAdoptParams) ([]bool, error) {
	return txCall(t, ctx, "RunAdopt", p, func() ([]bool, error) { return t.inner.RunAdopt(ctx, p) })
}

func (t *tx) RunRequeueLost(ctx context.Context, p store.RunRequeueLostParams) ([]*store.Run, error) {
	return txCall(t, ctx, "RunRequeueLost", p, func() ([]*store.Run, error) { return t.inner.RunRequeueLost(ctx, p) })
}

func (t *tx) JobPut(ctx context.Context, p store.JobPutParams) (*store.Job, bool, error) {
	type put struct {
		job     *store.Job
		created bool
	}
	r, err := txCall(t, ctx, "JobPut", p, func() (put, error) {
		j, c, err := t.inner.JobPut(ctx, p)
		return put{j, c}, err
	})
	return r.job, r.created, err
}

func (t *tx) JobDelete(ctx context.Context, name string) error {
	_, err := txCall(t, ctx, "JobDelete", name, func() (struct{}, error) { return struct{}{}, t.inner.JobDelete(ctx, name) })
	return err
}

func (t *tx) JobPause(ctx context.Context, p store.JobPauseParams) (*store.Job, error) {
	return txCall(t, ctx, "JobPause", p, func() (*store.Job, error) { return t.inner.JobPause(ctx, p) })
}

func (t *tx) JobListDue(ctx context.Context, p store.JobListDueParams) ([]*store.Job, error) {
	return txCall(t, ctx, "JobListDue", p, func() ([]*store.Job, error) { return t.inner.JobListDue(ctx, p) })
}

func (t *tx) JobAdvance(ctx context.Context, ps []store.JobAdvanceParams) ([]bool, error) {
	return txCall(t, ctx, "JobAdvance", ps, func() ([]bool, error) { return t.inner.JobAdvance(ctx, ps) })
}

func (t *tx) RunListActiveForJob(ctx context.Context, job string, limit int) ([]*store.Run, error) {
	return txCall(t, ctx, "RunListActiveForJob", job, func() ([]*store.Run, error) { return t.inner.RunListActiveForJob(ctx, job, limit) })
}

func (t *tx) RunUnblockNext(ctx context.Context, job string, now time.Time) (*store.Run, error) {
	return txCall(t, ctx, "RunUnblockNext", job, func() (*store.Run, error) { return t.inner.RunUnblockNext(ctx, job, now) })
}

func (t *tx) BackfillCreate(ctx context.Context, b *store.Backfill) error {
	_, err := txCall(t, ctx, "BackfillCreate", b, func() (struct{}, error) { return struct{}{}, t.inner.BackfillCreate(ctx, b) })
	return err
}

func (t *tx) BackfillUpdate(ctx context.Context, b *store.Backfill) (*store.Backfill, bool, error) {
	type upd struct {
		b  *store.Backfill
		ok bool
	}
	r, err := txCall(t, ctx, "BackfillUpdate", b, func() (upd, error) {
		out, ok, err := t.inner.BackfillUpdate(ctx, b)
		return upd{out, ok}, err
	})
	return r.b, r.ok, err
}

func (t *tx) RunListSlots(ctx context.Context, p store.RunSlotsParams) ([]*store.Run, error) {
	return txCall(t, ctx, "RunListSlots", p, func() ([]*store.Run, error) { return t.inner.RunListSlots(ctx, p) })
}

func (t *tx) RunGate(ctx context.Context, p []store.RunGateParams) ([]*store.Run, error) {
	return txCall(t, ctx, "RunGate", p, func() ([]*store.Run, error) { return t.inner.RunGate(ctx, p) })
}

func (t *tx) CallbackListDue(ctx context.Context, p store.CallbackListDueParams) ([]*store.Run, error) {
	return txCall(t, ctx, "CallbackListDue", p, func() ([]*store.Run, error) { return t.inner.CallbackListDue(ctx, p) })
}

func (t *tx) CallbackRecord(ctx context.Context, p []store.CallbackRecordParams) ([]bool, error) {
	return txCall(t, ctx, "CallbackRecord", p, func() ([]bool, error) { return t.inner.CallbackRecord(ctx, p) })
}

func (t *tx) AlertInsert(ctx context.Context, as []*store.Alert) ([]bool, error) {
	return txCall(t, ctx, "AlertInsert", as, func() ([]bool, error) { return t.inner.AlertInsert(ctx, as) })
}

func (t *tx) AlertListDue(ctx context.Context, p store.CallbackListDueParams) ([]*store.Alert, error) {
	return txCall(t, ctx, "AlertListDue", p, func() ([]*store.Alert, error) { return t.inner.AlertListDue(ctx, p) })
}

func (t *tx) AlertRecord(ctx context.Context, p []store.CallbackRecordParams) ([]bool, error) {
	return txCall(t, ctx, "AlertRecord", p, func() ([]bool, error) { return t.inner.AlertRecord(ctx, p) })
}

func (t *tx) GroupAlertsPut(ctx context.Context, group string, r *store.AlertRules, now time.Time) error {
	_, err := txCall(t, ctx, "GroupAlertsPut", group, func() (struct{}, error) {
		return struct{}{}, t.inner.GroupAlertsPut(ctx, group, r, now)
	})
	return err
}

func (t *tx) FanoutCreate(ctx context.Context, p store.FanoutCreateParams) (store.RunInsertResult, error) {
	return txCall(t, ctx, "FanoutCreate", p, func() (store.RunInsertResult, error) { return t.inner.FanoutCreate(ctx, p) })
}

func (t *tx) FanoutGet(ctx context.Context, parentID string) (*store.Fanout, error) {
	return txCall(t, ctx, "FanoutGet", parentID, func() (*store.Fanout, error) { return t.inner.FanoutGet(ctx, parentID) })
}

func (t *tx) FanoutSetMerge(ctx context.Context, parentID, mergeID string) error {
	_, err := txCall(t, ctx, "FanoutSetMerge", [2]string{parentID, mergeID}, func() (struct{}, error) {
		return struct{}{}, t.inner.FanoutSetMerge(ctx, parentID, mergeID)
	})
	return err
}

func (t *tx) FanoutFinish(ctx context.Context, p store.FanoutFinishParams) (*store.Run, error) {
	return txCall(t, ctx, "FanoutFinish", p, func() (*store.Run, error) { return t.inner.FanoutFinish(ctx, p) })
}

// Expanded is the Result of a FanoutExpand call (Commit.Calls): the
// parent and its children, nil when the expand did not apply.
type Expanded struct {
	Parent   *store.Run
	Children []*store.Run
}

func (t *tx) FanoutExpand(ctx context.Context, p store.FanoutExpandParams) (*store.Run, []*store.Run, error) {
	r, err := txCall(t, ctx, "FanoutExpand", p, func() (Expanded, error) {
		parent, children, err := t.inner.FanoutExpand(ctx, p)
		return Expanded{parent, children}, err
	})
	return r.Parent, r.Children, err
}

func (t *tx) FanoutMap(ctx context.Context, p store.FanoutMapParams) (store.FanoutMapResult, error) {
	return txCall(t, ctx, "FanoutMap", p, func() (store.FanoutMapResult, error) { return t.inner.FanoutMap(ctx, p) })
}

func (t *tx) FanoutRelease(ctx context.Context, p store.FanoutReleaseParams) (*store.Run, error) {
	return txCall(t, ctx, "FanoutRelease", p, func() (*store.Run, error) { return t.inner.FanoutRelease(ctx, p) })
}

func (t *tx) FanoutReopen(ctx context.Context, p store.FanoutReopenParams) (*store.Run, error) {
	return txCall(t, ctx, "FanoutReopen", p, func() (*store.Run, error) { return t.inner.FanoutReopen(ctx, p) })
}

func (t *tx) FanoutResults(ctx context.Context, parentID string, from, limit int) ([]store.ChildResult, error) {
	return txCall(t, ctx, "FanoutResults", parentID, func() ([]store.ChildResult, error) {
		return t.inner.FanoutResults(ctx, parentID, from, limit)
	})
}

func (t *tx) RunDeleteFinished(ctx context.Context, p store.RunDeleteParams) (store.RunDeleteResult, error) {
	return txCall(t, ctx, "RunDeleteFinished", p, func() (store.RunDeleteResult, error) { return t.inner.RunDeleteFinished(ctx, p) })
}

// Notify implements store.Tx. With a Bus the notification is kept and
// published when the transaction commits; otherwise the wrapped store
// publishes it.
func (t *tx) Notify(ctx context.Context, n store.Notification) error {
	_, err := txCall(t, ctx, "Notify", n, func() (struct{}, error) {
		if t.s.opts.Bus != nil {
			t.notes = append(t.notes, n)
			return struct{}{}, nil
		}
		return struct{}{}, t.notify.Notify(ctx, n)
	})
	return err
}

// RunSeries implements store.Store.
func (s *Store) RunSeries(ctx context.Context, p store.SeriesParams) (store.Series, error) {
	return read(s, ctx, "RunSeries", func() (store.Series, error) { return s.inner.RunSeries(ctx, p) })
}

// AlertDeleteBefore implements store.Tx.
func (t *tx) AlertDeleteBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	return txCall(t, ctx, "AlertDeleteBefore", before, func() (int, error) { return t.inner.AlertDeleteBefore(ctx, before, limit) })
}
