// Package beamtest builds binaries that link Apache Beam the way make
// build-beam does: with third_party/beam-prism's patch, so that prism's job
// server listens on loopback and --runner prism is allowed. Tests that run
// the real eddy-beam binary build it with Build, whatever GOWORK and GOFLAGS
// the test itself was run with.
package beamtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Build builds the main package pkg (a path or an import path) into out
// with the patch: it runs scripts/beam-prism.sh and sets GOWORK and an
// -overlay in GOFLAGS (keeping the caller's other GOFLAGS).
func Build(out, pkg string) error {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return fmt.Errorf("beamtest: cannot locate the repository")
	}
	root := filepath.Join(filepath.Dir(self), "..", "..")
	b, err := exec.Command(filepath.Join(root, "scripts", "beam-prism.sh")).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return fmt.Errorf("scripts/beam-prism.sh: %w\n%s", err, ee.Stderr)
		}
		return fmt.Errorf("scripts/beam-prism.sh: %w", err)
	}
	dir := strings.TrimSpace(string(b))
	flags := []string{"-overlay=" + filepath.Join(dir, "overlay.json")}
	for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
		if !strings.HasPrefix(f, "-overlay=") && !strings.HasPrefix(f, "--overlay=") {
			flags = append(flags, f)
		}
	}
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(dir, "go.work"), "GOFLAGS="+strings.Join(flags, " "))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s (with third_party/beam-prism's patch): %w\n%s", pkg, err, b)
	}
	return nil
}
