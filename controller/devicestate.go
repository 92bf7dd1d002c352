package controller

import (
	"strings"
	"time"

	devicesv1beta1 "github.com/eddy-edge/eddy/controller/apis/devices/v1beta1"
	"github.com/eddy-edge/eddy/fleet"
)

// Device connection state: each node's status record carries the state
// (online/offline/unknown) of every device it serves, as its mapper last
// reported it (fleet.NodeStatus.Devices). The tracker keeps the latest per
// device and marks the Device dirty only when its state changes, so a
// Device gets at most one status write per StatusInterval for it, however
// often mappers report (KubeEdge's mappers send a state/update every
// second; CloudCore writes each).

// DeviceState is a device's connection state as its node reports it.
type DeviceState struct {
	// Namespace and Name of the device.
	Namespace, Name string
	// State is online, offline or unknown.
	State fleet.DeviceConnState
	// LastOnline is when the node last received a state report for the
	// device (zero when none).
	LastOnline time.Time
}

// deviceStates converts a status record's device states; entries whose
// device is not namespace/name are skipped.
func deviceStates(in []fleet.DeviceState) []DeviceState {
	out := make([]DeviceState, 0, len(in))
	for _, d := range in {
		ns, name, ok := strings.Cut(d.Device, "/")
		if !ok || ns == "" || name == "" {
			continue
		}
		out = append(out, DeviceState{Namespace: ns, Name: name, State: d.State, LastOnline: d.LastOnline})
	}
	return out
}

// reportedState is the latest state of one device and the node that
// reported it.
type reportedState struct {
	node  string
	state DeviceState
}

// nodeDevices takes the device states of one node record; t.mu held.
func (t *tracker) nodeDevices(n NodeInfo) {
	if len(n.Devices) == 0 {
		return
	}
	if t.states == nil {
		t.states = map[objKey]reportedState{}
	}
	for _, d := range n.Devices {
		k := objKey{KindDevice, d.Namespace, d.Name}
		old, seen := t.states[k]
		t.states[k] = reportedState{node: n.Name, state: d}
		if !seen || old.node != n.Name || old.state.State != d.State {
			t.dirtyObjs[k] = struct{}{}
		}
	}
}

// stateOf returns the latest reported state of a device.
func (t *tracker) stateOf(k objKey) (reportedState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.states[k]
	return s, ok
}

// deviceState writes the device's connection state into its status
// (KubeEdge v1.22's status.state and status.lastOnlineTime, RFC 3339),
// from the report of the node the device is attached to. A Device whose
// spec.stateReport.reportToCloud is false (KubeEdge v1.23) keeps its
// state to the edge.
func (c *Controller) deviceState(st *devicesv1beta1.DeviceStatus, key objKey, d *devicesv1beta1.Device) {
	if r := d.Spec.StateReport; r != nil && !r.ReportToCloud {
		return
	}
	s, ok := c.track.stateOf(key)
	if !ok || d.Spec.NodeName == "" || s.node != d.Spec.NodeName {
		return // not reported yet, or by a node the device left
	}
	st.State = devicesv1beta1.DeviceState(s.state.State)
	if !s.state.LastOnline.IsZero() {
		st.LastOnlineTime = s.state.LastOnline.UTC().Format(time.RFC3339)
	}
}
