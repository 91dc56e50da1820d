package server

import (
	"context"
	"fmt"

	"github.com/pluto-sched/pluto/internal/store"
)

// openSQLite opens the embedded store. (Placeholder until the sqlite
// backend lands.)
func openSQLite(ctx context.Context, url string) (store.Store, error) {
	return nil, fmt.Errorf("server: sqlite store not available yet")
}
