package store

import (
	"context"
	"time"
)

// Backfills (the engine's backfill.go): a job run over the past slots of
// [From, To], at most Parallel slots at once, optionally with its
// downstream jobs. The store keeps the object; the leader drives it, so a
// backfill survives restarts and leader changes. Its runs are ordinary
// slot runs — one per job and logical time — so driving it twice never
// creates a slot twice.

// Backfill states.
const (
	BackfillRunning   = "running"
	BackfillPaused    = "paused"
	BackfillCancelled = "cancelled"
	BackfillDone      = "done"
)

// Backfill rerun policies: what a slot whose run exists already gets.
const (
	RerunNone   = "none"   // it is kept
	RerunFailed = "failed" // a failed, timed-out, cancelled or skipped run is retried
	RerunAll    = "all"    // any ended run is retried, a succeeded one too
)

// Backfill is a stored backfill.
type Backfill struct {
	ID       string
	Job      string
	From, To time.Time
	Parallel int
	Cascade  bool
	Desc     bool   // newest slot first
	Rerun    string // RerunNone, RerunFailed or RerunAll
	State    string
	// Next is the next slot to start (zero once every slot was started).
	Next time.Time
	// Started counts the slots given a run (created or rerun), Kept the
	// slots whose existing run was kept.
	Started, Kept int
	Version       int64 // 1 on create, +1 on every update
	CreatedAt     time.Time
	UpdatedAt     time.Time
	FinishedAt    time.Time // when it ended (done or cancelled)
}

// BackfillStore is the read side; part of Store.
type BackfillStore interface {
	// BackfillGet returns a backfill or ErrNotFound.
	BackfillGet(ctx context.Context, id string) (*Backfill, error)
	// BackfillList returns the backfills, newest first, at most limit
	// (1 to 1000).
	BackfillList(ctx context.Context, limit int) ([]*Backfill, error)
}

// BackfillTx is the write side; part of Tx.
type BackfillTx interface {
	// BackfillCreate stores b (Version 1; CreatedAt and UpdatedAt as
	// given). ErrConflict if its ID exists.
	BackfillCreate(ctx context.Context, b *Backfill) error
	// BackfillUpdate replaces the state, Next, Started, Kept, UpdatedAt
	// and FinishedAt of the backfill b.ID if its version is still
	// b.Version, and returns it at the next version; false (and nil) if
	// the version moved or the backfill is gone.
	BackfillUpdate(ctx context.Context, b *Backfill) (*Backfill, bool, error)
}
