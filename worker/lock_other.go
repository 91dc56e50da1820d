//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package worker

import (
	"errors"
	"io"
)

// errStoreLocked is never returned here: this platform has no flock, and
// two workers sharing a result directory are not detected.
var errStoreLocked = errors.New("in use by another worker (locked)")

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

func lockDir(string) (io.Closer, error) { return nopCloser{}, nil }

// haveDirLock: lockDir does not lock on this platform.
const haveDirLock = false
