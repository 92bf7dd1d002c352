package fleet_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/fleet"
)

// TestLoadRefusesRules: a Rule or RuleEndpoint file is refused by eddy
// fleet with where, why and what to use instead (the controller's router
// serves the cloud side of rules).
func TestLoadRefusesRules(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "rules.yaml")
	os.WriteFile(f, []byte(`apiVersion: rules.kubeedge.io/v1
kind: RuleEndpoint
metadata: {name: rest}
spec: {ruleEndpointType: rest}
---
apiVersion: rules.kubeedge.io/v1
kind: Rule
metadata: {name: up}
spec: {source: bus, sourceResource: {topic: t}, target: rest, targetResource: {resource: "http://x/"}}
`), 0o644)
	_, err := fleet.LoadPaths([]string{f})
	if err == nil {
		t.Fatal("a Rule file was loaded for eddy fleet")
	}
	for _, want := range []string{
		f + ":2:", `"RuleEndpoint" cannot be shipped with eddy fleet`,
		f + ":7:", `"Rule" cannot be shipped with eddy fleet: a Rule routes through the cloud`,
		"eddy controller --router-addr", "docs/controller.md",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

// TestKindTable: every kind has a plan-key form, a resource for `eddy
// fleet get` and an API group; FileKinds are the kinds LoadPaths reads.
func TestKindTable(t *testing.T) {
	for _, k := range fleet.Kinds() {
		if !k.Valid() || k.Resource() == "" || k.Group() == "" {
			t.Errorf("kind %s: valid %v, resource %q, group %q", k, k.Valid(), k.Resource(), k.Group())
		}
		key := fleet.ObjectKey{Node: "edge-1", Kind: k, Namespace: "default", Name: "x"}
		if got, err := fleet.ParseKey(key.String()); err != nil || got != key {
			t.Errorf("kind %s: key %s parses as %v, %v", k, key, got, err)
		}
	}
	if got := fleet.KindList(fleet.FileKinds()); got != "DeviceModel, Device or Pipeline" {
		t.Errorf("FileKinds %s", got)
	}
	if got := strings.Join(fleet.Resources(), ","); got != "devices,pipelines,rules" {
		t.Errorf("Resources %s", got)
	}
	if err := (fleet.ObjectKey{Node: "edge-1", Kind: "Nope", Namespace: "default", Name: "x"}).Check(); err == nil ||
		!strings.Contains(err.Error(), "DeviceModel, Device, Pipeline or Rule") {
		t.Errorf("an unknown kind: %v", err)
	}
}
