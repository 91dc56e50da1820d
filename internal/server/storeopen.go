package server

import (
	"context"

	"github.com/pluto-sched/pluto/internal/store"
	"github.com/pluto-sched/pluto/internal/store/postgres"
	"github.com/pluto-sched/pluto/internal/store/sqlite"
)

// openPostgres opens a shared store from "postgres://…[?schema=NAME]".
func openPostgres(ctx context.Context, url string) (store.Store, error) {
	return postgres.OpenURL(ctx, url)
}

// openSQLite opens the embedded store from "sqlite:PATH" (or a bare path).
func openSQLite(ctx context.Context, url string) (store.Store, error) {
	return sqlite.OpenURL(ctx, url)
}
