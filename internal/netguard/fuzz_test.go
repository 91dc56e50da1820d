package netguard

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzParse: the parser never panics, and what it accepts behaves: every
// address entry is allowed afterwards, and every name entry is listed.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "192.0.2.7,*.example.com", "[::1]", "::ffff:10.0.0.0/104", "a..b", "*.", "x/y", "fe80::1%eth0", " , "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse("l", []string{s})
		if err != nil {
			return
		}
		for _, part := range strings.Split(s, ",") {
			e := strings.ToLower(strings.TrimSpace(part))
			if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")); err == nil && !strings.Contains(e, "/") {
				if err := p.CheckAddr(ip); err != nil {
					t.Errorf("%q listed but %s refused: %v", s, ip, err)
				}
			} else if e != "" && !strings.Contains(e, "/") && !strings.HasPrefix(e, "*.") && !p.HostListed(e) {
				t.Errorf("%q listed but host %q not", s, e)
			}
		}
		if _, err := Parse("l", []string{p.String()}); err != nil {
			t.Errorf("String() %q of %q does not parse: %v", p.String(), s, err)
		}
	})
}

// FuzzURL: whenever net/url sees user information in a URL, CheckURL
// refuses it and Redact leaves no user name or password that net/url
// would read.
func FuzzURL(f *testing.F) {
	for _, s := range []string{"https://u:p@h/x", "http://h/a@b", "//u@h", "http://a@b@c/", "http://[::1]:80/", "https://h?x=@#@", "HTTP://U:P@H"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		var p *Policy
		if u.User != nil {
			if err := p.CheckURL(u); err != ErrCredentials {
				t.Errorf("CheckURL(%q) = %v, want ErrCredentials", s, err)
			}
			r, err := url.Parse(Redact(s))
			if err != nil {
				t.Fatalf("Redact(%q) = %q does not parse: %v", s, Redact(s), err)
			}
			if _, hasPW := r.User.Password(); r.User == nil || r.User.Username() != Redacted || hasPW {
				t.Errorf("Redact(%q) = %q: user %v", s, Redact(s), r.User)
			}
			if r.Host != u.Host || r.Path != u.Path || r.RawQuery != u.RawQuery {
				t.Errorf("Redact(%q) = %q changed more than the user", s, Redact(s))
			}
		} else if Redact(s) != s && !strings.Contains(s, "://") && !strings.HasPrefix(s, "//") {
			t.Errorf("Redact(%q) = %q changed a URL without an authority", s, Redact(s))
		}
	})
}
