package netguard

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	for addr, want := range map[string]string{
		"8.8.8.8":                "",
		"203.0.113.5":            "",
		"2001:4860:4860::8888":   "",
		"0.0.0.0":                "unspecified",
		"0.1.2.3":                "unspecified",
		"::":                     "unspecified",
		"127.0.0.1":              "loopback",
		"127.255.0.9":            "loopback",
		"::1":                    "loopback",
		"169.254.169.254":        "link-local",
		"fe80::1":                "link-local",
		"fe80::1%eth0":           "link-local",
		"10.1.2.3":               "private",
		"172.16.0.1":             "private",
		"172.31.255.255":         "private",
		"172.32.0.1":             "",
		"192.168.1.1":            "private",
		"fd00::1":                "private",
		"fc00::1":                "private",
		"fec0::1":                "private",
		"100.64.0.1":             "shared (CGNAT)",
		"100.127.255.255":        "shared (CGNAT)",
		"100.128.0.1":            "",
		"224.0.0.1":              "multicast",
		"ff02::1":                "multicast",
		"255.255.255.255":        "reserved",
		"::ffff:127.0.0.1":       "loopback (IPv4-mapped)",
		"::ffff:169.254.169.254": "link-local (IPv4-mapped)",
		"::ffff:8.8.8.8":         "",
		"::127.0.0.1":            "loopback (IPv4-compatible)",
		"64:ff9b::a00:1":         "private (NAT64)",
		"64:ff9b::808:808":       "",
		"64:ff9b:1::1":           "private (local-use NAT64)",
		"2002:7f00:1::1":         "loopback (6to4)",
		"2002:a9fe:a9fe::":       "link-local (6to4)",
		"2002:808:808::1":        "",
	} {
		if got := Classify(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Classify(%s) = %q, want %q", addr, got, want)
		}
	}
	if got := Classify(netip.Addr{}); got != "invalid" {
		t.Errorf("Classify(zero) = %q", got)
	}
}

