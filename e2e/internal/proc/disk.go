package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// MountTmpfs mounts a tmpfs of size bytes on a new directory of the test
// and returns the directory; it is unmounted when the test ends (after the
// processes the test started later have been killed: cleanups run last
// registered first). A machine where mounting is not permitted (not root,
// no CAP_SYS_ADMIN, a container without it) fails the test under CI and
// skips it elsewhere, saying why.
func MountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		Unavailable(t, "mount -t tmpfs -o size=%d %s: %v (needs root or CAP_SYS_ADMIN)", size, dir, err)
	}
	t.Cleanup(func() {
		// The processes that had files open there are gone by now; a lazy
		// unmount still frees it if something lingers.
		for i := 0; ; i++ {
			err := syscall.Unmount(dir, 0)
			if err == nil {
				return
			}
			if i == 20 {
				t.Errorf("unmounting %s: %v; detaching it", dir, err)
				syscall.Unmount(dir, syscall.MNT_DETACH)
				return
			}
			time.Sleep(100 * time.Millisecond) // a killed process releasing its files
		}
	})
	return dir
}

// FreeBytes is the space left for an unprivileged writer on the file
// system holding path.
func FreeBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// FillTo writes a ballast file at path so that about leave bytes stay free
// on its file system, and returns its size. With leave 0 it fills the file
// system: running out of space then ends the ballast, it is no error.
func FillTo(t *testing.T, path string, leave int64) int64 {
	t.Helper()
	n := FreeBytes(t, filepath.Dir(path)) - leave
	if n <= 0 {
		return 0
	}
	full := leave == 0
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{0xba}, 1<<20)
	for left := n; left > 0; {
		c := chunk[:min(int64(len(chunk)), left)]
		w, err := f.Write(c)
		left -= int64(w)
		if err != nil {
			if full && errors.Is(err, syscall.ENOSPC) {
				return n - left // someone else took the last bytes first
			}
			t.Fatalf("writing the ballast %s (%d of %d bytes): %v", path, n-left, n, err)
		}
	}
	return n
}
