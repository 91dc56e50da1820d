package e2e

import (
	"os"
	"testing"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

// The helpers (the pluto binary, processes, the API client, PostgreSQL
// schemas) are e2e/internal/proc, shared with e2e/faults.
func TestMain(m *testing.M) { os.Exit(proc.Main(m)) }