func TestParse(t *testing.T) {
	p, err := Parse("--x-allow", []string{"10.0.0.0/8, 192.0.2.7", "*.Example.com", "Hooks.Internal.", " ", "[::1]", "::ffff:127.0.0.2", "::ffff:172.16.0.0/108"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.String(), "10.0.0.0/8,192.0.2.7/32,::1/128,127.0.0.2/32,172.16.0.0/12,*.example.com,hooks.internal"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for host, want := range map[string]bool{
		"hooks.internal": true, "HOOKS.internal.": true, "a.example.com": true, "a.b.example.com": true,
		"example.com": false, "badexample.com": false, "other": false, "": false,
	} {
		if got := p.HostListed(host); got != want {
			t.Errorf("HostListed(%q) = %v, want %v", host, got, want)
		}
	}
	for addr, want := range map[string]bool{
		"10.9.9.9": true, "::ffff:10.9.9.9": true, "::1": true, "127.0.0.2": true, "::ffff:127.0.0.2": true,
		"127.0.0.1": false, "172.20.0.1": true, "192.168.0.1": false, "8.8.8.8": true,
	} {
		if got := p.CheckAddr(netip.MustParseAddr(addr)) == nil; got != want {
			t.Errorf("CheckAddr(%s) allowed = %v, want %v", addr, got, want)
		}
	}
	for _, empty := range [][]string{nil, {""}, {" , ,"}} {
		p, err := Parse("l", empty)
		if err != nil || !p.Empty() {
			t.Errorf("%q: %v, %v; want an empty policy", empty, p, err)
		}
	}
	for _, bad := range []string{"10.0.0.0/40", "http://x/", "a b", "user@host", "*.", "*", "a..b", "x:80", "fe80::/10%eth0", strings.Repeat("a", 64) + ".com"} {
		if _, err := Parse("--x-allow", []string{bad}); err == nil || !strings.HasPrefix(err.Error(), "--x-allow: ") {
			t.Errorf("%q: %v, want an error naming the list", bad, err)
		}
	}
}

func TestNilPolicyIsPublicOnly(t *testing.T) {
	var p *Policy
	if !p.Empty() || p.HostListed("localhost") || p.String() != "" {
		t.Error("nil policy lists something")
	}
	if err := p.CheckAddr(netip.MustParseAddr("1.1.1.1")); err != nil {
		t.Error(err)
	}
	err := p.CheckAddr(netip.MustParseAddr("::ffff:169.254.169.254"))
	var re *RefusedError
	if !errors.As(err, &re) || re.Reason != "link-local (IPv4-mapped)" || re.Addr.String() != "::ffff:169.254.169.254" {
		t.Fatalf("err = %#v", err)
	}
	if want := "connection to ::ffff:169.254.169.254 refused: link-local (IPv4-mapped) address, not in the allow-list"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

func TestCheckURL(t *testing.T) {
	p, err := Parse("--callback-allow", []string{"hooks.internal", "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]string{
		"https://example.com/x":          "",
		"http://hooks.internal:8080/":    "",
		"http://10.1.2.3/":               "",
		"http://localhost/":              "", // a name: judged when dialed
		"http://8.8.8.8/":                "",
		"http://127.0.0.1:8080/":         "loopback address, not in --callback-allow",
		"http://[::1]/":                  "loopback",
		"http://[::ffff:192.168.0.1]/":   "private",
		"http://[fe80::1%25eth0]/":       "link-local",
		"http://169.254.169.254/latest":  "link-local",
		"https://user:pw@example.com/":   "embedded credentials",
		"https://token@example.com/":     "embedded credentials",
		"https://@example.com/":          "embedded credentials",
		"http://user:pw@hooks.internal/": "embedded credentials",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		err = p.CheckURL(u)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckURL(%s) = %v, want %q", raw, err, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:secret@example.com/p?q=1": "https://REDACTED@example.com/p?q=1",
		"https://token@example.com":             "https://REDACTED@example.com",
		"http://a@b@host:80/x@y":                "http://REDACTED@host:80/x@y",
		"//u:p@host/":                           "//REDACTED@host/",
		"https://example.com/a@b":               "https://example.com/a@b",
		"https://example.com?x=a@b":             "https://example.com?x=a@b",
		"https://example.com#a@b":               "https://example.com#a@b",
		"not a url @ all":                       "not a url @ all",
		"http://u:p@ho st/%zz":                  "http://REDACTED@ho st/%zz",
		"":                                      "",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDialRefusesLoopback dials an httptest server (on 127.0.0.1) through
// the policy's transport: refused by default, by address and by name,
// allowed when listed.
func TestDialRefusesLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	get := func(p *Policy, url string) error {
		tr := p.Transport()
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	byName := "http://localhost:" + port + "/"
	for _, u := range []string{srv.URL, byName} {
		err := get(nil, u)
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != "loopback" {
			t.Fatalf("GET %s with no list: %v, want refused as loopback", u, err)
		}
		if u == byName && (re.Host != "localhost" || !strings.Contains(err.Error(), "localhost (")) {
			t.Errorf("refusal does not name the host: %v", err)
		}
	}
	for _, list := range [][]string{{"127.0.0.1/32"}, {"127.0.0.0/8", "::1"}, {"localhost"}} {
		p, err := Parse("l", list)
		if err != nil {
			t.Fatal(err)
		}
		if err := get(p, byName); err != nil {
			t.Errorf("%v: %v", list, err)
		}
	}
}

func TestDialContextKeepsDialerControl(t *testing.T) {
	called := false
	d := &net.Dialer{ControlContext: nil}
	d.Control = func(network, address string, _ syscall.RawConn) error { called = true; return nil }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p, _ := Parse("l", []string{"127.0.0.1"})
	c, err := p.DialContext(d)(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !called {
		t.Error("the dialer's own Control was not called")
	}
}
