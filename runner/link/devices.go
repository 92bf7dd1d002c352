package link

import "github.com/eddy-edge/eddy/fleet"

// DeviceStates is an optional capability of a Target: the connection
// state (online/offline) of the devices it serves. When the Target has
// it, every status record carries the states (fleet.NodeStatus.Devices),
// so the controller can write a Device's status.state and lastOnlineTime.
// Call Link.DevicesChanged when a state changes.
type DeviceStates interface {
	DeviceStates() []fleet.DeviceState
}

// DevicesChanged asks for a status record soon (at most every 250 ms):
// a device's connection state changed. States go up batched, one record
// for every change in that time, never one message per report.
func (l *Link) DevicesChanged() { l.notify() }

// deviceStates returns the Target's device states, or nil.
func (l *Link) deviceStates() []fleet.DeviceState {
	if s, ok := l.target.(DeviceStates); ok {
		return s.DeviceStates()
	}
	return nil
}
