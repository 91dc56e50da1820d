package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// recoveryBound is the sanity bound on every recovery time. The issue's
// bars (a worker SIGKILL recovered within 15 s by default, 3 s with 1 s
// heartbeats) are measured and printed, not asserted: timing on a loaded
// CI machine is not a correctness property.
const recoveryBound = 60 * time.Second

// scenario is one fault-injection run: its files, the runs acknowledged to
// clients, and the measurements printed in its summary line.
type scenario struct {
	t           *testing.T
	name        string
	dir         string
	execLog     string // every executed attempt: "run-id attempt"
	completions string // the servers' --completion-log

	mu      sync.Mutex
	acked   []string
	refused []refusal // submissions without an acknowledgement, by burst
	// slowest is the longest a burst's client waited for an
	// acknowledgement, and when it sent that submission.
	slowest     time.Duration
	slowestSent time.Time
	metrics     []string
	// output is a shell command each run executes after it slept (to
	// print something), or "".
	output string
	// unloggedOK is how many accepted completions may be missing from the
	// completion log: a SIGKILLed server loses the audit lines of what it
	// committed just before it died (the store has the completions).
	unloggedOK int
}

func newScenario(t *testing.T, name string) *scenario {
	dir := t.TempDir()
	return &scenario{t: t, name: name, dir: dir,
		execLog: filepath.Join(dir, "exec.log"), completions: filepath.Join(dir, "completions.log")}
}

// serverArgs are a server's flags: the given store (for "", SQLite in the
// scenario's directory), the completion log, and extra.
func (s *scenario) serverArgs(store string, extra ...string) []string {
	if store == "" {
		store = "sqlite:" + filepath.Join(s.dir, "pluto.db")
	}
	return append([]string{"--store", store, "--completion-log", s.completions}, extra...)
}

// shell is a shell run that records its attempt, then sleeps (then runs
// s.output).
func (s *scenario) shell(sleep string) map[string]any {
	cmd := fmt.Sprintf(`echo "$PLUTO_RUN_ID $PLUTO_ATTEMPT" >> %s; sleep %s`, s.execLog, sleep)
	if s.output != "" {
		cmd += "; " + s.output
	}
	return map[string]any{"type": "shell", "group": "default", "payload": map[string]string{"cmd": cmd}}
}

// submit submits n shell runs in one batch and records them as acknowledged.
func (s *scenario) submit(a proc.API, n int, sleep string) []string {
	s.t.Helper()
	specs := make([]map[string]any, n)
	for i := range specs {
		specs[i] = s.shell(sleep)
	}
	var batch struct{ Items []proc.Run }
	if code := a.Do("POST", "/api/v1/runs", map[string]any{"runs": specs}, &batch); code != 201 || len(batch.Items) != n {
		s.t.Fatalf("submit: HTTP %d, %d runs", code, len(batch.Items))
	}
	ids := make([]string, n)
	for i, r := range batch.Items {
		ids[i] = r.ID
	}
	s.ack(ids...)
	return ids
}

// ack records runs a server acknowledged (HTTP 201) to a client.
func (s *scenario) ack(ids ...string) {
	s.mu.Lock()
	s.acked = append(s.acked, ids...)
	s.mu.Unlock()
}

// refusal is a submission a client sent that was not acknowledged: a
// transport error or an answer other than 201.
type refusal struct {
	at   time.Time
	err  error
	code int
}

func (s *scenario) refuse(err error, code int) {
	s.mu.Lock()
	s.refused = append(s.refused, refusal{at: time.Now(), err: err, code: code})
	s.mu.Unlock()
}

// ackTook records how long a client waited for an acknowledgement.
func (s *scenario) ackTook(sent time.Time, d time.Duration) {
	s.mu.Lock()
	if d > s.slowest {
		s.slowest, s.slowestSent = d, sent
	}
	s.mu.Unlock()
}

// slowestAck is the longest a client waited for an acknowledgement and
// when it sent that submission.
func (s *scenario) slowestAck() (time.Duration, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slowest, s.slowestSent
}

