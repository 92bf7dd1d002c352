// Package deptest enforces the dependency direction of ARCHITECTURE.md:
// operators and pipeline import no runner, controller or connectors; the
// runner never imports the controller or client-go; the controller never
// imports the runner; the edge binary does not link Beam or client-go.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/eddy-edge/eddy/"

// deps lists the packages (transitively) imported by pattern.
func deps(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}} {{join .Deps " "}}`, pattern).CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pattern, err, out)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], strings.TrimSuffix(mod, "/")) {
			m[f[0]] = f[1:]
		}
	}
	return m
}

func TestDependencyDirection(t *testing.T) {
	rules := []struct {
		pattern   string
		forbidden []string
		except    string // a package under pattern the rule does not cover
	}{
		// pipeline/beam runs the edge's operators and decoders on Beam
		// workers (one implementation, not two): it is the one part of
		// pipeline/ that may import them, and it has its own rule below.
		{mod + "pipeline/...", []string{mod + "runner", mod + "controller", mod + "connectors", mod + "operators"}, mod + "pipeline/beam"},
		{mod + "pipeline/beam", []string{mod + "runner", mod + "controller", "k8s.io/client-go"}, ""},
		{mod + "operators/...", []string{mod + "runner", mod + "controller", mod + "connectors"}, ""},
		{mod + "runner/...", []string{mod + "controller", "k8s.io/client-go", "github.com/apache/beam"}, ""},
		{mod + "connectors/...", []string{mod + "runner", mod + "controller"}, ""},
		{mod + "controller/...", []string{mod + "runner"}, ""},
	}
	for _, r := range rules {
		for pkg, ds := range deps(t, r.pattern) {
			if !strings.HasPrefix(pkg, strings.TrimSuffix(r.pattern, "...")) && pkg+"/" != strings.TrimSuffix(r.pattern, "...") && pkg != r.pattern {
				continue
			}
			if r.except != "" && (pkg == r.except || strings.HasPrefix(pkg, r.except+"/")) {
				continue
			}
			for _, d := range ds {
				for _, f := range r.forbidden {
					if under(d, f) {
						t.Errorf("%s imports %s: not allowed by the architecture (%s must not depend on %s)", pkg, d, r.pattern, f)
					}
				}
			}
		}
	}
}

func TestEdgeBinaryStaysSmall(t *testing.T) {
	for pkg, ds := range deps(t, mod+"cmd/eddy") {
		if pkg != mod+"cmd/eddy" {
			continue
		}
		for _, d := range ds {
			if strings.HasPrefix(d, "k8s.io/client-go") || strings.HasPrefix(d, "github.com/apache/beam") {
				t.Errorf("cmd/eddy links %s; keep Beam and client-go out of the edge binary", d)
			}
		}
	}
}

// under reports whether package d is f or inside f.
func under(d, f string) bool { return d == f || strings.HasPrefix(d, f+"/") }

// The rules above only fail if the paths they forbid are real: a typo, a
// renamed module or a dependency that has left go.mod would make a rule
// pass forever. Each forbidden path must be imported somewhere in the
// module today, and the rule's matcher must flag that importer.
func TestForbiddenPathsAreReal(t *testing.T) {
	all := deps(t, mod+"...")
	for _, f := range []string{mod + "runner", mod + "controller", mod + "connectors", mod + "operators",
		"k8s.io/client-go", "github.com/apache/beam"} {
		importer := ""
		for pkg, ds := range all {
			for _, d := range ds {
				if under(d, f) && !under(pkg, f) {
					importer = pkg
					break
				}
			}
			if importer != "" {
				break
			}
		}
		if importer == "" {
			t.Errorf("no package of the module imports %s: a rule forbidding it can never fail; fix the path or drop the rule", f)
		}
	}
}
