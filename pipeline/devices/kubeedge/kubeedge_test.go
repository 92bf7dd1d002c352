package kubeedge

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestParseTopic(t *testing.T) {
	tests := []struct {
		topic string
		want  Topic
		ok    bool
	}{
		{"$hw/events/device/default/thermo-1/twin/update", Topic{Kind: TwinUpdate, ID: "default/thermo-1"}, true},
		{"$hw/events/device/default/thermo-1/twin/update/result", Topic{Kind: TwinUpdateResult, ID: "default/thermo-1"}, true},
		{"$hw/events/device/default/thermo-1/twin/update/delta", Topic{Kind: TwinUpdateDelta, ID: "default/thermo-1"}, true},
		{"$hw/events/device/default/thermo-1/twin/update/document", Topic{Kind: TwinUpdateDocument, ID: "default/thermo-1"}, true},
		{"$hw/events/device/default/thermo-1/twin/get", Topic{Kind: TwinGet, ID: "default/thermo-1"}, true},
		{"$hw/events/device/default/thermo-1/twin/get/result", Topic{Kind: TwinGetResult, ID: "default/thermo-1"}, true},
		{"$hw/events/device/default/thermo-1/twin/cloud_updated", Topic{Kind: TwinCloudUpdated, ID: "default/thermo-1"}, true},
		{"$hw/events/device/default/thermo-1/twin/edge_updated", Topic{Kind: TwinEdgeUpdated, ID: "default/thermo-1"}, true},
		{"$hw/events/device/default/thermo-1/state/update", Topic{Kind: StateUpdate, ID: "default/thermo-1"}, true},
		{"$hw/events/device/default/thermo-1/state/update/result", Topic{Kind: StateUpdateResult, ID: "default/thermo-1"}, true},
		{"$hw/events/device/default/thermo-1/state/get", Topic{Kind: StateGet, ID: "default/thermo-1"}, true},
		{"$hw/events/device/default/thermo-1/updated", Topic{Kind: DeviceUpdated, ID: "default/thermo-1"}, true},
		{"$hw/events/node/edge-a/membership/get", Topic{Kind: MembershipGet, Node: "edge-a"}, true},
		{"$hw/events/node/edge-a/membership/get/result", Topic{Kind: MembershipGetResult, Node: "edge-a"}, true},
		{"$hw/events/node/edge-a/membership/updated", Topic{Kind: MembershipUpdated, Node: "edge-a"}, true},
		{"$hw/events/node/edge-a/membership/detail", Topic{Kind: MembershipDetail, Node: "edge-a"}, true},
		{"$hw/events/node/edge-a/membership/detail/result", Topic{Kind: MembershipDetailResult, Node: "edge-a"}, true},
		{"$ke/events/device/default/thermo-1/data/update", Topic{Kind: DataUpdate, ID: "default/thermo-1"}, true},
		// Old mappers: a bare name.
		{"$hw/events/device/valve-7/twin/update", Topic{Kind: TwinUpdate, ID: "valve-7"}, true},
		// Devices named like suffix words.
		{"$hw/events/device/lab/twin/twin/update/delta", Topic{Kind: TwinUpdateDelta, ID: "lab/twin"}, true},
		{"$hw/events/device/twin/twin/update", Topic{Kind: TwinUpdate, ID: "twin"}, true},
		{"$ke/events/device/lab/data/data/update", Topic{Kind: DataUpdate, ID: "lab/data"}, true},
		// Outside the protocol.
		{"$hw/events/device//twin/update", Topic{}, false},
		{"$hw/events/device/x/y/twin/other", Topic{}, false},
		{"$hw/events/node//membership/get", Topic{}, false},
		{"$ke/events/device/a/b/data", Topic{}, false},
		{"$hw/events/device", Topic{}, false},
		{"factory/x/data/update", Topic{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseTopic(tt.topic)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseTopic(%q) = %+v, %v; want %+v, %v", tt.topic, got, ok, tt.want, tt.ok)
		}
		if !ok {
			continue
		}
		var back string
		if got.Kind.IsNode() {
			back = NodeTopic(got.Node, got.Kind)
		} else {
			back = DeviceTopic(got.ID, got.Kind)
		}
		if back != tt.topic {
			t.Errorf("building %+v gives %q; want %q", got, back, tt.topic)
		}
	}
}

func TestDeviceOf(t *testing.T) {
	tests := []struct {
		topic, ns, name string
		ok              bool
	}{
		{"$ke/events/device/default/thermo-1/data/update", "default", "thermo-1", true},
		{"$hw/events/device/plant-1/valve-7/twin/update", "plant-1", "valve-7", true},
		{"$hw/events/device/plant-1/valve-7/twin/update/delta", "plant-1", "valve-7", true},
		{"$hw/events/device/plant-1/valve-7/twin/get/result", "plant-1", "valve-7", true},
		{"$hw/events/device/plant-1/valve-7/state/update", "plant-1", "valve-7", true},
		{"$hw/events/device/plant-1/valve-7/updated", "plant-1", "valve-7", true},
		{"$hw/events/device/valve-7/twin/update", "default", "valve-7", true},
		{"$hw/events/device/valve-7/twin/update/delta", "default", "valve-7", true},
		{"$ke/events/device/thermo-1/data/update", "default", "thermo-1", true},
		{"$hw/events/device/valve-7/updated", "default", "valve-7", true},
		{"$ke/events/device/lab/data/data/update", "lab", "data", true},
		{"$hw/events/device/lab/state/state/update", "lab", "state", true},
		{"$hw/events/device/lab/twin/twin/update/delta", "lab", "twin", true},
		{"$hw/events/device/twin/twin/update", "default", "twin", true},
		// Unknown suffixes: {ns}/{name}/... or {name}/{data|twin|state}/...
		{"$ke/events/device/plant/pump-2/custom/thing", "plant", "pump-2", true},
		{"$ke/events/device/pump-2/data/other", "default", "pump-2", true},
		{"$hw/events/device", "", "", false},
		{"$hw/events/device/", "", "", false},
		{"$hw/events/node/n1/membership/get", "", "", false},
		{"factory/x/data", "", "", false},
		{"$ke/events/devices/a/b/data/update", "", "", false},
	}
	for _, tt := range tests {
		ns, name, ok := DeviceOf(tt.topic)
		if ns != tt.ns || name != tt.name || ok != tt.ok {
			t.Errorf("DeviceOf(%q) = %q, %q, %v; want %q, %q, %v", tt.topic, ns, name, ok, tt.ns, tt.name, tt.ok)
		}
	}
}

func TestSubscriptionsCoverRequests(t *testing.T) {
	// Every request the twin service answers matches exactly one
	// subscription, so no message is handled twice.
	for _, topic := range []string{
		DeviceTopic("default/a", TwinUpdate), DeviceTopic("default/a", TwinGet),
		DeviceTopic("default/a", StateUpdate), NodeTopic("n", MembershipGet), DeviceTopic("default/a", DataUpdate),
	} {
		n := 0
		for _, f := range Subscriptions {
			if match(f, topic) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s matches %d subscriptions; want 1", topic, n)
		}
	}
	if !match(DeltaFilter, DeviceTopic("default/a", TwinUpdateDelta)) {
		t.Errorf("DeltaFilter %s does not match a delta topic", DeltaFilter)
	}
}

// match is a minimal MQTT filter match (+ only) for the test.
func match(filter, topic string) bool {
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	if len(f) != len(tp) {
		return false
	}
	for i := range f {
		if f[i] != "+" && f[i] != tp[i] {
			return false
		}
	}
	return true
}

// TestWireNames pins the JSON field names to KubeEdge's dttype.
func TestWireNames(t *testing.T) {
	opt := false
	msg := TwinUpdateMsg{BaseMessage: BaseMessage{EventID: "e", Timestamp: 1}, Twin: map[string]*MsgTwin{
		"temp": {
			Expected:        &TwinValue{Value: StringValue("22"), Metadata: &ValueMetadata{Timestamp: 2}},
			Actual:          &TwinValue{Value: StringValue("21")},
			Optional:        &opt,
			Metadata:        &TypeMetadata{Type: "int"},
			ExpectedVersion: &TwinVersion{Cloud: 1},
			ActualVersion:   &TwinVersion{Edge: 3},
		},
	}}
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event_id":"e","timestamp":1,"twin":{"temp":{"expected":{"value":"22","metadata":{"timestamp":2}},"actual":{"value":"21"},"optional":false,"metadata":{"type":"int"},"expected_version":{"cloud":1,"edge":0},"actual_version":{"cloud":0,"edge":3}}}}`
	if string(b) != want {
		t.Errorf("twin/update encodes as\n%s\nwant\n%s", b, want)
	}
	var back TwinUpdateMsg
	if err := json.Unmarshal(b, &back); err != nil || back.Twin["temp"].ActualVersion.Edge != 3 {
		t.Errorf("round trip: %v %+v", err, back)
	}

	d, _ := json.Marshal(DataUpdateMsg{BaseMessage: BaseMessage{Timestamp: 5}, Data: map[string]*DataValue{
		"temp": {Value: StringValue("21"), Metadata: DataMetadata{Type: "int", Timestamp: 5}}}})
	if want := `{"event_id":"","timestamp":5,"data":{"temp":{"value":"21","metadata":{"type":"int","timestamp":5}}}}`; string(d) != want {
		t.Errorf("data/update encodes as %s; want %s", d, want)
	}
	m, _ := json.Marshal(MembershipUpdateMsg{Added: []Device{{ID: "default/a", Name: "a"}}, Removed: []Device{}})
	if want := `{"event_id":"","timestamp":0,"added_devices":[{"id":"default/a","name":"a"}],"removed_devices":[]}`; string(m) != want {
		t.Errorf("membership/updated encodes as %s; want %s", m, want)
	}
}

func TestNewEventID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := NewEventID(), NewEventID()
	if !re.MatchString(a) || a == b {
		t.Errorf("NewEventID() = %q, %q; want distinct v4 UUIDs", a, b)
	}
}

