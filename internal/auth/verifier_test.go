package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// fakeTokens is a store.TokenStore in memory that counts reads by hash.
// gate, when set, holds each read until it is closed.
type fakeTokens struct {
	mu    sync.Mutex
	toks  map[string]*store.Token // by hash
	err   error
	reads atomic.Int64
	gate  chan struct{}
}

func newFake() *fakeTokens { return &fakeTokens{toks: map[string]*store.Token{}} }

func (f *fakeTokens) add(tok store.Token) string {
	secret, hash := Generate()
	tok.Hash = hash
	f.mu.Lock()
	defer f.mu.Unlock()
	f.toks[hash] = &tok
	return secret
}

func (f *fakeTokens) revoke(name string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.toks {
		if t.Name == name {
			t.RevokedAt = at
		}
	}
}

func (f *fakeTokens) TokenGetByHash(ctx context.Context, hash string) (*store.Token, error) {
	f.reads.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if t, ok := f.toks[hash]; ok {
		c := *t
		return &c, nil
	}
	return nil, store.ErrNotFound
}

func (f *fakeTokens) TokenGet(context.Context, string) (*store.Token, error) {
	return nil, store.ErrNotFound
}
func (f *fakeTokens) TokenList(context.Context) ([]*store.Token, error) { return nil, nil }
func (f *fakeTokens) TokenCount(context.Context) (int, error)           { return len(f.toks), nil }

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var (
	ctx = context.Background()
	t0  = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
)

func setup(opts VerifierOptions) (*fakeTokens, *fakeClock, *Verifier) {
	f, c := newFake(), &fakeClock{t: t0}
	opts.Now = c.Now
	return f, c, NewVerifier(f, opts)
}

// verify expects err (nil: success) and reads store reads in total.
func verify(t *testing.T, f *fakeTokens, v *Verifier, secret string, want error, reads int64) *Principal {
	t.Helper()
	p, err := v.Verify(ctx, secret)
	if !errors.Is(err, want) || (want == nil) != (err == nil) {
		t.Fatalf("Verify = %v, %v; want error %v", p, err, want)
	}
	if got := f.reads.Load(); got != reads {
		t.Fatalf("%d store reads, want %d", got, reads)
	}
	return p
}

func TestVerifyCaches(t *testing.T) {
	f, c, v := setup(VerifierOptions{})
	secret := f.add(store.Token{Name: "ci", Role: "client", Groups: []string{"b", "a"}})
	p := verify(t, f, v, secret, nil, 1)
	if p.Name != "ci" || p.Role != RoleClient || !p.AllowsGroup("a") || p.AllowsGroup("c") {
		t.Fatalf("principal %+v", p)
	}
	c.advance(MaxCacheTTL - time.Millisecond)
	verify(t, f, v, secret, nil, 1) // cached
	c.advance(time.Millisecond)
	verify(t, f, v, secret, nil, 2) // a second old: read again

	// Revoked elsewhere: refused within a second without any notification.
	f.revoke("ci", c.Now())
	verify(t, f, v, secret, nil, 2)
	c.advance(MaxCacheTTL)
	verify(t, f, v, secret, ErrRevoked, 3)
	verify(t, f, v, secret, ErrRevoked, 3) // the refusal is cached
}

func TestVerifyExpiryIsLocal(t *testing.T) {
	f, c, v := setup(VerifierOptions{})
	secret := f.add(store.Token{Name: "t", Role: "viewer", ExpiresAt: t0.Add(500 * time.Millisecond)})
	verify(t, f, v, secret, nil, 1)
	c.advance(499 * time.Millisecond)
	verify(t, f, v, secret, nil, 1)
	c.advance(time.Millisecond)
	verify(t, f, v, secret, ErrExpired, 1) // no read: checked on the cached entry
	c.advance(time.Second)
	verify(t, f, v, secret, ErrExpired, 2)
}

func TestVerifyRefusals(t *testing.T) {
	f, c, v := setup(VerifierOptions{})
	unknown, _ := Generate()
	verify(t, f, v, "plt_short", ErrMalformed, 0)
	verify(t, f, v, "", ErrMalformed, 0)
	verify(t, f, v, unknown, ErrUnknownToken, 1)
	verify(t, f, v, unknown, ErrUnknownToken, 1)
	c.advance(MaxCacheTTL)
	verify(t, f, v, unknown, ErrUnknownToken, 2)

	bad := f.add(store.Token{Name: "odd", Role: "root"})
	_, err := v.Verify(ctx, bad)
	if !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token with an unknown role: %v", err)
	}
	if _, err := v.VerifyHeader(ctx, "Basic x"); !errors.Is(err, ErrMalformed) {
		t.Errorf("VerifyHeader(Basic): %v", err)
	}
}

