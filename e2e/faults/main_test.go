package faults

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

var (
	summaryMu sync.Mutex
	summaries []string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e/faults: skipped with -short; make test-faults runs it")
		os.Exit(0)
	}
	code := proc.Main(m)
	summaryMu.Lock()
	if len(summaries) > 0 {
		fmt.Println("\nfault-injection summary (lost and duplicates must be 0; times from the fault):")
		for _, s := range summaries {
			fmt.Println("  " + s)
		}
	}
	summaryMu.Unlock()
	os.Exit(code)
}
