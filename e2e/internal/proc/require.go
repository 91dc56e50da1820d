package proc

import (
	"fmt"
	"os"
	"testing"
)

// Unavailable ends a test that cannot run on this machine (no PostgreSQL,
// no permission to mount, …): it fails under CI (CI set), where every
// scenario must run, and is skipped, loudly, elsewhere.
func Unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI must run %s)", msg, t.Name())
	}
	fmt.Fprintf(os.Stderr, "\n*** %s: SKIPPING %s ***\n\n", msg, t.Name())
	t.Skip(msg)
}
