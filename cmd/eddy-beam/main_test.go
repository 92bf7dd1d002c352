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

// TestCheckRunner: prism needs the loopback patch; anything but direct,
// prism or HOST:PORT is refused before it is dialled.
func TestCheckRunner(t *testing.T) {
	for _, c := range []struct {
		runner   string
		loopback bool
		want     string
	}{
		{"direct", false, ""},
		{"prism", true, ""},
		{"prism", false, "built without third_party/beam-prism's patch"},
		{"127.0.0.1:8099", false, ""},
		{"flink.example:8099", false, ""},
		{"prizm", true, `--runner "prizm": want direct, prism or the HOST:PORT`},
		{":8099", true, "want direct, prism or the HOST:PORT"},
		{"host:port", true, "want direct, prism or the HOST:PORT"},
		{"host:99999", true, "want direct, prism or the HOST:PORT"},
	} {
		err := checkRunner(c.runner, c.loopback)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("checkRunner(%q, %v) = %v, want %q", c.runner, c.loopback, err, c.want)
		}
	}
}
