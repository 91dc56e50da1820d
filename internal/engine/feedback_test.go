package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pluto-sched/pluto/internal/apijson"
	"github.com/pluto-sched/pluto/internal/store"
)

const hookURL = "https://hooks.example.com/pluto?t=1"

// hookCall is one POST the fake receiver got.
type hookCall struct {
	at      time.Time
	runID   string
	attempt string
	ctype   string
	run     apijson.Run
}

// fakeHook is a callback receiver behind an injected CallbackDoer: no
// network, fake time. respond decides the answer to call n (1-based); nil
// answers 200.
type fakeHook struct {
	mu      sync.Mutex
	calls   []hookCall
	respond func(ctx context.Context, n int) (int, error)
}

func (h *fakeHook) Do(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	var run apijson.Run
	if err := json.Unmarshal(body, &run); err != nil {
		return nil, fmt.Errorf("fake hook: body is not a run: %v: %s", err, body)
	}
	h.mu.Lock()
	h.calls = append(h.calls, hookCall{
		at: time.Now(), runID: req.Header.Get("X-Pluto-Run-Id"), attempt: req.Header.Get("X-Pluto-Delivery-Attempt"),
		ctype: req.Header.Get("Content-Type"), run: run,
	})
	n := len(h.calls)
	respond := h.respond
	h.mu.Unlock()
	code := http.StatusOK
	if respond != nil {
		if code, err = respond(req.Context(), n); err != nil {
			return nil, err
		}
	}
	return &http.Response{StatusCode: code, Body: io.NopCloser(strings.NewReader("nope")), Request: req}, nil
}

func (h *fakeHook) Calls() []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookCall(nil), h.calls...)
}

// withHook makes an env's engine deliver to h.
func withHook(h *fakeHook, more ...func(*Config)) func(*Config) {
	return func(c *Config) {
		c.CallbackClient = h
		for _, m := range more {
			m(c)
		}
	}
}

// runTo submits a run with a callback URL and has worker s finish it.
func (en *env) runTo(s *Session, c *fakeConn, outcome Outcome) *store.Run {
	en.t.Helper()
	r := en.submit(SubmitSpec{CallbackURL: hookURL})[0]
	for _, task := range c.Tasks() {
		if task.RunID == r.ID {
			ack(s, task)
			finish(s, outcome, task)
			return en.get(r.ID)
		}
	}
	en.t.Fatalf("run %s was not dispatched", r.ID)
	return nil
}

func wantDelivery(t *testing.T, r *store.Run, state store.CallbackState, attempts int) {
	t.Helper()
	if r.Callback.State != state || r.Callback.Attempts != attempts {
		t.Fatalf("run %s: callback %+v, want %s after %d attempts", r.ID, r.Callback, state, attempts)
	}
}

func TestCallbackDeliveredOnFirstTry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &fakeHook{}
		en := newEnv(t, withHook(h))
		s, c := en.connect("w1", 2)
		start := time.Now()
		r := en.runTo(s, c, OutcomeSucceeded)
		synctest.Wait()
		calls := h.Calls()
		if len(calls) != 1 {
			t.Fatalf("%d POSTs, want 1", len(calls))
		}
		got := calls[0]
		if got.runID != r.ID || got.attempt != "1" || got.ctype != "application/json" || got.at.Sub(start) > time.Millisecond {
			t.Errorf("POST: run %q attempt %q content type %q at +%v", got.runID, got.attempt, got.ctype, got.at.Sub(start))
		}
		if got.run.ID != r.ID || got.run.Status != "succeeded" || string(got.run.Result) != `{"ok":true}` ||
			got.run.CallbackURL == nil || *got.run.CallbackURL != hookURL || got.run.FinishedAt == nil {
			t.Errorf("body: %+v", got.run)
		}
		if got.run.Callback == nil || got.run.Callback.State != "pending" || got.run.Callback.Attempts != 1 {
			t.Errorf("body's callback: %+v, want pending, attempt 1", got.run.Callback)
		}
		after := en.get(r.ID)
		wantDelivery(t, after, store.CallbackDelivered, 1)
		if !after.Callback.DeliveredAt.Equal(got.at.UTC().Truncate(time.Microsecond)) || !after.Callback.NextAt.IsZero() || after.Callback.LastError != "" {
			t.Errorf("delivered run's callback: %+v", after.Callback)
		}
		// Nothing more, however long we wait.
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := len(h.Calls()); n != 1 {
			t.Errorf("%d POSTs after an hour, want 1", n)
		}
		// A run without a URL is never POSTed.
		plain := en.submit(SubmitSpec{})[0]
		for _, task := range c.Tasks() {
			if task.RunID == plain.ID {
				finish(s, OutcomeSucceeded, task)
			}
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(h.Calls()); n != 1 {
			t.Errorf("%d POSTs after a run without a URL ended, want 1", n)
		}
		if r := en.get(plain.ID); r.Callback != (store.Callback{}) || r.CallbackURL != "" {
			t.Errorf("plain run: %q %+v", r.CallbackURL, r.Callback)
		}
	})
}

func TestCallbackRetriedWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &fakeHook{respond: func(_ context.Context, n int) (int, error) {
			switch n {
			case 1, 2:
				return http.StatusInternalServerError, nil
			case 3:
				return 0, errors.New("connection refused")
			}
			return http.StatusNoContent, nil
		}}
		en := newEnv(t, withHook(h))
		s, c := en.connect("w1", 2)
		r := en.runTo(s, c, OutcomeFailed)
		synctest.Wait()
		mid := en.get(r.ID)
		wantDelivery(t, mid, store.CallbackPending, 1)
		if mid.Callback.LastError != "HTTP 500: nope" || mid.Callback.NextAt.IsZero() {
			t.Errorf("after the first failure: %+v", mid.Callback)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		calls := h.Calls()
		if len(calls) != 4 {
			t.Fatalf("%d POSTs, want 4", len(calls))
		}
		for i, c := range calls {
			if c.attempt != fmt.Sprint(i+1) || c.run.Status != "failed" || c.run.Callback.Attempts != i+1 {
				t.Errorf("POST %d: attempt header %q, status %s, body attempts %d", i+1, c.attempt, c.run.Status, c.run.Callback.Attempts)
			}
		}
		// Back-off: delay n is within [2^(n-1)/2, 2^(n-1)] seconds.
		for n := 1; n < len(calls); n++ {
			d := calls[n].at.Sub(calls[n-1].at)
			hi := time.Duration(1<<(n-1)) * time.Second
			if d < hi/2 || d > hi+callbackRecheck {
				t.Errorf("delay before attempt %d: %v, want within [%v, %v]", n+1, d, hi/2, hi)
			}
		}
		done := en.get(r.ID)
		wantDelivery(t, done, store.CallbackDelivered, 4)
		if done.Callback.LastError != "" || !done.Callback.DeliveredAt.Equal(calls[3].at.UTC().Truncate(time.Microsecond)) {
			t.Errorf("delivered: %+v", done.Callback)
		}
	})
}

func TestCallbackExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &fakeHook{respond: func(context.Context, int) (int, error) { return http.StatusServiceUnavailable, nil }}
		en := newEnv(t, withHook(h, func(c *Config) { c.CallbackExpiry = 20 * time.Second }))
		s, c := en.connect("w1", 2)
		r := en.runTo(s, c, OutcomeSucceeded)
		time.Sleep(time.Hour)
		synctest.Wait()
		got := en.get(r.ID)
		calls := h.Calls()
		if got.Callback.State != store.CallbackFailed || got.Callback.Attempts != len(calls) || len(calls) < 4 || len(calls) > 6 {
			t.Fatalf("after an hour: %+v, %d POSTs; want failed after 4–6 attempts", got.Callback, len(calls))
		}
		if want := fmt.Sprintf("expired after %d attempts: HTTP 503: nope", len(calls)); got.Callback.LastError != want || !got.Callback.NextAt.IsZero() {
			t.Errorf("failed: %+v, want error %q", got.Callback, want)
		}
		if last := calls[len(calls)-1].at.Sub(got.FinishedAt); last > 20*time.Second {
			t.Errorf("last attempt %v after the run ended, past the 20s expiry", last)
		}
	})
}

