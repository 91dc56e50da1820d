package faultstore

import (
	"context"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Tokens and the audit trail, delegated like every other method.

// TokenGet implements store.Store.
func (s *Store) TokenGet(ctx context.Context, name string) (*store.Token, error) {
	return read(s, ctx, "TokenGet", func() (*store.Token, error) { return s.inner.TokenGet(ctx, name) })
}

// TokenGetByHash implements store.Store.
func (s *Store) TokenGetByHash(ctx context.Context, hash string) (*store.Token, error) {
	return read(s, ctx, "TokenGetByHash", func() (*store.Token, error) { return s.inner.TokenGetByHash(ctx, hash) })
}

// TokenList implements store.Store.
func (s *Store) TokenList(ctx context.Context) ([]*store.Token, error) {
	return read(s, ctx, "TokenList", func() ([]*store.Token, error) { return s.inner.TokenList(ctx) })
}

// TokenCount implements store.Store.
func (s *Store) TokenCount(ctx context.Context) (int, error) {
	return read(s, ctx, "TokenCount", func() (int, error) { return s.inner.TokenCount(ctx) })
}

// AuditList implements store.Store.
func (s *Store) AuditList(ctx context.Context, p store.AuditListParams) (store.AuditPage, error) {
	return read(s, ctx, "AuditList", func() (store.AuditPage, error) { return s.inner.AuditList(ctx, p) })
}

func (t *tx) TokenCreate(ctx context.Context, p store.TokenCreateParams) (*store.Token, error) {
	return txCall(t, ctx, "TokenCreate", p, func() (*store.Token, error) { return t.inner.TokenCreate(ctx, p) })
}

func (t *tx) TokenBootstrap(ctx context.Context, p store.TokenCreateParams) (bool, error) {
	return txCall(t, ctx, "TokenBootstrap", p, func() (bool, error) { return t.inner.TokenBootstrap(ctx, p) })
}

func (t *tx) TokenRevoke(ctx context.Context, p store.TokenRevokeParams) (*store.Token, error) {
	return txCall(t, ctx, "TokenRevoke", p, func() (*store.Token, error) { return t.inner.TokenRevoke(ctx, p) })
}

func (t *tx) AuditAppend(ctx context.Context, entries []store.AuditEntry) error {
	_, err := txCall(t, ctx, "AuditAppend", entries, func() (struct{}, error) {
		return struct{}{}, t.inner.AuditAppend(ctx, entries)
	})
	return err
}

func (t *tx) AuditDeleteBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	return txCall(t, ctx, "AuditDeleteBefore", before, func() (int, error) { return t.inner.AuditDeleteBefore(ctx, before, limit) })
}
