package server

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/auth"
	"github.com/pluto-sched/pluto/internal/store"
)

// Tokens and the audit trail over HTTP: POST/GET /api/v1/tokens,
// DELETE /api/v1/tokens/{name}, GET /api/v1/audit. The token operations
// write their own audit entry in the token's transaction (auth.CreateToken,
// auth.RevokeToken); the route's entry records the call as well.

// tokenAdmin is what the token routes need: the store and the local
// verifier (a revocation made here is refused here at once).
type tokenAdmin struct {
	st store.Store
	v  *auth.Verifier
	// revoked ends this server's worker streams of a revoked token (other
	// servers hear TopicTokens).
	revoked func(name string)
}

func (h *httpAPI) tokenStore(w http.ResponseWriter) (*tokenAdmin, bool) {
	if h.opts.Tokens == nil {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: "tokens are not available: authentication is off on this server"})
		return nil, false
	}
	return h.opts.Tokens, true
}

func (h *httpAPI) createToken(w http.ResponseWriter, r *http.Request) {
	ta, ok := h.tokenStore(w)
	if !ok {
		return
	}
	body, err := h.readObject(w, r, `{"name", "role", "groups", "expires"}`, true)
	if err != nil {
		writeError(w, err)
		return
	}
	var req apijson.TokenRequest
	if err := decodeStrict(body, &req); err != nil {
		writeError(w, err)
		return
	}
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		writeError(w, badRequest("role", "%s", authMessage(err)))
		return
	}
	if err := auth.ValidateName(req.Name); err != nil {
		writeError(w, badRequest("name", "%s", authMessage(err)))
		return
	}
	if _, err := auth.ValidateGroups(req.Groups); err != nil {
		writeError(w, badRequest("groups", "%s", authMessage(err)))
		return
	}
	now := time.Now()
	var expires time.Time
	if req.Expires != "" {
		d, err := parseDuration(req.Expires)
		if err != nil || d <= 0 {
			writeError(w, badRequest("expires", "expires must be a positive duration such as 30d or 12h, got %q", req.Expires))
			return
		}
		expires = now.Add(d)
	}
	secret, tok, err := auth.CreateToken(r.Context(), ta.st, auth.CreateParams{
		Name: req.Name, Role: role, Groups: req.Groups, ExpiresAt: expires, Actor: principal(r.Context()).Name, Now: now,
	})
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			err = &apiError{Status: http.StatusConflict, Code: codeConflict, Field: "name", Message: fmt.Sprintf("a token named %q exists (names are never reused, revoked ones included)", req.Name)}
		}
		writeError(w, err)
		return
	}
	t := apijson.FromToken(tok)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, apijson.NewToken{Name: t.Name, Role: t.Role, Groups: t.Groups, ExpiresAt: t.ExpiresAt, Token: secret})
}

func (h *httpAPI) listTokens(w http.ResponseWriter, r *http.Request) {
	ta, ok := h.tokenStore(w)
	if !ok {
		return
	}
	toks, err := ta.st.TokenList(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	out := listJSON[apijson.Token]{Items: make([]apijson.Token, 0, len(toks))}
	for _, t := range toks {
		out.Items = append(out.Items, apijson.FromToken(t))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *httpAPI) revokeToken(w http.ResponseWriter, r *http.Request) {
	ta, ok := h.tokenStore(w)
	if !ok {
		return
	}
	name := r.PathValue("name")
	tok, err := auth.RevokeToken(r.Context(), ta.st, principal(r.Context()).Name, name, time.Now())
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = notFound("token %q not found", name)
		}
		writeError(w, err)
		return
	}
	ta.v.Invalidate(name) // here at once; other servers hear TopicTokens
	if ta.revoked != nil {
		ta.revoked(name)
	}
	writeJSON(w, http.StatusOK, apijson.FromToken(tok))
}

func (h *httpAPI) listAudit(w http.ResponseWriter, r *http.Request) {
	ta, ok := h.tokenStore(w)
	if !ok {
		return
	}
	q := r.URL.Query()
	p := store.AuditListParams{Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"), Cursor: q.Get("cursor"), Limit: defaultListLimit}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{{"since", &p.Since}, {"until", &p.Until}} {
		if v := q.Get(f.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeError(w, badRequest(f.name, "%s must be an RFC 3339 time such as 2026-12-01T00:00:00Z, got %q", f.name, v))
				return
			}
			*f.to = t
		}
	}
	n, err := queryLimit(q.Get("limit"), p.Limit, maxListLimit)
	if err != nil {
		writeError(w, err)
		return
	}
	p.Limit = n
	page, err := ta.st.AuditList(r.Context(), p)
	if err != nil {
		if errors.Is(err, store.ErrInvalidCursor) {
			err = badRequest("cursor", "invalid cursor %q", p.Cursor)
		}
		writeError(w, err)
		return
	}
	out := listJSON[apijson.AuditEntry]{Items: make([]apijson.AuditEntry, 0, len(page.Entries)), NextCursor: page.NextCursor}
	for _, e := range page.Entries {
		out.Items = append(out.Items, apijson.FromAuditEntry(e))
	}
	writeJSON(w, http.StatusOK, out)
}
