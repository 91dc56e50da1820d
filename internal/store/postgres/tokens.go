package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pluto-sched/pluto/internal/store"
)

// Tokens and the audit trail (migrations/00005_auth.sql). Both tables are
// small or append-only and written rarely next to runs; their statements
// favour clarity.
//
// TokenBootstrap must create a token in an empty table exactly once, even
// when several servers start on an empty store at once. A conditional
// insert alone is not enough under READ COMMITTED: two transactions could
// both see the table empty and insert two different tokens. So it first
// locks the table in SHARE ROW EXCLUSIVE mode, which conflicts with itself
// and with every insert: bootstraps and creates take turns, and the
// conditional insert, a statement of its own with a fresh snapshot, sees
// every token committed before the lock was granted.

const tokenCols = `name, role, groups, hash, created_at, expires_at, revoked_at`

const (
	sqlTokenGet       = `SELECT ` + tokenCols + ` FROM tokens WHERE name = $1`
	sqlTokenGetByHash = `SELECT ` + tokenCols + ` FROM tokens WHERE hash = $1`
	sqlTokenList      = `SELECT ` + tokenCols + ` FROM tokens ORDER BY name`
	sqlTokenCount     = `SELECT count(*) FROM tokens`

	// A name or hash already taken inserts nothing (and, unlike a unique
	// violation, leaves the transaction usable). Arguments: name, role,
	// groups, hash, created_at, expires_at.
	sqlTokenCreate = `INSERT INTO tokens (name, role, groups, hash, created_at, expires_at)
		VALUES ($1, $2, $3::text[], $4, $5, $6) ON CONFLICT DO NOTHING RETURNING ` + tokenCols
	sqlTokenLock      = `LOCK TABLE tokens IN SHARE ROW EXCLUSIVE MODE`
	sqlTokenBootstrap = `INSERT INTO tokens (name, role, groups, hash, created_at, expires_at)
		SELECT $1, $2, $3::text[], $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM tokens)
		ON CONFLICT DO NOTHING RETURNING ` + tokenCols
	sqlTokenRevoke = `UPDATE tokens SET revoked_at = coalesce(revoked_at, $2) WHERE name = $1 RETURNING ` + tokenCols

	// One statement per batch. Arguments: arrays of at, actor, action,
	// target, outcome, detail.
	sqlAuditAppend = `INSERT INTO audit (at, actor, action, target, outcome, detail)
		SELECT at, actor, action, target, outcome, detail
		FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
			WITH ORDINALITY AS u(at, actor, action, target, outcome, detail, ord)
		ORDER BY ord`
	// The oldest entries before a time, at most a limit, by audit_at.
	sqlAuditDelete = `DELETE FROM audit WHERE seq = ANY (ARRAY(
		SELECT seq FROM audit WHERE at < $1 ORDER BY at LIMIT $2))`
	auditCols = `seq, at, actor, action, target, outcome, detail`
)

func scanToken(row pgx.Row) (*store.Token, error) {
	var (
		tok              store.Token
		expires, revoked pgtype.Timestamptz
	)
	if err := row.Scan(&tok.Name, &tok.Role, &tok.Groups, &tok.Hash, &tok.CreatedAt, &expires, &revoked); err != nil {
		return nil, err
	}
	if len(tok.Groups) == 0 {
		tok.Groups = nil
	}
	tok.CreatedAt = utc(tok.CreatedAt)
	tok.ExpiresAt, tok.RevokedAt = tsTime(expires), tsTime(revoked)
	return &tok, nil
}

// groupsArg binds a token's groups; none is NULL.
func groupsArg(g []string) []string {
	if len(g) == 0 {
		return nil
	}
	return g
}

// insertToken runs sql (create or bootstrap) for p and returns the row it
// inserted, or nil when it inserted none.
func (t *tx) insertToken(ctx context.Context, op, sql string, p store.TokenCreateParams) (*store.Token, error) {
	if p.Name == "" || p.Hash == "" {
		return nil, fmt.Errorf("postgres: %s: token %q: name and hash are required", op, p.Name)
	}
	tok, err := scanToken(t.q.QueryRow(ctx, sql, p.Name, p.Role, groupsArg(p.Groups), p.Hash, p.Now, nullTime(p.ExpiresAt)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, t.s.wrap(op, err)
	}
	return tok, nil
}

// TokenCreate implements store.Tx.
func (t *tx) TokenCreate(ctx context.Context, p store.TokenCreateParams) (*store.Token, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	tok, err := t.insertToken(ctx, "TokenCreate", sqlTokenCreate, p)
	if err == nil && tok == nil {
		err = fmt.Errorf("postgres: TokenCreate: token %q: name or hash already in use: %w", p.Name, store.ErrExists)
	}
	return tok, err
}

// TokenBootstrap implements store.Tx.
func (t *tx) TokenBootstrap(ctx context.Context, p store.TokenCreateParams) (bool, error) {
	if err := t.check(ctx); err != nil {
		return false, err
	}
	if _, err := t.q.Exec(ctx, sqlTokenLock); err != nil {
		return false, t.s.wrap("TokenBootstrap", err)
	}
	tok, err := t.insertToken(ctx, "TokenBootstrap", sqlTokenBootstrap, p)
	return tok != nil, err
}

// TokenRevoke implements store.Tx.
func (t *tx) TokenRevoke(ctx context.Context, p store.TokenRevokeParams) (*store.Token, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	tok, err := scanToken(t.q.QueryRow(ctx, sqlTokenRevoke, p.Name, p.Now))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: TokenRevoke: token %q: %w", p.Name, store.ErrNotFound)
	}
	if err != nil {
		return nil, t.s.wrap("TokenRevoke", err)
	}
	return tok, nil
}

