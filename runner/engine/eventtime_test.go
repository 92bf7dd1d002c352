package engine

import (
	"strings"
	"testing"
	"time"
)

// The future bound applies to the converted time: a year-2611 seconds
// value is a source error, stamped with its arrival time, and does not
// move the event clock.
func TestOutOfRangeEventTimeUsesArrival(t *testing.T) {
	h := newHarness(t)
	h.apply(`
apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: et}
spec:
  source: {mqtt: {topic: "in"}}
  eventTime: ts
  sinks: [{mqtt: {topic: "out"}}]
`)
	h.publish("in", `{"ts":20242804204}`, `{"ts":5e10}`)
	st := h.waitCursor("default/et")
	if st.Source.Errors != 2 || !strings.Contains(st.Source.LastError, "outside the representable times") {
		t.Fatalf("source errors %d (%s); want 2 out-of-range errors", st.Source.Errors, st.Source.LastError)
	}
	if !st.EventTime.IsZero() && st.EventTime.After(h.clock.Now().Add(time.Minute)) {
		t.Fatalf("event clock moved to %s", st.EventTime)
	}
	if len(h.pub.get()) != 2 {
		t.Fatalf("events with a bad time were dropped: %q", h.pub.get())
	}
}
