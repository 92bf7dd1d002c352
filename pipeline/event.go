package pipeline

import "time"

// Event is one record flowing through a pipeline. Operators run on one
// goroutine per pipeline and pass *Event along as plain function calls; an
// operator may change Fields in place (map, select, drop) and must copy an
// event it keeps beyond the call.
type Event struct {
	// Time is the event time in unix nanoseconds.
	Time int64
	// Key is the partition key.
	Key string
	// Topic is the MQTT topic (or internal stream name) it came from.
	Topic string
	// Fields are the decoded payload; the environment of expressions.
	Fields map[string]any
	// Offset is the log offset of the record the event came from.
	Offset uint64
	// Raw is the original JSON payload while Fields still match it exactly;
	// steps that change Fields set it to nil. Sinks write Raw as it is
	// instead of encoding Fields again. Raw's bytes are never modified (they
	// are a logged record's, which the log never changes), so a sink may
	// hand them on without a copy.
	Raw []byte
}

// EventTime returns Time as a time.Time in UTC.
func (e *Event) EventTime() time.Time { return time.Unix(0, e.Time).UTC() }

// Clone returns a copy of e with its own Fields map (values are shared).
func (e *Event) Clone() *Event {
	c := *e
	c.Fields = make(map[string]any, len(e.Fields))
	for k, v := range e.Fields {
		c.Fields[k] = v
	}
	return &c
}