// AuditAppend implements store.Tx.
func (t *tx) AuditAppend(ctx context.Context, entries []store.AuditEntry) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	// One array per column: at, then actor, action, target, outcome, detail.
	at := make([]time.Time, len(entries))
	var text [5][]string
	for c := range text {
		text[c] = make([]string, len(entries))
	}
	for i, e := range entries {
		e, err := store.CheckAuditEntry(e)
		if err != nil {
			return fmt.Errorf("postgres: AuditAppend: %w", err)
		}
		at[i] = e.At
		for c, v := range [5]string{e.Actor, e.Action, e.Target, e.Outcome, e.Detail} {
			text[c][i] = cleanText(v)
		}
	}
	if _, err := t.q.Exec(ctx, sqlAuditAppend, at, text[0], text[1], text[2], text[3], text[4]); err != nil {
		return t.s.wrap("AuditAppend", err)
	}
	return nil
}

// AuditDeleteBefore implements store.Tx.
func (t *tx) AuditDeleteBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := t.check(ctx); err != nil {
		return 0, err
	}
	if limit <= 0 {
		return 0, nil
	}
	tag, err := t.q.Exec(ctx, sqlAuditDelete, before, int64(limit))
	if err != nil {
		return 0, t.s.wrap("AuditDeleteBefore", err)
	}
	return int(tag.RowsAffected()), nil
}

// The read side, on the pool.

func (s *Store) getToken(ctx context.Context, op, sql, arg string) (*store.Token, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	tok, err := scanToken(s.pool.QueryRow(ctx, sql, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return tok, nil
}

// TokenGet implements store.Store.
func (s *Store) TokenGet(ctx context.Context, name string) (*store.Token, error) {
	return s.getToken(ctx, "TokenGet", sqlTokenGet, name)
}

// TokenGetByHash implements store.Store. The hash is not repeated in the
// error: it identifies a secret.
func (s *Store) TokenGetByHash(ctx context.Context, hash string) (*store.Token, error) {
	return s.getToken(ctx, "TokenGetByHash", sqlTokenGetByHash, hash)
}

// TokenList implements store.Store.
func (s *Store) TokenList(ctx context.Context) ([]*store.Token, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.pool.Query(ctx, sqlTokenList)
	if err != nil {
		return nil, s.wrap("TokenList", err)
	}
	toks, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Token, error) { return scanToken(row) })
	if err != nil {
		return nil, s.wrap("TokenList", err)
	}
	return toks, nil
}

// TokenCount implements store.Store.
func (s *Store) TokenCount(ctx context.Context) (int, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	var n int64
	if err := s.pool.QueryRow(ctx, sqlTokenCount).Scan(&n); err != nil {
		return 0, s.wrap("TokenCount", err)
	}
	return int(n), nil
}

// AuditList implements store.Store. With an actor the walk follows
// audit_actor; otherwise it goes down the primary key (newest first) and
// tests the filters on each entry: it serves the console and the API.
func (s *Store) AuditList(ctx context.Context, p store.AuditListParams) (store.AuditPage, error) {
	if s.closed.Load() {
		return store.AuditPage{}, errClosed
	}
	limit := p.PageLimit()
	before, err := p.BeforeSeq()
	if err != nil {
		return store.AuditPage{}, fmt.Errorf("postgres: AuditList: %w", err)
	}
	var (
		where []string
		args  []any
	)
	for _, c := range p.Conditions(before) {
		args = append(args, c.Value)
		where = append(where, c.Column+" "+c.Op+" $"+strconv.Itoa(len(args)))
	}
	q := "SELECT " + auditCols + " FROM audit"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, int64(limit+1))
	q += " ORDER BY seq DESC LIMIT $" + strconv.Itoa(len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return store.AuditPage{}, s.wrap("AuditList", err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AuditEntry, error) {
		var e store.AuditEntry
		err := row.Scan(&e.Seq, &e.At, &e.Actor, &e.Action, &e.Target, &e.Outcome, &e.Detail)
		e.At = utc(e.At)
		return e, err
	})
	if err != nil {
		return store.AuditPage{}, s.wrap("AuditList", err)
	}
	return store.NewAuditPage(entries, limit), nil
}
