package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pluto-sched/pluto/internal/store"
)

// Bearer tokens (store/tokens.go): names and hashes are unique, revoking
// is idempotent, and a bootstrap creates a token only in an empty store,
// once, however many servers try at once.

// hashOf is the stored form of a test secret.
func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// tokenParams is a token named name with the hash of "secret-"+name.
func tokenParams(name string) store.TokenCreateParams {
	return store.TokenCreateParams{Name: name, Role: "operator", Hash: hashOf("secret-" + name), Now: t0}
}

func createToken(t *testing.T, s store.Store, p store.TokenCreateParams) *store.Token {
	t.Helper()
	var tok *store.Token
	tx(t, s, func(tx store.Tx) error {
		var err error
		tok, err = tx.TokenCreate(ctx, p)
		return err
	})
	return tok
}

func diffToken(t *testing.T, what string, want, got *store.Token) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func testTokenCreateAndGet(t *testing.T, s store.Store) {
	p := tokenParams("ci")
	p.Groups = []string{"build", "deploy"}
	p.ExpiresAt = t0.Add(24 * time.Hour)
	want := &store.Token{
		Name: "ci", Role: "operator", Groups: []string{"build", "deploy"}, Hash: p.Hash,
		CreatedAt: t0, ExpiresAt: p.ExpiresAt,
	}
	diffToken(t, "TokenCreate", want, createToken(t, s, p))
	got, err := s.TokenGet(ctx, "ci")
	if err != nil {
		t.Fatalf("TokenGet: %v", err)
	}
	diffToken(t, "TokenGet", want, got)
	got, err = s.TokenGetByHash(ctx, p.Hash)
	if err != nil {
		t.Fatalf("TokenGetByHash: %v", err)
	}
	diffToken(t, "TokenGetByHash", want, got)

	// No groups (empty or nil) reads back nil: all groups; no expiry is zero.
	q := tokenParams("admin")
	q.Role, q.Groups = "admin", []string{}
	diffToken(t, "TokenCreate without groups", &store.Token{Name: "admin", Role: "admin", Hash: q.Hash, CreatedAt: t0}, createToken(t, s, q))
	if n, err := s.TokenCount(ctx); err != nil || n != 2 {
		t.Errorf("TokenCount = %d, %v; want 2", n, err)
	}
}

func testTokenCreateExists(t *testing.T, s store.Store) {
	createToken(t, s, tokenParams("a"))
	sameName := tokenParams("a")
	sameName.Hash = hashOf("other")
	sameHash := tokenParams("b")
	sameHash.Hash = tokenParams("a").Hash
	tx(t, s, func(tx store.Tx) error {
		for _, p := range []store.TokenCreateParams{sameName, sameHash} {
			_, err := tx.TokenCreate(ctx, p)
			wantErr(t, fmt.Sprintf("TokenCreate %q (taken)", p.Name), err, store.ErrExists)
		}
		// The transaction is still usable.
		_, err := tx.TokenCreate(ctx, tokenParams("c"))
		return err
	})
	toks, err := s.TokenList(ctx)
	if err != nil {
		t.Fatalf("TokenList: %v", err)
	}
	diffNames(t, "tokens", []string{"a", "c"}, names(toks, func(tok *store.Token) string { return tok.Name }))
	if toks[0].Hash != tokenParams("a").Hash {
		t.Errorf("token a's hash changed to %q", toks[0].Hash)
	}
}

func testTokenRejectsEmpty(t *testing.T, s store.Store) {
	for _, p := range []store.TokenCreateParams{{Name: "x", Now: t0}, {Hash: hashOf("x"), Now: t0}} {
		err := s.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.TokenCreate(ctx, p)
			return err
		})
		if err == nil {
			t.Errorf("TokenCreate %+v: no error", p)
		}
	}
}

func testTokenNotFound(t *testing.T, s store.Store) {
	_, err := s.TokenGet(ctx, "nope")
	wantErr(t, "TokenGet", err, store.ErrNotFound)
	_, err = s.TokenGetByHash(ctx, hashOf("nope"))
	wantErr(t, "TokenGetByHash", err, store.ErrNotFound)
	err = s.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.TokenRevoke(ctx, store.TokenRevokeParams{Name: "nope", Now: t0})
		return err
	})
	wantErr(t, "TokenRevoke", err, store.ErrNotFound)
	if n, err := s.TokenCount(ctx); err != nil || n != 0 {
		t.Errorf("TokenCount = %d, %v; want 0", n, err)
	}
	if toks, err := s.TokenList(ctx); err != nil || len(toks) != 0 {
		t.Errorf("TokenList = %v, %v; want none", toks, err)
	}
}

func revokeToken(t *testing.T, s store.Store, name string, at time.Time) *store.Token {
	t.Helper()
	var tok *store.Token
	tx(t, s, func(tx store.Tx) error {
		var err error
		tok, err = tx.TokenRevoke(ctx, store.TokenRevokeParams{Name: name, Now: at})
		return err
	})
	return tok
}

