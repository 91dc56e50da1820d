//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package worker

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// errStoreLocked: another process (or another Worker) uses the result store.
var errStoreLocked = errors.New("in use by another worker (locked)")

// lockDir takes an exclusive, non-blocking flock on dir. Closing the
// returned handle releases it; so does the process's exit.
func lockDir(dir string) (io.Closer, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errStoreLocked
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	return f, nil
}

// haveDirLock: lockDir really locks on this platform.
const haveDirLock = true
