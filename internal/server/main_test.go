package server

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: long
// polls, log follows, worker streams and gRPC servers must all end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
