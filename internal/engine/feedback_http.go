package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pluto-sched/pluto/internal/netguard"
	"github.com/pluto-sched/pluto/internal/store"
)

// The HTTP side of feedback (feedback.go): the POST, the URL check at
// submit, and the network policy of destinations.
//
// Network policy. The server POSTs to the URL a client gave and nowhere
// else, but from the server's network: a client that may submit runs can
// make the server send requests to addresses only the server reaches
// (SSRF) — an internal admin endpoint, a cloud metadata service
// (169.254.169.254). The response body is never shown to anybody (only
// the status code and a short excerpt go into callback.last_error), which
// limits what can be learned, but the request itself may do harm. So the
// rules of internal/netguard apply, as for the worker's http executor:
//
//   - Public addresses are allowed; loopback, link-local, private, CGNAT,
//     unspecified, multicast and reserved ones (netguard.Classify) are
//     refused unless Config.CallbackAllow (pluto server --callback-allow)
//     lists them: CIDRs or IPs the address connected to may be in, host
//     names (hooks.internal) or wildcards (*.example.com) the URL's host
//     may match. The list widens the default; it never narrows it.
//   - The address checked is the one each connection dials, after name
//     resolution, so DNS cannot swap in another address between a check
//     and the connection. Environment proxies are not used (a proxy would
//     hide the destination).
//   - A destination the policy refuses fails the delivery at once; a URL
//     whose host is an address the policy refuses, or that holds
//     credentials (user:password@), is refused at submit (400).
//   - Redirects are not followed: a 3xx answer is a failed attempt.

// CallbackDoer sends a callback's HTTP request; *http.Client is one. Tests
// inject a fake.
type CallbackDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// CallbackRefusedError reports a callback destination the network policy
// refuses. A delivery that gets it fails at once (no retry).
type CallbackRefusedError struct {
	Host   string
	Reason string
	Err    error // the policy's refusal (*netguard.RefusedError), if it was one
}

func (e *CallbackRefusedError) Error() string {
	if e.Err != nil {
		return "callback " + e.Err.Error()
	}
	return fmt.Sprintf("callback to %s refused: %s", e.Host, e.Reason)
}

func (e *CallbackRefusedError) Unwrap() error { return e.Err }

// callbackPolicy is the parsed Config.CallbackAllow; nil allows public
// addresses only.
type callbackPolicy = netguard.Policy

// callbackAllowName names the list in refusals.
const callbackAllowName = "the callback allow-list (--callback-allow)"

func parseCallbackAllow(entries []string) (*callbackPolicy, error) {
	p, err := netguard.Parse(callbackAllowName, entries)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return p, nil
}

// checkCallbackURL judges a URL at submit, as far as that is possible
// without resolving names: nil when it is allowed or can only be judged
// when dialed.
func checkCallbackURL(p *callbackPolicy, u *url.URL) error {
	err := p.CheckURL(u)
	var re *netguard.RefusedError
	if errors.As(err, &re) {
		return &CallbackRefusedError{Host: u.Hostname(), Err: re}
	}
	return err
}

// newCallbackClient is the default client: no redirects, every connection
// checked by the policy, sane timeouts.
func newCallbackClient(p *callbackPolicy) *http.Client {
	return &http.Client{
		Transport:     p.Transport(),
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
	hdr := map[string]string{"X-Pluto-Run-Id": r.ID, "X-Pluto-Delivery-Attempt": strconv.Itoa(r.Callback.Attempts)}
	_, err = e.postHook(ctx, r.CallbackURL, "pluto-callback/1", body, hdr)
	return err
}

// postHook POSTs a JSON body to url under the network policy: nil and the
// start of the answer's body (4 KiB) for an answer in 2xx.
func (e *Engine) postHook(ctx context.Context, url_, agent string, body []byte, hdr map[string]string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url_, bytes.NewReader(body))
	if err != nil {
		// Not the URL in the error: it may hold a token (a chat webhook's).
		return nil, &CallbackRefusedError{Host: "the URL", Reason: "it does not parse"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", agent)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.feedback.client.Do(req)
	if err != nil {
		var re *netguard.RefusedError
		if errors.As(err, &re) {
			return nil, &CallbackRefusedError{Host: req.URL.Hostname(), Err: re}
		}
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err // the URL is on the run already
		}
		return nil, fmt.Errorf("POST: %w", err)
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection can be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return head, nil
	}
	msg := "HTTP " + strconv.Itoa(resp.StatusCode)
	if s := strings.TrimSpace(strings.ToValidUTF8(string(head[:min(len(head), 200)]), "")); s != "" {
		msg += ": " + strings.Join(strings.Fields(s), " ")
	}
	return nil, fmt.Errorf("%s", msg)
}

// validateCallbackURL checks a submitted callback URL.
func (e *Engine) validateCallbackURL(s string) error { return e.validateHookURL("callback_url", s) }

// validateHookURL checks a URL the server will POST to (a callback, an
// alert webhook), given in field.
func (e *Engine) validateHookURL(field, s string) error {
	if s == "" {
		return nil
	}
	fe := func(msg string) error { return &FieldError{Field: field, Message: msg} }
	if len(s) > store.MaxCallbackURL {
		return fe(fmt.Sprintf("is longer than %d bytes", store.MaxCallbackURL))
	}
	if err := plainText(field, s); err != nil {
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
	if err := checkCallbackURL(e.netPolicy, u); err != nil {
		return fe(err.Error())
	}
	return nil
}