func TestCallbackOfCancelledTimedOutAndSkippedRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &fakeHook{}
		en := newEnv(t, withHook(h))
		// Cancelled while queued (no worker serves it).
		q := en.submit(SubmitSpec{Type: "nobody", CallbackURL: hookURL})[0]
		if _, err := en.e.Cancel(en.ctx, q.ID, "not needed"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		// Timed out on the server's timer.
		s, c := en.connect("w1", 10)
		to := en.submit(SubmitSpec{CallbackURL: hookURL, Timeout: time.Second})[0]
		ack(s, c.Tasks()...)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		en.wantStatus(to.ID, store.StatusTimedOut)
		// A job whose slots are forbidden to overlap: the second slot is
		// skipped while the first runs.
		start := time.Now()
		en.putJob(store.Job{Name: "j", Schedule: "@every 1s", Overlap: store.OverlapForbid, CallbackURL: hookURL})
		time.Sleep(2500 * time.Millisecond)
		synctest.Wait()
		got := map[string]string{}
		for _, call := range h.Calls() {
			got[call.runID] = call.run.Status
			if call.run.Callback == nil || call.run.Callback.State != "pending" {
				t.Errorf("POST of %s: callback %+v", call.runID, call.run.Callback)
			}
		}
		if got[q.ID] != "cancelled" || got[to.ID] != "timed_out" {
			t.Errorf("deliveries %v; want %s cancelled and %s timed_out", got, q.ID, to.ID)
		}
		runs := en.jobRuns("j")
		skipped := 0
		for _, r := range runs {
			if r.CallbackURL != hookURL {
				t.Errorf("job run %s has callback URL %q", r.ID, r.CallbackURL)
			}
			switch r.Status {
			case store.StatusSkipped:
				skipped++
				if got[r.ID] != "skipped" {
					t.Errorf("skipped run %s (slot +%v) delivered as %q", r.ID, r.LogicalTime.Sub(start), got[r.ID])
				}
				wantDelivery(t, r, store.CallbackDelivered, 1)
			default:
				if _, ok := got[r.ID]; ok {
					t.Errorf("unfinished run %s (%s) was delivered", r.ID, r.Status)
				}
				wantDelivery(t, r, store.CallbackNone, 0)
			}
		}
		if skipped == 0 {
			t.Fatalf("no skipped slot among %d runs", len(runs))
		}
	})
}

func TestCallbackRetriedRunDeliversItsNewOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &fakeHook{}
		en := newEnv(t, withHook(h))
		s, c := en.connect("w1", 2)
		r := en.runTo(s, c, OutcomeFailed)
		synctest.Wait()
		if _, err := en.e.Retry(en.ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		wantDelivery(t, en.get(r.ID), store.CallbackNone, 0)
		ts := c.Tasks()
		finish(s, OutcomeSucceeded, ts[len(ts)-1])
		synctest.Wait()
		calls := h.Calls()
		if len(calls) != 2 || calls[0].run.Status != "failed" || calls[1].run.Status != "succeeded" || calls[1].attempt != "1" {
			t.Fatalf("POSTs %+v, want the failure then the success", calls)
		}
		wantDelivery(t, en.get(r.ID), store.CallbackDelivered, 1)
	})
}

// TestCallbackAfterRestart: a delivery owed when the server stops — one
// waiting for its retry, one cut off mid-POST — is made by the next
// process on the same store.
func TestCallbackAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inFlight := make(chan struct{}, 1)
		h1 := &fakeHook{respond: func(ctx context.Context, n int) (int, error) {
			if n == 1 {
				return http.StatusBadGateway, nil
			}
			inFlight <- struct{}{}
			<-ctx.Done() // the receiver hangs until the server goes away
			return 0, ctx.Err()
		}}
		en := newEnv(t, withHook(h1, func(c *Config) { c.CallbackTimeout = time.Hour }))
		s, c := en.connect("w1", 2)
		a := en.runTo(s, c, OutcomeSucceeded) // 502: waits for its retry
		synctest.Wait()
		b := en.runTo(s, c, OutcomeSucceeded) // hangs
		<-inFlight
		wantDelivery(t, en.get(a.ID), store.CallbackPending, 1)
		wantDelivery(t, en.get(b.ID), store.CallbackPending, 1)
		if err := en.e.Stop(en.ctx); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()

		h2 := &fakeHook{}
		en.e = en.start(en.st, withHook(h2, func(c *Config) { c.ServerID = "s2" }))
		time.Sleep(time.Second)
		synctest.Wait()
		if got := h2.Calls(); len(got) != 1 || got[0].runID != a.ID || got[0].attempt != "2" {
			t.Fatalf("after restart: %+v, want %s at attempt 2", got, a.ID)
		}
		wantDelivery(t, en.get(a.ID), store.CallbackDelivered, 2)
		// b's claim lapses after its lease (2 timeouts + 30s), then it is
		// delivered again: at least once.
		wantDelivery(t, en.get(b.ID), store.CallbackPending, 1)
		time.Sleep(2*time.Hour + time.Minute)
		synctest.Wait()
		got := h2.Calls()
		if len(got) != 2 || got[1].runID != b.ID || got[1].attempt != "2" || got[1].run.Status != "succeeded" {
			t.Fatalf("after the lease: %+v, want %s at attempt 2", got, b.ID)
		}
		wantDelivery(t, en.get(b.ID), store.CallbackDelivered, 2)
	})
}

func TestCallbackConcurrencyIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		inFlight, most := 0, 0
		h := &fakeHook{respond: func(ctx context.Context, _ int) (int, error) {
			mu.Lock()
			inFlight++
			most = max(most, inFlight)
			mu.Unlock()
			defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
			select {
			case <-release:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			return http.StatusOK, nil
		}}
		en := newEnv(t, withHook(h, func(c *Config) { c.CallbackConcurrency = 2 }))
		s, c := en.connect("w1", 10)
		var runs []*store.Run
		for range 5 {
			runs = append(runs, en.submit(SubmitSpec{CallbackURL: hookURL})[0])
		}
		finish(s, OutcomeSucceeded, c.Tasks()...)
		synctest.Wait()
		if n := len(h.Calls()); n != 2 {
			t.Fatalf("%d POSTs in flight, want 2", n)
		}
		close(release)
		synctest.Wait()
		if n := len(h.Calls()); n != 5 || most != 2 {
			t.Fatalf("%d POSTs, at most %d at once; want 5, 2", n, most)
		}
		for _, r := range runs {
			wantDelivery(t, en.get(r.ID), store.CallbackDelivered, 1)
		}
	})
}

func TestCallbackURLValidation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		en := newEnv(t, withHook(&fakeHook{}, func(c *Config) {
			c.CallbackAllow = []string{"10.0.0.0/8", "*.example.com", "hooks.internal"}
		}))
		long := "https://x.example.com/" + strings.Repeat("a", store.MaxCallbackURL)
		for _, bad := range []string{
			"/relative", "hooks.example.com/x", "ftp://x.example.com/", "https://", "http:///path",
			"https://x.example.com/a b", long, "https://x.example.com/\x00",
			"http://192.168.1.1/hook",             // an IP outside the allowed CIDRs
			"http://[::1]:8080/hook",              // likewise
			"http://127.0.0.1/hook",               // loopback, refused by default
			"https://u:secret@x.example.com/hook", // credentials
			"javascript:alert(1)",
		} {
			_, err := en.e.Submit(en.ctx, []SubmitSpec{{Type: "noop", Group: "g", CallbackURL: bad}})
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "callback_url" {
				t.Errorf("%.60q: error %v, want a callback_url field error", bad, err)
			}
		}
		for _, good := range []string{
			"https://x.example.com/hook", "http://hooks.internal:8080/p?q=1", "http://10.1.2.3/h",
			"HTTPS://Y.EXAMPLE.COM/", "http://anything.else/", // a name: judged at dial time
			"http://203.0.113.9/", // public
		} {
			if _, err := en.e.Submit(en.ctx, []SubmitSpec{{Type: "noop", Group: "g", CallbackURL: good}}); err != nil {
				t.Errorf("%q: %v", good, err)
			}
		}
		// Job definitions are checked alike.
		_, _, err := en.e.JobPut(en.ctx, store.Job{Name: "j", Type: "noop", CallbackURL: "nope"})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "callback_url" {
			t.Errorf("job with a bad URL: %v", err)
		}
		if _, err := New(Config{Store: en.st, CallbackAllow: []string{"10.0.0.0/33"}}); err == nil {
			t.Error("a bad CIDR in the allow-list was accepted")
		}
	})
}

