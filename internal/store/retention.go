package store

import (
	"context"
	"time"
)

// Retention: the leader deletes finished runs once they are older than the
// retention of their status, or of their job (internal/engine/retention.go).
//
// A retention pass walks runs in seq order from a cursor, a bounded number
// of rows per call, and deletes those that are expired: terminal, finished
// before the cutoff of their status, and owing no callback delivery. No
// index names status or finished_at (each would be written by every state
// change: see the lists migrations), and no side table is written by the
// finish that ends a run, so the hot path pays nothing for retention. The
// walk is what makes it cheap anyway:
//
//   - Deleted rows are gone, so the head of the table holds only what was
//     kept: unfinished runs, runs of longer-lived statuses or jobs, owed
//     deliveries. A pass reads those and the expired rows, nothing else.
//   - finished_at >= created_at, so a run created at or after the latest
//     cutoff cannot be expired: the walk stops at the first such row.
//     Every row is tested on its own finished_at, so a run created long ago
//     and finished recently is never deleted early; stopping early only
//     leaves work for the next pass.
//   - When succeeded runs are kept for ever, the walk reads the ended side
//     table (failed, cancelled, timed_out and skipped runs by seq) instead
//     of runs.
//   - A job's runs (RunDeleteParams.Job) are walked through the runs_job
//     index.
//
// Deleting a run deletes everything that is its own: its log lines, its
// side-table rows (ended; on PostgreSQL also callbacks, though a run
// owing nothing has none), its callback state and idempotency key (both on
// the run's row) and its job slot (job, logical_time). The key and the
// slot are free again: a new submit with the key creates a new run; a cron
// slot is not fired again because a job's NextFire only moves forward.

// RunDeleteParams selects the expired runs one call deletes.
type RunDeleteParams struct {
	// FinishedBefore is the cutoff per terminal status: a run in that
	// status that finished before it is expired. A status missing (or a
	// zero time) keeps its runs.
	FinishedBefore map[RunStatus]time.Time
	// Job, if set, walks that job's runs only; otherwise every run but
	// those of ExcludeJobs (jobs with a retention of their own) is walked.
	Job         string
	ExcludeJobs []string
	// KeepLast, with Job: the job's newest KeepLast terminal runs (by seq)
	// are kept whatever their age.
	KeepLast int
	// Limit caps the runs deleted (default 500); ScanBudget the rows
	// examined (default 10 × Limit).
	Limit      int
	ScanBudget int
	// After is the cursor: the walk goes on after this seq (0: from the
	// start).
	After int64
}

// DeletedRun identifies one deleted run: what per-(group, job, status)
// counts need to forget it.
type DeletedRun struct {
	ID     string
	Group  string
	Job    string
	Status RunStatus
}

// RunDeleteResult is what one call deleted and where the walk stands.
type RunDeleteResult struct {
	Deleted []DeletedRun
	// Next is the cursor for the next call (RunDeleteParams.After); 0 when
	// the walk is complete (it reached the end of the table or a run too
	// young to be expired).
	Next int64
}

// Counts is the number of deleted runs per status.
func (r RunDeleteResult) Counts() map[RunStatus]int {
	m := make(map[RunStatus]int)
	for _, d := range r.Deleted {
		m[d.Status]++
	}
	return m
}

// Retention defaults for RunDeleteParams.
const (
	RunDeleteLimit      = 500
	RunDeleteScanFactor = 10
)

// Defaults returns p with its zero Limit and ScanBudget defaulted.
func (p RunDeleteParams) Defaults() RunDeleteParams {
	if p.Limit <= 0 {
		p.Limit = RunDeleteLimit
	}
	if p.ScanBudget <= 0 {
		p.ScanBudget = RunDeleteScanFactor * p.Limit
	}
	return p
}

// Latest is the latest cutoff (the walk stops at runs created at or after
// it) and whether some status has one (some); walkRuns says whether succeeded runs
// expire (if not, only the ended side table need be walked).
func (p RunDeleteParams) Latest() (latest time.Time, some, walkRuns bool) {
	for s, t := range p.FinishedBefore {
		if t.IsZero() || !s.Terminal() {
			continue
		}
		some = true
		if t.After(latest) {
			latest = t
		}
		if s == StatusSucceeded {
			walkRuns = true
		}
	}
	return latest, some, walkRuns
}

// RunCandidate is one row a retention walk examines: what deciding needs.
type RunCandidate struct {
	Seq        int64
	DeletedRun // ID, Group, Job, Status
	CreatedAt  time.Time
	FinishedAt time.Time // zero if unset
	// CallbackPending: the run owes a callback delivery.
	CallbackPending bool
}

// RetentionWalk is the decision shared by both backends: given the rows a
// walk read in seq order (at most ScanBudget; full says the read returned
// all it was asked for, so the table may go on), it picks the rows to
// delete (at most Limit) and the cursor to go on from. keepFrom, if not 0,
// is the seq from which rows are kept (KeepLast).
func RetentionWalk(p RunDeleteParams, rows []RunCandidate, full bool, keepFrom int64) (del []RunCandidate, next int64) {
	latest, _, _ := p.Latest()
	excl := make(map[string]bool, len(p.ExcludeJobs))
	for _, j := range p.ExcludeJobs {
		excl[j] = true
	}
	for _, r := range rows {
		if !r.CreatedAt.Before(latest) || keepFrom != 0 && r.Seq >= keepFrom {
			return del, 0 // nothing from here on can be expired
		}
		if Expired(p, &r, excl) {
			del = append(del, r)
			if len(del) == p.Limit {
				return del, r.Seq
			}
		}
		next = r.Seq
	}
	if !full {
		return del, 0
	}
	return del, next
}

// Expired reports whether candidate r is to be deleted under p.
func Expired(p RunDeleteParams, r *RunCandidate, excl map[string]bool) bool {
	if !r.Status.Terminal() || r.CallbackPending || r.FinishedAt.IsZero() {
		return false
	}
	if p.Job == "" && r.Job != "" && excl[r.Job] {
		return false
	}
	if p.Job != "" && r.Job != p.Job {
		return false
	}
	cut := p.FinishedBefore[r.Status]
	return !cut.IsZero() && r.FinishedAt.Before(cut)
}

// RetentionTx is the write side of retention; part of Tx.
type RetentionTx interface {
	// RunDeleteFinished deletes expired runs (see RunDeleteParams) with
	// everything that is theirs, and reports which. It never deletes a run
	// that is not terminal or that owes a callback delivery.
	RunDeleteFinished(ctx context.Context, p RunDeleteParams) (RunDeleteResult, error)
}

// SpaceReclaimer is implemented by a store that can give the space freed by
// deletions back to the file system in small steps (SQLite with
// auto_vacuum incremental). ReclaimSpace frees at most maxPages pages, and
// only when the free list is large; it reports the pages freed.
type SpaceReclaimer interface {
	ReclaimSpace(ctx context.Context, maxPages int) (int, error)
}
