package console

import (
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"sync"
	"time"
)

// One-time sign-in links, for `pluto dev`: it prints a console address
// that signs its first visitor in with the dev admin token. A link works
// once, within loginLinkTTL, and only on the server that made it. The
// token itself never appears in the address (it would stay in the
// browser's history); the code is random and useless once spent.

const (
	loginLinkTTL   = time.Hour
	maxLoginLinks  = 16
	loginCodeBytes = 24
)

type loginLinks struct {
	mu    sync.Mutex
	codes map[string]loginLink
}

type loginLink struct {
	secret  string
	expires time.Time
}

// LoginLink returns the path (with its one-time code) that signs the
// holder of secret in: "/login?code=…".
func (c *Console) LoginLink(secret string) (string, error) {
	b := make([]byte, loginCodeBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	code := base64.RawURLEncoding.EncodeToString(b)
	l := &c.links
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.codes == nil {
		l.codes = make(map[string]loginLink)
	}
	for k, v := range l.codes {
		if now.After(v.expires) || len(l.codes) >= maxLoginLinks {
			delete(l.codes, k)
		}
	}
	l.codes[code] = loginLink{secret: secret, expires: now.Add(loginLinkTTL)}
	return "/login?" + url.Values{"code": {code}}.Encode(), nil
}

// redeem spends a code: the secret it stands for, or "" if it is unknown,
// spent or expired.
func (l *loginLinks) redeem(code string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.codes[code]
	if !ok {
		return ""
	}
	delete(l.codes, code)
	if time.Now().After(v.expires) {
		return ""
	}
	return v.secret
}
