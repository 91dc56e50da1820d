package store

import (
	"testing"
	"time"
)

func TestAttemptOutcome(t *testing.T) {
	for _, c := range []struct {
		p    RunFinishParams
		want string
	}{
		{RunFinishParams{Status: StatusPending, Failure: true}, "failed"},
		{RunFinishParams{Status: StatusPending, Failure: true, TimedOut: true}, "timed_out"},
		{RunFinishParams{Status: StatusQueued, Lost: true}, "lost"},
		{RunFinishParams{Status: StatusQueued}, "lost"}, // handed back by its worker
	} {
		if got := c.p.AttemptOutcome(); got != c.want {
			t.Errorf("%+v: outcome %q, want %q", c.p, got, c.want)
		}
	}
}

func TestAttemptHistory(t *testing.T) {
	at := func(sec int) time.Time { return time.Unix(int64(sec), 0).UTC() }
	first := Attempt{RunID: "r", Attempt: 1, WorkerID: "w1", EndedAt: at(3), Outcome: "failed", Error: "boom"}
	running := &Run{ID: "r", Attempt: 2, Status: StatusRunning, WorkerID: "w2", DispatchedAt: at(10), StartedAt: at(11), Error: "boom"}
	h := AttemptHistory(running, []Attempt{first})
	if len(h) != 2 || h[1] != (Attempt{RunID: "r", Attempt: 2, WorkerID: "w2", DispatchedAt: at(10), StartedAt: at(11), Outcome: "running"}) {
		t.Errorf("running: %+v (the current attempt has no end and not the earlier error)", h)
	}
	failed := *running
	failed.Status, failed.FinishedAt, failed.Error = StatusFailed, at(12), "again"
	if h := AttemptHistory(&failed, []Attempt{first}); len(h) != 2 || h[1].Error != "again" || !h[1].EndedAt.Equal(at(12)) {
		t.Errorf("failed: %+v", h)
	}
	waiting := &Run{ID: "r", Attempt: 1, Status: StatusPending, Error: "boom"}
	if h := AttemptHistory(waiting, []Attempt{first}); len(h) != 1 {
		t.Errorf("waiting for a retry: %+v, want the recorded attempt only", h)
	}
	if h := AttemptHistory(&Run{ID: "r", Status: StatusQueued}, nil); len(h) != 0 {
		t.Errorf("never dispatched: %+v", h)
	}
	if _, ok := RetryAttempt(&Run{ID: "r", Status: StatusSkipped}); ok {
		t.Error("a skipped run's retry records an attempt")
	}
	if a, ok := RetryAttempt(&failed); !ok || a.Attempt != 2 || a.Outcome != "failed" || a.Error != "again" || !a.EndedAt.Equal(at(12)) {
		t.Errorf("retry of a failed run records %+v, %v", a, ok)
	}
}
