package store

import (
	"fmt"
	"strconv"
	"time"
)

// Page sizes of RunList and AuditList.
const (
	ListDefaultLimit = 100
	ListMaxLimit     = 1000
)

// PageLimit is the number of runs a RunList call returns at most.
func (p RunListParams) PageLimit() int { return pageLimit(p.Limit) }

// BeforeSeq decodes the cursor: list runs with a smaller Seq. Zero means
// from the newest. A cursor the store did not issue wraps ErrInvalidCursor.
func (p RunListParams) BeforeSeq() (int64, error) { return beforeSeq(p.Cursor) }

// NewRunPage makes a page from runs read newest first with a limit of
// PageLimit()+1: the extra run, if any, only says that a next page exists.
func NewRunPage(runs []*Run, limit int) RunPage {
	var page RunPage
	page.Runs, page.NextCursor = cutPage(runs, limit, func(r *Run) int64 { return r.Seq })
	return page
}

// pageLimit is a listing's page size for a requested limit.
func pageLimit(limit int) int {
	if limit <= 0 {
		return ListDefaultLimit
	}
	return min(limit, ListMaxLimit)
}

// beforeSeq decodes a listing cursor: the Seq of the last item of the
// previous page, in decimal; "" is zero (from the newest).
func beforeSeq(cursor string) (int64, error) {
	if cursor == "" {
		return 0, nil
	}
	seq, err := strconv.ParseInt(cursor, 10, 64)
	if err != nil || seq <= 0 {
		return 0, fmt.Errorf("cursor %q: %w", cursor, ErrInvalidCursor)
	}
	return seq, nil
}

// cutPage cuts items read newest first with a limit of limit+1 to one
// page, and returns the cursor of the next page ("" when there is none).
func cutPage[T any](items []T, limit int, seq func(T) int64) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, strconv.FormatInt(seq(items[limit-1]), 10)
}

// EffectiveRunAt is when an inserted run becomes due: RunAt, or Now when
// RunAt is zero.
func (p *RunInsertParams) EffectiveRunAt() time.Time {
	if p.RunAt.IsZero() {
		return p.Now
	}
	return p.RunAt
}