func testTokenRevoke(t *testing.T, s store.Store) {
	created := createToken(t, s, tokenParams("a"))
	createToken(t, s, tokenParams("b"))
	at := t0.Add(time.Hour)
	want := *created
	want.RevokedAt = at
	diffToken(t, "TokenRevoke", &want, revokeToken(t, s, "a", at))
	// Again: the first revocation time stays.
	diffToken(t, "TokenRevoke again", &want, revokeToken(t, s, "a", at.Add(time.Hour)))
	got, err := s.TokenGetByHash(ctx, created.Hash)
	if err != nil {
		t.Fatalf("TokenGetByHash: %v", err)
	}
	diffToken(t, "revoked token", &want, got)
	if got.Usable(at) {
		t.Error("revoked token is usable")
	}
	if b, _ := s.TokenGet(ctx, "b"); b == nil || !b.RevokedAt.IsZero() {
		t.Errorf("token b: %+v, want not revoked", b)
	}
}

func testTokenList(t *testing.T, s store.Store) {
	for _, n := range []string{"m", "b", "z", "a"} {
		createToken(t, s, tokenParams(n))
	}
	revokeToken(t, s, "z", t0)
	toks, err := s.TokenList(ctx)
	if err != nil {
		t.Fatalf("TokenList: %v", err)
	}
	diffNames(t, "TokenList", []string{"a", "b", "m", "z"}, names(toks, func(tok *store.Token) string { return tok.Name }))
	for _, tok := range toks {
		if tok.Hash != tokenParams(tok.Name).Hash {
			t.Errorf("token %s: hash %q", tok.Name, tok.Hash)
		}
	}
}

func bootstrap(t *testing.T, s store.Store, p store.TokenCreateParams) bool {
	t.Helper()
	var created bool
	tx(t, s, func(tx store.Tx) error {
		var err error
		created, err = tx.TokenBootstrap(ctx, p)
		return err
	})
	return created
}

func testTokenBootstrap(t *testing.T, s store.Store) {
	p := tokenParams("admin")
	p.Role = "admin"
	if !bootstrap(t, s, p) {
		t.Fatal("TokenBootstrap on an empty store created nothing")
	}
	if bootstrap(t, s, tokenParams("admin2")) {
		t.Error("TokenBootstrap on a store with a token created one")
	}
	// Revoked tokens still count: a store that had tokens is not bootstrapped again.
	revokeToken(t, s, "admin", t0)
	if bootstrap(t, s, tokenParams("admin3")) {
		t.Error("TokenBootstrap after a revocation created a token")
	}
	toks, err := s.TokenList(ctx)
	if err != nil || len(toks) != 1 || toks[0].Name != "admin" || toks[0].Role != "admin" {
		t.Errorf("TokenList = %+v, %v; want the one admin token", toks, err)
	}
}

// testTokenBootstrapConcurrent: servers bootstrapping one empty store at
// once, each with its own token: exactly one creates it.
func testTokenBootstrapConcurrent(t *testing.T, s store.Store) {
	const n = 8
	dctx := deadlineCtx(t)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created []string
		errs    []error
	)
	for i := range n {
		wg.Go(func() {
			p := tokenParams(fmt.Sprintf("admin%d", i))
			var ok bool
			err := s.Tx(dctx, func(tx store.Tx) error {
				var err error
				ok, err = tx.TokenBootstrap(dctx, p)
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				created = append(created, p.Name)
			}
		})
	}
	waitAll(t, "concurrent bootstraps", &wg)
	if len(errs) > 0 {
		t.Fatalf("TokenBootstrap errors: %v", errs)
	}
	if len(created) != 1 {
		t.Errorf("%d bootstraps created a token (%v), want exactly 1", len(created), created)
	}
	if c, err := s.TokenCount(ctx); err != nil || c != 1 {
		t.Errorf("TokenCount = %d, %v; want 1", c, err)
	}
}

func testTokensClosed(t *testing.T, s store.Store) {
	createToken(t, s, tokenParams("a"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := s.TokenGet(ctx, "a")
	wantErr(t, "TokenGet after Close", err, store.ErrClosed)
	_, err = s.TokenGetByHash(ctx, tokenParams("a").Hash)
	wantErr(t, "TokenGetByHash after Close", err, store.ErrClosed)
	_, err = s.TokenList(ctx)
	wantErr(t, "TokenList after Close", err, store.ErrClosed)
	_, err = s.TokenCount(ctx)
	wantErr(t, "TokenCount after Close", err, store.ErrClosed)
	_, err = s.AuditList(ctx, store.AuditListParams{})
	wantErr(t, "AuditList after Close", err, store.ErrClosed)
}
