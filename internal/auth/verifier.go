package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Cache bounds. See the package doc for why a second.
const (
	// MaxCacheTTL bounds how long a verification is reused: a revocation
	// made on another server is refused here within MaxCacheTTL even if
	// its TopicTokens notification is lost.
	MaxCacheTTL = time.Second
	// DefaultMaxEntries bounds each cache (known and refused tokens).
	DefaultMaxEntries = 10_000
)

// VerifierOptions configures a Verifier. The zero value is the default.
type VerifierOptions struct {
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// TTL is how long a known token's verification is reused (default and
	// maximum MaxCacheTTL; negative disables the cache).
	TTL time.Duration
	// NegativeTTL is how long a refused token is refused without a store
	// read (default and maximum MaxCacheTTL; negative disables it).
	NegativeTTL time.Duration
	// MaxEntries bounds each of the two caches (default
	// DefaultMaxEntries): a client sending endless distinct secrets costs
	// a bounded amount of memory.
	MaxEntries int
}

// Verifier turns secrets into principals. It is safe for concurrent use
// and starts no goroutine.
type Verifier struct {
	st     store.TokenStore
	now    func() time.Time
	ttl    time.Duration
	negTTL time.Duration
	max    int

	mu       sync.Mutex
	known    map[string]knownEntry   // by hash
	refused  map[string]refusedEntry // by hash
	inflight map[string]*lookup      // by hash: store reads in progress
	gen      uint64                  // bumped by every invalidation
}

type knownEntry struct {
	p  *Principal
	at time.Time // when it was read
}

type refusedEntry struct {
	err error
	at  time.Time
}

// lookup is one store read that concurrent verifications of the same
// secret share.
type lookup struct {
	done chan struct{}
	tok  *store.Token
	err  error
}

// NewVerifier returns a verifier reading tokens from st.
func NewVerifier(st store.TokenStore, opts VerifierOptions) *Verifier {
	v := &Verifier{
		st:       st,
		now:      opts.Now,
		ttl:      clampTTL(opts.TTL),
		negTTL:   clampTTL(opts.NegativeTTL),
		max:      opts.MaxEntries,
		known:    make(map[string]knownEntry),
		refused:  make(map[string]refusedEntry),
		inflight: make(map[string]*lookup),
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.max <= 0 {
		v.max = DefaultMaxEntries
	}
	return v
}

func clampTTL(d time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d == 0 || d > MaxCacheTTL:
		return MaxCacheTTL
	}
	return d
}

// VerifyHeader is ParseBearer followed by Verify.
func (v *Verifier) VerifyHeader(ctx context.Context, header string) (*Principal, error) {
	secret, err := ParseBearer(header)
	if err != nil {
		return nil, err
	}
	return v.Verify(ctx, secret)
}

// Verify returns the principal of a secret. A secret that is malformed,
// unknown, revoked or expired gives an error matching ErrUnauthenticated
// (ErrMalformed, ErrUnknownToken, ErrRevoked, ErrExpired). Any other
// error is the store's (the caller answers "unavailable", not 401).
//
// Expiry is checked against the clock on every call, cached or not. A
// cached verification is reused for at most TTL; Invalidate and
// InvalidateAll drop it at once.
func (v *Verifier) Verify(ctx context.Context, secret string) (*Principal, error) {
	if !ValidSecret(secret) {
		return nil, ErrMalformed // no store read for what cannot be a secret
	}
	hash := HashSecret(secret)
	now := v.now()
	p, err, ok, gen := v.cached(hash, now)
	if ok {
		return p, err
	}
	tok, err := v.read(ctx, hash)
	if err != nil {
		return nil, err
	}
	return v.settle(hash, tok, now, gen)
}

// cached answers from the caches, if they hold a fresh answer (ok). gen
// is the invalidation generation the answer, or a store read made when
// there is none, belongs to.
func (v *Verifier) cached(hash string, now time.Time) (p *Principal, err error, ok bool, gen uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e, found := v.known[hash]; found {
		if now.Sub(e.at) < v.ttl && !e.at.After(now) {
			if !e.p.ExpiresAt.IsZero() && !now.Before(e.p.ExpiresAt) {
				return nil, ErrExpired, true, v.gen
			}
			return e.p, nil, true, v.gen
		}
		delete(v.known, hash)
	}
	if e, found := v.refused[hash]; found {
		if now.Sub(e.at) < v.negTTL && !e.at.After(now) {
			return nil, e.err, true, v.gen
		}
		delete(v.refused, hash)
	}
	return nil, nil, false, v.gen
}

