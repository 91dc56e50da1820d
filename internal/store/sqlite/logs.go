package sqlite

import (
	"context"

	"github.com/pluto-sched/pluto/internal/store"
)

const logListDefaultLimit = 1000

// LogAppend implements store.Tx.
func (t *tx) LogAppend(ctx context.Context, lines []store.LogLine) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	for i := range lines {
		l := &lines[i]
		t.bind()
		t.arg(l.RunID)
		t.arg(int64(l.Attempt))
		t.arg(micro(l.Time))
		t.arg(l.Stream)
		t.arg(l.Level)
		t.arg(l.Text)
		if _, _, err := t.exec("LogAppend", wLogAppend); err != nil {
			return err
		}
	}
	return nil
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
	rows, err := s.rs[rLogList].QueryContext(ctx, p.RunID, p.After, int64(limit))
	if err != nil {
		return nil, s.wrap("LogList", err)
	}
	defer rows.Close()
	var out []store.LogEntry
	for rows.Next() {
		var (
			e  store.LogEntry
			at int64
		)
		if err := rows.Scan(&e.Seq, &e.RunID, &e.Attempt, &at, &e.Stream, &e.Level, &e.Text); err != nil {
			return nil, s.wrap("LogList", err)
		}
		e.Time = fromMicro(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("LogList", err)
	}
	return out, nil
}
