package executor

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pluto-sched/pluto/internal/netguard"
	"github.com/pluto-sched/pluto/worker"
)

// countingServer is an httptest server on 127.0.0.1 that counts requests
// and redirects those whose path names a target (see redirects).
type countingServer struct {
	*httptest.Server
	hits      atomic.Int32
	redirects map[string]string // path → Location
}

func newCountingServer(t *testing.T, ln net.Listener, redirects map[string]string) *countingServer {
	t.Helper()
	cs := &countingServer{redirects: redirects}
	cs.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.hits.Add(1)
		if loc, ok := cs.redirects[r.URL.Path]; ok {
			http.Redirect(w, r, loc, http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	if ln != nil {
		cs.Listener.Close()
		cs.Listener = ln
	}
	cs.Start()
	t.Cleanup(cs.Close)
	return cs
}

// wantRefused checks that err is a NoRetry refusal by the network policy
// that contains want.
func wantRefused(t *testing.T, err error, want string) {
	t.Helper()
	var refused *netguard.RefusedError
	if !errors.As(err, &refused) || !worker.IsNoRetry(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want a NoRetry refusal containing %q", err, want)
	}
}

func TestHTTPRefusesLoopbackByDefault(t *testing.T) {
	srv := newCountingServer(t, nil, nil)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	ctx := context.Background()
	h := HTTP(HTTPOptions{}) // no allow-list
	t.Cleanup(h.CloseIdleConnections)
	// An address literal is refused before any connection, a name when
	// its address is dialed.
	wantRefused(t, h.ProcessRun(ctx, httpRun(t, HTTPPayload{URL: srv.URL})), "loopback address, not in the worker's http allow-list (--http-allow)")
	wantRefused(t, h.ProcessRun(ctx, httpRun(t, HTTPPayload{URL: "http://localhost:" + port + "/"})), "localhost (")
	if n := srv.hits.Load(); n != 0 {
		t.Fatalf("the server got %d requests", n)
	}
	// --http-allow 127.0.0.1/32 lets them through.
	allowed := newHTTPExecutor(t, HTTPOptions{Policy: httpAllow(t, "127.0.0.1/32")})
	for _, u := range []string{srv.URL, "http://localhost:" + port + "/"} {
		if err := allowed.ProcessRun(ctx, httpRun(t, HTTPPayload{URL: u})); err != nil {
			t.Errorf("%s with 127.0.0.1/32 allowed: %v", u, err)
		}
	}
}

func TestHTTPRedirectToRefusedAddress(t *testing.T) {
	ctx := context.Background()
	t.Run("address literal", func(t *testing.T) {
		srv := newCountingServer(t, nil, map[string]string{"/": "http://169.254.169.254/latest/meta-data/"})
		h := newHTTPExecutor(t, HTTPOptions{})
		wantRefused(t, h.ProcessRun(ctx, httpRun(t, HTTPPayload{URL: srv.URL + "/"})), "redirect to http://169.254.169.254/latest/meta-data/")
	})
	t.Run("name resolved when dialed", func(t *testing.T) {
		// The allowed server is on 127.0.0.2; it redirects to a name
		// that resolves to 127.0.0.1, which is not allowed: only the
		// dial can tell.
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Skipf("no 127.0.0.2 here: %v", err)
		}
		target := newCountingServer(t, nil, nil)
		_, port, _ := net.SplitHostPort(target.Listener.Addr().String())
		srv := newCountingServer(t, ln, map[string]string{"/": "http://localhost:" + port + "/"})
		h := newHTTPExecutor(t, HTTPOptions{Policy: httpAllow(t, "127.0.0.2")})
		wantRefused(t, h.ProcessRun(ctx, httpRun(t, HTTPPayload{URL: srv.URL + "/"})), "loopback")
		if srv.hits.Load() != 1 || target.hits.Load() != 0 {
			t.Errorf("hits: allowed %d, refused %d; want 1, 0", srv.hits.Load(), target.hits.Load())
		}
	})
	t.Run("credentials", func(t *testing.T) {
		srv := newCountingServer(t, nil, map[string]string{"/": "http://user:secret@example.com/"})
		h := newHTTPExecutor(t, HTTPOptions{})
		err := h.ProcessRun(ctx, httpRun(t, HTTPPayload{URL: srv.URL + "/"}))
		if !errors.Is(err, netguard.ErrCredentials) || !worker.IsNoRetry(err) || strings.Contains(err.Error(), "secret") {
			t.Fatalf("err = %v, want a NoRetry credentials refusal without the password", err)
		}
	})
	t.Run("capped", func(t *testing.T) {
		srv := newCountingServer(t, nil, map[string]string{"/": "/"})
		h := newHTTPExecutor(t, HTTPOptions{MaxRedirects: 2})
		err := h.ProcessRun(ctx, httpRun(t, HTTPPayload{URL: srv.URL + "/"}))
		if err == nil || !strings.Contains(err.Error(), "stopped after 2 redirects") || srv.hits.Load() != 3 {
			t.Fatalf("err = %v after %d requests", err, srv.hits.Load())
		}
	})
}

func TestHTTPRefusesCredentials(t *testing.T) {
	srv := newCountingServer(t, nil, nil)
	h := newHTTPExecutor(t, HTTPOptions{})
	u := strings.Replace(srv.URL, "http://", "http://user:secret@", 1)
	err := h.ProcessRun(context.Background(), httpRun(t, HTTPPayload{URL: u}))
	if !errors.Is(err, netguard.ErrCredentials) || !worker.IsNoRetry(err) || !strings.HasPrefix(err.Error(), "payload.url") {
		t.Fatalf("err = %v, want a NoRetry payload.url error", err)
	}
	if srv.hits.Load() != 0 {
		t.Error("the request was made")
	}
}
