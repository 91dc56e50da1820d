package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// apiClient is a small client of the HTTP JSON API (/api/v1).
type apiClient struct {
	base  *url.URL
	token string
	// tokenFrom says where token came from (for 401 messages).
	tokenFrom tokenSource
	hc        *http.Client
	// requestTimeout bounds an ordinary request; long polls get their own.
	requestTimeout time.Duration
	// retryFor is how long a wait loop keeps retrying when the server is
	// unreachable or unavailable (a server restart).
	retryFor time.Duration
}

func newAPIClient(base *url.URL, token string) *apiClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &apiClient{
		base:           base,
		token:          token,
		hc:             &http.Client{Transport: tr, CheckRedirect: followServer(base, token)},
		requestTimeout: 60 * time.Second,
		retryFor:       30 * time.Second,
	}
}

// followServer follows the redirects a server answers with, such as the
// 307 that sends a request about a worker to the server of the cluster it
// is connected to. The token goes along (Go drops it when the host
// changes): the other server belongs to the same cluster — unless the
// redirect would send it in clear text when it was sent over TLS.
func followServer(base *url.URL, token string) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return fmt.Errorf("stopped after %d redirects", len(via))
		}
		if token != "" && (base.Scheme != "https" || req.URL.Scheme == "https") {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return nil
	}
}

// apiError is an error answer of the API.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (e *apiError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Field != "" && !strings.Contains(msg, e.Field) {
		msg = e.Field + ": " + msg
	}
	return msg
}

// unreachableError is a request that got no HTTP answer.
type unreachableError struct {
	base string
	err  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the Pluto server at %s (is it running? set --server or %s): %v", e.base, envServer, e.err)
}
func (e *unreachableError) Unwrap() error { return e.err }

// transient reports whether retrying the request later may succeed.
func transient(err error) bool {
	var ue *unreachableError
	if errors.As(err, &ue) {
		return true
	}
	var ae *apiError
	return errors.As(err, &ae) && (ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusBadGateway || ae.Status == http.StatusGatewayTimeout)
}

func (c *apiClient) url(path string, q url.Values) string {
	u := *c.base
	u.Path = c.base.Path + "/api/v1" + path
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func (c *apiClient) newRequest(ctx context.Context, method, path string, q url.Values, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), rd)
	if err != nil {
		return nil, err
	}
	if body != nil || method != http.MethodGet {
		// Every state-changing request says JSON, with or without a body:
		// the server refuses others (a browser's cross-origin guard).
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "pluto-cli")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// send performs a request and returns the response; a non-2xx answer
// becomes an *apiError (and the body is closed).
func (c *apiClient) send(req *http.Request) (*http.Response, error) {
	res, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			if errors.Is(ctxErr, context.DeadlineExceeded) {
				return nil, fmt.Errorf("no answer from %s within the request timeout", c.base)
			}
			return nil, ctxErr
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &unreachableError{base: c.base.String(), err: err}
	}
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return res, nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var env struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &env) == nil && env.Error != nil {
		return nil, c.tokenFrom.authHint(&apiError{Status: res.StatusCode, Code: env.Error.Code, Message: env.Error.Message, Field: env.Error.Field})
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = res.Status
	} else {
		msg = "server answered " + res.Status + ": " + msg
	}
	return nil, c.tokenFrom.authHint(&apiError{Status: res.StatusCode, Message: msg})
}

// do performs a request with the ordinary timeout and returns the body.
func (c *apiClient) do(ctx context.Context, method, path string, q url.Values, body any) ([]byte, error) {
	return c.doTimeout(ctx, c.requestTimeout, method, path, q, body)
}

func (c *apiClient) doTimeout(ctx context.Context, timeout time.Duration, method, path string, q url.Values, body any) ([]byte, error) {
	_, b, err := c.doStatusTimeout(ctx, timeout, method, path, q, body)
	return b, err
}

// doStatus is do that also returns the status code of a 2xx answer
// (201 Created or 200 OK tell a create from a replace).
func (c *apiClient) doStatus(ctx context.Context, method, path string, q url.Values, body any) (int, []byte, error) {
	return c.doStatusTimeout(ctx, c.requestTimeout, method, path, q, body)
}

func (c *apiClient) doStatusTimeout(ctx context.Context, timeout time.Duration, method, path string, q url.Values, body any) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return 0, nil, err
	}
	res, err := c.send(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the answer of %s: %w", c.base, err)
	}
	return res.StatusCode, b, nil
}

