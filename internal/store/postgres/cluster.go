package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pluto-sched/pluto/internal/store"
)

const (
	// sqlLeaderElect decides and writes in one statement: insert term 1;
	// or renew (same term) when the caller holds an unexpired lease; or
	// take an expired lease with the next term. Otherwise nothing changes
	// and no row comes back. INSERT … ON CONFLICT DO UPDATE locks the row
	// and re-evaluates the condition on its latest version, so concurrent
	// electors are serialised: a term is won once. Arguments: server,
	// expires_at, now.
	sqlLeaderElect = `INSERT INTO leader AS l (name, server_id, term, expires_at) VALUES ('leader', $1, 1, $2)
		ON CONFLICT (name) DO UPDATE SET
			server_id = excluded.server_id,
			term = CASE WHEN l.expires_at > $3 THEN l.term ELSE l.term + 1 END,
			expires_at = excluded.expires_at
		WHERE l.expires_at <= $3 OR l.server_id = excluded.server_id
		RETURNING server_id, term, expires_at`
	sqlLeaderGet = `SELECT server_id, term, expires_at FROM leader WHERE name = 'leader'`
	// A resigned lease keeps its term and expires at the zero time, before
	// any time a caller passes.
	sqlLeaderResign = `UPDATE leader SET expires_at = $1 WHERE name = 'leader' AND server_id = $2 AND term = $3`
	sqlServerUpsert = `INSERT INTO servers (id, http, grpc, started_at, last_seen) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET http = excluded.http, grpc = excluded.grpc,
			started_at = excluded.started_at, last_seen = excluded.last_seen`
	sqlServerList   = `SELECT id, http, grpc, started_at, last_seen FROM servers ORDER BY id`
	sqlServerDelete = `DELETE FROM servers WHERE id = $1`
)

func scanLeader(row pgx.Row) (store.Leader, error) {
	var l store.Leader
	err := row.Scan(&l.ServerID, &l.Term, &l.ExpiresAt)
	l.ExpiresAt = utc(l.ExpiresAt)
	return l, err
}

// LeaderElect implements store.Store.
func (s *Store) LeaderElect(ctx context.Context, p store.LeaderElectParams) (store.Leader, error) {
	if s.closed.Load() {
		return store.Leader{}, errClosed
	}
	if p.ServerID == "" {
		return store.Leader{}, errors.New("postgres: LeaderElect: no server ID")
	}
	if p.TTL <= 0 {
		return store.Leader{}, fmt.Errorf("postgres: LeaderElect: TTL %v is not positive", p.TTL)
	}
	l, err := scanLeader(s.pool.QueryRow(ctx, sqlLeaderElect, p.ServerID, p.Now.Add(p.TTL), p.Now))
	if errors.Is(err, pgx.ErrNoRows) {
		// Held by another server: report the holder.
		l, err = scanLeader(s.pool.QueryRow(ctx, sqlLeaderGet))
	}
	if err != nil {
		return store.Leader{}, s.wrap("LeaderElect", err)
	}
	return l, nil
}

// LeaderResign implements store.Store.
func (s *Store) LeaderResign(ctx context.Context, serverID string, term int64) error {
	if s.closed.Load() {
		return errClosed
	}
	if _, err := s.pool.Exec(ctx, sqlLeaderResign, time.Time{}, serverID, term); err != nil {
		return s.wrap("LeaderResign", err)
	}
	return nil
}

// LeaderGet implements store.Store.
func (s *Store) LeaderGet(ctx context.Context) (store.Leader, error) {
	if s.closed.Load() {
		return store.Leader{}, errClosed
	}
	l, err := scanLeader(s.pool.QueryRow(ctx, sqlLeaderGet))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Leader{}, nil
	}
	if err != nil {
		return store.Leader{}, s.wrap("LeaderGet", err)
	}
	return l, nil
}

// ServerHeartbeat implements store.Store.
func (s *Store) ServerHeartbeat(ctx context.Context, si store.ServerInfo) error {
	if s.closed.Load() {
		return errClosed
	}
	if si.ID == "" {
		return errors.New("postgres: ServerHeartbeat: no server ID")
	}
	if _, err := s.pool.Exec(ctx, sqlServerUpsert, si.ID, si.HTTP, si.GRPC, si.StartedAt, si.LastSeen); err != nil {
		return s.wrap("ServerHeartbeat", err)
	}
	return nil
}

// ServerList implements store.Store.
func (s *Store) ServerList(ctx context.Context) ([]store.ServerInfo, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.pool.Query(ctx, sqlServerList)
	if err != nil {
		return nil, s.wrap("ServerList", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.ServerInfo, error) {
		var si store.ServerInfo
		err := row.Scan(&si.ID, &si.HTTP, &si.GRPC, &si.StartedAt, &si.LastSeen)
		si.StartedAt, si.LastSeen = utc(si.StartedAt), utc(si.LastSeen)
		return si, err
	})
	if err != nil {
		return nil, s.wrap("ServerList", err)
	}
	return out, nil
}