func TestVerifyStoreError(t *testing.T) {
	f, _, v := setup(VerifierOptions{})
	secret := f.add(store.Token{Name: "t", Role: "admin"})
	down := errors.New("database is locked")
	f.err = down
	for i := range 2 {
		_, err := v.Verify(ctx, secret)
		if !errors.Is(err, down) || errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("Verify with the store down: %v", err)
		}
		if f.reads.Load() != int64(i+1) {
			t.Fatal("a store error was cached")
		}
	}
	f.err = nil
	verify(t, f, v, secret, nil, 3)
}

func TestInvalidate(t *testing.T) {
	f, c, v := setup(VerifierOptions{})
	a := f.add(store.Token{Name: "a", Role: "admin"})
	b := f.add(store.Token{Name: "b", Role: "admin"})
	verify(t, f, v, a, nil, 1)
	verify(t, f, v, b, nil, 2)
	f.revoke("a", c.Now())
	v.Notify(store.Notification{Topic: store.TopicQueued, Payload: "a"}) // ignored
	verify(t, f, v, a, nil, 2)
	v.Notify(store.Notification{Topic: store.TopicTokens, Payload: "a"})
	verify(t, f, v, a, ErrRevoked, 3)
	verify(t, f, v, b, nil, 3) // b stays cached

	// A refusal is dropped by any token change: the secret may be new.
	fresh, hash := Generate()
	verify(t, f, v, fresh, ErrUnknownToken, 4)
	f.mu.Lock()
	f.toks[hash] = &store.Token{Name: "new", Role: "viewer", Hash: hash}
	f.mu.Unlock()
	v.Notify(store.Notification{Topic: store.TopicTokens, Payload: "new"})
	verify(t, f, v, fresh, nil, 5)

	v.Notify(store.Notification{Topic: store.TopicTokens})
	verify(t, f, v, b, nil, 6)
	v.InvalidateAll()
	verify(t, f, v, b, nil, 7)
}

// TestInvalidateDuringRead: a read that began before an invalidation is
// not cached (it may have seen the token before its revocation).
func TestInvalidateDuringRead(t *testing.T) {
	f, _, v := setup(VerifierOptions{})
	secret := f.add(store.Token{Name: "a", Role: "admin"})
	f.gate = make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := v.Verify(ctx, secret)
		done <- err
	}()
	for f.reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	v.Invalidate("a")
	close(f.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	verify(t, f, v, secret, nil, 2)
}

func TestVerifySharesReads(t *testing.T) {
	f, _, v := setup(VerifierOptions{})
	secret := f.add(store.Token{Name: "a", Role: "client"})
	f.gate = make(chan struct{})
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := v.Verify(ctx, secret)
			errs <- err
		})
	}
	for f.reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others join the read
	close(f.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if r := f.reads.Load(); r > 2 {
		t.Errorf("%d concurrent verifications of one secret made %d reads", n, r)
	}
}

func TestVerifyBoundsMemory(t *testing.T) {
	f, _, v := setup(VerifierOptions{MaxEntries: 16})
	var secrets []string
	for i := range 40 {
		secrets = append(secrets, f.add(store.Token{Name: "t" + string(rune('a'+i)), Role: "viewer"}))
	}
	for range 200 {
		s, _ := Generate()
		if _, err := v.Verify(ctx, s); !errors.Is(err, ErrUnknownToken) {
			t.Fatal(err)
		}
	}
	for _, s := range secrets {
		if _, err := v.Verify(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.refused) > 16 || len(v.known) > 16 {
		t.Errorf("caches hold %d refusals and %d tokens, bound 16", len(v.refused), len(v.known))
	}
}

func TestVerifierOptions(t *testing.T) {
	f, _, v := setup(VerifierOptions{TTL: -1, NegativeTTL: -1})
	secret := f.add(store.Token{Name: "a", Role: "admin"})
	unknown, _ := Generate()
	verify(t, f, v, secret, nil, 1)
	verify(t, f, v, secret, nil, 2)
	verify(t, f, v, unknown, ErrUnknownToken, 3)
	verify(t, f, v, unknown, ErrUnknownToken, 4)
	if d := NewVerifier(f, VerifierOptions{TTL: time.Hour}).ttl; d != MaxCacheTTL {
		t.Errorf("TTL of an hour became %v, want the %v cap", d, MaxCacheTTL)
	}
}

func FuzzVerify(f *testing.F) {
	fk := newFake()
	secret := fk.add(store.Token{Name: "a", Role: "admin"})
	v := NewVerifier(fk, VerifierOptions{MaxEntries: 64})
	for _, s := range []string{secret, "", "plt_", secret[:20], secret + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := v.Verify(ctx, s)
		if (p == nil) == (err == nil) {
			t.Fatalf("Verify(%q) = %v, %v", s, p, err)
		}
		if err != nil && !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("Verify(%q): %v", s, err)
		}
		if p != nil && s != secret {
			t.Fatalf("Verify(%q) accepted another secret", s)
		}
	})
}
