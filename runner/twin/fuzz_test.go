package twin

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzHandleMessage feeds arbitrary payloads to every request topic: the
// manager must never panic, must answer or ignore, and a twin/update that is
// accepted must leave state that renders as valid JSON.
func FuzzHandleMessage(f *testing.F) {
	seeds := []string{
		`{"event_id":"e","timestamp":1,"twin":{"temperature":{"actual":{"value":"22"},"metadata":{"type":"int"}}}}`,
		`{"twin":{"mode":{"expected":{"value":"eco"}},"x":{"actual":{"value":{"a":[1,{"b":null}]}}}}}`,
		`{"twin":{"temperature":{"actual":{"value":"21"},"actual_version":{"cloud":0,"edge":1}}}}`,
		`{"twin":{"temperature":null,"y":null}}`,
		`{"twin":{"t":{"actual":{"value":null}}}}`,
		`{"state":"online"}`, `{"data":{"temperature":{"value":5}}}`, `{"event_id":1}`, `[]`, `null`, ``, `{"twin":{"":{}}}`,
	}
	for _, s := range seeds {
		for k := range 5 {
			f.Add(uint8(k), []byte(s))
		}
	}
	topics := []string{
		updTopic, getTopic, "$hw/events/device/default/thermo-1/state/update",
		"$hw/events/node/edge-a/membership/get", "$ke/events/device/default/thermo-1/data/update",
	}
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		r := newRig(t, nil)
		r.setup(t)
		err := r.m.HandleMessage(context.Background(), topics[int(which)%len(topics)], payload)
		if err != nil && !errors.Is(err, ErrRejected) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		for topic, body := range r.pub.take() {
			if !json.Valid([]byte(body)) {
				t.Fatalf("%s: invalid JSON %q", topic, body)
			}
		}
		if err := r.m.HandleMessage(context.Background(), getTopic, nil); err != nil {
			t.Fatal(err)
		}
		if !json.Valid([]byte(r.pub.take()[getResult])) {
			t.Fatal("get result is not JSON")
		}
	})
}
