package store

import (
	"context"
	"time"
)

// A run's attempt history. The runs row holds the current (or final)
// attempt only; each attempt that ended without ending the run leaves one
// row in the attempt history, written in the transaction of the change
// that ended it:
//
//   - RunFinish to pending (a retry after backoff) or queued (handed
//     back): outcome failed, timed_out or lost (AttemptOutcome);
//   - RunRequeueLost: outcome lost;
//   - RunRetry of a terminal run: the attempt it ended with, outcome its
//     terminal status (RetryAttempt).
//
// A finish that ends the run — nearly every one — writes nothing here:
// its attempt is the runs row itself. Retention deletes a run's rows with
// the run.

// Attempt is one attempt of a run. Times are zero when unset.
type Attempt struct {
	RunID        string
	Attempt      int
	WorkerID     string
	DispatchedAt time.Time
	StartedAt    time.Time
	EndedAt      time.Time
	// Outcome is failed, timed_out or lost for an attempt that ended
	// without ending the run; the terminal status (failed, timed_out,
	// cancelled…) of one an operator retried; and, for the current attempt
	// (AttemptHistory), the run's status.
	Outcome string
	Error   string
}

// OutcomeLost is the outcome of an attempt lost with its worker or its
// server, or handed back by its worker (drained), and requeued.
const OutcomeLost = "lost"

// MaxAttemptRows bounds what RunAttempts returns: the latest attempts of
// a run retried more often than that (the current attempt is derived from
// the latest ones, AttemptHistory).
const MaxAttemptRows = 1000

// AttemptStore reads the attempt history.
type AttemptStore interface {
	// RunAttempts returns the recorded attempts of a run, in attempt
	// order: the latest MaxAttemptRows of them. A run without any, or an
	// unknown run, has none (no error).
	RunAttempts(ctx context.Context, runID string) ([]Attempt, error)
}

// AttemptOutcome is the outcome recorded for a finish whose Status is
// not terminal: lost for a run handed back (queued), timed_out or failed
// for one to retry (pending).
func (p *RunFinishParams) AttemptOutcome() string {
	switch {
	case p.Lost || p.Status == StatusQueued:
		return OutcomeLost
	case p.TimedOut:
		return string(StatusTimedOut)
	}
	return string(StatusFailed)
}

// RetryAttempt is the attempt row an operator retry of prev (a terminal
// run) records: the attempt the run ended with. ok is false when the run
// never had an attempt (skipped, or cancelled before its first dispatch).
// A run cancelled while it waited for a retry has its last attempt
// recorded already; backends keep that row (the attempt failed; the
// cancel ended the run, not the attempt).
func RetryAttempt(prev *Run) (a Attempt, ok bool) {
	if prev.Attempt <= 0 {
		return Attempt{}, false
	}
	return Attempt{
		RunID:        prev.ID,
		Attempt:      prev.Attempt,
		WorkerID:     prev.WorkerID,
		DispatchedAt: prev.DispatchedAt,
		StartedAt:    prev.StartedAt,
		EndedAt:      prev.FinishedAt,
		Outcome:      string(prev.Status),
		Error:        prev.Error,
	}, true
}

// AttemptHistory is a run's earlier attempts (RunAttempts) followed by
// its current one, derived from the run: outcome the run's status, ended
// at its finish (zero while it is not finished). A run whose current
// attempt is recorded already (it waits for a retry, or was requeued and
// then cancelled) or that was never dispatched adds none.
func AttemptHistory(r *Run, earlier []Attempt) []Attempt {
	last := 0
	if n := len(earlier); n > 0 {
		last = earlier[n-1].Attempt
	}
	if r.Attempt <= last {
		return earlier
	}
	cur := Attempt{
		RunID:        r.ID,
		Attempt:      r.Attempt,
		WorkerID:     r.WorkerID,
		DispatchedAt: r.DispatchedAt,
		StartedAt:    r.StartedAt,
		EndedAt:      r.FinishedAt,
		Outcome:      string(r.Status),
	}
	if r.Status.Terminal() {
		// While the run is active its error is an earlier attempt's.
		cur.Error = r.Error
	}
	return append(earlier[:len(earlier):len(earlier)], cur)
}
