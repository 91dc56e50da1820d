package engine

import (
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Observer sees what the engine does, for metrics (the server's
// Prometheus collectors implement it). The engine calls it on its own
// goroutines, sometimes with its locks held: an Observer must only count,
// never block or call back into the engine.
type Observer interface {
	// Submitted counts new runs committed in group (any source: a submit,
	// a job trigger, a cron slot).
	Submitted(group string, n int)
	// Started: an attempt of a run of group and type started, wait after
	// it was due (submit → start for a run due at once).
	Started(group, typ string, wait time.Duration)
	// Finished: a run reached a terminal status; ran is how long its last
	// attempt ran (0 if it never started).
	Finished(group, typ string, status store.RunStatus, ran time.Duration)
	// Committed: one store transaction of ops committed, or failed with
	// err (the ops are retried).
	Committed(ops int, took time.Duration, err error)
	// CronFired: a cron slot fired this late after its time.
	CronFired(lateness time.Duration)
	// Reconciled: the reconciler repaired n things in one pass.
	Reconciled(n int)
	// RetentionDeleted: retention deleted n finished runs in status.
	RetentionDeleted(status store.RunStatus, n int)
	// LogLinesDropped: n log lines were dropped past their runs' log caps.
	LogLinesDropped(n int)
	// Alerted: an alert was stored for rule (the server that stored it
	// counts it).
	Alerted(rule string)
}

// nopObserver is the default Observer.
type nopObserver struct{}

func (nopObserver) Submitted(string, int)                                   {}
func (nopObserver) Started(string, string, time.Duration)                   {}
func (nopObserver) Finished(string, string, store.RunStatus, time.Duration) {}
func (nopObserver) Committed(int, time.Duration, error)                     {}
func (nopObserver) CronFired(time.Duration)                                 {}
func (nopObserver) Reconciled(int)                                          {}
func (nopObserver) RetentionDeleted(store.RunStatus, int)                   {}
func (nopObserver) LogLinesDropped(int)                                     {}
func (nopObserver) Alerted(string)                                          {}

// Term is the leader term this server leads in, 0 when it does not lead.
func (e *Engine) Term() int64 { return e.lead.term.Load() }
