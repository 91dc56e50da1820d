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

	"github.com/pluto-sched/pluto/worker"
)

// Defaults for HTTPOptions.
const (
	DefaultMaxBody     = 64 << 10
	DefaultHTTPTimeout = 30 * time.Second
)

// HTTPOptions configure the HTTP executor. Zero values take defaults.
type HTTPOptions struct {
	// Client makes the requests (default: a client with its own copy of
	// http.DefaultTransport).
	Client *http.Client
	// MaxBody is how many bytes of the response body the result keeps
	// (default 64 KiB).
	MaxBody int
	// Timeout applies when the payload names none (default 30 s). The run's
	// own timeout, if shorter, applies too.
	Timeout time.Duration
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

// HTTP returns the HTTP executor.
func HTTP(opts HTTPOptions) worker.Handler {
	if opts.Client == nil {
		opts.Client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultHTTPTimeout
	}
	return worker.HandlerFunc(func(ctx context.Context, r *worker.Run) error {
		return runHTTP(ctx, r, &opts)
	})
}

func runHTTP(ctx context.Context, r *worker.Run, opts *HTTPOptions) error {
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
		return worker.NoRetry(fmt.Errorf("payload.url: %q is not an http(s) URL", p.URL))
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

	resp, err := opts.Client.Do(req)
	if err != nil {
		if ctx.Err() == nil && reqCtx.Err() != nil {
			return fmt.Errorf("http: %s %s: timed out after %v", method, u.Redacted(), timeout)
		}
		return fmt.Errorf("http: %w", err)
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
		return fmt.Errorf("http: %s %s: status %s", method, u.Redacted(), resp.Status)
	}
	return nil
}
