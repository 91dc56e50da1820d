package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Dependencies between jobs (the engine's deps.go decides; the store
// reads slots and moves runs).
//
// A job's run for logical time T waits `blocked` while the job's trigger
// rule cannot yet be decided from its upstream jobs' runs for T; the
// engine then queues it, or ends it `skipped` naming the upstream run
// that decided. Both moves are conditional on the run still being
// blocked, so two servers deciding at once move it once.

// Trigger rules: when a run waiting on its upstream runs may go.
const (
	RuleAllSuccess = "all_success" // every upstream run succeeded (the default)
	RuleAllDone    = "all_done"    // every upstream run ended, however
	RuleOneSuccess = "one_success" // one upstream run succeeded
	RuleNoneFailed = "none_failed" // every upstream run ended, none failed or timed out
)

// TriggerRules are the known rules.
var TriggerRules = []string{RuleAllSuccess, RuleAllDone, RuleOneSuccess, RuleNoneFailed}

// Dependency is one upstream job of a job. Window 0 matches the upstream
// run of the same logical time; a positive Window matches the upstream's
// latest run with a logical time in (T-Window, T].
//
// Job.DependsOn keeps each as a string: the job's name, followed by "@"
// and the window in Go's duration syntax when it has one ("load@24h").
// "@" cannot appear in a job's name.
type Dependency struct {
	Job    string
	Window time.Duration
}

// String is the stored form of d.
func (d Dependency) String() string {
	if d.Window == 0 {
		return d.Job
	}
	return d.Job + "@" + d.Window.String()
}

// ParseDependency reads the stored form of a Dependency.
func ParseDependency(s string) (Dependency, error) {
	name, window, ok := strings.Cut(s, "@")
	d := Dependency{Job: name}
	if ok {
		w, err := time.ParseDuration(window)
		if err != nil || w <= 0 {
			return d, fmt.Errorf("dependency %q: the window after @ must be a positive duration", s)
		}
		d.Window = w
	}
	return d, nil
}

// RunSlotsParams lists the runs of Job whose logical time is in [From,
// To], latest logical time first, at most Limit (1 to 1000).
type RunSlotsParams struct {
	Job      string
	From, To time.Time
	Limit    int
}

// MaxSlotRuns bounds RunSlotsParams.Limit.
const MaxSlotRuns = 1000

// CheckSlots reports a RunSlotsParams no backend answers.
func CheckSlots(p RunSlotsParams) error {
	if p.Job == "" || p.Limit < 1 || p.Limit > MaxSlotRuns {
		return fmt.Errorf("RunListSlots: job %q, limit %d (1 to %d)", p.Job, p.Limit, MaxSlotRuns)
	}
	return nil
}

// RunGateParams moves run ID from status From to status To, if it is
// still in From. The moves: blocked → queued (its wait is over; run_at
// becomes Now if later), blocked → skipped (finished at Now with Error,
// its callback owed), and skipped → blocked (an upstream run was retried:
// finished_at, error and an undelivered callback are cleared).
type RunGateParams struct {
	ID    string
	From  RunStatus
	To    RunStatus
	Error string
	Now   time.Time
}

// CheckGate reports a move RunGate does not make.
func CheckGate(p RunGateParams) error {
	switch {
	case p.From == StatusBlocked && (p.To == StatusQueued || p.To == StatusSkipped):
	case p.From == StatusSkipped && p.To == StatusBlocked:
	default:
		return fmt.Errorf("run %s: no gate from %s to %s", p.ID, p.From, p.To)
	}
	return nil
}

// DepsTx is the write side of dependencies; part of Tx.
type DepsTx interface {
	// RunListSlots returns runs of a job by logical time (RunSlotsParams).
	RunListSlots(ctx context.Context, p RunSlotsParams) ([]*Run, error)
	// RunGate applies each move that still applies and returns, in input
	// order, the run after it (nil where the run was no longer in From or
	// is gone).
	RunGate(ctx context.Context, ps []RunGateParams) ([]*Run, error)
}
