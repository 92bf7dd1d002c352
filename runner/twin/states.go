package twin

import "sort"

// DeviceState is one device's connection state, as its mapper last
// reported it (state/update).
type DeviceState struct {
	// ID is the device id, namespace/name.
	ID string
	// State is online, offline or unknown; empty until a mapper reported
	// one.
	State string
	// LastOnline is when the last state report arrived, in
	// LastOnlineLayout (UTC), as KubeEdge keeps it.
	LastOnline string
}

// States returns the connection state of every device, sorted by id. It
// takes the read lock only (the link calls it for every status record).
func (m *Manager) States() []DeviceState {
	m.mu.RLock()
	out := make([]DeviceState, 0, len(m.devices))
	for _, d := range m.devices {
		out = append(out, DeviceState{ID: d.id, State: d.state, LastOnline: d.lastOnline})
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
