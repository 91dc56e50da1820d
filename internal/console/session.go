package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/auth"
)

// Sessions. Signing in checks a token (the roles of docs/security.md) and
// keeps it in a cookie: HttpOnly (no script reads it), SameSite=Strict (no
// other site's page sends it), Secure when the console is served over
// TLS, Path=/ and a 12-hour lifetime. Every request verifies the token
// again (the server caches verifications for at most a second), so a
// revoked or expired token ends its sessions at once, on every server.
// Signing out removes the cookie from the browser; revoking the token
// (pluto token revoke) ends it everywhere.
//
// CSRF: every form and every console request that changes something
// carries a token derived from the session's secret (an HMAC of it), which
// the server recomputes; a page of another origin can neither read it nor
// (SameSite) send the cookie, so it needs both defences broken at once.

const (
	sessionCookie = "pluto_session"
	langCookie    = "pluto_lang"
	sessionTTL    = 12 * time.Hour
	csrfField     = "csrf"
	csrfHeader    = "X-CSRF-Token"
)

// VerifyFunc checks a token secret and returns who holds it. Errors
// wrapping auth.ErrUnauthenticated mean a bad or revoked token; others
// are failures to check (the store is down).
type VerifyFunc func(ctx context.Context, secret string) (*auth.Principal, error)

// session is a signed-in request's identity.
type session struct {
	secret string
	who    *auth.Principal
	csrf   string
}

// csrfFor derives the CSRF token of a session secret.
func csrfFor(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("pluto console csrf v1"))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// SessionCookie is the name of the console's session cookie; the API
// accepts it in place of a bearer token (with CSRFToken on changes), so
// the console's scripts can follow a log or a stream.
const SessionCookie = sessionCookie

// CSRFToken is the CSRF token of a session secret (header X-CSRF-Token).
func CSRFToken(secret string) string { return csrfFor(secret) }

// errNoSession: the request carries no valid session.
var errNoSession = errors.New("console: not signed in")

// session returns the request's session: the verified cookie token, or,
// with auth off, an anonymous admin.
func (c *Console) session(r *http.Request) (*session, error) {
	if c.opts.AuthDisabled {
		return &session{who: &auth.Principal{Name: "anonymous", Role: auth.RoleAdmin}, csrf: csrfFor("pluto-no-auth")}, nil
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, errNoSession
	}
	who, err := c.opts.Verify(r.Context(), ck.Value)
	if err != nil {
		if errors.Is(err, auth.ErrUnauthenticated) {
			return nil, errNoSession
		}
		return nil, err
	}
	return &session{secret: ck.Value, who: who, csrf: csrfFor(ck.Value)}, nil
}

// checkCSRF reports whether an unsafe request carries the session's CSRF
// token (form field or header).
func checkCSRF(r *http.Request, s *session) bool {
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// setSession stores secret in the session cookie.
func (c *Console) setSession(w http.ResponseWriter, r *http.Request, secret string) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: secret, Path: "/", MaxAge: int(sessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

func clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

// safeNext is a post-login destination: a path on this console, never
// another site ("//evil.example" and "/\evil" included).
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return next
}
