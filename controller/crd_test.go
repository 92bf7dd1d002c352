package controller

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/eddy-edge/eddy/controller/k8stest"
)

// TestCRDsUpToDate regenerates the CRDs from the Go types (controller-gen,
// as `go generate ./controller/` does) and fails if deploy/crds differs.
func TestCRDsUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs controller-gen")
	}
	for _, g := range []struct {
		dir   string
		paths []string
	}{
		{"eddy", []string{"paths=./apis/eddy/..."}},
		{"kubeedge", []string{"paths=./apis/devices/...", "paths=./apis/rules/..."}},
	} {
		out := t.TempDir()
		args := append([]string{"run", controllerGen, "crd:crdVersions=v1,maxDescLen=400"}, g.paths...)
		cmd := exec.Command("go", append(args, "output:crd:dir="+out)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("controller-gen: %v\n%s", err, b)
		}
		want, _ := filepath.Glob(filepath.Join(out, "*.yaml"))
		have, _ := filepath.Glob(filepath.Join(k8stest.CRDDir(), g.dir, "*_*.yaml"))
		if len(want) != len(have) {
			t.Errorf("deploy/crds/%s has %d CRDs, the types generate %d; run go generate ./controller/", g.dir, len(have), len(want))
		}
		for _, w := range want {
			gen, _ := os.ReadFile(w)
			cur, err := os.ReadFile(filepath.Join(k8stest.CRDDir(), g.dir, filepath.Base(w)))
			if err != nil || !bytes.Equal(gen, cur) {
				t.Errorf("deploy/crds/%s/%s is stale; run go generate ./controller/ and commit the result", g.dir, filepath.Base(w))
			}
		}
	}
}

// TestDeepCopiesUpToDate regenerates each zz_generated.deepcopy.go as
// `go generate ./controller/` does (controller-gen, then goimports) and
// fails if the committed file differs.
func TestDeepCopiesUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs controller-gen")
	}
	out := t.TempDir()
	var files []string
	for i, pkg := range []string{"./apis/eddy/v1alpha1", "./apis/devices/v1beta1", "./apis/rules/v1", "../pipeline"} {
		dir := filepath.Join(out, strconv.Itoa(i))
		cmd := exec.Command("go", "run", controllerGen, "object", "paths="+pkg, "output:object:dir="+dir)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("controller-gen object paths=%s: %v\n%s", pkg, err, b)
		}
		files = append(files, filepath.Join(dir, deepCopyFile))
	}
	if b, err := exec.Command("go", append([]string{"run", goimports, "-w"}, files...)...).CombinedOutput(); err != nil {
		t.Fatalf("goimports: %v\n%s", err, b)
	}
	for i, pkg := range []string{"./apis/eddy/v1alpha1", "./apis/devices/v1beta1", "./apis/rules/v1", "../pipeline"} {
		gen, err := os.ReadFile(files[i])
		if err != nil {
			t.Fatal(err)
		}
		cur, err := os.ReadFile(filepath.Join(pkg, deepCopyFile))
		if err != nil || !bytes.Equal(gen, cur) {
			t.Errorf("%s/%s is stale or not goimports-clean; run go generate ./controller/ and commit the result", pkg, deepCopyFile)
		}
	}
}

// The generators TestCRDsUpToDate and TestDeepCopiesUpToDate run, at the
// versions generate.go names.
const (
	controllerGen = "sigs.k8s.io/controller-tools/cmd/controller-gen@v0.17.3"
	goimports     = "golang.org/x/tools/cmd/goimports@v0.52.0"
	deepCopyFile  = "zz_generated.deepcopy.go"
)

func readCRD(t *testing.T, path string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(bytes.TrimPrefix(b, []byte("---\n")), &crd); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &crd
}

func schemaOf(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition, version string) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	for _, v := range crd.Spec.Versions {
		if v.Name == version {
			return v.Schema.OpenAPIV3Schema
		}
	}
	t.Fatalf("%s serves no %s", crd.Name, version)
	return nil
}

