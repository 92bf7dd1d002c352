// Package tmpfstest gives a test a small real filesystem it can fill: a
// tmpfs mounted for the test, and a ballast file that takes its free space.
// A full disk is then a real ENOSPC from the kernel, not a fake.
//
// Mounting needs root. Without it the test fails when tools are required
// (make test, CI) and is skipped otherwise (see internal/testtools).
package tmpfstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/eddy-edge/eddy/internal/testtools"
)

// Mount mounts a tmpfs of size (as mount's size= option takes it, e.g.
// "8m") on a new temporary directory, unmounted when the test ends, and
// returns the directory.
func Mount(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		testtools.Missing(t, "a tmpfs of size="+size+" (mount needs root)",
			fmt.Sprintf("run the tests as root: %v: %s", err, strings.TrimSpace(string(out))))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// Fill creates the file path and grows it until its filesystem is full
// (ENOSPC), then gives back leave bytes, so that about leave bytes stay
// free. Removing the file frees the space again.
func Fill(t testing.TB, path string, leave int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var size int64
	for {
		n, err := f.Write(buf)
		size += int64(n)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", path, err)
			}
			break
		}
	}
	if leave > 0 {
		if err := f.Truncate(max(size-leave, 0)); err != nil {
			t.Fatalf("leaving %d bytes free in %s: %v", leave, path, err)
		}
	}
}
