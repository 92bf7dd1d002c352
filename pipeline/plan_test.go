package pipeline_test

import (
	"testing"
	"time"

	"github.com/eddy-edge/eddy/pipeline"
)

// TestPlanNodeLookupBounds: Step and Sink answer nil, never panic, for a
// node that is not in the plan's spec.
func TestPlanNodeLookupBounds(t *testing.T) {
	plans, err := pipeline.Load("p.yaml", []byte(`apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: p}
spec:
  source: {mqtt: {topic: "in"}}
  steps: [{filter: "x > 1"}]
  sinks: [{mqtt: {topic: out}}]
  late: [{mqtt: {topic: late}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	p := plans[0]
	for _, c := range []struct {
		n          pipeline.Node
		step, sink bool
	}{
		{pipeline.Node{Role: pipeline.RoleStep, Index: 0}, true, false},
		{pipeline.Node{Role: pipeline.RoleSink, Index: 0}, false, true},
		{pipeline.Node{Role: pipeline.RoleLate, Index: 0}, false, true},
		{pipeline.Node{Role: pipeline.RoleStep, Index: 1}, false, false},
		{pipeline.Node{Role: pipeline.RoleStep, Index: -1}, false, false},
		{pipeline.Node{Role: pipeline.RoleSink, Index: 1}, false, false},
		{pipeline.Node{Role: pipeline.RoleLate, Index: 1}, false, false},
		{pipeline.Node{Role: pipeline.RoleErrors, Index: 0}, false, false},
		{pipeline.Node{Role: pipeline.RoleSource}, false, false},
		{pipeline.Node{Index: 0}, false, false},
	} {
		if got := p.Step(c.n) != nil; got != c.step {
			t.Errorf("Step(%s %d) found = %v, want %v", c.n.Role, c.n.Index, got, c.step)
		}
		if got := p.Sink(c.n) != nil; got != c.sink {
			t.Errorf("Sink(%s %d) found = %v, want %v", c.n.Role, c.n.Index, got, c.sink)
		}
	}
	if s := p.Sink(pipeline.Node{Role: pipeline.RoleLate, Index: 0}); s.MQTT == nil || s.MQTT.Topic != "late" {
		t.Errorf("Sink(late 0) = %+v, want the late sink", s)
	}
}

// TestPlanIdleTimeout: spec.idleTimeout, else the longest window (size or
// gap) plus its allowed lateness, else the default.
func TestPlanIdleTimeout(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want time.Duration
	}{
		{`steps: [{filter: "x > 1"}]`, time.Minute},
		{`idleTimeout: 5s
  steps: [{window: {tumbling: 1h}}, {aggregate: {n: "count()"}}]`, 5 * time.Second},
		{`steps: [{window: {tumbling: 10s, allowedLateness: 2s}}, {aggregate: {n: "count()"}}]`, 12 * time.Second},
		{`steps: [{window: {sliding: {size: 30s, every: 5s}}}, {aggregate: {n: "count()"}}]`, 30 * time.Second},
		{`steps: [{window: {session: {gap: 45s}}}, {aggregate: {n: "count()"}}]`, 45 * time.Second},
	} {
		plans, err := pipeline.Load("p.yaml", []byte("apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  source: {mqtt: {topic: in}}\n  "+
			tc.spec+"\n  sinks: [{mqtt: {topic: out}}]\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		if got := plans[0].IdleTimeout(time.Minute); got != tc.want {
			t.Errorf("%s: IdleTimeout = %v, want %v", tc.spec, got, tc.want)
		}
	}
}
