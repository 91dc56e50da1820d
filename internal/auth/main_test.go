package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (the
// package starts none; its tests do, for concurrent verifications).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