// TestCallbackPolicy: the callback allow-list is a netguard policy (its
// rules are tested there); here only what the engine adds.
func TestCallbackPolicy(t *testing.T) {
	p, err := parseCallbackAllow([]string{"10.0.0.0/8", "192.0.2.7", "*.example.com", "Hooks.Internal", " "})
	if err != nil {
		t.Fatal(err)
	}
	if !p.HostListed("a.example.com") || !p.HostListed("hooks.internal") || p.HostListed("example.com") {
		t.Errorf("policy %v", p)
	}
	if p, err := parseCallbackAllow(nil); !p.Empty() || err != nil {
		t.Errorf("empty list: %v, %v; want an empty policy (public addresses only)", p, err)
	}
	for _, bad := range []string{"10.0.0.0/40", "http://x/", "a b"} {
		if _, err := parseCallbackAllow([]string{bad}); err == nil || !strings.Contains(err.Error(), "--callback-allow") {
			t.Errorf("%q: %v, want an error naming --callback-allow", bad, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1/", "http://user:pw@hooks.example.com/"} {
		if err := checkCallbackURL(nil, mustURL(t, u)); err == nil {
			t.Errorf("%s allowed by default", u)
		}
	}
	err = checkCallbackURL(nil, mustURL(t, "http://[fe80::1]/"))
	var refused *CallbackRefusedError
	if !errors.As(err, &refused) || refused.Host != "fe80::1" || !strings.Contains(err.Error(), "link-local") {
		t.Errorf("link-local: %v", err)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// busStore wraps a store shared by engines in one process and delivers
// what a transaction publishes (after it commits) to every Listen, as
// PostgreSQL does.
type busStore struct {
	store.Store
	mu        sync.Mutex
	listeners map[int]func(store.Notification)
	next      int
}

type busTx struct {
	store.Tx
	notes *[]store.Notification
}

func (t busTx) Notify(_ context.Context, n store.Notification) error {
	*t.notes = append(*t.notes, n)
	return nil
}

func (b *busStore) Tx(ctx context.Context, fn func(store.Tx) error) error {
	var notes []store.Notification
	if err := b.Store.Tx(ctx, func(tx store.Tx) error { return fn(busTx{tx, &notes}) }); err != nil {
		return err
	}
	b.mu.Lock()
	fns := make([]func(store.Notification), 0, len(b.listeners))
	for _, fn := range b.listeners {
		fns = append(fns, fn)
	}
	b.mu.Unlock()
	for _, n := range notes {
		for _, fn := range fns {
			go fn(n)
		}
	}
	return nil
}

func (b *busStore) Listen(ctx context.Context, fn func(store.Notification)) error {
	b.mu.Lock()
	if b.listeners == nil {
		b.listeners = map[int]func(store.Notification){}
	}
	id := b.next
	b.next++
	b.listeners[id] = fn
	b.mu.Unlock()
	<-ctx.Done()
	b.mu.Lock()
	delete(b.listeners, id)
	b.mu.Unlock()
	return ctx.Err()
}

// TestCallbackOfRunFinishedOnAnotherServer: the leader delivers what a
// run finished on another server owes, told by its notification.
func TestCallbackOfRunFinishedOnAnotherServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newEnv(t, func(c *Config) { c.ServerID = "s0" })
		base.e.Stop(context.Background())
		bus := &busStore{Store: base.st}
		h1, h2 := &fakeHook{}, &fakeHook{}
		en1 := &env{t: t, ctx: context.Background(), st: base.st}
		en1.e = en1.start(bus, withHook(h1, func(c *Config) { c.ServerID = "s1"; c.ExclusiveStore = false }))
		synctest.Wait()
		en2 := &env{t: t, ctx: context.Background(), st: base.st}
		en2.e = en2.start(bus, withHook(h2, func(c *Config) { c.ServerID = "s2"; c.ExclusiveStore = false }))
		synctest.Wait()
		if !en1.e.Leading() || en2.e.Leading() {
			t.Fatalf("leading: s1 %v, s2 %v", en1.e.Leading(), en2.e.Leading())
		}
		s, c := en2.connect("w1", 2)
		r := en2.runTo(s, c, OutcomeSucceeded)
		synctest.Wait()
		if n := len(h2.Calls()); n != 0 {
			t.Errorf("the server that is not leading POSTed %d times", n)
		}
		if got := h1.Calls(); len(got) != 1 || got[0].runID != r.ID {
			t.Fatalf("leader's POSTs: %+v, want one for %s", got, r.ID)
		}
		wantDelivery(t, en2.get(r.ID), store.CallbackDelivered, 1)
	})
}
