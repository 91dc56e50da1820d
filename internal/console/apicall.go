package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/pluto-sched/pluto/internal/apijson"
)

// The console is a thin adapter over the JSON API: every page reads and
// every action writes through the same routes as the CLI, in process,
// with the signed-in user's token. So a page can show nothing the token
// may not read, an action is checked, validated and audited exactly as
// the API does it, and there is one implementation of each.

// APIError is an error answer of the API.
type APIError struct {
	Status int
	apijson.ErrorBody
}

func (e *APIError) Error() string { return e.Message }

// caller calls the API handler in process.
type caller struct {
	api http.Handler
}

// call sends method path?q with body (JSON-encoded unless nil) as the
// holder of secret and decodes a 2xx answer into out (unless nil).
func (c caller) call(ctx context.Context, secret, method, path string, q url.Values, body, out any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	target := path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return err
	}
	req.Host = "localhost" // the in-process call is the server's own
	req.RemoteAddr = "127.0.0.1:0"
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: make(http.Header)}
	c.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		var e apijson.Error
		if json.Unmarshal(rec.body.Bytes(), &e) != nil || e.Error.Message == "" {
			e.Error.Message = fmt.Sprintf("%s %s: HTTP %d", method, path, rec.status)
		}
		return &APIError{Status: rec.status, ErrorBody: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// recorder is the in-memory ResponseWriter of an in-process call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
