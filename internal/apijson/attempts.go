package apijson

import "github.com/pluto-sched/pluto/internal/store"

// Attempts is the body of GET /api/v1/runs/{id}/attempts: the run's
// attempts in order, the earlier ones recorded as they ended and the
// current one as the run shows it.
type Attempts struct {
	Attempts []Attempt `json:"attempts"`
}

// Attempt is one attempt of a run. Outcome is failed, timed_out or lost
// for an attempt that ended without ending the run, the terminal status
// of one an operator retried, and the run's status for the current one.
// Unset values are omitted: ended_at while the attempt runs, worker_id
// before a worker took it, error when there is none.
type Attempt struct {
	Attempt      int     `json:"attempt"`
	WorkerID     string  `json:"worker_id,omitempty"`
	DispatchedAt *string `json:"dispatched_at,omitempty"`
	StartedAt    *string `json:"started_at,omitempty"`
	EndedAt      *string `json:"ended_at,omitempty"`
	Outcome      string  `json:"outcome"`
	Error        string  `json:"error,omitempty"`
}

// FromAttempts is a run's attempt history (store.AttemptHistory) as the
// API shows it; never nil.
func FromAttempts(as []store.Attempt) Attempts {
	out := Attempts{Attempts: make([]Attempt, len(as))}
	for i, a := range as {
		out.Attempts[i] = Attempt{
			Attempt:      a.Attempt,
			WorkerID:     a.WorkerID,
			DispatchedAt: OptTime(a.DispatchedAt),
			StartedAt:    OptTime(a.StartedAt),
			EndedAt:      OptTime(a.EndedAt),
			Outcome:      a.Outcome,
			Error:        a.Error,
		}
	}
	return out
}
