package store

import (
	"fmt"
	"strconv"
	"time"
)

// Page sizes of RunList.
const (
	ListDefaultLimit = 100
	ListMaxLimit     = 1000
)

// PageLimit is the number of runs a RunList call returns at most.
func (p RunListParams) PageLimit() int {
	if p.Limit <= 0 {
		return ListDefaultLimit
	}
	return min(p.Limit, ListMaxLimit)
}

// BeforeSeq decodes the cursor: list runs with a smaller Seq. Zero means
// from the newest. A cursor the store did not issue wraps ErrInvalidCursor.
func (p RunListParams) BeforeSeq() (int64, error) {
	if p.Cursor == "" {
		return 0, nil
	}
	seq, err := strconv.ParseInt(p.Cursor, 10, 64)
	if err != nil || seq <= 0 {
		return 0, fmt.Errorf("cursor %q: %w", p.Cursor, ErrInvalidCursor)
	}
	return seq, nil
}

// NewRunPage makes a page from runs read newest first with a limit of
// PageLimit()+1: the extra run, if any, only says that a next page exists.
func NewRunPage(runs []*Run, limit int) RunPage {
	var page RunPage
	if len(runs) > limit {
		runs = runs[:limit]
		page.NextCursor = strconv.FormatInt(runs[limit-1].Seq, 10)
	}
	page.Runs = runs
	return page
}

// EffectiveRunAt is when an inserted run becomes due: RunAt, or Now when
// RunAt is zero.
func (p *RunInsertParams) EffectiveRunAt() time.Time {
	if p.RunAt.IsZero() {
		return p.Now
	}
	return p.RunAt
}
