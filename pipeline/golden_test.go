package pipeline_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/pipeline"
)

var update = flag.Bool("update", false, "rewrite golden files (testdata/plans, testdata/errors, docs/pipelines-reference.md)")

// golden compares got with the file at path, or writes it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pipeline -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date (run go test ./pipeline -update and review the diff)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func inputs(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no testdata/%s/*.yaml", dir)
	}
	return files
}

// TestPlansGolden compiles testdata/plans/NAME.yaml and compares the plans
// (json.MarshalIndent) with NAME.plan.json.
func TestPlansGolden(t *testing.T) {
	for _, in := range inputs(t, "plans") {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			plans, err := pipeline.Load(filepath.Base(in), src)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var out any = plans
			if len(plans) == 1 {
				out = plans[0]
			}
			// json.MarshalIndent's layout, without HTML escaping so that
			// expressions such as "a > 1" stay readable in the golden file.
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(out); err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(in, ".yaml")+".plan.json", b.Bytes())
			for _, p := range plans {
				checkPlanInvariants(t, p)
			}
		})
	}
}

// checkPlanInvariants checks what must hold for every plan, independent of
// the golden text: unique ids, inputs that exist and come earlier, indexes
// that point into the spec, and a hash that is a function of the spec.
func checkPlanInvariants(t *testing.T, p *pipeline.Plan) {
	t.Helper()
	seen := map[string]bool{}
	for i, n := range p.Nodes {
		if seen[n.ID] {
			t.Errorf("node %d: duplicate id %q", i, n.ID)
		}
		for _, in := range n.Inputs {
			if !seen[in] {
				t.Errorf("node %q: input %q is not an earlier node", n.ID, in)
			}
		}
		seen[n.ID] = true
		switch n.Role {
		case "source":
			if i != 0 {
				t.Errorf("source at position %d", i)
			}
		case "step":
			if n.Index >= len(p.Spec.Steps) {
				t.Errorf("node %q: index %d out of range", n.ID, n.Index)
			}
		case "sink", "late":
			if p.Sink(n) == nil {
				t.Errorf("node %q: index %d out of range", n.ID, n.Index)
			}
			if n.Role == "late" && len(n.Inputs) != 0 {
				t.Errorf("late node %q has inputs %v", n.ID, n.Inputs)
			}
		default:
			t.Errorf("node %q: unknown role %q", n.ID, n.Role)
		}
	}
	if h := pipeline.Hash(&p.Spec); h != p.Hash {
		t.Errorf("Hash(spec) = %s, plan says %s", h, p.Hash)
	}
}

// TestErrorsGolden loads testdata/errors/NAME.yaml, which must fail, and
// compares the whole error text with NAME.err.
func TestErrorsGolden(t *testing.T) {
	for _, in := range inputs(t, "errors") {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			plans, err := pipeline.Load(filepath.Base(in), src)
			if err == nil {
				t.Fatalf("Load accepted %s (%d plans); want errors", in, len(plans))
			}
			if plans != nil {
				t.Errorf("Load returned plans together with an error")
			}
			golden(t, strings.TrimSuffix(in, ".yaml")+".err", []byte(err.Error()+"\n"))
		})
	}
}
