package kubeedge_test

import (
	"encoding/json"
	"fmt"

	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
)

func ExampleParseTopic() {
	t, ok := kubeedge.ParseTopic("$hw/events/device/plant-1/valve-7/twin/update/delta")
	fmt.Println(ok, t.Kind, t.ID)
	ns, name, _ := kubeedge.SplitDeviceID(t.ID)
	fmt.Println(ns, name)
	// Output:
	// true twin/update/delta plant-1/valve-7
	// plant-1 valve-7
}

func ExampleDeviceTopic() {
	fmt.Println(kubeedge.DeviceTopic("default/thermo-1", kubeedge.TwinUpdate))
	fmt.Println(kubeedge.DeviceTopic("default/thermo-1", kubeedge.DataUpdate))
	fmt.Println(kubeedge.NodeTopic("edge-a", kubeedge.MembershipGet))
	// Output:
	// $hw/events/device/default/thermo-1/twin/update
	// $ke/events/device/default/thermo-1/data/update
	// $hw/events/node/edge-a/membership/get
}

// A mapper reports a reading as KubeEdge's twin/update.
func ExampleTwinUpdateMsg() {
	msg := kubeedge.TwinUpdateMsg{
		BaseMessage: kubeedge.BaseMessage{Timestamp: 1700000000000},
		Twin: map[string]*kubeedge.MsgTwin{"temperature": {
			Actual:   &kubeedge.TwinValue{Value: kubeedge.StringValue("21.5")},
			Metadata: &kubeedge.TypeMetadata{Type: "float"},
		}},
	}
	b, _ := json.Marshal(msg)
	fmt.Println(string(b))
	// Output:
	// {"event_id":"","timestamp":1700000000000,"twin":{"temperature":{"actual":{"value":"21.5"},"metadata":{"type":"float"}}}}
}