func TestValidKey(t *testing.T) {
	for k, want := range map[string]bool{
		"temperature": true, "a-b_c.d,e:f/g@h#i": true, strings.Repeat("x", 128): true,
		"": false, strings.Repeat("x", 129): false, "with space": false, "é": false, "{": false,
	} {
		if ValidKey(k) != want {
			t.Errorf("ValidKey(%q) = %v; want %v", k, !want, want)
		}
	}
}

func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{
		"$hw/events/device/default/thermo-1/twin/update", "$hw/events/node/n/membership/get",
		"$ke/events/device/a/data/update", "$hw/events/device//twin/update", "$hw/events/device/lab/twin/twin/update/delta",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		tp, ok := ParseTopic(topic)
		if ok {
			if tp.Kind == TopicUnknown || (tp.ID == "") == (tp.Node == "") {
				t.Fatalf("ParseTopic(%q) = %+v", topic, tp)
			}
			back := DeviceTopic(tp.ID, tp.Kind)
			if tp.Kind.IsNode() {
				back = NodeTopic(tp.Node, tp.Kind)
			}
			if back != topic {
				t.Fatalf("ParseTopic(%q) = %+v, which builds %q", topic, tp, back)
			}
		}
		if ns, name, ok := DeviceOf(topic); ok && (ns == "" || name == "") {
			t.Fatalf("DeviceOf(%q) = %q, %q", topic, ns, name)
		}
	})
}
