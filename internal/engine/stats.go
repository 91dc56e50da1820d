package engine

import (
	"context"

	"github.com/pluto-sched/pluto/internal/store"
)

// Stats returns the store's run statistics (store.RunStats: counters, no
// scan). A zero p.Now is the engine's clock.
func (e *Engine) Stats(ctx context.Context, p store.StatsParams) (store.Stats, error) {
	if p.Now.IsZero() {
		p.Now = e.now()
	}
	return e.st.RunStats(ctx, p)
}

// Series returns the store's throughput series (store.RunSeries, from the
// rate buckets). A zero p.Now is the engine's clock.
func (e *Engine) Series(ctx context.Context, p store.SeriesParams) (store.Series, error) {
	if p.Now.IsZero() {
		p.Now = e.now()
	}
	return e.st.RunSeries(ctx, p)
}
