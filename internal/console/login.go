package console

import (
	"errors"
	"net/http"
	"strings"

	"github.com/pluto-sched/pluto/internal/auth"
)

// Sign-in, sign-out and the language switch.

type loginPage struct {
	*view
	Next  string
	Error string
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	v := c.newView(r, nil)
	next := safeNext(r.URL.Query().Get("next"))
	if c.opts.AuthDisabled {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	page := loginPage{view: v, Next: next}
	if code := r.URL.Query().Get("code"); code != "" {
		if secret := c.links.redeem(code); secret != "" {
			if _, err := c.opts.Verify(r.Context(), secret); err == nil {
				c.setSession(w, r, secret)
				http.Redirect(w, r, next, http.StatusSeeOther)
				return
			}
		}
		page.Error = v.T("login.link_spent")
	} else if s, err := c.session(r); err == nil && s != nil {
		http.Redirect(w, r, next, http.StatusSeeOther) // already signed in
		return
	}
	v.Title = v.T("login.title")
	if err := c.render(w, "login", page); err != nil {
		c.log.Warn("console: render login", "err", err)
	}
}

// login checks the token typed in and, if it is good, starts the session.
// The sign-in form is the one unsafe request without a session, so it is
// held to the same origin by the server's origin check and SameSite.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	v := c.newView(r, nil)
	v.Title = v.T("login.title")
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	secret := strings.TrimSpace(r.PostFormValue("token"))
	next := safeNext(r.PostFormValue("next"))
	fail := func(status int, msg string) {
		w.WriteHeader(status)
		_ = c.render(w, "login", loginPage{view: v, Next: next, Error: msg})
	}
	if secret == "" {
		fail(http.StatusBadRequest, v.T("login.empty"))
		return
	}
	who, err := c.opts.Verify(r.Context(), secret)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		fail(http.StatusUnauthorized, v.T("login.bad"))
		return
	case err != nil:
		c.log.Warn("console: cannot check a sign-in", "err", err)
		fail(http.StatusServiceUnavailable, v.T("login.unavailable"))
		return
	case !who.Allows(auth.PermRead):
		fail(http.StatusForbidden, v.T("login.noread", string(who.Role)))
		return
	}
	c.setSession(w, r, secret)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	s, err := c.session(r)
	if err == nil && !checkCSRF(r, s) {
		http.Error(w, "bad CSRF token", http.StatusForbidden)
		return
	}
	clearSession(w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// setLang stores the chosen language and goes back to the page. Changing
// a display preference needs no session, so no CSRF token either.
func (c *Console) setLang(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	l := r.PostFormValue("lang")
	if !supported(l) {
		http.Error(w, "unknown language", http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil, HttpOnly: true})
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}
