package server

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/auth"
	"github.com/pluto-sched/pluto/internal/store"
)

// auditLog records state-changing calls in the store (GET /api/v1/audit).
// Entries are written by one goroutine in batches, off the request path:
// a submit does not wait for its audit row, and a burst of calls costs a
// few transactions, not one each. A failed write is retried with backoff
// until it commits; only if the store stays down long enough for
// auditMaxPending entries to pile up are the oldest dropped, and the drop
// is logged with its count (memory must stay bounded). Entries older than
// the retention are deleted hourly (any server may: deletes are
// idempotent).
type auditLog struct {
	st        store.Store
	log       *slog.Logger
	retention time.Duration

	mu      sync.Mutex
	pending []store.AuditEntry
	dropped int    // since last logged
	shifted uint64 // entries ever dropped from the head (overflow)
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

const (
	auditMaxPending = 1 << 16
	auditMaxBatch   = 1024
	auditPruneEvery = time.Hour
)

func newAuditLog(st store.Store, log *slog.Logger, retention time.Duration) *auditLog {
	if retention <= 0 {
		retention = auth.AuditRetention
	}
	a := &auditLog{st: st, log: log, retention: retention, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go a.run()
	return a
}

// record queues one entry. Safe on a nil *auditLog (auditing off).
func (a *auditLog) record(p *auth.Principal, action, target string, status int, detail string) {
	if a == nil || action == "" {
		return
	}
	e := store.AuditEntry{At: time.Now(), Actor: p.Name, Action: action, Target: clipAudit(target, store.MaxAuditField), Outcome: auditOutcome(status)}
	if status >= 300 {
		e.Detail = fmt.Sprintf("HTTP %d", status)
	}
	if detail != "" {
		e.Detail = clipAudit(detail, store.MaxAuditDetail)
	}
	a.add(e)
}

// recordGRPC queues the entry of a gRPC call.
func (a *auditLog) recordGRPC(p *auth.Principal, action, target string, err error) {
	if a == nil {
		return
	}
	e := store.AuditEntry{At: time.Now(), Actor: p.Name, Action: action, Target: clipAudit(target, store.MaxAuditField), Outcome: auth.OutcomeOK}
	if err != nil {
		e.Outcome, e.Detail = auth.OutcomeError, clipAudit(err.Error(), store.MaxAuditDetail)
	}
	a.add(e)
}

func (a *auditLog) add(e store.AuditEntry) {
	a.mu.Lock()
	if len(a.pending) >= auditMaxPending {
		a.pending = a.pending[1:]
		a.dropped++
		a.shifted++
	}
	a.pending = append(a.pending, e)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func auditOutcome(status int) string {
	switch {
	case status < 300:
		return auth.OutcomeOK
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return auth.OutcomeDenied
	default:
		return auth.OutcomeError
	}
}

// clipAudit cuts s to at most n bytes at a rune boundary.
func clipAudit(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

func (a *auditLog) run() {
	defer close(a.done)
	prune := time.NewTimer(time.Minute) // first prune soon after start
	defer prune.Stop()
	var (
		backoff time.Duration
		retry   <-chan time.Time // set while backing off: wakes wait for it
	)
	for {
		wake := a.wake
		if retry != nil {
			wake = nil // entries added during an outage wait for the retry
		}
		select {
		case <-a.stop:
			a.flushUntil(time.Now().Add(2 * time.Second))
			return
		case <-wake:
		case <-retry:
			retry = nil
		case <-prune.C:
			a.prune()
			prune.Reset(auditPruneEvery)
			continue
		}
		if err := a.flush(context.Background()); err != nil {
			backoff = min(max(2*backoff, 50*time.Millisecond), 5*time.Second)
			wait := backoff/2 + rand.N(backoff/2+1)
			retry = time.After(wait)
			a.log.Warn("writing the audit log; retrying", "err", err, "retry_in", wait)
			continue
		}
		backoff = 0
	}
}

// flush writes pending entries, a batch at a time, until none are left.
func (a *auditLog) flush(ctx context.Context) error {
	for {
		a.mu.Lock()
		n := min(len(a.pending), auditMaxBatch)
		batch := a.pending[:n:n]
		dropped, shifted := a.dropped, a.shifted
		a.dropped = 0
		a.mu.Unlock()
		if dropped > 0 {
			a.log.Error("audit entries dropped: the store refused writes while the queue was full", "dropped", dropped)
		}
		if n == 0 {
			return nil
		}
		err := a.st.Tx(ctx, func(tx store.Tx) error { return tx.AuditAppend(ctx, batch) })
		if err != nil {
			return err
		}
		a.mu.Lock()
		// Entries dropped from the head meanwhile were of this batch.
		written := n - int(min(a.shifted-shifted, uint64(n)))
		a.pending = a.pending[written:]
		if len(a.pending) == 0 {
			a.pending = nil
		}
		a.mu.Unlock()
	}
}

func (a *auditLog) flushUntil(deadline time.Time) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := a.flush(ctx); err != nil {
		a.mu.Lock()
		n := len(a.pending)
		a.mu.Unlock()
		a.log.Error("audit entries not written at stop", "entries", n, "err", err)
	}
}

func (a *auditLog) prune() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := auth.PruneAudit(ctx, a.st, time.Now().Add(-a.retention), 1000)
	if err != nil {
		a.log.Warn("pruning the audit log", "err", err)
		return
	}
	if n > 0 {
		a.log.Info("pruned the audit log", "deleted", n, "older_than", a.retention)
	}
}

// close writes what is pending (for up to two seconds) and stops.
func (a *auditLog) close() {
	if a == nil {
		return
	}
	close(a.stop)
	<-a.done
}
