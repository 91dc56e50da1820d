package apijson

import "github.com/pluto-sched/pluto/internal/store"

// Token is a token as listed (GET /api/v1/tokens): never its secret.
type Token struct {
	Name      string   `json:"name"`
	Role      string   `json:"role"`
	Groups    []string `json:"groups"` // [] for all groups
	CreatedAt *string  `json:"created_at"`
	ExpiresAt *string  `json:"expires_at"`
	RevokedAt *string  `json:"revoked_at"`
}

// NewToken is the answer to POST /api/v1/tokens: the only time the
// secret is shown.
type NewToken struct {
	Name      string   `json:"name"`
	Role      string   `json:"role"`
	Groups    []string `json:"groups"`
	ExpiresAt *string  `json:"expires_at"`
	Token     string   `json:"token"`
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"`
	Groups  []string `json:"groups,omitempty"`
	Expires string   `json:"expires,omitempty"` // a duration from now ("30d"); "" never
}

// AuditEntry is one entry of GET /api/v1/audit.
type AuditEntry struct {
	Seq     int64  `json:"seq"`
	At      string `json:"at"`
	Actor   string `json:"actor"`
	Action  string `json:"action"`
	Target  string `json:"target"`
	Outcome string `json:"outcome"`
	Detail  string `json:"detail,omitempty"`
}

// FromToken converts a stored token.
func FromToken(t *store.Token) Token {
	out := Token{Name: t.Name, Role: t.Role, Groups: t.Groups, CreatedAt: OptTime(t.CreatedAt),
		ExpiresAt: OptTime(t.ExpiresAt), RevokedAt: OptTime(t.RevokedAt)}
	if out.Groups == nil {
		out.Groups = []string{}
	}
	return out
}

// FromAuditEntry converts a stored audit entry.
func FromAuditEntry(e store.AuditEntry) AuditEntry {
	return AuditEntry{Seq: e.Seq, At: FormatTime(e.At), Actor: e.Actor, Action: e.Action, Target: e.Target, Outcome: e.Outcome, Detail: e.Detail}
}
