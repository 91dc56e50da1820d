package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/netguard"
	"github.com/pluto-sched/pluto/worker"
)

// Defaults for HTTPOptions.
const (
	DefaultMaxBody      = 64 << 10
	DefaultHTTPTimeout  = 30 * time.Second
	DefaultMaxRedirects = 5
)

// HTTPAllowName names the worker's allow-list in refusals and parse
// errors: pass it to netguard.Parse.
const HTTPAllowName = "the worker's http allow-list (--http-allow)"

// HTTPOptions configure the HTTP executor. Zero values take defaults.
type HTTPOptions struct {
	// Policy decides which addresses requests may connect to; it is
	// checked on every connection, redirects included (default, and nil:
	// public addresses only — see internal/netguard).
	Policy *netguard.Policy
	// MaxBody is how many bytes of the response body the result keeps
	// (default 64 KiB).
	MaxBody int
	// Timeout applies when the payload names none (default 30 s). The run's
	// own timeout, if shorter, applies too.
	Timeout time.Duration
	// MaxRedirects is how many redirects a request follows (default 5).
	MaxRedirects int
}

// HTTPPayload is the payload of an "http" run.
type HTTPPayload struct {
	Method  string            `json:"method,omitempty"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	Timeout string            `json:"timeout,omitempty"`
}

// HTTPResult is the result of an "http" run. Header values seen more than
// once are joined with ", ".
type HTTPResult struct {
	Status    int               `json:"status"`
	Headers   map[string]string `json:"headers"`
	Body      string            `json:"body"`
	Truncated bool              `json:"truncated,omitempty"`
}

// HTTPExecutor is the HTTP executor, a worker.Handler. See the package
// documentation: register it only when the worker was started with the
// http handler enabled.
type HTTPExecutor struct {
	opts   HTTPOptions
	client *http.Client
}

// HTTP returns the HTTP executor.
func HTTP(opts HTTPOptions) *HTTPExecutor {
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultHTTPTimeout
	}
	if opts.MaxRedirects <= 0 {
		opts.MaxRedirects = DefaultMaxRedirects
	}
	if opts.Policy == nil {
		opts.Policy, _ = netguard.Parse(HTTPAllowName, nil) // only to name the list in refusals
	}
	h := &HTTPExecutor{opts: opts}
	h.client = &http.Client{Transport: opts.Policy.Transport(), CheckRedirect: h.checkRedirect}
	return h
}

// ProcessRun makes the request of an "http" run.
func (h *HTTPExecutor) ProcessRun(ctx context.Context, r *worker.Run) error {
	return runHTTP(ctx, r, h.client, &h.opts)
}

// CloseIdleConnections closes the connections kept for reuse.
func (h *HTTPExecutor) CloseIdleConnections() { h.client.CloseIdleConnections() }

// checkRedirect caps redirects and refuses a Location the policy refuses
// outright (an address literal, credentials). The address a redirect
// leads to is checked again when it is dialed, like any connection.
func (h *HTTPExecutor) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > h.opts.MaxRedirects {
		return fmt.Errorf("stopped after %d redirects", h.opts.MaxRedirects)
	}
	if err := h.opts.Policy.CheckURL(req.URL); err != nil {
		return fmt.Errorf("redirect to %s: %w", netguard.Redact(req.URL.String()), err)
	}
	return nil
}

func runHTTP(ctx context.Context, r *worker.Run, client *http.Client, opts *HTTPOptions) error {
	var p HTTPPayload
	if err := r.Decode(&p); err != nil {
		return err
	}
	if p.URL == "" {
		return worker.NoRetry(errors.New("payload.url: required"))
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		return worker.NoRetry(fmt.Errorf("payload.url: %w", err))
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return worker.NoRetry(fmt.Errorf("payload.url: %q is not an http(s) URL", netguard.Redact(p.URL)))
	}
	if err := opts.Policy.CheckURL(u); err != nil {
		if errors.Is(err, netguard.ErrCredentials) {
			err = fmt.Errorf("%w; send them in a header", err)
		}
		return worker.NoRetry(fmt.Errorf("payload.url: %w", err))
	}
	method := strings.ToUpper(p.Method)
	if method == "" {
		method = http.MethodGet
	}
	timeout := opts.Timeout
	if p.Timeout != "" {
		if timeout, err = time.ParseDuration(p.Timeout); err != nil || timeout <= 0 {
			return worker.NoRetry(fmt.Errorf("payload.timeout: %q is not a positive duration", p.Timeout))
		}
	}
	var body io.Reader
	if p.Body != "" {
		body = strings.NewReader(p.Body)
	}
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, method, u.String(), body)
	if err != nil {
		return worker.NoRetry(fmt.Errorf("payload.method: %w", err))
	}
	for k, v := range p.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "pluto-worker")
	}

	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == nil && reqCtx.Err() != nil {
			return fmt.Errorf("http: %s %s: timed out after %v", method, u, timeout)
		}
		return requestError(method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(opts.MaxBody)+1))
	res := HTTPResult{Status: resp.StatusCode, Headers: make(map[string]string, len(resp.Header))}
	for k, vs := range resp.Header {
		res.Headers[k] = strings.Join(vs, ", ")
	}
	if len(b) > opts.MaxBody {
		b, res.Truncated = b[:opts.MaxBody], true
	}
	res.Body = string(b)
	if serr := r.SetResult(res); serr != nil {
		return serr
	}
	if err != nil {
		return fmt.Errorf("http: reading the response body: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("http: %s %s: status %s", method, u, resp.Status)
	}
	return nil
}

// requestError is the error of a request that got no response. One the
// network policy refused is not retried: the same payload would be
// refused again.
func requestError(method string, err error) error {
	if ue, ok := err.(*url.Error); ok {
		// Redacted: net/url strips only the password of a redirect's URL.
		err = fmt.Errorf("%s %s: %w", method, netguard.Redact(ue.URL), ue.Err)
	}
	err = fmt.Errorf("http: %w", err)
	var refused *netguard.RefusedError
	if errors.As(err, &refused) || errors.Is(err, netguard.ErrCredentials) {
		return worker.NoRetry(err)
	}
	return err
}
