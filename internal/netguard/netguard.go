// Package netguard decides which network addresses Pluto may connect to on
// behalf of whoever submitted a run: the requests of the worker's http
// executor and the server's callbacks. Both are made from a machine's own
// network position, so without a check anyone who may submit a run can make
// Pluto reach what only that machine reaches — an admin endpoint on
// loopback, a cloud metadata service (169.254.169.254), a database on a
// private network (server-side request forgery).
//
// The rule: public addresses are allowed; loopback, link-local, private,
// shared (CGNAT), unspecified, multicast and reserved addresses (Classify),
// also in their IPv4-mapped, NAT64 and 6to4 IPv6 forms, are refused unless
// an allow-list (Parse) names them. The check is made on the address a
// connection is actually made to (Policy.DialContext), after name
// resolution and for every connection — redirects, retries, a name whose
// DNS answer changed between a check at submit and the request (DNS
// rebinding) — not on the URL a client gave.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// Policy is a parsed allow-list: public addresses plus what it lists. The
// zero value and nil allow public addresses only.
type Policy struct {
	// name says where the list came from ("--http-allow"), for messages.
	name     string
	prefixes []netip.Prefix
	hosts    []string // lower case; "*.example.com" matches subdomains
}

// RefusedError reports a destination the policy refuses.
type RefusedError struct {
	Host   string     // the host name dialed or in the URL; "" if it was an address
	Addr   netip.Addr // the address refused
	Reason string     // what kind of address it is: "loopback", "private"…
	List   string     // the allow-list that could allow it ("--http-allow")
}

func (e *RefusedError) Error() string {
	what := e.Addr.String()
	if e.Host != "" && e.Host != what {
		what = e.Host + " (" + what + ")"
	}
	list := "the allow-list"
	if e.List != "" {
		list = e.List
	}
	return fmt.Sprintf("connection to %s refused: %s address, not in %s", what, e.Reason, list)
}

// Parse reads an allow-list: each entry, or comma-separated part of one, is
// a CIDR (10.1.0.0/16), an IP (192.0.2.7, fd00::1), a host name
// (hooks.internal) or a wildcard (*.example.com, its subdomains only).
// Empty entries are skipped. A name is matched against the host a
// connection is made to (the URL's host), before resolution: listing a
// name trusts whatever its DNS answers. name is the list's name in
// messages, e.g. the flag that sets it.
func Parse(name string, entries []string) (*Policy, error) {
	p := &Policy{name: name}
	for _, entry := range entries {
		for _, raw := range strings.Split(entry, ",") {
			if err := p.add(raw); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return p, nil
}

func (p *Policy) add(raw string) error {
	e := strings.ToLower(strings.TrimSpace(raw))
	switch {
	case e == "":
		return nil
	case strings.Contains(e, "/"):
		pre, err := netip.ParsePrefix(e)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR: %w", raw, err)
		}
		if pre.Addr().Zone() != "" {
			return fmt.Errorf("%q: a CIDR has no zone", raw)
		}
		if pre.Addr().Is4In6() && pre.Bits() >= 96 {
			pre = netip.PrefixFrom(pre.Addr().Unmap(), pre.Bits()-96)
		}
		p.prefixes = append(p.prefixes, pre.Masked())
		return nil
	}
	if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")); err == nil {
		ip = ip.Unmap().WithZone("")
		p.prefixes = append(p.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
		return nil
	}
	if !validName(strings.TrimPrefix(e, "*.")) {
		return fmt.Errorf("%q is neither a CIDR, an IP nor a host name", raw)
	}
	p.hosts = append(p.hosts, strings.TrimSuffix(e, "."))
	return nil
}

// validName accepts host names: dot-separated labels of letters, digits,
// '-' and '_' (seen in real DNS names), with an optional final dot.
func validName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Empty reports whether the list names nothing: only public addresses are
// allowed.
func (p *Policy) Empty() bool {
	return p == nil || len(p.prefixes) == 0 && len(p.hosts) == 0
}

// String is the list as parsed, comma-separated.
func (p *Policy) String() string {
	if p == nil {
		return ""
	}
	parts := make([]string, 0, len(p.prefixes)+len(p.hosts))
	for _, pre := range p.prefixes {
		parts = append(parts, pre.String())
	}
	return strings.Join(append(parts, p.hosts...), ",")
}

// HostListed reports whether host (a name or an address, any case, without
// port) matches a name of the list.
func (p *Policy) HostListed(host string) bool {
	if p == nil {
		return false
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, h := range p.hosts {
		if h == host || strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) {
			return true
		}
	}
	return false
}

// CheckAddr returns nil if ip may be connected to: it is public, or in a
// CIDR or IP of the list; otherwise a *RefusedError.
func (p *Policy) CheckAddr(ip netip.Addr) error {
	ip = ip.WithZone("")
	reason := Classify(ip)
	if reason == "" {
		return nil
	}
	if p != nil {
		for _, pre := range p.prefixes {
			if pre.Contains(ip) || pre.Contains(ip.Unmap()) {
				return nil
			}
		}
	}
	return &RefusedError{Addr: ip, Reason: reason, List: p.listName()}
}

func (p *Policy) listName() string {
	if p == nil {
		return ""
	}
	return p.name
}

// CheckURL judges u as far as that is possible without resolving its host:
// credentials in it are refused (CheckCredentials), and so is an address
// the policy refuses. A host name the list does not name is allowed here;
// DialContext judges the addresses it resolves to.
func (p *Policy) CheckURL(u *url.URL) error {
	if err := CheckCredentials(u); err != nil {
		return err
	}
	host := u.Hostname()
	if p.HostListed(host) {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.CheckAddr(ip)
	}
	return nil
}

// Control is a net.Dialer Control function: it refuses a connection to an
// address the policy refuses. address is the resolved IP and port the
// socket is about to connect to.
func (p *Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("netguard: %s address %q: %w", network, address, err)
	}
	return p.CheckAddr(ap.Addr())
}

// DialContext returns a dial function for an http.Transport that connects
// through d, checking every address it connects to with Control — except
// to a host the list names, which is dialed as is. d's own Control or
// ControlContext, if any, still runs after the check.
func (p *Policy) DialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	guarded := *d
	guarded.Control = nil
	guarded.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		if err := p.Control(network, address, c); err != nil {
			return err
		}
		switch {
		case d.ControlContext != nil:
			return d.ControlContext(ctx, network, address, c)
		case d.Control != nil:
			return d.Control(network, address, c)
		}
		return nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("netguard: %w", err)
		}
		if p.HostListed(host) {
			return d.DialContext(ctx, network, addr)
		}
		c, err := guarded.DialContext(ctx, network, addr)
		var re *RefusedError
		if errors.As(err, &re) && re.Host == "" && net.ParseIP(host) == nil {
			re.Host = host // name the host the address came from
		}
		return c, err
	}
}
