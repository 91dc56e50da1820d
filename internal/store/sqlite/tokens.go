package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pluto-sched/pluto/internal/store"
)

// Tokens and the audit trail (migration 00006_auth). Both tables are
// small or append-only and written rarely next to runs; their statements
// favour clarity. With one writer, TokenBootstrap's conditional insert
// needs no lock: the transaction holds the database's write lock.

// tokenCols is the column list every token query selects or returns, in
// the order decodeToken reads it.
const tokenCols = `name, role, groups, hash, created_at, expires_at, revoked_at`

const numTokenCols = 7

const auditCols = `seq, at, actor, action, target, outcome, detail`

const (
	// Arguments: name, role, groups, hash, created_at, expires_at. A name
	// or hash already taken inserts nothing.
	tokenCreateSQL = `INSERT INTO tokens (name, role, groups, hash, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING ` + tokenCols
	tokenBootstrapSQL = `INSERT INTO tokens (name, role, groups, hash, created_at, expires_at)
		SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM tokens)
		ON CONFLICT DO NOTHING RETURNING ` + tokenCols
	tokenRevokeSQL = `UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE name = ? RETURNING ` + tokenCols
	auditAppendSQL = `INSERT INTO audit (at, actor, action, target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)`
	// The oldest entries before a time, at most a limit, by audit_at.
	auditDeleteSQL = `DELETE FROM audit WHERE seq IN (
		SELECT seq FROM audit WHERE at < ? ORDER BY at LIMIT ?)`
)

func init() {
	wSQL[wTokenCreate] = tokenCreateSQL
	wSQL[wTokenBootstrap] = tokenBootstrapSQL
	wSQL[wTokenRevoke] = tokenRevokeSQL
	wSQL[wAuditAppend] = auditAppendSQL
	wSQL[wAuditDelete] = auditDeleteSQL
	rSQL[rTokenGet] = `SELECT ` + tokenCols + ` FROM tokens WHERE name = ?`
	rSQL[rTokenGetByHash] = `SELECT ` + tokenCols + ` FROM tokens WHERE hash = ?`
	rSQL[rTokenList] = `SELECT ` + tokenCols + ` FROM tokens ORDER BY name`
	rSQL[rTokenCount] = `SELECT count(*) FROM tokens`
}

// decodeToken builds a token from the values of one row of tokenCols.
func decodeToken[V any](vs []V) (*store.Token, error) {
	v := func(i int) any { return vs[i] }
	tok := &store.Token{
		Name:      asString(v(0)),
		Role:      asString(v(1)),
		Hash:      asString(v(3)),
		CreatedAt: asTime(v(4)),
		ExpiresAt: asTime(v(5)),
		RevokedAt: asTime(v(6)),
	}
	if v(2) != nil {
		if err := json.Unmarshal([]byte(asString(v(2))), &tok.Groups); err != nil {
			return nil, fmt.Errorf("token %q: groups: %w", tok.Name, err)
		}
		if len(tok.Groups) == 0 {
			tok.Groups = nil
		}
	}
	return tok, nil
}

// groupsValue binds a token's groups as a JSON array; none is NULL.
func groupsValue(g []string) (driver.Value, error) {
	if len(g) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(g)
	return string(b), err
}

// queryTokens runs statement i (which returns tokenCols) with the bound
// arguments and decodes the rows.
func (t *tx) queryTokens(op string, i wStmt) ([]*store.Token, error) {
	return queryDecoded(t, op, i, numTokenCols, decodeToken[driver.Value])
}

// insertToken runs statement i (create or bootstrap) for p and returns the
// row it inserted, or nil when it inserted none.
func (t *tx) insertToken(ctx context.Context, op string, i wStmt, p store.TokenCreateParams) (*store.Token, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	if p.Name == "" || p.Hash == "" {
		return nil, fmt.Errorf("sqlite: %s: token %q: name and hash are required", op, p.Name)
	}
	groups, err := groupsValue(p.Groups)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: token %q: groups: %w", op, p.Name, err)
	}
	t.bind()
	t.arg(p.Name)
	t.arg(p.Role)
	t.arg(groups)
	t.arg(p.Hash)
	t.arg(micro(p.Now))
	t.arg(nullMicro(p.ExpiresAt))
	toks, err := t.queryTokens(op, i)
	if err != nil || len(toks) == 0 {
		return nil, err
	}
	return toks[0], nil
}

// TokenCreate implements store.Tx.
func (t *tx) TokenCreate(ctx context.Context, p store.TokenCreateParams) (*store.Token, error) {
	tok, err := t.insertToken(ctx, "TokenCreate", wTokenCreate, p)
	if err == nil && tok == nil {
		err = fmt.Errorf("sqlite: TokenCreate: token %q: name or hash already in use: %w", p.Name, store.ErrExists)
	}
	return tok, err
}

