// Package enrich implements the enrich step: it adds the current values of
// a device's twin properties to each event, as fields twin_<property>. The
// device is the event's key. It reads the twin through a Lookup and keeps no
// state of its own.
package enrich

import (
	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/pipeline"
)

// Lookup returns a device's twin values.
type Lookup interface {
	// Values adds twin_<prop> = reported value (or desired when nothing was
	// reported) for each property of the device to dst.
	Values(device string, props []string, dst map[string]any)
}

// Operator is an enrich step.
type Operator struct {
	twins Lookup
	props []string
}

// New returns an enrich step reading props from twins.
func New(twins Lookup, props []string) *Operator {
	return &Operator{twins: twins, props: append([]string(nil), props...)}
}

// Process adds the twin fields and emits the event. A device without a
// twin passes through without the fields (expressions see them as nil).
func (o *Operator) Process(ev *pipeline.Event, out operators.Emitter) error {
	if ev.Fields == nil {
		ev.Fields = map[string]any{}
	}
	o.twins.Values(ev.Key, o.props, ev.Fields)
	ev.Raw = nil
	out.Emit(ev)
	return nil
}
