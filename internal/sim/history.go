package sim

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/faultstore"
)

// history is the store's side of the story: every committed transaction,
// as the fault store's observer reports it (commit-then-error faults
// included: they committed). It checks the invariants that are about
// single transitions as they commit (once, fenced, cron, logs) and keeps
// what the end-of-run checks need.
//
// It also keeps the worker side of provenance: which attempts the engine
// handed to which worker id (recorded by the simulated transport the
// moment the engine calls Dispatch), and which report every result the
// simulated workers sent is (each carries unique bytes).
type history struct {
	w *world

	mu         sync.Mutex
	runs       map[string]*runHist
	slots      map[slotKey]string             // (job, logical time) → run
	dispatched map[string]map[attemptRef]bool // worker id → attempts it was sent
	sentLog    []sentRec                      // every dispatch, in order
	reports    map[string]*report             // result bytes (or error text) → the report
	reported   map[attemptRef]map[string]bool // attempt → worker ids that sent a result for it
	accepted   map[attemptRef]int             // ResultAcks{Accepted} the engine sent
	commits    int
}

// runHist is one run's committed history.
type runHist struct {
	job         string
	logical     time.Time
	lastClaim   int          // attempt of the last claim (or of the run as recovered)
	active      bool         // dispatched or running since that claim
	terminals   int          // transitions into a terminal status
	retries     int          // user retries applied
	reportFins  map[int]int  // accepted finishes of worker reports, per attempt
	finished    map[int]bool // attempts with an accepted finish of any kind
	lastStatus  store.RunStatus
	lastResult  []byte
	lastFinTime time.Time
}

type sentRec struct {
	ref    attemptRef
	worker string
}

type slotKey struct {
	job string
	at  time.Time
}

type attemptRef struct {
	run     string
	attempt int
}

func (a attemptRef) String() string { return fmt.Sprintf("%s/%d", a.run, a.attempt) }

// report is one result a simulated worker sent.
type report struct {
	worker  string // worker id
	name    string // worker name (instance), for the trace
	run     string
	attempt int
	outcome string
	garbage bool // about an attempt the worker was never sent
}

func newHistory(w *world) *history {
	return &history{
		w: w, runs: make(map[string]*runHist), slots: make(map[slotKey]string),
		dispatched: make(map[string]map[attemptRef]bool), reports: make(map[string]*report),
		accepted: make(map[attemptRef]int), reported: make(map[attemptRef]map[string]bool),
	}
}

func (h *history) run(id string) *runHist {
	r := h.runs[id]
	if r == nil {
		r = &runHist{reportFins: make(map[int]int), finished: make(map[int]bool)}
		h.runs[id] = r
	}
	return r
}

// sent records that the engine handed attempts to worker id.
func (h *history) sent(worker string, ts []attemptRef) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.dispatched[worker]
	if m == nil {
		m = make(map[attemptRef]bool)
		h.dispatched[worker] = m
	}
	for _, t := range ts {
		m[t] = true
		h.sentLog = append(h.sentLog, sentRec{t, worker})
	}
}

// randomSent picks one of the last 50 dispatches (or any, now and then).
func (h *history) randomSent(rng interface{ IntN(int) int }) (sentRec, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.sentLog)
	if n == 0 {
		return sentRec{}, false
	}
	if rng.IntN(4) == 0 {
		return h.sentLog[rng.IntN(n)], true
	}
	k := min(n, 50)
	return h.sentLog[n-k+rng.IntN(k)], true
}

func (h *history) wasSent(worker string, a attemptRef) bool {
	return h.dispatched[worker][a]
}

// noteReport registers a result before it is sent; key is its unique
// result bytes (or, when it has none, its error text).
func (h *history) noteReport(key string, r *report) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reports[key] = r
	a := attemptRef{r.run, r.attempt}
	if h.reported[a] == nil {
		h.reported[a] = make(map[string]bool)
	}
	h.reported[a][r.worker] = true
}

// acked records a ResultAck the engine sent; it returns how many accepted
// acks that attempt has had.
func (h *history) acked(a attemptRef) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.accepted[a]++
	return h.accepted[a]
}

