package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/internal/e2etest"
)

// runEddy runs the eddy command line in process.
func runEddy(args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	root := rootCommand(&out, &errb)
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err = root.Execute()
	return out.String(), errb.String(), err
}

// TestFleetKindsAgree: the kinds eddy fleet's help lists are the kinds its
// code accepts (both come from fleet's kind table).
func TestFleetKindsAgree(t *testing.T) {
	root := rootCommand(&bytes.Buffer{}, &bytes.Buffer{})
	del, get := findCommand(root, "fleet"), findCommand(root, "fleet")
	del, _, _ = del.Find([]string{"delete"})
	get, _, _ = get.Find([]string{"get"})
	help := del.Flags().Lookup("kind").Usage
	for _, k := range fleet.Kinds() {
		if !strings.Contains(help, string(k)) {
			t.Errorf("eddy fleet delete --kind's help does not list %s: %q", k, help)
		}
		if !strings.Contains(get.Use, k.Resource()) {
			t.Errorf("eddy fleet get's usage does not list %s (kind %s): %q", k.Resource(), k, get.Use)
		}
	}
	// A kind the code does not accept is refused before reaching the hub.
	_, _, err := runEddy("fleet", "delete", "--kind", "Deployment", "default/x", "--node", "edge-1", "--hub", "nats://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), `--kind "Deployment": use DeviceModel, Device, Pipeline or Rule`) {
		t.Errorf("--kind Deployment: %v", err)
	}
}

// TestFleetApplyRefusesRules: a Rule file is refused with where, why and
// what to use, before anything reaches the hub.
func TestFleetApplyRefusesRules(t *testing.T) {
	f := e2etest.WriteFile(t, t.TempDir(), "rules.yaml", `apiVersion: rules.kubeedge.io/v1
kind: RuleEndpoint
metadata: {name: bus}
spec: {ruleEndpointType: eventbus}
---
apiVersion: rules.kubeedge.io/v1
kind: Rule
metadata: {name: up}
spec: {source: bus, sourceResource: {topic: t}, target: rest, targetResource: {resource: "http://x/"}}
`)
	// An address nothing listens on: the command must fail before dialing.
	_, stderr, err := runEddy("fleet", "apply", "-f", f, "--node", "edge-1", "--hub", "nats://127.0.0.1:1", "--timeout", "1s")
	if err == nil {
		t.Fatal("eddy fleet apply took a Rule file")
	}
	for _, want := range []string{
		filepath.Base(f) + ":7:", `"Rule" cannot be shipped with eddy fleet`, "eddy controller's router",
		"apply it with kubectl to a cluster running `eddy controller --router-addr :9443`",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "connecting to the hub") {
		t.Errorf("eddy fleet apply dialed the hub before checking the files:\n%s", stderr)
	}
}