// compatible reports every way in which ours rejects or prunes something
// theirs accepts: a field theirs declares that ours lacks (unless ours
// keeps unknown fields there), a different type, a narrower enum, or a
// field ours requires that theirs does not.
func compatible(path string, theirs, ours *apiextensionsv1.JSONSchemaProps) []string {
	var probs []string
	if ours.XPreserveUnknownFields != nil && *ours.XPreserveUnknownFields && len(ours.Properties) == 0 {
		return nil
	}
	if theirs.Type != "" && ours.Type != "" && theirs.Type != ours.Type {
		probs = append(probs, path+": type "+ours.Type+", KubeEdge "+theirs.Type)
	}
	if len(ours.Enum) > 0 {
		for _, e := range theirs.Enum {
			if !slices.ContainsFunc(ours.Enum, func(o apiextensionsv1.JSON) bool { return bytes.Equal(o.Raw, e.Raw) }) {
				probs = append(probs, path+": enum lacks "+string(e.Raw))
			}
		}
		if len(theirs.Enum) == 0 {
			probs = append(probs, path+": ours restricts values, KubeEdge does not")
		}
	}
	for _, r := range ours.Required {
		if !slices.Contains(theirs.Required, r) {
			probs = append(probs, path+"."+r+": required by ours, optional in KubeEdge")
		}
	}
	for name, tp := range theirs.Properties {
		op, ok := ours.Properties[name]
		if !ok {
			if ours.XPreserveUnknownFields == nil || !*ours.XPreserveUnknownFields {
				probs = append(probs, path+"."+name+": missing (would be pruned)")
			}
			continue
		}
		probs = append(probs, compatible(path+"."+name, &tp, &op)...)
	}
	if theirs.Items != nil && theirs.Items.Schema != nil && ours.Items != nil && ours.Items.Schema != nil {
		probs = append(probs, compatible(path+"[]", theirs.Items.Schema, ours.Items.Schema)...)
	}
	if theirs.AdditionalProperties != nil && theirs.AdditionalProperties.Schema != nil {
		if ours.AdditionalProperties == nil || ours.AdditionalProperties.Schema == nil {
			probs = append(probs, path+": KubeEdge allows free keys, ours does not")
		} else {
			probs = append(probs, compatible(path+"{}", theirs.AdditionalProperties.Schema, ours.AdditionalProperties.Schema)...)
		}
	}
	return probs
}

// TestSchemaCompatibleWithKubeEdge: everything KubeEdge's CRDs accept
// (testdata/kubeedge-crds, copied from kubeedge/kubeedge), Eddy's accept
// and keep.
func TestSchemaCompatibleWithKubeEdge(t *testing.T) {
	for _, c := range []struct{ theirs, ours, version string }{
		{"devices.yaml", "devices.kubeedge.io_devices.yaml", "v1beta1"},
		{"devicemodels.yaml", "devices.kubeedge.io_devicemodels.yaml", "v1beta1"},
		{"rules.yaml", "rules.kubeedge.io_rules.yaml", "v1"},
		{"ruleendpoints.yaml", "rules.kubeedge.io_ruleendpoints.yaml", "v1"},
	} {
		theirs := readCRD(t, filepath.Join("testdata", "kubeedge-crds", c.theirs))
		ours := readCRD(t, k8stest.CRDFile("kubeedge", c.ours))
		if theirs.Name != ours.Name || theirs.Spec.Scope != ours.Spec.Scope || theirs.Spec.Names.Plural != ours.Spec.Names.Plural {
			t.Errorf("%s: name/scope/plural %s %s %s, KubeEdge %s %s %s", c.ours, ours.Name, ours.Spec.Scope,
				ours.Spec.Names.Plural, theirs.Name, theirs.Spec.Scope, theirs.Spec.Names.Plural)
		}
		for _, sn := range theirs.Spec.Names.ShortNames {
			if !slices.Contains(ours.Spec.Names.ShortNames, sn) {
				t.Errorf("%s: short name %q missing", c.ours, sn)
			}
		}
		if probs := compatible(ours.Spec.Names.Kind, schemaOf(t, theirs, c.version), schemaOf(t, ours, c.version)); len(probs) > 0 {
			t.Errorf("%s is not schema-compatible with KubeEdge's:\n  %s", c.ours, strings.Join(probs, "\n  "))
		}
	}
}
