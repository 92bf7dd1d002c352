// Package operators defines the small interfaces that every pipeline step
// implements. Concrete operators live in sub-packages (filter, mapfields,
// fields, window, alert, dedupe, throttle); each is pure logic with state it
// can snapshot and restore, driven by the events it is handed and by the
// watermark the engine passes to Advance. Operators never start goroutines,
// never read the wall clock and never touch the network.
//
// The engine fuses a pipeline's operators into one chain: Process calls the
// next operator's Process through an Emitter as a plain function call, on a
// single goroutine. No channel sits between steps and no event is re-encoded.
package operators

import "github.com/eddy-edge/eddy/pipeline"

// Emitter receives an operator's output events. The event passed to Emit is
// only valid during the call; a receiver that keeps it must Clone it.
type Emitter interface {
	Emit(ev *pipeline.Event)
}

// EmitFunc adapts a function to an Emitter.
type EmitFunc func(ev *pipeline.Event)

// Emit calls f(ev).
func (f EmitFunc) Emit(ev *pipeline.Event) { f(ev) }

// Operator processes one event at a time, emitting zero or more events.
// A returned error is counted against the step (and the event is dropped);
// it must never stop the pipeline.
type Operator interface {
	Process(ev *pipeline.Event, out Emitter) error
}

// TimeDriven is implemented by operators that hold state over time
// (windows, alerts, dedupe horizons). The engine calls Advance whenever the
// pipeline's event clock moves: eventTime is the largest event time seen so
// far (unix ns), moved forward with processing time while the source is idle
// (see docs/design.md). Operators derive their own watermark from it (e.g.
// eventTime minus allowed lateness) and emit what that completes.
type TimeDriven interface {
	Advance(eventTime int64, out Emitter)
}

// Deadliner is implemented by time-driven operators that know the event
// clock value at which their next output is due (a window's end plus its
// allowed lateness). The engine uses it to wake a processing-time pipeline
// right when a window closes instead of on its next periodic tick.
type Deadliner interface {
	// NextDeadline returns the smallest event clock value that makes the
	// operator emit, and false when nothing is pending.
	NextDeadline() (eventClock int64, ok bool)
}

// Stateful is implemented by operators whose state must survive a restart.
// Snapshot must capture everything Restore needs to continue exactly where
// the operator was; the engine checkpoints it together with the log cursor.
type Stateful interface {
	Snapshot() ([]byte, error)
	Restore(data []byte) error
}

// Sized is implemented by operators that keep per-key state; StateSize
// reports how many entries (open windows, keys, remembered ids) they hold.
type Sized interface {
	StateSize() int
}

// Screener is implemented by stateless operators that can tell from an
// event's fields alone that they will emit nothing for it (a filter). The
// engine uses the test to leave a pipeline asleep while every new event
// on its source would be dropped by its first step (see docs/design.md,
// "A shared source per topic filter", "Screened members").
type Screener interface {
	// Screen returns a test that may run on another goroutine than
	// Process, concurrently with it. It must return false only when
	// Process would emit nothing for an event with these fields and
	// return no error; when unsure (an error), true.
	Screen() func(fields map[string]any) bool
}
