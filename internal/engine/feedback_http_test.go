package engine

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/store"
)

// These tests use the real HTTP client against an httptest.Server, on
// the real clock.

type receiver struct {
	mu       sync.Mutex
	got      []*http.Request
	bodies   []apijson.Run
	failures int // answer 500 to this many POSTs first
	redirect bool
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var run apijson.Run
	_ = json.Unmarshal(body, &run)
	rc.mu.Lock()
	rc.got = append(rc.got, r)
	rc.bodies = append(rc.bodies, run)
	n := len(rc.got)
	rc.mu.Unlock()
	switch {
	case rc.redirect && r.URL.Path != "/elsewhere":
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	case n <= rc.failures:
		http.Error(w, "try later", http.StatusInternalServerError)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

// cancelledWithCallback submits a run no worker serves with url as its
// callback and cancels it: its outcome is owed at once.
func cancelledWithCallback(t *testing.T, en *env, url string) *store.Run {
	t.Helper()
	res, err := en.e.Submit(en.ctx, []SubmitSpec{{Type: "nobody", Group: "g", CallbackURL: url}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := en.e.Cancel(en.ctx, res[0].Run.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func waitCallback(t *testing.T, en *env, id string, state store.CallbackState) *store.Run {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := en.get(id)
		if r.Callback.State == state {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: callback %+v, want %s", id, r.Callback, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCallbackOverHTTP(t *testing.T) {
	rc := &receiver{failures: 1}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	en := newEnv(t, allowLoopback)
	r := cancelledWithCallback(t, en, srv.URL+"/hook?x=1")
	done := waitCallback(t, en, r.ID, store.CallbackDelivered)
	if done.Callback.Attempts != 2 || rc.count() != 2 {
		t.Fatalf("callback %+v after %d POSTs, want delivered on the second", done.Callback, rc.count())
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, req := range rc.got {
		if req.Method != http.MethodPost || req.URL.RawQuery != "x=1" || req.Header.Get("Content-Type") != "application/json" ||
			req.Header.Get("X-Pluto-Run-Id") != r.ID || req.Header.Get("X-Pluto-Delivery-Attempt") != []string{"1", "2"}[i] {
			t.Errorf("POST %d: %s %s %v", i+1, req.Method, req.URL, req.Header)
		}
		if b := rc.bodies[i]; b.ID != r.ID || b.Status != "cancelled" || b.Error == nil || *b.Error != "test" {
			t.Errorf("body %d: %+v", i+1, b)
		}
	}
}

func TestCallbackRedirectIsNotFollowed(t *testing.T) {
	rc := &receiver{redirect: true}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	en := newEnv(t, allowLoopback)
	r := cancelledWithCallback(t, en, srv.URL+"/hook")
	deadline := time.Now().Add(10 * time.Second)
	for en.get(r.ID).Callback.LastError == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := en.get(r.ID)
	if !strings.HasPrefix(got.Callback.LastError, "HTTP 302") || got.Callback.State != store.CallbackPending {
		t.Fatalf("callback %+v, want a pending retry after HTTP 302", got.Callback)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, req := range rc.got {
		if req.URL.Path == "/elsewhere" {
			t.Fatal("the redirect was followed")
		}
	}
}

// allowLoopback lets callbacks reach httptest servers, which listen on
// loopback: refused by default.
func allowLoopback(c *Config) { c.CallbackAllow = []string{"127.0.0.1/32"} }

func TestCallbackRefusedByPolicy(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	// Loopback is refused by default; a list that names other addresses
	// does not change that.
	en := newEnv(t, func(c *Config) { c.CallbackAllow = []string{"203.0.113.0/24"} })
	// 127.0.0.1 as a literal is refused at submit …
	_, err := en.e.Submit(en.ctx, []SubmitSpec{{Type: "nobody", Group: "g", CallbackURL: srv.URL}})
	if fe, ok := err.(*FieldError); !ok || fe.Field != "callback_url" {
		t.Fatalf("submit with a refused IP: %v", err)
	}
	// … and a name that resolves to it when the POST would be made: the
	// delivery fails at once.
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	r := cancelledWithCallback(t, en, url)
	got := waitCallback(t, en, r.ID, store.CallbackFailed)
	if got.Callback.Attempts != 1 || !strings.Contains(got.Callback.LastError, "loopback address, not in the callback allow-list") {
		t.Errorf("callback %+v", got.Callback)
	}
	if n := rc.count(); n != 0 {
		t.Errorf("the receiver got %d POSTs", n)
	}
}