// observe is the fault store's OnCommit.
func (h *history) observe(c faultstore.Commit) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.commits++
	h.traceCommit(c)
	for _, call := range c.Calls {
		switch call.Method {
		case "RunInsert":
			ps := call.Params.([]store.RunInsertParams)
			for i, res := range call.Result.([]store.RunInsertResult) {
				if res.Existing {
					continue
				}
				p := ps[i]
				r := h.run(p.ID)
				r.job, r.logical, r.lastStatus = p.Job, p.LogicalTime, p.Status
				if p.Status.Terminal() {
					r.terminals++
				}
				if p.Job != "" && !p.LogicalTime.IsZero() {
					k := slotKey{p.Job, p.LogicalTime.UTC()}
					if other, ok := h.slots[k]; ok {
						h.w.violate(invCron, p.ID, "job %s slot %s has two runs: %s and %s", p.Job, k.at.Format(time.RFC3339), other, p.ID)
					}
					h.slots[k] = p.ID
				}
			}
		case "RunClaim":
			for _, run := range call.Result.([]*store.Run) {
				r := h.run(run.ID)
				if r.active {
					h.w.violate(invFenced, run.ID, "claimed at attempt %d while attempt %d was still active", run.Attempt, r.lastClaim)
				}
				r.lastClaim, r.active, r.lastStatus = run.Attempt, true, store.StatusDispatched
			}
		case "RunStart":
			ps := call.Params.([]store.RunStartParams)
			for i, ok := range call.Result.([]bool) {
				if !ok {
					continue
				}
				p := ps[i]
				a := attemptRef{p.ID, p.Attempt}
				r := h.run(p.ID)
				if !r.active || r.lastClaim != p.Attempt {
					h.w.violate(invFenced, p.ID, "start of attempt %d applied while the current attempt is %d (active %v)", p.Attempt, r.lastClaim, r.active)
				}
				if !h.wasSent(p.WorkerID, a) {
					h.w.violate(invFenced, p.ID, "an ack from worker %s for attempt %s it was never sent changed the store", p.WorkerID, a)
				}
				r.lastStatus = store.StatusRunning
			}
		case "RunFinish":
			ps := call.Params.([]store.RunFinishParams)
			for i, res := range call.Result.([]store.RunFinishResult) {
				if res.Accepted {
					h.finished(ps[i])
				}
			}
		case "RunCancel":
			res := call.Result.(store.RunCancelResult)
			if res.Changed {
				r := h.run(res.Run.ID)
				r.terminals++
				r.active = false
				r.lastStatus = store.StatusCancelled
				h.checkTerminals(res.Run.ID, r)
			}
		case "RunRetry":
			run := call.Result.(*store.Run)
			r := h.run(run.ID)
			r.retries++
			r.lastStatus = run.Status
		case "RunRequeueLost":
			for _, run := range call.Result.([]*store.Run) {
				r := h.run(run.ID)
				r.active, r.lastStatus = false, store.StatusQueued
			}
		case "LogAppend":
			for _, l := range call.Params.(store.LogAppendParams).Lines {
				wid, ok := logSender(l.Text)
				if !ok {
					continue
				}
				a := attemptRef{l.RunID, l.Attempt}
				if !h.wasSent(wid, a) {
					h.w.violate(invLogs, l.RunID, "stored a log line for attempt %s from worker %s, which never held it: %q", a, wid, clip(l.Text, 60))
				}
			}
		}
	}
}