// refusals returns the submissions not acknowledged since t.
// reportSubmits records what a fault at `at` cost the submitters: the
// submissions refused since (the first three logged, as happening after
// what), those never answered, and the slowest acknowledgement with when
// it was sent (metric slowest_ack_sent_after_<name>).
func (s *scenario) reportSubmits(refused []refusal, at time.Time, name, what string, unanswered int64) {
	s.metric("refused_from_fault", len(refused))
	s.metric("refused_as", refusalKinds(refused))
	for i, r := range refused {
		if i < 3 {
			s.t.Logf("refused %v after %s: HTTP %d %v", r.at.Sub(at).Round(time.Millisecond), what, r.code, r.err)
		}
	}
	s.metric("unanswered", unanswered)
	slowest, sent := s.slowestAck()
	s.metric("slowest_ack", slowest)
	s.metric("slowest_ack_sent_after_"+name, sent.Sub(at))
}

func (s *scenario) refusals(since time.Time) []refusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []refusal
	for _, r := range s.refused {
		if !r.at.Before(since) {
			out = append(out, r)
		}
	}
	return out
}

func (s *scenario) ackedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.acked)
}

// metric records a measurement for the summary line.
func (s *scenario) metric(name string, v any) {
	if d, ok := v.(time.Duration); ok {
		v = d.Round(10 * time.Millisecond)
	}
	s.metrics = append(s.metrics, fmt.Sprintf("%s=%v", name, v))
}

// recovery records a recovery time, failing the test if it exceeds the
// sanity bound.
func (s *scenario) recovery(name string, d time.Duration) {
	s.t.Helper()
	s.metric(name, d)
	if d > recoveryBound {
		s.t.Errorf("%s: %s took %v, more than the %v sanity bound", s.name, name, d, recoveryBound)
	}
}

// settle polls the runs until every acknowledged one is terminal (or
// within has passed) and returns every run the server knows, by ID.
func (s *scenario) settle(a proc.API, within time.Duration) map[string]proc.Run {
	s.t.Helper()
	ids := s.ackedIDs()
	deadline := time.Now().Add(within)
	for {
		all, err := a.List("")
		if err == nil {
			byID := make(map[string]proc.Run, len(all))
			for _, r := range all {
				byID[r.ID] = r
			}
			done := true
			for _, id := range ids {
				if !byID[id].Terminal() {
					done = false
					break
				}
			}
			if done || time.Now().After(deadline) {
				return byID
			}
		} else if time.Now().After(deadline) {
			s.t.Fatalf("listing runs: %v", err)
		}
		time.Sleep(200 * time.Millisecond) // polling another process's state
	}
}

// settleAfter is settle for a fault that cleared at cleared: every
// acknowledged run must be terminal within bound of it. It fails the test
// (NOT TERMINAL, and not_terminal in the summary) for each that is not.
func (s *scenario) settleAfter(a proc.API, cleared time.Time, bound time.Duration) map[string]proc.Run {
	s.t.Helper()
	runs := s.settle(a, time.Until(cleared.Add(bound)))
	pending := 0
	for _, id := range s.ackedIDs() {
		if r := runs[id]; !r.Terminal() {
			if pending++; pending <= 10 {
				s.t.Errorf("NOT TERMINAL: run %s is %q (attempt %d) %v after the fault cleared", id, r.Status, r.Attempt, bound)
			}
		}
	}
	if pending > 0 {
		s.metric("not_terminal", pending)
	}
	return runs
}

// awaitRunning polls until pred holds for the running runs, and returns
// them.
func awaitRunning(t *testing.T, a proc.API, within time.Duration, what string, pred func([]proc.Run) bool) []proc.Run {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		running := a.MustList("status=running")
		if pred(running) {
			return running
		}
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %v: %d runs running", what, within, len(running))
		}
		time.Sleep(50 * time.Millisecond) // polling another process's state
	}
}

// executing returns a predicate: at least n runs running on worker whose
// commands have started (their attempt is in the exec log), so that a
// fault hits commands mid-run, not runs whose process is still being
// spawned.
func (s *scenario) executing(worker string, n int) func([]proc.Run) bool {
	return func(rs []proc.Run) bool {
		b, err := os.ReadFile(s.execLog)
		if err != nil {
			return false
		}
		started := map[string]bool{}
		for _, line := range strings.Split(string(b), "\n") {
			started[line] = true
		}
		c := 0
		for _, r := range rs {
			if proc.Deref(r.WorkerID) == worker && started[fmt.Sprintf("%s %d", r.ID, r.Attempt)] {
				c++
			}
		}
		return c >= n
	}
}

