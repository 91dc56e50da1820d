package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// The HTTP side of feedback (feedback.go): the POST, the URL check at
// submit, and the optional allow-list of destinations.
//
// Network policy. The server POSTs to the URL a client gave and nowhere
// else, but from the server's network: a client that may submit runs can
// make the server send requests to addresses only the server reaches
// (SSRF) — an internal admin endpoint, a cloud metadata service
// (169.254.169.254). The response body is never shown to anybody (only
// the status code and a short excerpt go into callback.last_error), which
// limits what can be learned, but the request itself may do harm. So:
//
//   - Redirects are not followed: a 3xx answer is a failed attempt.
//   - Config.CallbackAllow (pluto server --callback-allow) restricts the
//     destinations: CIDRs or IPs (10.1.0.0/16, 192.0.2.7) that the address
//     connected to must be in, and host names (hooks.example.com) or
//     wildcards (*.example.com) that the URL's host may match. A URL is
//     allowed if its host matches a name, or every address it connects to
//     is in a CIDR. Names are resolved once, and the address checked is
//     the one dialed, so DNS cannot swap in another address between check
//     and connect. With a list, environment proxies are not used (a proxy
//     would hide the destination). A destination the list refuses fails
//     the delivery at once; a URL whose host can be judged at submit (an
//     IP literal, or no CIDRs to resolve into) is refused there (400).
//   - Without a list every destination is allowed (the default).

// CallbackDoer sends a callback's HTTP request; *http.Client is one. Tests
// inject a fake.
type CallbackDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// CallbackRefusedError reports a callback destination the allow-list
// refuses. A delivery that gets it fails at once (no retry).
type CallbackRefusedError struct {
	Host   string
	Reason string
}

func (e *CallbackRefusedError) Error() string {
	return fmt.Sprintf("callback to %s refused: %s", e.Host, e.Reason)
}

// callbackPolicy is a parsed allow-list; nil allows everything.
type callbackPolicy struct {
	prefixes []netip.Prefix
	hosts    []string // lower case; "*.example.com" matches subdomains
}

func parseCallbackAllow(entries []string) (*callbackPolicy, error) {
	var p callbackPolicy
	for _, raw := range entries {
		e := strings.ToLower(strings.TrimSpace(raw))
		switch {
		case e == "":
			continue
		case strings.Contains(e, "/"):
			pre, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("engine: callback allow-list: %q is not a CIDR: %v", raw, err)
			}
			p.prefixes = append(p.prefixes, pre.Masked())
		default:
			if ip, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
				p.prefixes = append(p.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				continue
			}
			name := strings.TrimPrefix(e, "*.")
			if name == "" || strings.ContainsAny(name, ":/*@ ") {
				return nil, fmt.Errorf("engine: callback allow-list: %q is neither a CIDR, an IP nor a host name", raw)
			}
			p.hosts = append(p.hosts, e)
		}
	}
	if len(p.prefixes) == 0 && len(p.hosts) == 0 {
		return nil, nil
	}
	return &p, nil
}

// hostAllowed reports whether host (lower case, no port) matches a name.
func (p *callbackPolicy) hostAllowed(host string) bool {
	for _, h := range p.hosts {
		if h == host || (strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:])) {
			return true
		}
	}
	return false
}

func (p *callbackPolicy) ipAllowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, pre := range p.prefixes {
		if pre.Contains(ip) {
			return true
		}
	}
	return false
}

// checkURL judges a URL at submit, as far as that is possible without
// resolving names: nil when it is allowed or can only be judged when
// dialed.
func (p *callbackPolicy) checkURL(u *url.URL) error {
	if p == nil {
		return nil
	}
	host := strings.ToLower(u.Hostname())
	if p.hostAllowed(host) {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if p.ipAllowed(ip) {
			return nil
		}
		return &CallbackRefusedError{Host: host, Reason: "the address is not in the server's callback allow-list"}
	}
	if len(p.prefixes) == 0 {
		return &CallbackRefusedError{Host: host, Reason: "the host is not in the server's callback allow-list"}
	}
	return nil // decided when its addresses are known
}

// dial connects to addr (from the URL: host and port) if the policy
// allows it, to an address it checked.
func (p *callbackPolicy) dial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	host = strings.ToLower(host)
	if p.hostAllowed(host) {
		return d.DialContext(ctx, network, addr)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	var refused netip.Addr
	for _, ip := range ips {
		if !p.ipAllowed(ip) {
			refused = ip
			continue
		}
		return d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
	}
	return nil, &CallbackRefusedError{Host: host, Reason: fmt.Sprintf("%s is not in the server's callback allow-list", refused)}
}

// newCallbackClient is the default client: no redirects, the policy's
// dialer, sane timeouts.
func newCallbackClient(p *callbackPolicy) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if p != nil {
		t.Proxy = nil
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return p.dial(ctx, d, network, addr)
		}
	}
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// postCallback POSTs r (as the API shows it) to its callback URL: nil for
// an answer in 2xx.
func (e *Engine) postCallback(ctx context.Context, r *store.Run) error {
	body, err := e.cfg.CallbackBody(r)
	if err != nil {
		return fmt.Errorf("encode run: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.CallbackURL, bytes.NewReader(body))
	if err != nil {
		return &CallbackRefusedError{Host: r.CallbackURL, Reason: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pluto-callback/1")
	req.Header.Set("X-Pluto-Run-Id", r.ID)
	req.Header.Set("X-Pluto-Delivery-Attempt", strconv.Itoa(r.Callback.Attempts))
	resp, err := e.feedback.client.Do(req)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err // the URL is on the run already
		}
		return fmt.Errorf("POST: %w", err)
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection can be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	msg := "HTTP " + strconv.Itoa(resp.StatusCode)
	if s := strings.TrimSpace(strings.ToValidUTF8(string(excerpt), "")); s != "" {
		msg += ": " + strings.Join(strings.Fields(s), " ")
	}
	return fmt.Errorf("%s", msg)
}

// validateCallbackURL checks a submitted callback URL.
func (e *Engine) validateCallbackURL(s string) error {
	if s == "" {
		return nil
	}
	fe := func(msg string) error { return &FieldError{Field: "callback_url", Message: msg} }
	if len(s) > store.MaxCallbackURL {
		return fe(fmt.Sprintf("is longer than %d bytes", store.MaxCallbackURL))
	}
	if err := plainText("callback_url", s); err != nil {
		return err
	}
	u, err := url.Parse(s)
	if err != nil {
		return fe("is not a URL: " + strings.TrimPrefix(err.Error(), "parse "+strconv.Quote(s)+": "))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fe("must be an absolute http or https URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return fe("has no host")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return fe("must not contain white space")
	}
	if err := e.feedback.policy.checkURL(u); err != nil {
		return fe(err.Error())
	}
	return nil
}
