package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLiveNeedsStreamingRunner: a live input on the direct runner is
// refused before anything runs, saying which runners to use.
func TestLiveNeedsStreamingRunner(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(file, []byte("apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  source: {mqtt: {topic: t}}\n  sinks: [{file: {path: o}}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"run", file, "--input", "nats://127.0.0.1:1/eddy_up?live=true"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "use --runner prism or a portable job endpoint") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}
