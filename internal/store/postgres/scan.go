package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pluto-sched/pluto/internal/store"
)

// Run is store.Run.
type Run = store.Run

// runCols is the column list every run query selects or returns, in the
// order runRow.scan reads it. qualifiedRunCols is the same list with the
// table name, for RETURNING clauses of UPDATE … FROM.
const (
	runCols = `seq, id, job, parent_id, shard, type, grp, payload, priority, status,
	attempt, max_attempts, failures, key, logical_time, run_at, created_at, started_at,
	finished_at, worker_id, server_id, result, error, timeout, routing, routing_key,
	callback_url, callback_state, callback_attempts, callback_next_at, callback_error, callback_delivered_at, lost,
	dispatched_at, shard_count, split`
	qualifiedRunCols = `runs.seq, runs.id, runs.job, runs.parent_id, runs.shard, runs.type, runs.grp,
	runs.payload, runs.priority, runs.status, runs.attempt, runs.max_attempts, runs.failures,
	runs.key, runs.logical_time, runs.run_at, runs.created_at, runs.started_at, runs.finished_at,
	runs.worker_id, runs.server_id, runs.result, runs.error, runs.timeout, runs.routing,
	runs.routing_key, runs.callback_url, runs.callback_state, runs.callback_attempts,
	runs.callback_next_at, runs.callback_error, runs.callback_delivered_at, runs.lost,
	runs.dispatched_at, runs.shard_count, runs.split`
	numRunCols = 36
)

// runRow receives one row of runCols.
type runRow struct {
	r           Run
	shard       pgtype.Int4
	payload     []byte
	status      string
	key         pgtype.Text
	logicalTime pgtype.Timestamptz
	startedAt   pgtype.Timestamptz
	finishedAt  pgtype.Timestamptz
	serverID    pgtype.Text
	result      []byte
	timeout     int64
	cbURL       pgtype.Text
	cbState     string
	cbAttempts  int32
	cbNextAt    pgtype.Timestamptz
	cbError     string
	cbDelivered pgtype.Timestamptz
	lost        int32
	dispatched  pgtype.Timestamptz
	shardCount  int32
	split       []byte
	dest        [numRunCols]any
}

func newRunRow() *runRow {
	rr := new(runRow)
	r := &rr.r
	rr.dest = [numRunCols]any{
		&r.Seq, &r.ID, &r.Job, &r.ParentID, &rr.shard, &r.Type, &r.Group, &rr.payload, &r.Priority, &rr.status,
		&r.Attempt, &r.MaxAttempts, &r.Failures, &rr.key, &rr.logicalTime, &r.RunAt, &r.CreatedAt, &rr.startedAt,
		&rr.finishedAt, &r.WorkerID, &rr.serverID, &rr.result, &r.Error, &rr.timeout, &r.Routing, &r.RoutingKey,
		&rr.cbURL, &rr.cbState, &rr.cbAttempts, &rr.cbNextAt, &rr.cbError, &rr.cbDelivered, &rr.lost,
		&rr.dispatched, &rr.shardCount, &rr.split,
	}
	return rr
}

// scan reads the current row into a new Run.
func (rr *runRow) scan(row pgx.Row) (*Run, error) {
	rr.r = Run{}
	rr.payload, rr.result, rr.split = nil, nil, nil
	if err := row.Scan(rr.dest[:]...); err != nil {
		return nil, err
	}
	return rr.decode()
}

// decode makes a new Run of the values scanned into dest.
func (rr *runRow) decode() (*Run, error) {
	r := new(Run)
	*r = rr.r
	r.Status = store.RunStatus(rr.status)
	if rr.shard.Valid {
		n := int(rr.shard.Int32)
		r.Shard = &n
	}
	if len(rr.payload) > 0 {
		r.Payload = json.RawMessage(rr.payload)
	}
	if len(rr.result) > 0 {
		r.Result = json.RawMessage(rr.result)
	}
	r.Key = rr.key.String
	r.LogicalTime = tsTime(rr.logicalTime)
	r.RunAt = utc(r.RunAt)
	r.CreatedAt = utc(r.CreatedAt)
	r.DispatchedAt = tsTime(rr.dispatched)
	r.StartedAt = tsTime(rr.startedAt)
	r.FinishedAt = tsTime(rr.finishedAt)
	r.ServerID = rr.serverID.String
	r.Timeout = time.Duration(rr.timeout)
	r.Lost = int(rr.lost)
	r.ShardCount = int(rr.shardCount)
	if rr.split != nil {
		r.Split = new(store.Split)
		if err := json.Unmarshal(rr.split, r.Split); err != nil {
			return nil, fmt.Errorf("run %q: split: %w", r.ID, err)
		}
	}
	if rr.cbURL.Valid {
		r.CallbackURL = rr.cbURL.String
		r.Callback = store.Callback{
			State:       store.CallbackState(rr.cbState),
			Attempts:    int(rr.cbAttempts),
			NextAt:      tsTime(rr.cbNextAt),
			LastError:   rr.cbError,
			DeliveredAt: tsTime(rr.cbDelivered),
		}
	}
	return r, nil
}

func tsTime(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return utc(t.Time)
}

// collectRuns reads every row of runCols and closes rows.
func collectRuns(rows pgx.Rows) ([]*Run, error) {
	defer rows.Close()
	var out []*Run
	rr := newRunRow()
	for rows.Next() {
		r, err := rr.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Parameter helpers: zero values bind as NULL.

func nullText(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

func nullJSON(b []byte) pgtype.Text {
	return pgtype.Text{String: string(cleanJSON(b)), Valid: len(b) > 0}
}

func nullTime(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// micro is t as it reads back from the database.
func micro(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

// cleanText makes free text (payloads, results, errors, log lines)
// storable: PostgreSQL's text refuses NUL bytes and invalid UTF-8, and
// one such value would fail a whole group commit. Both become U+FFFD.
// Valid text, nearly all of it, is returned as is.
func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// cleanJSON is cleanText for a JSON document.
func cleanJSON(b []byte) []byte {
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 {
		return b
	}
	return []byte(cleanText(string(b)))
}
