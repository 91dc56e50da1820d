//go:build !unix

package client

import (
	"errors"
	"fmt"
	"os"
)

// lockFile is not available here: the spool needs flock.
func lockFile(string) (*os.File, error) {
	return nil, fmt.Errorf("a spool needs flock, which this system lacks: %w", errors.ErrUnsupported)
}
