// Package auth is Pluto's bearer-token authentication and authorization:
// token secrets, roles and their permissions, the Verifier that turns a
// request's secret into a Principal, and the token and audit operations
// built on the store (internal/store: TokenStore, TokenTx, AuditStore,
// AuditTx). Wiring it into the HTTP and gRPC servers and the CLI is done
// on top of this API.
//
// # Tokens
//
// A token is a name, a role, optionally a list of run groups it is
// limited to, and an optional expiry. Its secret, "plt_" and 43 base62
// characters (32 bytes from crypto/rand, Generate), is shown once when the
// token is created; the store keeps only its SHA-256 (HashSecret). A fast
// hash is right for secrets of 256 random bits: there is nothing to guess,
// so a slow key derivation would only tax every request. Requests carry
// the secret as "Authorization: Bearer <secret>" (HTTP) or the
// "authorization" metadata (gRPC); ParseBearer reads it.
//
// # Roles and permissions
//
// A request needs one Permission; a Role grants a fixed set (Role.Allows):
//
//	            read submit run-write job-write worker-admin worker-stream token-admin audit
//	admin        x     x       x         x           x            x            x        x
//	operator     x     x       x         x           x
//	viewer       x
//	client       x     x       x
//	worker                                                        x
//
// A small fixed table, not per-token permission lists, keeps tokens easy
// to reason about and to audit. A token limited to groups may act only on
// runs and jobs of those groups (Principal.AllowsGroup,
// Principal.AuthorizeGroup), and is never granted token-admin, so it
// cannot mint itself an unlimited token.
//
// # Verification and its cache
//
// Verifier.Verify must cost no store read on the hot path (every gRPC
// call, every submit), yet a revoked or expired token must be refused on
// every server within a second. So:
//
//   - expiry is checked against the clock on every call, cached or not;
//   - a verification is reused for at most one second (MaxCacheTTL), so a
//     revocation made anywhere reaches every server within a second even
//     if no notification arrives;
//   - revocations and creations publish store.TopicTokens (RevokeToken,
//     CreateToken do it in the token's transaction); a server passes its
//     notifications to Verifier.Notify, which drops the token's cached
//     verification at once — in practice revocation is immediate, and
//     the one-second bound is the guarantee. After a lost notification
//     connection, call InvalidateAll;
//   - refusals (unknown, revoked, expired secrets) are cached for a second
//     too, so a client hammering with a bad secret costs one store read a
//     second; concurrent lookups of one secret share one read;
//   - both caches are keyed by the secret's hash (the secret is not kept)
//     and bounded (VerifierOptions.MaxEntries): a client sending endless
//     distinct secrets costs bounded memory. Malformed secrets are refused
//     before any lookup.
//
// Timing: lookups are by the SHA-256 of the presented secret, so neither
// the store's index nor the cache compares attacker-chosen bytes with a
// stored secret; the hash the store returns is compared again in constant
// time. Errors never contain a secret or its hash; Principal holds
// neither and may be logged.
//
// Errors: every authentication failure matches ErrUnauthenticated (HTTP
// 401, gRPC Unauthenticated), with ErrNoToken, ErrMalformed,
// ErrUnknownToken, ErrRevoked and ErrExpired telling the reason; a
// permission failure matches ErrForbidden (403, PermissionDenied). Any
// other error from Verify is the store's: answer "unavailable", never
// let the request through.
//
// # Bootstrap
//
// A server that finds no token at all calls Bootstrap, which creates an
// admin token and returns its secret once (the server shows it to its
// operator). Several servers starting on one empty PostgreSQL store race
// safely: exactly one creates the token (store.TokenTx.TokenBootstrap).
// Revoked tokens count: a store that ever had a token is never
// bootstrapped again.
//
// # Audit
//
// Security-relevant actions are appended to the store's audit trail
// (store.AuditEntry: actor = token name, action, target, outcome, short
// detail). Token changes are audited by this package in their own
// transaction; the servers append the rest, in batches if they like
// (store.AuditTx.AuditAppend takes many). PruneAudit enforces retention
// (AuditRetention, 90 days).
package auth