// ServerRemove implements store.Store. Removing an unknown server is not
// an error.
func (s *Store) ServerRemove(ctx context.Context, id string) error {
	if s.closed.Load() {
		return errClosed
	}
	if _, err := s.pool.Exec(ctx, sqlServerDelete, id); err != nil {
		return s.wrap("ServerRemove", err)
	}
	return nil
}

// Notifications
//
// All notifications of a schema go through one channel (channelName). A
// transaction's notifications are collected (duplicates dropped) and sent
// just before COMMIT, packed into as few NOTIFY payloads as fit: one line
// per notification, "topic:payload", with backslash, newline and NUL in
// the payload escaped as \\, \n and \0. PostgreSQL queues them with the
// transaction and delivers them on commit, in commit order, to every
// session listening on the channel — this one's included.

// maxMessage is the most bytes one NOTIFY payload carries (PostgreSQL's
// limit is 7,999).
const maxMessage = 7900

// Notify implements store.Tx.
func (t *tx) Notify(ctx context.Context, n store.Notification) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if n.Topic == "" || strings.ContainsAny(n.Topic, ":\n\x00") {
		return fmt.Errorf("postgres: Notify: bad topic %q", n.Topic)
	}
	line := n.Topic + ":" + payloadEscaper.Replace(cleanText(n.Payload))
	if len(line) > maxMessage {
		return fmt.Errorf("postgres: Notify: topic %q: payload of %d bytes does not fit in a notification (%d)", n.Topic, len(n.Payload), maxMessage)
	}
	if _, dup := t.seen[line]; dup {
		return nil
	}
	if t.seen == nil {
		t.seen = map[string]struct{}{}
	}
	t.seen[line] = struct{}{}
	t.notes = append(t.notes, line)
	return nil
}

var payloadEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\x00", `\0`)

// encodeNotifications packs encoded notifications (lines) into NOTIFY
// payloads of at most max bytes each.
func encodeNotifications(lines []string, max int) []string {
	var (
		out []string
		b   strings.Builder
	)
	for _, line := range lines {
		if b.Len() > 0 && b.Len()+1+len(line) > max {
			out = append(out, b.String())
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(line)
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}

// decodeNotifications unpacks one NOTIFY payload.
func decodeNotifications(msg string, fn func(store.Notification)) {
	for line := range strings.SplitSeq(msg, "\n") {
		topic, payload, ok := strings.Cut(line, ":")
		if !ok {
			continue // not ours
		}
		if strings.IndexByte(payload, '\\') >= 0 {
			payload = unescapePayload(payload)
		}
		fn(store.Notification{Topic: topic, Payload: payload})
	}
}

func unescapePayload(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case '0':
			b.WriteByte(0)
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// notifySQL is the statement (ending with "; ") that sends the
// transaction's notifications, or "" when there are none. It runs in the
// simple protocol together with COMMIT: one round trip for both. Payloads
// are dollar-quoted with a tag they do not contain, so no character in
// them needs escaping.
func (t *tx) notifySQL() string {
	if len(t.notes) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	channel := quoteLiteral(t.s.channel)
	for i, m := range encodeNotifications(t.notes, maxMessage) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("pg_notify(")
		b.WriteString(channel)
		b.WriteString(", ")
		b.WriteString(quoteLiteral(m))
		b.WriteByte(')')
	}
	b.WriteString("; ")
	return b.String()
}

// quoteLiteral dollar-quotes s as a text literal.
func quoteLiteral(s string) string {
	tag := "$n$"
	for i := 0; strings.Contains(s, tag[:len(tag)-1]); i++ {
		tag = "$n" + strconv.Itoa(i) + "$"
	}
	return tag + s + tag
}

// Listen implements store.Store. It opens a connection of its own (not
// one of the pool's), LISTENs on the schema's channel and calls fn, on
// this goroutine, for every notification until ctx ends (it returns ctx's
// error) or the store is closed (ErrClosed). If the connection fails it
// returns that error; the caller listens again (and should assume it
// missed notifications meanwhile).
func (s *Store) Listen(ctx context.Context, fn func(store.Notification)) error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return errClosed
	}
	s.listeners.Add(1)
	s.mu.Unlock()
	defer s.listeners.Done()

	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.closing, cancel)
	defer stop()
	ended := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.closing.Err() != nil {
			return errClosed
		}
		return err
	}

	conn, err := pgx.ConnectConfig(lctx, s.connCfg.Copy())
	if err != nil {
		return ended(fmt.Errorf("postgres: Listen: connect: %w", err))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(lctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return ended(fmt.Errorf("postgres: Listen: %w", err))
	}
	for {
		n, err := conn.WaitForNotification(lctx)
		if err != nil {
			return ended(fmt.Errorf("postgres: Listen: %w", err))
		}
		if n.Channel != s.channel {
			continue
		}
		decodeNotifications(n.Payload, fn)
	}
}
