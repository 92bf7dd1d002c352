package runner_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/internal/runnertest"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner"
)

// A confined runner (eddy edge) runs file sinks only inside its data dir
// and FileSinkDirs: a pipeline writing to /etc or through a path that
// leaves the data dir is refused with a reason, and a relative path lands
// in the data dir.
func TestFileSinksConfined(t *testing.T) {
	data, extra := t.TempDir(), t.TempDir()
	r := runnertest.Start(t, runner.Config{DataDir: data, AllowAnonymous: true,
		ConfineFileSinks: true, FileSinkDirs: []string{extra}, Logger: slog.New(slog.DiscardHandler)})
	apply := func(name, path string) error {
		doc := fmt.Sprintf("apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: %s}\nspec:\n  source: {mqtt: {topic: in}}\n  sinks: [{file: {path: %q}}]\n", name, path)
		plans, err := pipeline.Load(name+".yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return r.Apply(context.Background(), plans[0], []byte(doc))
	}
	for _, bad := range []string{"/etc/eddy-evil", "../evil.jsonl", filepath.Join(data, "..", "evil.jsonl")} {
		if err := apply("bad", bad); err == nil || !strings.Contains(err.Error(), "fileSinkDirs") {
			t.Errorf("file sink %q: %v; want a refusal saying how to allow it", bad, err)
		}
	}
	if err := apply("rel", "out/rel.jsonl"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "out", "rel.jsonl")); err != nil {
		t.Errorf("a relative file sink path is not in the data dir: %v", err)
	}
	if err := apply("extra", filepath.Join(extra, "x.jsonl")); err != nil {
		t.Errorf("a path in FileSinkDirs was refused: %v", err)
	}
}
