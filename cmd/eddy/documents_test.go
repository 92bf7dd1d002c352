package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/internal/e2etest"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/eddy-edge/eddy/pipeline/strictyaml"
	"github.com/eddy-edge/eddy/runner"
)

const docModel = `apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: thermo-model}
spec:
  properties:
  - {name: temperature, type: INT, accessMode: ReadWrite}
`

const docDevice = `apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: thermo-1}
spec:
  deviceModelRef: {name: thermo-model}
  nodeName: edge-a
  properties:
  - {name: temperature, desired: {value: "22"}}
`

const docPipeline = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: hot}
spec:
  source: {mqtt: {topic: "$ke/events/device/+/+/data/update", format: kubeedge}}
  steps:
  - filter: "temperature > 30"
  sinks: [{log: {}}]
`

// validate runs `eddy validate args...` in process.
func validate(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"validate"}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

// TestValidateAnyMix: files and directories holding any mix of kinds, the
// model of a device in another file, and --devices as an alias.
func TestValidateAnyMix(t *testing.T) {
	dir := t.TempDir()
	devDir := filepath.Join(dir, "devices")
	os.Mkdir(devDir, 0o755)
	e2etest.WriteFile(t, devDir, "model.yaml", docModel)
	e2etest.WriteFile(t, devDir, "device.yml", docDevice)
	e2etest.WriteFile(t, devDir, "README.md", "not yaml; skipped")
	// A device and a pipeline in one file; the device's model in the directory.
	mixed := e2etest.WriteFile(t, dir, "thermo.yaml", strings.Replace(docDevice, "thermo-1", "thermo-2", 1)+"---\n"+docPipeline)

	for _, args := range [][]string{{devDir, mixed}, {mixed, "--devices", devDir}} {
		out, errs, code := validate(t, args...)
		if code != 0 {
			t.Fatalf("validate %v: exit %d\n%s", args, code, errs)
		}
		for _, want := range []string{
			mixed + ": pipeline default/hot ok",
			filepath.Join(devDir, "model.yaml") + ": model default/thermo-model ok (1 property)",
			filepath.Join(devDir, "device.yml") + ": device default/thermo-1 ok (model thermo-model, 1 property, node edge-a)",
			mixed + ": device default/thermo-2 ok",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("validate %v: output lacks %q:\n%s", args, want, out)
			}
		}
	}
}

// TestValidateKubeEdgeSamples: KubeEdge's own v1alpha2 Modbus samples, as
// published, validate as a directory.
func TestValidateKubeEdgeSamples(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"modbus-device-model.yaml", "modbustcp-device-instance.yaml", "modbusrtu-device-instance.yaml"} {
		src, err := os.ReadFile(filepath.Join("..", "..", "pipeline", "devices", "testdata", "kubeedge", f))
		if err != nil {
			t.Fatal(err)
		}
		e2etest.WriteFile(t, dir, f, string(src))
	}
	out, errs, code := validate(t, dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	if !strings.Contains(out, "device default/modbustcp-device ok (model modbus-sample-model, 2 properties, modbus tcp 192.168.33.1:502 unit 1, node test)") {
		t.Errorf("output:\n%s", out)
	}
}

func TestValidateRejects(t *testing.T) {
	dir := t.TempDir()
	rule := e2etest.WriteFile(t, dir, "rule.yaml", "apiVersion: rules.kubeedge.io/v1\nkind: Rule\nmetadata: {name: r}\n---\nfoo: bar\n---\napiVersion: v1\nkind: Secret\n")
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	models := e2etest.WriteFile(t, dir, "models.yaml", docModel)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{rule}, []string{
			rule + `:1: spec.source: required: name the source RuleEndpoint`,
			rule + `:5: kind: document has no kind`,
			rule + `:8: kind: unknown kind "Secret" (v1); Eddy reads Pipeline (eddy.dev/v1alpha1), Device (devices.kubeedge.io/v1beta1, v1alpha2), DeviceModel (devices.kubeedge.io/v1beta1, v1alpha2), Rule (rules.kubeedge.io/v1), RuleEndpoint (rules.kubeedge.io/v1), EdgeNode (eddy.dev/v1alpha1)`,
		}},
		{[]string{empty, filepath.Join(dir, "missing.yaml")}, []string{
			empty + ": directory has no .yaml, .yml or .json files",
			filepath.Join(dir, "missing.yaml") + ": no such file or directory",
		}},
		{[]string{e2etest.WriteFile(t, dir, "orphan.yaml", docDevice)}, []string{
			`orphan.yaml:5: spec.deviceModelRef.name: unknown model "thermo-model" in namespace default; no DeviceModel is declared there, add one`,
		}},
		{[]string{models, e2etest.WriteFile(t, dir, "again.yaml", docModel)}, []string{`model default/thermo-model is declared twice`}},
		{[]string{e2etest.WriteFile(t, dir, "p1.yaml", docPipeline), e2etest.WriteFile(t, dir, "p2.yaml", docPipeline)}, []string{
			filepath.Join(dir, "p2.yaml") + ":3: metadata.name: pipeline default/hot is declared twice (first at " + filepath.Join(dir, "p1.yaml") + ":3); rename one or drop it",
		}},
	}
	for _, tt := range tests {
		_, errs, code := validate(t, tt.args...)
		if code != 1 {
			t.Errorf("validate %v: exit %d; want 1", tt.args, code)
		}
		for _, w := range tt.want {
			if !strings.Contains(errs, w) {
				t.Errorf("validate %v: stderr lacks\n%s\ngot:\n%s", tt.args, w, errs)
			}
		}
	}
}

const docRules = `apiVersion: rules.kubeedge.io/v1
kind: RuleEndpoint
metadata: {name: my-rest}
spec: {ruleEndpointType: rest}
---
apiVersion: rules.kubeedge.io/v1
kind: RuleEndpoint
metadata: {name: my-eventbus}
spec: {ruleEndpointType: eventbus}
---
apiVersion: rules.kubeedge.io/v1
kind: Rule
metadata: {name: down}
spec:
  source: my-rest
  sourceResource: {path: /a}
  target: my-eventbus
  targetResource: {topic: cloud/cmd}
