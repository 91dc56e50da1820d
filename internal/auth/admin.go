package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Audit actions and outcomes written by this package; callers use the
// same outcomes for their own entries.
const (
	ActionTokenCreate    = "token.create"
	ActionTokenRevoke    = "token.revoke"
	ActionTokenBootstrap = "token.bootstrap"

	OutcomeOK     = "ok"
	OutcomeDenied = "denied" // refused: unauthenticated or forbidden
	OutcomeError  = "error"  // allowed, but it failed
)

// AuditRetention is how long audit entries are kept by default.
const AuditRetention = 90 * 24 * time.Hour

// CreateParams describes a new token.
type CreateParams struct {
	Name      string
	Role      Role
	Groups    []string  // none: all groups
	ExpiresAt time.Time // zero: never
	// Actor is the name of the token creating this one, for the audit
	// entry; "" writes no entry.
	Actor string
	Now   time.Time
}

// CreateToken validates p, generates a secret and stores its token. In the
// same transaction it appends an audit entry (when p.Actor is set) and
// publishes TopicTokens, so that servers forget their cached refusal of
// the new secret. The secret is returned once: show it to the caller and
// never log it. A name already in use gives an error wrapping
// store.ErrExists.
func CreateToken(ctx context.Context, st store.Store, p CreateParams) (secret string, tok *store.Token, err error) {
	params, err := createParams(p.Name, p.Role, p.Groups, p.ExpiresAt, p.Now)
	if err != nil {
		return "", nil, err
	}
	secret, params.Hash = Generate()
	err = st.Tx(ctx, func(tx store.Tx) error {
		var err error
		if tok, err = tx.TokenCreate(ctx, params); err != nil {
			return err
		}
		return changed(ctx, tx, p.Actor, ActionTokenCreate, tok, p.Now, "role "+string(p.Role))
	})
	if err != nil {
		return "", nil, fmt.Errorf("auth: create token %q: %w", p.Name, err)
	}
	return secret, tok, nil
}

// createParams validates a token's fields into store parameters (without
// the hash).
func createParams(name string, role Role, groups []string, expires, now time.Time) (store.TokenCreateParams, error) {
	if err := ValidateName(name); err != nil {
		return store.TokenCreateParams{}, err
	}
	if !role.Valid() {
		return store.TokenCreateParams{}, unknownRole(string(role))
	}
	groups, err := ValidateGroups(groups)
	if err != nil {
		return store.TokenCreateParams{}, err
	}
	if !expires.IsZero() && !expires.After(now) {
		return store.TokenCreateParams{}, fmt.Errorf("expires_at: %v is not after now (%v)", expires, now)
	}
	return store.TokenCreateParams{Name: name, Role: string(role), Groups: groups, ExpiresAt: expires, Now: now}, nil
}

// changed records a token change in tx: the audit entry (when actor is
// set) and the TopicTokens notification.
func changed(ctx context.Context, tx store.Tx, actor, action string, tok *store.Token, now time.Time, detail string) error {
	if actor != "" {
		e := store.AuditEntry{At: now, Actor: actor, Action: action, Target: tok.Name, Outcome: OutcomeOK, Detail: detail}
		if err := tx.AuditAppend(ctx, []store.AuditEntry{e}); err != nil {
			return err
		}
	}
	return tx.Notify(ctx, store.Notification{Topic: store.TopicTokens, Payload: tok.Name})
}

// RevokeToken revokes the token named name at now, appends an audit entry
// (when actor is set) and publishes TopicTokens, in one transaction: every
// server refuses the token at once (or, if the notification is lost,
// within MaxCacheTTL). Revoking a revoked token changes nothing but is
// not an error; an unknown name gives an error wrapping
// store.ErrNotFound.
func RevokeToken(ctx context.Context, st store.Store, actor, name string, now time.Time) (*store.Token, error) {
	var tok *store.Token
	err := st.Tx(ctx, func(tx store.Tx) error {
		var err error
		if tok, err = tx.TokenRevoke(ctx, store.TokenRevokeParams{Name: name, Now: now}); err != nil {
			return err
		}
		return changed(ctx, tx, actor, ActionTokenRevoke, tok, now, "")
	})
	if err != nil {
		return nil, fmt.Errorf("auth: revoke token %q: %w", name, err)
	}
	return tok, nil
}

// BootstrapActor is the actor of the audit entry of a bootstrap.
const BootstrapActor = "bootstrap"

// Bootstrap creates an admin token named name if the store has no token
// at all, and returns its secret ("" and false when the store already had
// tokens). Several servers may call it at once on one empty store: one of
// them creates the token. The secret is shown once (the server prints it
// where its operator finds it) and never stored.
func Bootstrap(ctx context.Context, st store.Store, name string, now time.Time) (secret string, created bool, err error) {
	params, err := createParams(name, RoleAdmin, nil, time.Time{}, now)
	if err != nil {
		return "", false, err
	}
	secret, params.Hash = Generate()
	err = st.Tx(ctx, func(tx store.Tx) error {
		if created, err = tx.TokenBootstrap(ctx, params); err != nil || !created {
			return err
		}
		tok := &store.Token{Name: name}
		return changed(ctx, tx, BootstrapActor, ActionTokenBootstrap, tok, now, "first admin token")
	})
	if err != nil {
		return "", false, fmt.Errorf("auth: bootstrap token %q: %w", name, err)
	}
	if !created {
		return "", false, nil
	}
	return secret, true, nil
}

// PruneAudit deletes the audit entries older than before, batch entries
// per transaction (1000 when batch <= 0), and returns how many it deleted.
// Run it now and then (daily) with before = now - AuditRetention.
func PruneAudit(ctx context.Context, st store.Store, before time.Time, batch int) (int, error) {
	if batch <= 0 {
		batch = 1000
	}
	total := 0
	for {
		var n int
		err := st.Tx(ctx, func(tx store.Tx) error {
			var err error
			n, err = tx.AuditDeleteBefore(ctx, before, batch)
			return err
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("auth: prune audit: %w", err)
		}
		if n < batch {
			return total, nil
		}
	}
}
