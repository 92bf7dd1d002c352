package alert_test

import (
	"fmt"
	"time"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/operators/alert"
	"github.com/eddy-edge/eddy/pipeline"
)

func ExampleNew() {
	op, err := alert.New(alert.Config{
		Pipeline: "overheat",
		Spec: pipeline.AlertSpec{
			When:    "avg_t > 30",
			For:     pipeline.DurationPtr(30 * time.Second),
			Message: "{{key}} is overheating: avg {{avg_t}}",
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	show := operators.EmitFunc(func(ev *pipeline.Event) {
		fmt.Println(ev.Fields["ts"], ev.Fields["state"], ev.Fields["message"])
	})
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, avg := range []float64{29, 31, 32, 33, 34, 25} {
		ev := &pipeline.Event{
			Time:   t0.Add(time.Duration(i) * 10 * time.Second).UnixNano(),
			Key:    "thermo-1",
			Fields: map[string]any{"avg_t": avg},
		}
		if err := op.Process(ev, show); err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// 2026-01-01T12:00:40.000Z firing thermo-1 is overheating: avg 34
	// 2026-01-01T12:00:50.000Z resolved thermo-1 is overheating: avg 25
}