// read fetches the token of hash from the store (nil when there is none),
// sharing the read with concurrent calls for the same hash.
func (v *Verifier) read(ctx context.Context, hash string) (*store.Token, error) {
	v.mu.Lock()
	l, shared := v.inflight[hash]
	if !shared {
		l = &lookup{done: make(chan struct{})}
		v.inflight[hash] = l
	}
	v.mu.Unlock()
	if shared {
		select {
		case <-l.done:
			if l.err == nil {
				return l.tok, nil
			}
			// The leader's read failed (perhaps only its context): read
			// on our own.
			return v.readStore(ctx, hash)
		case <-ctx.Done():
			return nil, fmt.Errorf("auth: verify: %w", ctx.Err())
		}
	}
	l.tok, l.err = v.readStore(ctx, hash)
	v.mu.Lock()
	if v.inflight[hash] == l { // not detached by an invalidation
		delete(v.inflight, hash)
	}
	v.mu.Unlock()
	close(l.done)
	return l.tok, l.err
}

func (v *Verifier) readStore(ctx context.Context, hash string) (*store.Token, error) {
	tok, err := v.st.TokenGetByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: verify: %w", err) // the store's error never holds the hash
	}
	// The store found the row by its hash; compare again, in constant
	// time, so a backend that matched loosely (a collation) cannot let a
	// different secret in.
	if subtle.ConstantTimeCompare([]byte(tok.Hash), []byte(hash)) != 1 {
		return nil, nil
	}
	return tok, nil
}

// settle turns a store answer into the verification's result and caches
// it, unless an invalidation came since generation gen (the read may have
// seen the token before a revocation).
func (v *Verifier) settle(hash string, tok *store.Token, now time.Time, gen uint64) (*Principal, error) {
	var (
		p   *Principal
		err error
	)
	switch {
	case tok == nil:
		err = ErrUnknownToken
	case !tok.RevokedAt.IsZero():
		err = ErrRevoked
	case !tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt):
		err = ErrExpired
	default:
		role, perr := ParseRole(tok.Role)
		if perr != nil {
			// A row written around the API: refuse it, loudly.
			return nil, fmt.Errorf("%w: token %q has an invalid %v", ErrUnknownToken, tok.Name, perr)
		}
		groups := slices.Sorted(slices.Values(tok.Groups)) // for AllowsGroup's binary search
		if len(groups) == 0 {
			groups = nil
		}
		p = &Principal{Name: tok.Name, Role: role, Groups: groups, ExpiresAt: tok.ExpiresAt}
	}
	v.remember(hash, p, err, now, gen)
	return p, err
}

// remember caches a result, bounded, keeping the maps below max entries.
func (v *Verifier) remember(hash string, p *Principal, err error, now time.Time, gen uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if gen != v.gen {
		return
	}
	if p != nil && v.ttl > 0 {
		makeRoom(v.known, v.max)
		v.known[hash] = knownEntry{p: p, at: now}
	} else if p == nil && v.negTTL > 0 {
		makeRoom(v.refused, v.max)
		v.refused[hash] = refusedEntry{err: err, at: now}
	}
}

// makeRoom deletes entries of a full map until one more fits. Which ones
// go does not matter (they are at most a second old): Go's map iteration
// starts at a random place, so no client can pick the victims.
func makeRoom[E any](m map[string]E, max int) {
	for k := range m {
		if len(m) < max {
			return
		}
		delete(m, k)
	}
}

// Invalidate drops the cached verification of the token named name, and
// every cached refusal (a token just created may have been refused). Call
// it for each TopicTokens notification (Notify does).
func (v *Verifier) Invalidate(name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for h, e := range v.known {
		if e.p.Name == name {
			delete(v.known, h)
		}
	}
	v.invalidated()
}

// InvalidateAll drops every cached verification and refusal (after the
// notification connection was lost and re-established, for example).
func (v *Verifier) InvalidateAll() {
	v.mu.Lock()
	defer v.mu.Unlock()
	clear(v.known)
	v.invalidated()
}

// invalidated ends what an invalidation ends besides known entries:
// cached refusals, and the sharing of store reads already under way (they
// may have read the token before its change: later calls read again, and
// no read started before now is cached). v.mu is held.
func (v *Verifier) invalidated() {
	clear(v.refused)
	clear(v.inflight)
	v.gen++
}

// Notify handles one notification from store.Listen: TopicTokens
// invalidates its token (or every token, for an empty payload); other
// topics are ignored.
func (v *Verifier) Notify(n store.Notification) {
	if n.Topic != store.TopicTokens {
		return
	}
	if n.Payload == "" {
		v.InvalidateAll()
		return
	}
	v.Invalidate(n.Payload)
}