// The API's JSON shapes (internal/apijson, shared with the server).
type (
	apiRun         = apijson.Run
	apiWorker      = apijson.Worker
	apiLog         = apijson.LogLine
	apiList[T any] = apijson.List[T]
	apiJob         = apijson.Job
)

// show sends one request (no query, no body) and prints the answer: the
// JSON as it is with -o json, otherwise decoded as T and printed by print.
func show[T any](cmd *cobra.Command, co *clientOpts, out io.Writer, method, path string, print func(T) error) error {
	c, err := co.client()
	if err != nil {
		return err
	}
	raw, err := c.do(cmd.Context(), method, path, nil, nil)
	if err != nil {
		return err
	}
	if co.json() {
		return printJSON(out, raw)
	}
	v, err := decode[T](raw)
	if err != nil {
		return err
	}
	return print(v)
}

// showPage lists one page of path: the JSON as it is with -o json,
// otherwise the items printed by print and, when there are more, the
// cursor of the next page on errOut (what names the items).
func showPage[T any](cmd *cobra.Command, co *clientOpts, out, errOut io.Writer, path string, q url.Values, what string, print func([]T) error) error {
	c, err := co.client()
	if err != nil {
		return err
	}
	raw, err := c.do(cmd.Context(), http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	if co.json() {
		return printJSON(out, raw)
	}
	page, err := decode[apiList[T]](raw)
	if err != nil {
		return err
	}
	if err := print(page.Items); err != nil {
		return err
	}
	if page.NextCursor != "" {
		fmt.Fprintf(errOut, "more %s: --cursor %s\n", what, page.NextCursor)
	}
	return nil
}

// setLimit checks a listing's --limit, if given, and puts it in q.
func setLimit(q url.Values, given bool, limit int) error {
	if !given {
		return nil
	}
	if limit < 1 || limit > 1000 {
		return usageErrorf("invalid --limit %d: want 1 to 1000", limit)
	}
	q.Set("limit", strconv.Itoa(limit))
	return nil
}

func decode[T any](raw []byte) (T, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("the server's answer is not what pluto expects: %v", err)
	}
	return v, nil
}

// getRun fetches one run.
func (c *apiClient) getRun(ctx context.Context, id string) ([]byte, apiRun, error) {
	raw, err := c.do(ctx, http.MethodGet, "/runs/"+url.PathEscape(id), nil, nil)
	if err != nil {
		return nil, apiRun{}, err
	}
	run, err := decode[apiRun](raw)
	return raw, run, err
}

// errWaitTimeout ends a wait whose --timeout passed first.
var errWaitTimeout = errors.New("timed out waiting")

// waitPoll is the longest single long poll.
const waitPoll = 30 * time.Second

// waitRun long-polls until the run is terminal or limit (0: none) passes;
// it then returns the run as last seen (with errWaitTimeout if not
// terminal). It rides out a server restart for up to retryFor.
func (c *apiClient) waitRun(ctx context.Context, id string, limit time.Duration) ([]byte, apiRun, error) {
	var deadline time.Time
	if limit > 0 {
		deadline = time.Now().Add(limit)
	}
	var (
		raw       []byte
		run       apiRun
		failSince time.Time
		backoff   = 250 * time.Millisecond
	)
	for {
		poll := waitPoll
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left < time.Millisecond {
				if raw == nil {
					b, r, err := c.getRun(ctx, id)
					if err != nil {
						return nil, apiRun{}, err
					}
					raw, run = b, r
					if run.Terminal() {
						return raw, run, nil
					}
				}
				return raw, run, errWaitTimeout
			}
			poll = min(poll, left)
		}
		q := url.Values{"timeout": {poll.Round(time.Millisecond).String()}}
		b, err := c.doTimeout(ctx, poll+c.requestTimeout, http.MethodGet, "/runs/"+url.PathEscape(id)+"/wait", q, nil)
		if err != nil {
			if !transient(err) || ctx.Err() != nil {
				return raw, run, err
			}
			if failSince.IsZero() {
				failSince = time.Now()
			} else if time.Since(failSince) > c.retryFor {
				return raw, run, err
			}
			select {
			case <-ctx.Done():
				return raw, run, ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		failSince, backoff = time.Time{}, 250*time.Millisecond
		r, err := decode[apiRun](b)
		if err != nil {
			return raw, run, err
		}
		raw, run = b, r
		if run.Terminal() {
			return raw, run, nil
		}
	}
}
