package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
)

// Browser safety. A bearer token is never attached by a browser on its
// own, but a developer's browser can reach a server on loopback, and a
// page from anywhere can send it requests: a "simple" cross-origin POST
// (Content-Type text/plain, no preflight) is delivered even though its
// answer cannot be read, and DNS rebinding (a name of the attacker's that
// resolves to 127.0.0.1) makes a page the server's own origin as far as
// the browser knows. So, before any route runs:
//
//   - a state-changing request (POST, PUT, PATCH) must say Content-Type:
//     application/json (415 otherwise): a page cannot send that
//     cross-origin without a CORS preflight, which this server never
//     approves; DELETE is never sent cross-origin without one either;
//   - a request whose Origin is not the server's own, nor in
//     AllowedOrigins, is refused (403); so is one without Origin that the
//     browser marks Sec-Fetch-Site: cross-site;
//   - the Host header must be an IP address, localhost, this machine's
//     name, the advertised address, or in AllowedHosts (403 otherwise):
//     a rebinding page's requests carry the attacker's name;
//   - a request body must arrive within BodyTimeout (a body trickled one
//     byte at a time is cut off), as headers must within ReadHeaderTimeout.
//
// /healthz and /readyz are exempt: probes send no Origin, and answer
// nothing worth protecting.

// DefaultBodyTimeout bounds the time to read a request body.
const DefaultBodyTimeout = 30 * time.Second

// guardOptions configures the browser checks.
type guardOptions struct {
	// AllowedOrigins are origins (scheme://host[:port]) besides the
	// server's own whose requests are served; "*" allows any.
	AllowedOrigins []string
	// AllowedHosts are Host header names besides IP addresses, localhost,
	// this machine's name and the advertised HTTP address; "*" allows any.
	AllowedHosts []string
	// Advertised is the server's HTTP address as others reach it.
	Advertised string
	// BodyTimeout bounds reading a request body (default
	// DefaultBodyTimeout).
	BodyTimeout time.Duration
}

type guard struct {
	origins  map[string]bool
	anyOrig  bool
	hosts    map[string]bool
	anyHost  bool
	bodyWait time.Duration
}

func newGuard(o guardOptions) (*guard, error) {
	g := &guard{origins: map[string]bool{}, hosts: map[string]bool{"localhost": true}, bodyWait: o.BodyTimeout}
	if g.bodyWait <= 0 {
		g.bodyWait = DefaultBodyTimeout
	}
	for _, raw := range o.AllowedOrigins {
		s := strings.TrimSpace(raw)
		switch {
		case s == "":
		case s == "*":
			g.anyOrig = true
		default:
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
				return nil, fmt.Errorf("allowed-origins: %q is not an origin (scheme://host[:port])", raw)
			}
			g.origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
		}
	}
	for _, raw := range o.AllowedHosts {
		s := strings.ToLower(strings.TrimSpace(raw))
		switch {
		case s == "":
		case s == "*":
			g.anyHost = true
		default:
			g.hosts[hostOnly(s)] = true
		}
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		g.hosts[strings.ToLower(name)] = true
	}
	if o.Advertised != "" {
		g.hosts[strings.ToLower(hostOnly(o.Advertised))] = true
	}
	return g, nil
}

// hostOnly strips a port from host[:port] (IPv6 brackets too).
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// check returns the error to answer r with, or nil to serve it.
func (g *guard) check(r *http.Request) *apiError {
	if err := g.checkOrigin(r); err != nil {
		return err
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		if !isJSON(r.Header.Get("Content-Type")) {
			return &apiError{Status: http.StatusUnsupportedMediaType, Code: codeUnsupportedMediaType,
				Message: fmt.Sprintf("Content-Type must be application/json on %s requests, got %q", r.Method, r.Header.Get("Content-Type"))}
		}
	case http.MethodDelete:
		if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
			return &apiError{Status: http.StatusUnsupportedMediaType, Code: codeUnsupportedMediaType,
				Message: fmt.Sprintf("Content-Type must be application/json or absent on DELETE requests, got %q", ct)}
		}
	}
	return nil
}

// checkOrigin is the Host and Origin part of check (the console's forms
// are not JSON, so it applies this part only).
func (g *guard) checkOrigin(r *http.Request) *apiError {
	if !g.hostAllowed(r.Host) {
		return &apiError{Status: http.StatusForbidden, Code: codeForbidden,
			Message: fmt.Sprintf("host %q is not a name of this server (see --allowed-hosts)", r.Host)}
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		if !g.originAllowed(origin, r) {
			return &apiError{Status: http.StatusForbidden, Code: codeForbidden,
				Message: fmt.Sprintf("origin %q may not call this server (see --allowed-origins)", origin)}
		}
	} else if r.Header.Get("Sec-Fetch-Site") == "cross-site" && !g.anyOrig {
		return &apiError{Status: http.StatusForbidden, Code: codeForbidden, Message: "cross-site requests may not call this server (see --allowed-origins)"}
	}
	return nil
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

func (g *guard) hostAllowed(host string) bool {
	if g.anyHost {
		return true
	}
	h := strings.ToLower(hostOnly(host))
	if h == "" {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true // an address is no rebinding: the page's origin is that address
	}
	return g.hosts[h] || strings.HasSuffix(h, ".localhost")
}

func (g *guard) originAllowed(origin string, r *http.Request) bool {
	if g.anyOrig {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false // "null" (sandboxed frames, file://) included
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true // same origin (the scheme is the connection's)
	}
	return g.origins[strings.ToLower(u.Scheme+"://"+u.Host)]
}

// timedBody cuts off a request body that does not arrive in time: the
// connection's read deadline is set before the handler runs and cleared
// once the body is all read, so that a long poll after it (which reads
// nothing more) is not cut. On any other outcome it stays: the server
// reads what a handler left unread before it answers, and must not wait
// on a trickle for that either.
type timedBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	wait time.Duration
	done bool
}

func newTimedBody(body io.ReadCloser, rc *http.ResponseController, wait time.Duration) *timedBody {
	_ = rc.SetReadDeadline(time.Now().Add(wait)) // not supported by a test recorder: no limit there
	return &timedBody{ReadCloser: body, rc: rc, wait: wait}
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == nil || b.done:
	case errors.Is(err, io.EOF):
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	default:
		b.done = true
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("request body not received within %v: %w", b.wait, err)
		}
	}
	return n, err
}
