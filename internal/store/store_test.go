package store

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestTokenUsable(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		name string
		tok  Token
		want bool
	}{
		{"plain", Token{}, true},
		{"expires later", Token{ExpiresAt: now.Add(time.Second)}, true},
		{"expires now", Token{ExpiresAt: now}, false},
		{"expired", Token{ExpiresAt: now.Add(-time.Second)}, false},
		{"revoked", Token{RevokedAt: now.Add(-time.Hour)}, false},
		{"revoked later", Token{RevokedAt: now.Add(time.Hour)}, false},
	} {
		if got := c.tok.Usable(now); got != c.want {
			t.Errorf("%s: Usable = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestCheckAuditEntry(t *testing.T) {
	at := time.Unix(1, 0)
	e, err := CheckAuditEntry(AuditEntry{At: at, Action: "a", Detail: strings.Repeat("€", MaxAuditDetail)})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Detail) > MaxAuditDetail || !utf8.ValidString(e.Detail) || len(e.Detail) < MaxAuditDetail-3 {
		t.Errorf("detail cut to %d bytes (valid UTF-8: %v)", len(e.Detail), utf8.ValidString(e.Detail))
	}
	for _, bad := range []AuditEntry{
		{Action: "a"},
		{At: at},
		{At: at, Action: "a", Target: strings.Repeat("t", MaxAuditField+1)},
		{At: at, Action: "a", Outcome: strings.Repeat("o", MaxAuditField+1)},
	} {
		if _, err := CheckAuditEntry(bad); err == nil {
			t.Errorf("CheckAuditEntry(%+v): no error", bad)
		}
	}
}

func TestCursors(t *testing.T) {
	for _, c := range []string{"x", "0", "-3", "1.5"} {
		if _, err := (AuditListParams{Cursor: c}).BeforeSeq(); err == nil {
			t.Errorf("cursor %q accepted", c)
		}
	}
	es := []AuditEntry{{Seq: 9}, {Seq: 7}, {Seq: 4}}
	if p := NewAuditPage(es, 2); len(p.Entries) != 2 || p.NextCursor != "7" {
		t.Errorf("page %+v, want two entries and cursor 7", p)
	}
	if p := NewAuditPage(es, 3); len(p.Entries) != 3 || p.NextCursor != "" {
		t.Errorf("page %+v, want three entries and no cursor", p)
	}
	if (AuditListParams{}).PageLimit() != ListDefaultLimit || (AuditListParams{Limit: 1 << 20}).PageLimit() != ListMaxLimit {
		t.Error("AuditListParams.PageLimit bounds")
	}
}
