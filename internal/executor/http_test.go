package executor

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pluto-sched/pluto/internal/netguard"
	"github.com/pluto-sched/pluto/worker"
)

func httpRun(t *testing.T, p HTTPPayload) *worker.Run {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return worker.NewTestRun(worker.TestRun{Type: TypeHTTP, Payload: b})
}

func httpResult(t *testing.T, r *worker.Run) HTTPResult {
	t.Helper()
	var res HTTPResult
	if err := json.Unmarshal(r.Result(), &res); err != nil {
		t.Fatalf("result %s: %v", r.Result(), err)
	}
	return res
}

// newHTTPExecutor is an executor whose policy allows 127.0.0.1, where
// httptest servers listen, unless opts names a policy.
func newHTTPExecutor(t *testing.T, opts HTTPOptions) *HTTPExecutor {
	t.Helper()
	if opts.Policy == nil {
		opts.Policy = httpAllow(t, "127.0.0.1/32")
	}
	h := HTTP(opts)
	t.Cleanup(h.CloseIdleConnections)
	return h
}

func httpAllow(t *testing.T, list ...string) *netguard.Policy {
	t.Helper()
	p, err := netguard.Parse(HTTPAllowName, list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHTTP(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Method", r.Method)
			w.Header().Add("X-Multi", "a")
			w.Header().Add("X-Multi", "b")
			w.Header().Set("X-Token", r.Header.Get("X-Token"))
			w.Header().Set("X-Host", r.Host)
			w.WriteHeader(http.StatusCreated)
			w.Write(b)
		case "/fail":
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "down")
		case "/big":
			io.WriteString(w, strings.Repeat("x", 100))
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	h := newHTTPExecutor(t, HTTPOptions{MaxBody: 50})
	ctx := context.Background()

	t.Run("post", func(t *testing.T) {
		r := httpRun(t, HTTPPayload{Method: "post", URL: srv.URL + "/echo", Headers: map[string]string{"X-Token": "t1", "Host": "example.test"}, Body: `{"a":1}`})
		if err := h.ProcessRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		res := httpResult(t, r)
		if res.Status != 201 || res.Body != `{"a":1}` || res.Headers["X-Method"] != "POST" || res.Headers["X-Multi"] != "a, b" || res.Headers["X-Token"] != "t1" || res.Headers["X-Host"] != "example.test" || res.Truncated {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("default GET", func(t *testing.T) {
		r := httpRun(t, HTTPPayload{URL: srv.URL + "/echo"})
		if err := h.ProcessRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if res := httpResult(t, r); res.Headers["X-Method"] != "GET" {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("non-2xx fails", func(t *testing.T) {
		r := httpRun(t, HTTPPayload{URL: srv.URL + "/fail"})
		err := h.ProcessRun(ctx, r)
		if err == nil || !strings.Contains(err.Error(), "503") || worker.IsNoRetry(err) {
			t.Fatalf("err = %v", err)
		}
		if res := httpResult(t, r); res.Status != 503 || res.Body != "down" {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("body cap", func(t *testing.T) {
		r := httpRun(t, HTTPPayload{URL: srv.URL + "/big"})
		if err := h.ProcessRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		if res := httpResult(t, r); len(res.Body) != 50 || !res.Truncated {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		r := httpRun(t, HTTPPayload{URL: srv.URL + "/slow", Timeout: "50ms"})
		err := h.ProcessRun(ctx, r)
		if err == nil || !strings.Contains(err.Error(), "timed out after 50ms") || worker.IsNoRetry(err) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("run cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := h.ProcessRun(cctx, httpRun(t, HTTPPayload{URL: srv.URL + "/slow"}))
		if err == nil || !strings.Contains(err.Error(), "canceled") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestHTTPPayloadErrors(t *testing.T) {
	h := newHTTPExecutor(t, HTTPOptions{})
	for _, tt := range []struct {
		name    string
		payload string
		field   string
	}{
		{"missing url", `{}`, "payload.url"},
		{"no payload", ``, "payload.url"},
		{"bad scheme", `{"url": "file:///etc/passwd"}`, "payload.url"},
		{"no host", `{"url": "http://"}`, "payload.url"},
		{"unparsable url", `{"url": "http://a b/%zz"}`, "payload.url"},
		{"bad method", `{"url": "http://127.0.0.1:1/", "method": "GE T"}`, "payload.method"},
		{"bad timeout", `{"url": "http://127.0.0.1:1/", "timeout": "soon"}`, "payload.timeout"},
		{"negative timeout", `{"url": "http://127.0.0.1:1/", "timeout": "-1s"}`, "payload.timeout"},
		{"not json", `[`, "payload"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := worker.NewTestRun(worker.TestRun{Type: TypeHTTP, Payload: json.RawMessage(tt.payload)})
			err := h.ProcessRun(context.Background(), r)
			if err == nil || !strings.HasPrefix(err.Error(), tt.field) || !worker.IsNoRetry(err) {
				t.Fatalf("err = %v, want a NoRetry error naming %s", err, tt.field)
			}
		})
	}
}