// awaitSucceeded polls until at least n runs have succeeded.
func awaitSucceeded(t *testing.T, a proc.API, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var page struct{ Items []proc.Run }
		a.Do("GET", fmt.Sprintf("/api/v1/runs?status=succeeded&limit=%d", n), nil, &page)
		if len(page.Items) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs succeeded after %v, want %d", len(page.Items), within, n)
		}
		time.Sleep(50 * time.Millisecond) // polling another process's state
	}
}

// verdict counts lost runs and duplicates over the final states, logs the
// scenario's summary line and fails the test on any loss or duplicate.
func (s *scenario) verdict(runs map[string]proc.Run) {
	t := s.t
	t.Helper()
	ids := s.ackedIDs()
	lost := 0
	for _, id := range ids {
		if r := runs[id]; r.Status != "succeeded" {
			lost++
			if lost <= 10 {
				t.Errorf("LOST: run %s was acknowledged but is %q (attempt %d, error %q)", id, r.Status, r.Attempt, proc.Deref(r.Error))
			}
		}
	}
	// Accepted terminal statuses per run, over every server's log.
	completions := map[string]int{}
	if _, err := os.Stat(s.completions); err == nil {
		completions = proc.CountLines(t, s.completions, 0)
	}
	dupCompletions, unlogged := 0, 0
	for id, n := range completions {
		if n > 1 {
			dupCompletions++
			t.Errorf("DUPLICATE: run %s has %d accepted terminal statuses", id, n)
		}
	}
	for _, id := range ids {
		if runs[id].Terminal() && completions[id] == 0 {
			unlogged++
		}
	}
	if unlogged > s.unloggedOK {
		t.Errorf("%d terminal runs missing from the completion log (at most %d may be lost with a killed server's last lines)", unlogged, s.unloggedOK)
	}
	// Attempts executed: each at most once; a run may execute again under
	// a new attempt after its worker was given up (at least once).
	dupAttempts, reexecuted := 0, 0
	attempts := map[string]int{}
	if _, err := os.Stat(s.execLog); err == nil {
		for line, n := range proc.CountLines(t, s.execLog, -1) {
			if n > 1 {
				dupAttempts++
				t.Errorf("DUPLICATE: attempt %q executed %d times", line, n)
			}
			attempts[strings.Fields(line)[0]]++
		}
	}
	for _, n := range attempts {
		if n > 1 {
			reexecuted++
		}
	}
	for _, id := range ids {
		if runs[id].Status == "succeeded" && attempts[id] == 0 {
			t.Errorf("run %s succeeded but its command never ran", id)
		}
	}
	line := fmt.Sprintf("%-34s acked=%d lost=%d dup_completions=%d dup_attempts=%d reexecuted=%d unlogged=%d %s",
		s.name, len(ids), lost, dupCompletions, dupAttempts, reexecuted, unlogged, strings.Join(s.metrics, " "))
	t.Log("SUMMARY " + line)
	summaryMu.Lock()
	summaries = append(summaries, line)
	summaryMu.Unlock()
}

// span returns the earliest and latest of the times picked from runs
// (nil times ignored); ok is false if there are none.
func span(runs []proc.Run, pick func(proc.Run) *time.Time) (first, last time.Time, ok bool) {
	for _, r := range runs {
		at := pick(r)
		if at == nil {
			continue
		}
		if !ok || at.Before(first) {
			first = *at
		}
		if !ok || at.After(last) {
			last = *at
		}
		ok = true
	}
	return first, last, ok
}

func startedAt(r proc.Run) *time.Time  { return r.StartedAt }
func finishedAt(r proc.Run) *time.Time { return r.FinishedAt }

// worker starts a shell worker process with an ID.
func worker(t *testing.T, id string, servers string, args ...string) *proc.Proc {
	t.Helper()
	w := proc.Start(t, id, append([]string{"worker", "--server", servers, "--id", id, "--shell"}, args...)...)
	w.Await(30*time.Second, "msg=connected")
	return w
}
