// Package console_test drives the web console in headless Chromium
// (Debian's chromium package) against real pluto processes: sign-in, live
// lists and logs, run actions, roles, languages.
package console_test

import (
	"os"
	"testing"

	"github.com/pluto-sched/pluto/e2e/internal/proc"
)

func TestMain(m *testing.M) { os.Exit(proc.Main(m)) }
