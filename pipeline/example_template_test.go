package pipeline_test

import (
	"fmt"

	"github.com/eddy-edge/eddy/pipeline"
)

func ExampleParseTemplate() {
	t, err := pipeline.ParseTemplate("{{key}} is overheating: avg {{avg_t}} (limit {{values.limit}})")
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := &pipeline.Event{Key: "thermo-1", Fields: map[string]any{
		"avg_t":  31.5,
		"values": map[string]any{"limit": 30},
	}}
	fmt.Println(string(t.Append(nil, ev)))
	fmt.Println(t.Check(pipeline.Schema{"avg_t": 0.0}))
	// Output:
	// thermo-1 is overheating: avg 31.5 (limit 30)
	// template "{{key}} is overheating: avg {{avg_t}} (limit {{values.limit}})": {{values.limit}} is not a field of the event at this step (a missing field renders empty); known fields: key, avg_t
}
