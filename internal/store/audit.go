package store

import (
	"context"
	"fmt"
	"time"
)

// The audit trail: one entry per security-relevant action (a token
// created or revoked, a run cancelled, a refused request...), written by
// whoever performs it. Entries are never changed; they are deleted only by
// retention (AuditDeleteBefore). AuditAppend takes a batch, so a server
// may buffer entries and write them in one statement per transaction.

// Audit field bounds, in bytes. AuditAppend truncates longer values
// (Detail) or refuses them (the others).
const (
	MaxAuditField  = 256  // Actor, Action, Target, Outcome
	MaxAuditDetail = 1024 // Detail
)

// AuditEntry is one entry. Seq is set by the store (insertion order, the
// list cursor); it is ignored by AuditAppend.
type AuditEntry struct {
	Seq     int64
	At      time.Time
	Actor   string // a token's name; "" for an unauthenticated caller
	Action  string // what was attempted, e.g. "token.create", "run.cancel"
	Target  string // what it was attempted on (a token name, a run ID); may be ""
	Outcome string // e.g. "ok", "denied", "error"
	Detail  string // a short free text (never a secret)
}

// AuditListParams filters and pages the trail, newest first (by Seq).
// Empty filters match everything; Since and Until bound At to [Since,
// Until) when not zero.
type AuditListParams struct {
	Actor  string
	Action string
	Target string
	Since  time.Time
	Until  time.Time
	Limit  int    // default ListDefaultLimit, max ListMaxLimit
	Cursor string // opaque, from AuditPage.NextCursor
}

// AuditPage is one page of entries; NextCursor is "" on the last page.
type AuditPage struct {
	Entries    []AuditEntry
	NextCursor string
}

// PageLimit is the number of entries an AuditList call returns at most.
func (p AuditListParams) PageLimit() int { return pageLimit(p.Limit) }

// BeforeSeq decodes the cursor like RunListParams.BeforeSeq.
func (p AuditListParams) BeforeSeq() (int64, error) { return beforeSeq(p.Cursor) }

// NewAuditPage makes a page from entries read newest first with a limit of
// PageLimit()+1, like NewRunPage.
func NewAuditPage(entries []AuditEntry, limit int) AuditPage {
	var page AuditPage
	entries, page.NextCursor = cutPage(entries, limit, func(e AuditEntry) int64 { return e.Seq })
	page.Entries = entries
	return page
}

// AuditCondition is one condition of an AuditList query: Column Op Value,
// where Op is "=", ">=" or "<" and Value a string, a time.Time or an int64.
type AuditCondition struct {
	Column string
	Op     string
	Value  any
}

// Conditions are the listing's filters and cursor as conditions on the
// audit table's columns (actor, action, target, at, seq), all of which
// must hold. before is BeforeSeq's result.
func (p AuditListParams) Conditions(before int64) []AuditCondition {
	var cs []AuditCondition
	for _, c := range []AuditCondition{
		{"actor", "=", p.Actor}, {"action", "=", p.Action}, {"target", "=", p.Target},
		{"at", ">=", p.Since}, {"at", "<", p.Until}, {"seq", "<", before},
	} {
		switch v := c.Value.(type) {
		case string:
			if v == "" {
				continue
			}
		case time.Time:
			if v.IsZero() {
				continue
			}
		case int64:
			if v <= 0 {
				continue
			}
		}
		cs = append(cs, c)
	}
	return cs
}

// CheckAuditEntry validates e for AuditAppend and returns it with Detail
// cut to MaxAuditDetail bytes (at a UTF-8 boundary).
func CheckAuditEntry(e AuditEntry) (AuditEntry, error) {
	if e.At.IsZero() {
		return e, fmt.Errorf("audit entry %q: no time", e.Action)
	}
	if e.Action == "" {
		return e, fmt.Errorf("audit entry at %v: no action", e.At)
	}
	for _, f := range []struct{ name, v string }{
		{"actor", e.Actor}, {"action", e.Action}, {"target", e.Target}, {"outcome", e.Outcome},
	} {
		if len(f.v) > MaxAuditField {
			return e, fmt.Errorf("audit entry %q: %s is %d bytes, more than %d", e.Action, f.name, len(f.v), MaxAuditField)
		}
	}
	e.Detail = truncateUTF8(e.Detail, MaxAuditDetail)
	return e, nil
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // s[n] continues a character
		n--
	}
	return s[:n]
}

// AuditStore is the read side of the trail; part of Store.
type AuditStore interface {
	AuditList(ctx context.Context, p AuditListParams) (AuditPage, error)
}

// AuditTx is the write side of the trail; part of Tx.
type AuditTx interface {
	// AuditAppend stores entries in order (each checked with
	// CheckAuditEntry; one invalid entry fails the call and writes none).
	AuditAppend(ctx context.Context, entries []AuditEntry) error
	// AuditDeleteBefore deletes at most limit of the oldest entries whose
	// At is before before, and returns how many it deleted: a retention
	// sweep calls it until it returns less than limit, so no transaction
	// holds the store for long.
	AuditDeleteBefore(ctx context.Context, before time.Time, limit int) (int, error)
}
