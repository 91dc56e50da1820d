package server

import (
	"context"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/sqlite"
)

// openSQLite opens the embedded store from "sqlite:PATH" (or a bare path).
func openSQLite(ctx context.Context, url string) (store.Store, error) {
	return sqlite.OpenURL(ctx, url)
}
