package main

import "time"

// The engine's, cron's and the worker's mutants. The engine and worker
// change often: each Old is a short, specific piece of one line (or two)
// so that it survives unrelated edits; one that stops applying is reported
// and must be updated here.

var (
	enginePkgs = []string{"./internal/engine"}
	cronPkgs   = []string{"./internal/cron"}
	workerPkgs = []string{"./worker"}
)

// cronTimeout: the cron tests take a second or two, so a mutant that
// makes them loop is stopped early.
const cronTimeout = time.Minute

var otherMutants = []Mutant{
	// Engine
	{
		ID: "engine-ready-priority", File: "internal/engine/dispatch.go",
		Old: "if a.priority != b.priority {", New: "if false && a.priority != b.priority {",
		Pkgs: enginePkgs,
		Desc: "the engine's ready queue (readyQueue.Less) ignores priority",
	},
	{
		ID: "engine-backoff-jitter", File: "internal/engine/finish.go",
		Old: "rand.Int64N(int64(half)+1)", New: "rand.Int64N(1)+int64(half)",
		Pkgs: enginePkgs,
		Desc: "retry backoff (Engine.backoff) without jitter: runs failing together retry together",
	},
	{
		ID: "engine-backoff-cap", File: "internal/engine/finish.go",
		Old: "d = min(d, live.RetryMax)", New: "d = max(d, live.RetryBase)",
		Pkgs: enginePkgs,
		Desc: "retry backoff not capped at RetryMax",
	},
	{
		ID: "engine-retry-count", File: "internal/engine/finish.go",
		Old: "failures := f.failures + 1", New: "failures := f.failures",
		Pkgs: enginePkgs,
		Desc: "the failing attempt is not counted: a run gets one attempt more than max_attempts",
	},
	{
		ID: "engine-retry-bound", File: "internal/engine/finish.go",
		Old: "failures < f.maxAttempts {", New: "failures <= f.maxAttempts {",
		Pkgs: enginePkgs,
		Desc: "a run whose last attempt failed is retried once more",
	},
	{
		ID: "engine-no-retry", File: "internal/engine/finish.go",
		Old: "if !noRetry && failures", New: "if failures",
		Pkgs: enginePkgs,
		Desc: "a handler's NoRetry error is retried",
	},
	{
		ID: "engine-cancel-dispatched", File: "internal/engine/control.go",
		Old: "\t\t\te.cancelOnWorker(f, reason)", New: "\t\t\tif f.started { e.cancelOnWorker(f, reason) }",
		Pkgs: enginePkgs,
		Desc: "a cancel of a dispatched, not yet started run is never told to the worker (Engine.cancelled)",
	},
	{
		ID: "engine-lease-rearm", File: "internal/engine/leader.go",
		Old: "e.lead.expiresAt = l.ExpiresAt\n\t\te.armLeaseExpiry()", New: "e.lead.expiresAt = l.ExpiresAt",
		Pkgs: enginePkgs,
		Desc: "the leader does not re-arm its lease-expiry timer on renewal: it never steps down once renewals fail",
	},
	{
		ID: "engine-result-attempt", File: "internal/engine/session.go",
		Old: "f == nil || f.attempt != r.Attempt || f.session != s", New: "f == nil || f.session != s",
		Pkgs: enginePkgs,
		Desc: "a worker's result is matched to the run's flight without checking its attempt",
	},
	{
		ID: "engine-ack-attempt", File: "internal/engine/session.go",
		Old: "f == nil || f.attempt != a.Attempt || f.session != s", New: "f == nil || f.session != s",
		Pkgs: enginePkgs,
		Desc: "a worker's ack (start) is matched to the run's flight without checking its attempt",
	},
	{
		ID: "engine-fence-server", File: "internal/engine/finish.go",
		Old: "WorkerID: s.hello.WorkerID,\n\t\tServerID: e.fence(), Now: now,", New: "WorkerID: s.hello.WorkerID,\n\t\tNow: now,",
		Pkgs: enginePkgs,
		Desc: "a worker's result is committed without fencing by the holding server",
	},
	{
		ID: "engine-kick-assign", File: "internal/engine/dispatch.go",
		Old: "func (e *Engine) kick(g *group) {\n\te.assign(g)", New: "func (e *Engine) kick(g *group) {",
		Pkgs: enginePkgs,
		Desc: "a claim decision does not hand waiting runs to free workers first: runs wait while a worker is idle",
	},
	{
		ID: "engine-claim-limit", File: "internal/engine/dispatch.go",
		Old: "out[i].Limit, out[i].Now = min(out[i].Limit, e.cfg.ClaimBatch), now", New: "out[i].Limit, out[i].Now = e.cfg.ClaimBatch, now",
		Pkgs: enginePkgs,
		Desc: "a claim takes a full batch whatever the free credits",
	},
	{
		ID: "engine-claim-short", File: "internal/engine/committer.go",
		Old: "o.short[i] = len(got) < c.Limit", New: "o.short[i] = len(got) <= c.Limit",
		Pkgs: enginePkgs,
		Desc: "a full claim clears may-have-work: queued runs wait for the next event",
	},
	{
		ID: "engine-assign-stale", File: "internal/engine/dispatch.go",
		Old: "if e.disp.flights[f.id] != f {\n\t\t\tcontinue // cancelled", New: "if false {\n\t\t\tcontinue // cancelled",
		Pkgs: enginePkgs,
		Desc: "runs cancelled or timed out while in the ready queue are still sent to workers",
	},

	// Cron
	{
		ID: "cron-next-strict", File: "internal/cron/cron.go",
		Old: "s.spec.next(sec+1, loc)", New: "s.spec.next(sec, loc)",
		Pkgs: cronPkgs, Timeout: cronTimeout,
		Desc: "Schedule.Next returns a fire time equal to after (off by one second)",
	},
	{
		ID: "cron-every-strict", File: "internal/cron/cron.go",
		Old: "k := floorDiv(ns, int64(d)) + 1", New: "k := floorDiv(ns-1, int64(d)) + 1",
		Pkgs: cronPkgs, Timeout: cronTimeout,
		Desc: "@every returns after itself when after is on a slot",
	},
	{
		ID: "cron-dst-overlap", File: "internal/cron/next.go",
		Old: "case prev > off && !s.hourFull:", New: "case prev > off:",
		Pkgs: cronPkgs, Timeout: cronTimeout,
		Desc: "hourly and finer schedules skip the repeated hour when clocks go back",
	},
	{
		ID: "cron-dst-gap", File: "internal/cron/next.go",
		Old: "return endSec, true // in the gap", New: "return w - int64(off), true // in the gap",
		Pkgs: cronPkgs, Timeout: cronTimeout,
		Desc: "a wall time inside a DST gap fires at a made-up instant instead of the gap's end",
	},
	{
		ID: "cron-last-day", File: "internal/cron/next.go",
		Old: "if off := last - d; off >= 0", New: "if off := last - d - 1; off >= 0",
		Pkgs: cronPkgs, Timeout: cronTimeout,
		Desc: "L (and L-n) fire a day early",
	},
	{
		ID: "cron-nearest-weekday", File: "internal/cron/next.go",
		Old: "if n == 1 {", New: "if n == 0 {",
		Pkgs: cronPkgs, Timeout: cronTimeout,
		Desc: "1W on a Saturday the 1st moves to day 0 (no fire that month) instead of Monday the 3rd",
	},
	{
		ID: "cron-last-dow", File: "internal/cron/next.go",
		Old: "d+7 > last", New: "d+7 >= last",
		Pkgs: cronPkgs, Timeout: cronTimeout,
		Desc: "5L (last Friday) also fires a week early in some months",
	},
	{
		ID: "cron-nth-dow", File: "internal/cron/next.go",
		Old: "(d-1)/7+1", New: "d/7+1",
		Pkgs: cronPkgs, Timeout: cronTimeout,
		Desc: "d#k counts the 7th, 14th, … as the next week",
	},
	{
		ID: "cron-next-day-same", File: "internal/cron/next.go",
		Old: "return y, m, d + 1", New: "return y, m, d",
		Pkgs: cronPkgs, Timeout: cronTimeout,
		Desc: "nextDay does not advance: a search past midnight finds a time earlier that day",
	},

	// Worker
	{
		ID: "worker-persist-wake", File: "worker/conn.go",
		Old: "w.signal(w.persistWake) // store what waits", New: "// store what waits",
		Pkgs: workerPkgs,
		Desc: "the worker's result persister is not woken when the stream ends: results wait unsaved",
	},
	{
		ID: "worker-line-newline", File: "worker/run.go",
		Old: "line := p[:i]", New: "line := p[:i+1]",
		Pkgs: workerPkgs,
		Desc: "output lines keep their trailing newline",
	},
	{
		ID: "worker-line-advance", File: "worker/run.go",
		Old: "p = p[i+1:]", New: "p = p[i:]",
		Pkgs: workerPkgs, Timeout: time.Minute,
		Desc: "the line splitter does not step past the newline: a write of a full line loops for ever",
	},
	{
		ID: "worker-line-cap", File: "worker/run.go",
		Old: "\tfor len(line) > size {\n\t\tcut := runeCut(line, size)", New: "\tfor len(line) >= size {\n\t\tcut := runeCut(line, size)",
		Pkgs: workerPkgs,
		Desc: "a line of exactly maxLineBytes is followed by an empty line",
	},
}