// finished applies one accepted RunFinish. Called with h.mu held.
func (h *history) finished(p store.RunFinishParams) {
	r := h.run(p.ID)
	a := attemptRef{p.ID, p.Attempt}
	if !r.active || r.lastClaim != p.Attempt {
		h.w.violate(invFenced, p.ID, "finish of attempt %d (%s) applied while the current attempt is %d (active %v)", p.Attempt, p.Status, r.lastClaim, r.active)
	}
	// A finish names the worker of the attempt (a report, or a timeout
	// of an attempt on a worker): it must be one the attempt was sent to.
	if p.WorkerID != "" && !h.wasSent(p.WorkerID, a) {
		h.w.violate(invFenced, p.ID, "a finish naming worker %s, which was never sent attempt %s, changed the store (to %s)", p.WorkerID, a, p.Status)
	}
	// A report's bytes, where the engine stored them as sent, must be
	// about this attempt.
	if key := string(p.Result); key != "" {
		if rep := h.reports[key]; rep != nil && (rep.run != p.ID || rep.attempt != p.Attempt) {
			h.w.violate(invFenced, p.ID, "worker %s's report about %s/%d was applied to attempt %s", rep.name, rep.run, rep.attempt, a)
		}
	}
	if p.WorkerID != "" && h.reported[a][p.WorkerID] {
		r.reportFins[p.Attempt]++
		if n := r.reportFins[p.Attempt]; n > 1 {
			h.w.violate(invOnce, p.ID, "attempt %d completed %d times", p.Attempt, n)
		}
	}
	r.finished[p.Attempt] = true
	r.active = false
	r.lastStatus = p.Status
	r.lastFinTime = p.Now
	if p.Status == store.StatusSucceeded {
		r.lastResult = append([]byte(nil), p.Result...)
	}
	if p.Status.Terminal() {
		r.terminals++
		h.checkTerminals(p.ID, r)
	}
}

// checkTerminals: a run ends once, and once more per user retry. Called
// with h.mu held.
func (h *history) checkTerminals(id string, r *runHist) {
	if r.terminals > 1+r.retries {
		h.w.violate(invOnce, id, "reached a terminal status %d times with %d user retries (last: %s)", r.terminals, r.retries, r.lastStatus)
	}
}

// recovered notes the active runs an engine found at start: their attempt
// is current.
func (h *history) recovered(runs []*store.Run) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, run := range runs {
		r := h.run(run.ID)
		r.lastClaim, r.active = run.Attempt, true
	}
}

// logTag is the prefix of every log line a simulated worker sends: the
// sender's worker id, so the checker knows who sent a stored line.
func logTag(workerID string) string { return "{from " + workerID + "} " }

func logSender(text string) (string, bool) {
	rest, ok := strings.CutPrefix(text, "{from ")
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "} ")
	return id, ok
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// traceCommit adds a compact line per committed change of run state.
func (h *history) traceCommit(c faultstore.Commit) {
	var b strings.Builder
	for _, call := range c.Calls {
		switch call.Method {
		case "RunInsert":
			for _, r := range call.Result.([]store.RunInsertResult) {
				if !r.Existing && r.Run.Job != "" {
					fmt.Fprintf(&b, " insert %s(job %s %s)", r.Run.ID, r.Run.Job, r.Run.Status)
				}
			}
		case "RunClaim":
			p := call.Params.(store.RunClaimParams)
			runs := call.Result.([]*store.Run)
			fmt.Fprintf(&b, " claim %s %v limit %d →", p.Group, p.Types, p.Limit)
			for _, r := range runs {
				fmt.Fprintf(&b, " %s/%d", r.ID, r.Attempt)
			}
		case "RunFinish":
			ps := call.Params.([]store.RunFinishParams)
			for i, res := range call.Result.([]store.RunFinishResult) {
				if res.Accepted {
					fmt.Fprintf(&b, " finish %s/%d→%s", ps[i].ID, ps[i].Attempt, ps[i].Status)
				} else {
					fmt.Fprintf(&b, " finish %s/%d→%s rejected", ps[i].ID, ps[i].Attempt, ps[i].Status)
				}
			}
		case "RunCancel":
			if r := call.Result.(store.RunCancelResult); r.Changed {
				fmt.Fprintf(&b, " cancel %s(was %s)", r.Run.ID, r.Prev)
			}
		case "RunRetry":
			fmt.Fprintf(&b, " retry %s", call.Result.(*store.Run).ID)
		case "RunPromote":
			for _, r := range call.Result.([]*store.Run) {
				fmt.Fprintf(&b, " promote %s", r.ID)
			}
		case "RunUnblockNext":
			if r := call.Result.(*store.Run); r != nil {
				fmt.Fprintf(&b, " unblock %s", r.ID)
			}
		case "RunRequeueLost":
			for _, r := range call.Result.([]*store.Run) {
				fmt.Fprintf(&b, " requeue-lost %s", r.ID)
			}
		}
	}
	if b.Len() == 0 {
		return
	}
	if c.Reported != nil {
		b.WriteString(" (then reported failed)")
	}
	h.w.tr.add("commit%s", b.String())
}
