package window_test

import (
	"fmt"
	"time"

	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/operators/window"
	"github.com/eddy-edge/eddy/pipeline"
)

// A 10s tumbling window with 2s allowed lateness, averaging temperature per
// device. The event at 3s arrives out of order but within the lateness and
// is counted; the event at 4s arrives after [0s,10s) closed and goes to Late.
func Example() {
	op, err := window.New(window.Config{
		Name:       "window-0",
		Window:     pipeline.WindowSpec{Tumbling: pipeline.DurationPtr(10 * time.Second), AllowedLateness: pipeline.DurationPtr(2 * time.Second)},
		Aggregates: map[string]string{"avg_t": "avg(temperature)", "n": "count()"},
		Late:       func(ev *pipeline.Event) { fmt.Println("late:", ev.Key, ev.Time/1e9) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	out := operators.EmitFunc(func(ev *pipeline.Event) {
		f := ev.Fields
		fmt.Println(f["key"], f["window_start"], f["window_end"], f["avg_t"], f["n"])
	})
	for _, in := range []struct {
		sec  int64
		temp float64
	}{{1, 20}, {11, 30}, {3, 22}, {13, 31}, {4, 99}} {
		_ = op.Process(&pipeline.Event{Key: "thermo-1", Time: in.sec * 1e9, Fields: map[string]any{"temperature": in.temp}}, out)
	}
	op.Advance(30e9, out) // the engine moves the event clock
	// Output:
	// thermo-1 0 10000 21 2
	// late: thermo-1 4
	// thermo-1 10000 20000 30.5 2
}
