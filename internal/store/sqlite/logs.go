package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/pluto-sched/pluto/internal/store"
)

const logListDefaultLimit = 1000

// logAppend is LogTx's LogAppend: the touched runs' attempts are read
// from the runs' database (runAttempts) and their counters from this one,
// store.PlanLogAppend decides, and the kept lines and the new counters are
// written, all under the log lines' writer.
func (t *tx) logAppend(ctx context.Context, p store.LogAppendParams) (store.LogAppendResult, error) {
	if err := t.check(ctx); err != nil {
		return store.LogAppendResult{}, err
	}
	if len(p.Lines) == 0 && len(p.Dropped) == 0 {
		return store.LogAppendResult{}, nil
	}
	ids := p.RunIDs()
	attempts, err := t.s.runAttempts(ctx, ids)
	if err != nil {
		return store.LogAppendResult{}, err
	}
	states := make(map[string]store.LogRunState, len(ids))
	for _, id := range ids {
		attempt, ok := attempts[id]
		if !ok {
			continue // an unknown run: its lines are fenced
		}
		st := store.LogRunState{Attempt: attempt}
		t.bind()
		t.arg(id)
		err := t.query("LogAppend", wLogState, 3, func(v []driver.Value) {
			st.Stats = store.LogStats{Lines: v[0].(int64), Bytes: v[1].(int64), Dropped: v[2].(int64)}
		})
		if err != nil {
			return store.LogAppendResult{}, err
		}
		states[id] = st
	}
	plan := store.PlanLogAppend(&p, states)
	if err := t.insertLogLines(plan.Keep); err != nil {
		return store.LogAppendResult{}, err
	}
	for _, id := range ids {
		c, ok := plan.Stats[id]
		if !ok || c == states[id].Stats {
			continue
		}
		t.bind()
		t.arg(id)
		t.arg(c.Lines)
		t.arg(c.Bytes)
		t.arg(c.Dropped)
		if _, _, err := t.exec("LogAppend", wLogStatsPut); err != nil {
			return store.LogAppendResult{}, err
		}
	}
	return plan.Result, nil
}

// chunkInserts are the multi-row chunk inserts, largest first.
var chunkInserts = []struct {
	rows int
	stmt wStmt
}{{16, wChunkInsert16}, {1, wChunkInsert1}}

func chunkInsertSQL(verb string, rows int) string {
	const row = "(?,?,?)"
	return verb + " INTO log_chunks (last_seq, run_id, lines) VALUES " + row + strings.Repeat(","+row, rows-1)
}

// insertLogLines stores lines in order, as chunks (logchunk.go), their
// seqs following the last stored line's.
func (t *tx) insertLogLines(lines []store.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	var last int64
	t.bind()
	if err := t.query("LogAppend", wLogLastSeq, 1, func(v []driver.Value) { last = asInt(v[0]) }); err != nil {
		return err
	}
	chunks, _ := chunksOf(lines, last+1)
	for _, c := range chunkInserts {
		for len(chunks) >= c.rows {
			t.bind()
			for i := range c.rows {
				t.arg(chunks[i].lastSeq())
				t.arg(chunks[i].runID)
				t.arg(encodeChunk(&chunks[i]))
			}
			if _, _, err := t.exec("LogAppend", c.stmt); err != nil {
				return err
			}
			chunks = chunks[c.rows:]
		}
	}
	return nil
}

// LogStats implements store.Store.
func (s *Store) LogStats(ctx context.Context, runID string) (store.LogStats, error) {
	if s.closed.Load() {
		return store.LogStats{}, errClosed
	}
	var c store.LogStats
	err := s.lrs[lrLogStats].QueryRowContext(ctx, runID).Scan(&c.Lines, &c.Bytes, &c.Dropped)
	if errors.Is(err, sql.ErrNoRows) {
		return store.LogStats{}, nil
	}
	if err != nil {
		return store.LogStats{}, s.wrap("LogStats", err)
	}
	return c, nil
}

// LogList implements store.Store.
func (s *Store) LogList(ctx context.Context, p store.LogListParams) ([]store.LogEntry, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	limit := p.Limit
	if limit <= 0 {
		limit = logListDefaultLimit
	}
	// A chunk holds a line at least: limit chunks are enough.
	rows, err := s.lrs[lrLogList].QueryContext(ctx, p.RunID, p.After, int64(limit))
	if err != nil {
		return nil, s.wrap("LogList", err)
	}
	defer rows.Close()
	var out []store.LogEntry
	for len(out) < limit && rows.Next() {
		var (
			last int64
			blob []byte
		)
		if err := rows.Scan(&last, &blob); err != nil {
			return nil, s.wrap("LogList", err)
		}
		err := decodeChunk(p.RunID, last, blob, func(e store.LogEntry) bool {
			if e.Seq > p.After {
				out = append(out, e)
			}
			return len(out) < limit
		})
		if err != nil {
			return nil, s.wrap("LogList", fmt.Errorf("run %s, line %d: %w", p.RunID, last, err))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("LogList", err)
	}
	return out, nil
}
