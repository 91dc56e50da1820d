package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
)

// Secrets: Prefix and SecretChars base62 characters (0-9, A-Z, a-z)
// encoding 32 bytes from crypto/rand, left-padded with '0'. The prefix
// makes a leaked secret easy to recognise (secret scanners, logs); base62
// survives shells, URLs and double-clicks.
const (
	Prefix       = "plt_"
	SecretBytes  = 32
	SecretChars  = 43 // ⌈256 / log2(62)⌉
	SecretLen    = len(Prefix) + SecretChars
	MaxHeaderLen = 256 // longer Authorization values are refused unread
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// ErrUnauthenticated reports a request without valid credentials (HTTP
// 401, gRPC Unauthenticated). Every error below matches it with
// errors.Is; they tell the reason apart for logs and audit entries.
// None of them carries the secret.
var ErrUnauthenticated = errors.New("auth: unauthenticated")

var (
	ErrNoToken      error = unauthenticated("auth: no bearer token")
	ErrMalformed    error = unauthenticated("auth: malformed bearer token")
	ErrUnknownToken error = unauthenticated("auth: unknown token")
	ErrRevoked      error = unauthenticated("auth: token revoked")
	ErrExpired      error = unauthenticated("auth: token expired")
)

// reason is one reason to refuse authentication; it matches
// ErrUnauthenticated.
type reason struct{ msg string }

func unauthenticated(msg string) *reason { return &reason{msg} }

func (r *reason) Error() string        { return r.msg }
func (r *reason) Is(target error) bool { return target == ErrUnauthenticated }

// Generate makes a new secret and its hash (HashSecret). The secret is
// shown to its owner once and never stored; the hash is what the store
// keeps.
func Generate() (secret, hash string) {
	var b [SecretBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
	n := new(big.Int).SetBytes(b[:])
	var out [SecretChars]byte
	base := big.NewInt(62)
	mod := new(big.Int)
	for i := SecretChars - 1; i >= 0; i-- {
		n.DivMod(n, base, mod)
		out[i] = base62[mod.Int64()]
	}
	secret = Prefix + string(out[:])
	return secret, HashSecret(secret)
}

// HashSecret is the stored form of a secret: the lowercase hex SHA-256 of
// the whole secret, prefix included. A fast hash is right here: a secret
// holds 256 random bits, so there is nothing to guess, and a slow hash
// would cost every request a key derivation.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ValidSecret reports whether s has the shape Generate gives: Prefix and
// SecretChars base62 characters. It does not say the secret is known.
func ValidSecret(s string) bool {
	if len(s) != SecretLen || !strings.HasPrefix(s, Prefix) {
		return false
	}
	for i := len(Prefix); i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// ParseBearer extracts the secret from the value of an Authorization
// header (or gRPC "authorization" metadata): "Bearer <secret>", the scheme
// in any case, spaces around and between allowed. An empty value gives
// ErrNoToken; anything else that is not a well-formed secret gives
// ErrMalformed (values longer than MaxHeaderLen are not read). The errors
// never quote the value.
func ParseBearer(header string) (string, error) {
	if len(header) > MaxHeaderLen {
		return "", ErrMalformed
	}
	h := strings.TrimSpace(header)
	if h == "" {
		return "", ErrNoToken
	}
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrMalformed
	}
	secret := strings.TrimLeft(rest, " ")
	if !ValidSecret(secret) {
		return "", ErrMalformed
	}
	return secret, nil
}
