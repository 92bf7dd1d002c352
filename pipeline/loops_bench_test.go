package pipeline

import (
	"fmt"
	"testing"
)

// BenchmarkFindCycle300 is the check the engine makes on every Apply,
// with 300 pipelines on one topic each publishing to its own.
func BenchmarkFindCycle300(b *testing.B) {
	var plans []*Plan
	for i := range 300 {
		ps, err := Load("p.yaml", []byte(fmt.Sprintf("apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: p%d}\nspec:\n"+
			"  source: {mqtt: {topic: \"bench/in\"}}\n  steps: [{filter: \"t > 1\"}]\n  sinks: [{mqtt: {topic: \"out/p%d/{{device}}\"}}]\n", i, i)))
		if err != nil {
			b.Fatal(err)
		}
		plans = append(plans, ps[0])
	}
	b.ReportAllocs()
	for b.Loop() {
		if c := FindCycle(plans); c != nil {
			b.Fatal(c)
		}
	}
}
