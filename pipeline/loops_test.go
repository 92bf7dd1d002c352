package pipeline

import (
	"strings"
	"testing"
)

func TestTopicOverlap(t *testing.T) {
	for _, tc := range []struct {
		filter, tmpl string
		want         bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/#", "a", true},
		{"#", "anything/{{x}}", true},
		{"factory/+/data", "alerts/{{key}}", false},
		{"vibration/+", "vibration/stats", true},
		{"in/#", "out/{{dev}}", false},
		// A reference may render several levels (a key holding '/').
		{"a/+/c", "a/{{key}}", true},
		{"a/b", "a/{{key}}", true},
		{"a/b", "{{key}}", true},
		{"a/b", "a/x-{{id}}", false},
		{"a/x-7", "a/x-{{id}}", true},
		{"a/x-7/c", "a/x-{{id}}/c", true},
		{"a/x-7/d", "a/x-{{id}}/c", false},
		{"a/b", "a/b/{{x}}", false},
	} {
		if got := TopicOverlap(tc.filter, tc.tmpl); got != tc.want {
			t.Errorf("TopicOverlap(%q, %q) = %v, want %v", tc.filter, tc.tmpl, got, tc.want)
		}
	}
}

const loopDoc = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: echo}
spec:
  source: {mqtt: {topic: "sensors/#"}}
  sinks:
    - mqtt: {topic: "sensors/echo/{{key}}"%s}
`

// Reproduction 6: a sink that publishes to the pipeline's own source is a
// compile error with file:line, unless marked allowLoop.
func TestOwnLoopIsACompileError(t *testing.T) {
	_, err := Load("echo.yaml", []byte(strings.Replace(loopDoc, "%s", "", 1)))
	if err == nil || !strings.Contains(err.Error(), `echo.yaml:7: spec.sinks[0].mqtt.topic: publishes to "sensors/echo/{{key}}", which this pipeline's own source "sensors/#" reads`) {
		t.Fatalf("Load of a self-feeding pipeline: %v", err)
	}
	if _, err := Load("echo.yaml", []byte(strings.Replace(loopDoc, "%s", ", allowLoop: true", 1))); err != nil {
		t.Fatalf("allowLoop: %v", err)
	}
}

// Reproduction 6: the same namespace/name twice is an error naming both
// places, in one file and across files.
func TestDuplicateNames(t *testing.T) {
	doc := strings.Replace(loopDoc, "%s", ", allowLoop: true", 1)
	_, err := Load("two.yaml", []byte(doc+"---\n"+doc))
	if err == nil || !strings.Contains(err.Error(), "two.yaml:11: metadata.name: pipeline default/echo is already declared at two.yaml:3") {
		t.Fatalf("two documents with one name: %v", err)
	}
	a, err := Load("a.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load("b.yaml", []byte("\n"+doc))
	if err != nil {
		t.Fatal(err)
	}
	err = CheckUnique(append(a, b...))
	if err == nil || !strings.Contains(err.Error(), "b.yaml:4: metadata.name: pipeline default/echo is already declared at a.yaml:3") {
		t.Fatalf("across files: %v", err)
	}
	other := strings.Replace(doc, "name: echo}", "name: echo, namespace: other}", 1)
	c, err := Load("c.yaml", []byte(other))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckUnique(append(a, c...)); err != nil {
		t.Fatalf("same name in another namespace: %v", err)
	}
}

func TestFindCycle(t *testing.T) {
	mk := func(name, src, sink string) *Plan {
		return &Plan{Name: name, Namespace: "default", Spec: Spec{Source: Source{MQTT: &MQTTSource{Topic: src}},
			Sinks: []Sink{{MQTT: &MQTTSink{Topic: sink}}}}}
	}
	a, b, c := mk("a", "x/#", "y/1"), mk("b", "y/+", "z/1"), mk("c", "z/1", "done")
	if cyc := FindCycle([]*Plan{a, b, c}); cyc != nil {
		t.Fatalf("a chain reported as a cycle: %v", cyc)
	}
	c.Spec.Sinks[0].MQTT.Topic = "x/back"
	cyc := FindCycle([]*Plan{c, b, a})
	want := "default/a -[spec.sinks[0] \"y/1\"]-> default/b -[spec.sinks[0] \"z/1\"]-> default/c -[spec.sinks[0] \"x/back\"]-> default/a"
	if strings.Join(cyc, " ") != want {
		t.Fatalf("cycle %q, want %q", strings.Join(cyc, " "), want)
	}
	c.Spec.Sinks[0].MQTT.AllowLoop = true
	if cyc := FindCycle([]*Plan{a, b, c}); cyc != nil {
		t.Fatalf("allowLoop did not cut the cycle: %v", cyc)
	}
}
