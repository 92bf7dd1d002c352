// Package testtools decides what a test does when an outside tool it needs
// (mosquitto_pub, socat, chromium, containerd, kube-apiserver...) is not
// installed. Only tests import it.
//
// `make test` and CI set EDDY_REQUIRE_TOOLS=1: there every tool is
// installed by scripts/deps.sh, and a missing one fails the test instead of
// skipping it, so CI can never go green by skipping. A developer running
// `go test` by hand without the tool gets a skip with the install hint.
//
// It also holds Buffer, where such a tool's output (or a logger's) is kept
// while the test reads it.
package testtools

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// Required reports whether missing tools must fail tests
// (EDDY_REQUIRE_TOOLS set to anything but "" or "0", or CI set).
func Required() bool {
	if v := os.Getenv("EDDY_REQUIRE_TOOLS"); v != "" && v != "0" {
		return true
	}
	return os.Getenv("CI") != ""
}

// Missing fails the test (when tools are required) or skips it, saying what
// is missing and how to install it.
func Missing(t testing.TB, what, hint string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s is required (EDDY_REQUIRE_TOOLS is set) but not available: %s", what, hint)
	}
	t.Skipf("%s not available (%s); set EDDY_REQUIRE_TOOLS=1 to make this a failure", what, hint)
}

// Tool returns the path of the command name found on PATH, or calls
// Missing with hint when there is none.
func Tool(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name, hint)
	}
	return p
}

// Buffer is a bytes.Buffer that one side may write (a process's Stdout and
// Stderr, a slog handler) while the test reads it from another goroutine.
// Its zero value is empty and ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
