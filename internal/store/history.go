package store

import "context"

// HistoryLoader is implemented by the SQL backends for benchmarks (pluto
// bench --history): it stores n finished runs in bulk through the
// backend's fast path (PostgreSQL COPY, SQLite multi-row inserts in large
// transactions), bypassing the write path. gen fills run i; only terminal
// runs of no callback are meant (no side rows, notifications, idempotency
// keys or deliveries are written). Not for production use.
type HistoryLoader interface {
	LoadHistory(ctx context.Context, n int, gen func(i int) *Run) error
}
