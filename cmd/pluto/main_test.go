package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: the
// in-process servers, workers and HTTP clients the CLI tests start must all
// be stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