// TokenBootstrap implements store.Tx.
func (t *tx) TokenBootstrap(ctx context.Context, p store.TokenCreateParams) (bool, error) {
	tok, err := t.insertToken(ctx, "TokenBootstrap", wTokenBootstrap, p)
	return tok != nil, err
}

// TokenRevoke implements store.Tx.
func (t *tx) TokenRevoke(ctx context.Context, p store.TokenRevokeParams) (*store.Token, error) {
	if err := t.check(ctx); err != nil {
		return nil, err
	}
	t.bind()
	t.arg(micro(p.Now))
	t.arg(p.Name)
	toks, err := t.queryTokens("TokenRevoke", wTokenRevoke)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("sqlite: TokenRevoke: token %q: %w", p.Name, store.ErrNotFound)
	}
	return toks[0], nil
}

// AuditAppend implements store.Tx.
func (t *tx) AuditAppend(ctx context.Context, entries []store.AuditEntry) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	checked := make([]store.AuditEntry, len(entries))
	for i, e := range entries {
		var err error
		if checked[i], err = store.CheckAuditEntry(e); err != nil {
			return fmt.Errorf("sqlite: AuditAppend: %w", err)
		}
	}
	for _, e := range checked {
		t.bind()
		t.arg(micro(e.At))
		t.arg(e.Actor)
		t.arg(e.Action)
		t.arg(e.Target)
		t.arg(e.Outcome)
		t.arg(e.Detail)
		if _, _, err := t.exec("AuditAppend", wAuditAppend); err != nil {
			return err
		}
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
	t.bind()
	t.arg(micro(before))
	t.arg(int64(limit))
	n, _, err := t.exec("AuditDeleteBefore", wAuditDelete)
	return int(n), err
}

// The read side, on the reader pool.

// scanToken reads one row of tokenCols.
func scanToken(sc scanner) (*store.Token, error) {
	return scanDecoded(sc, numTokenCols, decodeToken[any])
}

func (s *Store) getToken(ctx context.Context, op string, st rStmt, arg string) (*store.Token, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	tok, err := scanToken(s.rs[st].QueryRowContext(ctx, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return tok, nil
}

// TokenGet implements store.Store.
func (s *Store) TokenGet(ctx context.Context, name string) (*store.Token, error) {
	return s.getToken(ctx, "TokenGet", rTokenGet, name)
}

// TokenGetByHash implements store.Store. The hash is not repeated in the
// error: it identifies a secret.
func (s *Store) TokenGetByHash(ctx context.Context, hash string) (*store.Token, error) {
	return s.getToken(ctx, "TokenGetByHash", rTokenGetByHash, hash)
}

// TokenList implements store.Store.
func (s *Store) TokenList(ctx context.Context) ([]*store.Token, error) {
	return listRows(s, ctx, "TokenList", rTokenList, scanToken)
}

// TokenCount implements store.Store.
func (s *Store) TokenCount(ctx context.Context) (int, error) {
	if s.closed.Load() {
		return 0, errClosed
	}
	var n int
	if err := s.rs[rTokenCount].QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, s.wrap("TokenCount", err)
	}
	return n, nil
}

// AuditList implements store.Store. With an actor the walk follows
// audit_actor; otherwise it goes down the rowid (newest first) and tests
// the filters on each entry: it serves the console and the API.
func (s *Store) AuditList(ctx context.Context, p store.AuditListParams) (store.AuditPage, error) {
	if s.closed.Load() {
		return store.AuditPage{}, errClosed
	}
	limit := p.PageLimit()
	before, err := p.BeforeSeq()
	if err != nil {
		return store.AuditPage{}, fmt.Errorf("sqlite: AuditList: %w", err)
	}
	var (
		where []string
		args  []any
	)
	for _, c := range p.Conditions(before) {
		where = append(where, c.Column+" "+c.Op+" ?")
		if at, ok := c.Value.(time.Time); ok {
			args = append(args, micro(at))
		} else {
			args = append(args, c.Value)
		}
	}
	q := "SELECT " + auditCols + " FROM audit"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq DESC LIMIT ?"
	args = append(args, limit+1)
	entries, err := s.queryAudit(ctx, q, args)
	if err != nil {
		return store.AuditPage{}, s.wrap("AuditList", err)
	}
	return store.NewAuditPage(entries, limit), nil
}

func (s *Store) queryAudit(ctx context.Context, q string, args []any) ([]store.AuditEntry, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var (
			e  store.AuditEntry
			at int64
		)
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Target, &e.Outcome, &e.Detail); err != nil {
			return nil, err
		}
		e.At = fromMicro(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