`

// TestValidateRules: KubeEdge Rules are compiled against the RuleEndpoints
// of all the files, with file:line errors for what the controller would
// refuse.
func TestValidateRules(t *testing.T) {
	dir := t.TempDir()
	ok := e2etest.WriteFile(t, dir, "rules.yaml", docRules)
	out, errs, code := validate(t, ok, e2etest.WriteFile(t, dir, "node.yaml", "apiVersion: eddy.dev/v1alpha1\nkind: EdgeNode\nmetadata: {name: edge-1, labels: {site: a}}\nspec: {unschedulable: true}\n"))
	if code != 0 {
		t.Fatalf("validate: exit %d\n%s", code, errs)
	}
	for _, want := range []string{"rule default/down ok (rest->eventbus: /{node}/default/a -> edge topic cloud/cmd)", "ruleendpoint default/my-rest ok (rest)", "edgenode edge-1 ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	bad := e2etest.WriteFile(t, dir, "bad.yaml", `apiVersion: rules.kubeedge.io/v1
kind: Rule
metadata: {name: up}
spec:
  source: my-eventbus
  sourceResource: {topic: "a/#/b"}
  target: my-rest
  targetResource: {resource: "ftp://x"}
---
apiVersion: rules.kubeedge.io/v1
kind: Rule
metadata: {name: twice}
spec:
  source: my-rest
  sourceResource: {path: /a}
  target: nowhere
  targetResource: {topic: t}
`)
	_, errs, code = validate(t, ok, bad)
	if code != 1 {
		t.Fatalf("validate: exit %d; want 1", code)
	}
	for _, want := range []string{
		bad + `:6: spec.sourceResource.topic: topic "default/a/#/b": # must be a whole level and the last one`,
		bad + `:6: spec.sourceResource.node_name: required for an eventbus source`,
		bad + `:8: spec.targetResource.resource: resource "ftp://x": want an absolute http:// or https:// URL`,
		bad + `:16: spec.target: RuleEndpoint default/nowhere does not exist; create it or fix the name`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks\n%s\ngot:\n%s", want, errs)
		}
	}
}

// TestServeDevices: eddy run serves every device it is given and warns
// about those bound to another node; eddy edge serves only its node's.
func TestServeDevices(t *testing.T) {
	dir := t.TempDir()
	set, err := loadDocuments([]string{e2etest.WriteFile(t, dir, "d.yaml", docModel+"---\n"+docDevice)})
	if err != nil {
		t.Fatal(err)
	}
	for _, edge := range []bool{false, true} {
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		r, err := runner.New(runner.Config{MQTTAddr: "127.0.0.1:0", HTTPAddr: "-", AllowAnonymous: true, Node: "mybox", Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := serveDevices(ctx, r, log, "mybox", edge, set.Devices); err != nil {
			t.Fatal(err)
		}
		n := len(r.Twins().Devices())
		r.Close()
		cancel()
		switch {
		case !edge && n != 1:
			t.Errorf("eddy run serves %d devices; want the one it was given", n)
		case !edge && !strings.Contains(logs.String(), `msg="device names another node; eddy run serves it here anyway (eddy edge would skip it)" device=default/thermo-1 nodeName=edge-a node=mybox at=`):
			t.Errorf("no warning for a device of another node:\n%s", logs.String())
		case edge && n != 0:
			t.Errorf("eddy edge serves %d devices of another node", n)
		}
	}
}

// FuzzLoadDocument feeds any bytes through the kinds table: no panic, and
// every error names the file.
func FuzzLoadDocument(f *testing.F) {
	for _, s := range []string{docModel, docDevice, docPipeline, "kind: Rule\n", "apiVersion: x\n", "- a\n- b\n", "kind: [1]\n"} {
		f.Add([]byte(s))
	}
	for _, g := range []string{"../../pipeline/devices/testdata/*.yaml", "../../pipeline/devices/testdata/kubeedge/*.yaml", "../../examples/*/*.yaml"} {
		files, _ := filepath.Glob(g)
		for _, file := range files {
			b, _ := os.ReadFile(file)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		docs, errs := strictyaml.Split("f.yaml", src)
		set := &documentSet{}
		for _, doc := range docs {
			errs = append(errs, loadDocument(set, doc, src)...)
		}
		for _, e := range errs {
			if e.File != "f.yaml" || e.Msg == "" {
				t.Fatalf("error without file or message: %#v", e)
			}
		}
		if len(errs) == 0 {
			_, _ = devices.Resolve(set.Devices, set.Models)
		}
	})
}
