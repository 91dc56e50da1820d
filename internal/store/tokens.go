package store

import (
	"context"
	"errors"
	"time"
)

// Bearer tokens. A token is a random secret its holder sends with every
// request; the store keeps only the SHA-256 of the secret (hex), never the
// secret itself. Secrets are 256 bits from a cryptographic source, so a
// fast unsalted hash is the right one: there is no dictionary to guess
// from, and a slow hash would cost every request a key derivation. The
// rules — roles, the format of secrets, verification and its cache — are
// internal/auth's; the store keeps rows and treats Role as opaque text.
//
// Tokens are written rarely (an administrator creates or revokes one), so
// their statements favour clarity over speed; TokenGetByHash is the only
// read on a request's path, and internal/auth caches it.

// ErrExists reports a create whose unique key (a token's name or hash) is
// already taken. Backends wrap it with %w.
var ErrExists = errors.New("store: already exists")

// Token is a stored bearer token. Optional times are zero when unset.
type Token struct {
	Name string // unique; the actor of its audit entries
	Role string // stored as given; internal/auth parses it
	// Groups limits the token to these run groups; empty means all groups.
	// It reads back nil when empty.
	Groups []string
	// Hash is the lowercase hex SHA-256 of the secret (unique). Listings
	// return it too: keeping it from display is the caller's concern.
	Hash      string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never expires
	RevokedAt time.Time // zero: not revoked
}

// Usable reports whether the token may authenticate at now: not revoked
// and not expired (a token expires at ExpiresAt exactly).
func (t *Token) Usable(now time.Time) bool {
	return t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// TokenCreateParams creates a token. Name and Hash must not be empty.
type TokenCreateParams struct {
	Name      string
	Role      string
	Groups    []string
	Hash      string
	ExpiresAt time.Time // zero: never
	Now       time.Time // created_at
}

// TokenRevokeParams revokes the token Name at Now. Revoking a revoked
// token changes nothing (its RevokedAt stays the first one).
type TokenRevokeParams struct {
	Name string
	Now  time.Time
}

// TokenStore is the read side of tokens; part of Store.
type TokenStore interface {
	// TokenGet returns the token named name, or ErrNotFound.
	TokenGet(ctx context.Context, name string) (*Token, error)
	// TokenGetByHash returns the token whose Hash is hash (revoked and
	// expired ones too: the caller decides), or ErrNotFound.
	TokenGetByHash(ctx context.Context, hash string) (*Token, error)
	// TokenList returns every token, revoked and expired ones included,
	// ordered by name.
	TokenList(ctx context.Context) ([]*Token, error)
	// TokenCount is the number of stored tokens, revoked and expired ones
	// included (zero: the store has never had one).
	TokenCount(ctx context.Context) (int, error)
}

// TokenTx is the write side of tokens; part of Tx. Publishing TopicTokens
// after a change is the caller's (internal/auth does it).
type TokenTx interface {
	// TokenCreate stores a new token and returns it as stored. A name or
	// hash that is already taken gives an error wrapping ErrExists, and
	// the transaction stays usable.
	TokenCreate(ctx context.Context, p TokenCreateParams) (*Token, error)
	// TokenBootstrap creates the token only if the store holds no token at
	// all, and reports whether it did. On a store shared by several
	// servers it is race-free: of servers that bootstrap an empty store at
	// once, exactly one creates its token (the others wait for it and see
	// it). A concurrent TokenCreate is ordered before or after it.
	TokenBootstrap(ctx context.Context, p TokenCreateParams) (created bool, err error)
	// TokenRevoke sets the token's RevokedAt (unless already set) and
	// returns it; ErrNotFound when there is no such token.
	TokenRevoke(ctx context.Context, p TokenRevokeParams) (*Token, error)
}
