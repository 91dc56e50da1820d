package netguard

import (
	"errors"
	"net/url"
	"strings"
)

// ErrCredentials refuses a URL with user information (user:password@host):
// a run's URLs are stored and shown to whoever may read the run, in the
// API, the console and logs, so a secret in one leaks. Headers are the
// place for credentials.
var ErrCredentials = errors.New("embedded credentials (user:password@) are not allowed in a URL")

// CheckCredentials returns ErrCredentials if u has user information, even
// an empty one ("http://@host").
func CheckCredentials(u *url.URL) error {
	if u != nil && u.User != nil {
		return ErrCredentials
	}
	return nil
}

// Redacted is what Redact puts in place of a URL's user information.
const Redacted = "REDACTED"

// Redact returns s with the user information of its authority (everything
// before the last '@' of "scheme://user:password@host") replaced by
// REDACTED, for showing a URL that may hold credentials. Unlike
// url.URL.Redacted it hides the user name too (often a token itself), and
// it works on strings that do not parse, changing nothing else.
func Redact(s string) string {
	start := 0
	switch {
	case strings.HasPrefix(s, "//"):
		start = 2
	default:
		i := strings.Index(s, "://")
		if i < 0 {
			return s
		}
		start = i + 3
	}
	auth := s[start:]
	if end := strings.IndexAny(auth, "/?#"); end >= 0 {
		auth = auth[:end]
	}
	at := strings.LastIndex(auth, "@")
	if at < 0 {
		return s
	}
	return s[:start] + Redacted + s[start+at:]
}
