package fleet

import (
	"time"

	"github.com/eddy-edge/eddy/pipeline"
)

// Duration is a time.Duration written as a string ("5s") in JSON.
type Duration = pipeline.Duration

// ObjectState is the state of one object on an edge.
type ObjectState string

// Object states reported by edges.
const (
	// StateRunning: a pipeline runs the reported generation and hash.
	StateRunning ObjectState = "Running"
	// StateApplied: a device or model is in force on the edge.
	StateApplied ObjectState = "Applied"
	// StateStopped: a pipeline is stopped (e.g. through the edge's API).
	StateStopped ObjectState = "Stopped"
	// StateFailed: the object was accepted but could not be started;
	// Error says why. The edge keeps retrying on the next change.
	StateFailed ObjectState = "Failed"
	// StateRejected: the value under the key is malformed (not an
	// envelope, bad YAML, an unknown step, meant for another node...).
	// Error says why; the edge keeps running what it ran before under
	// that key, if anything.
	StateRejected ObjectState = "Rejected"
)

// LinkState is the state of an edge's connection to the hub.
type LinkState string

// Link states.
const (
	// LinkNone: no hub configured (a standalone runner).
	LinkNone LinkState = "none"
	// LinkConnected: the leaf connection to the hub is up.
	LinkConnected LinkState = "connected"
	// LinkDisconnected: a hub is configured but unreachable; the edge runs
	// its last plans from disk and keeps the outbox in its WAL.
	LinkDisconnected LinkState = "disconnected"
)

// NodeStatus is what one edge writes under its name in the nodes bucket:
// its registration, heartbeat and the state of what it runs. Edges write it
// on change and at least every HeartbeatInterval, never per message.
type NodeStatus struct {
	// Node is the edge's name.
	Node string `json:"node"`
	// Labels come from the edge's configuration; selectors match them.
	Labels map[string]string `json:"labels,omitempty"`
	// Version is the Eddy version the edge runs.
	Version string `json:"version,omitempty"`
	// Capacity describes the machine.
	Capacity Capacity `json:"capacity"`
	// StartedAt is when the edge process started.
	StartedAt time.Time `json:"startedAt"`
	// ReportedAt is when this record was written (the heartbeat).
	ReportedAt time.Time `json:"reportedAt"`
	// HeartbeatInterval is the most time between two records; a record
	// older than three intervals means the edge is unreachable.
	HeartbeatInterval Duration `json:"heartbeatInterval"`
	// Outbox describes the data waiting to go up.
	Outbox OutboxStatus `json:"outbox"`
	// Objects is the state of every object under the node's keys, sorted
	// by key.
	Objects []ObjectStatus `json:"objects,omitempty"`
	// Devices is the connection state of every device the node serves,
	// sorted by device. A change of state makes the edge write a record
	// soon (at most every 250 ms), so states travel batched, at a bounded
	// rate, never per report.
	Devices []DeviceState `json:"devices,omitempty"`
}

// DeviceConnState is a device's connection state: KubeEdge's values.
type DeviceConnState string

// Device connection states (KubeEdge's status.state values).
const (
	// DeviceOnline: the device answers (its mapper reaches it).
	DeviceOnline DeviceConnState = "online"
	// DeviceOffline: the device does not answer.
	DeviceOffline DeviceConnState = "offline"
	// DeviceUnknown: no mapper has reported a state yet.
	DeviceUnknown DeviceConnState = "unknown"
)

// DeviceState is one device's connection state on its edge, as the
// edge's mapper last reported it (KubeEdge's state/update).
type DeviceState struct {
	// Device is namespace/name.
	Device string `json:"device"`
	// State is online, offline or unknown.
	State DeviceConnState `json:"state"`
	// LastOnline is when the edge last received a state report for the
	// device (KubeEdge's last_online); zero when none arrived yet.
	LastOnline time.Time `json:"lastOnline,omitzero"`
}

// Stale reports whether the record is older than three heartbeats at now.
func (s *NodeStatus) Stale(now time.Time) bool {
	iv := s.HeartbeatInterval.Duration
	if iv <= 0 {
		iv = DefaultHeartbeat
	}
	return now.Sub(s.ReportedAt) > 3*iv
}

// Object returns the status of one object, if reported.
func (s *NodeStatus) Object(k ObjectKey) (ObjectStatus, bool) {
	key := k.String()
	for _, o := range s.Objects {
		if o.Key == key {
			return o, true
		}
	}
	return ObjectStatus{}, false
}

// DefaultHeartbeat is the default time between two status records.
const DefaultHeartbeat = 5 * time.Second

// Capacity is what an edge offers.
type Capacity struct {
	// CPUs is the number of logical CPUs.
	CPUs int `json:"cpus"`
	// MemoryBytes is the machine's memory (0 when unknown).
	MemoryBytes uint64 `json:"memoryBytes,omitempty"`
}

// OutboxStatus counts the data an edge forwards to the hub.
type OutboxStatus struct {
	// Pending is how many WAL records wait to be forwarded.
	Pending uint64 `json:"pending"`
	// Forwarded is how many the hub acknowledged since the edge started.
	Forwarded uint64 `json:"forwarded"`
	// Duplicates is how many acknowledged records the hub's stream had
	// already stored (resends after an outage, dropped by its duplicate
	// window).
	Duplicates uint64 `json:"duplicates"`
	// Errors is how many publishes failed and were retried.
	Errors uint64 `json:"errors"`
	// Reconnects is how many times the leaf connection came back.
	Reconnects uint64 `json:"reconnects"`
}

// ObjectStatus is the state of one object on an edge.
type ObjectStatus struct {
	// Key is the object's key in the plans bucket.
	Key string `json:"key"`
	// Kind, Namespace and Name identify the object.
	Kind      Kind   `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Generation and Hash are what the edge runs (or, when Rejected or
	// Failed, what it was given).
	Generation int64  `json:"generation"`
	Hash       string `json:"hash,omitempty"`
	// Revision is the plans-bucket revision the state refers to.
	Revision uint64 `json:"revision,omitempty"`
	// State is Running, Applied, Stopped, Failed or Rejected.
	State ObjectState `json:"state"`
	// Error says why an object is Failed or Rejected.
	Error string `json:"error,omitempty"`
	// Pipeline carries a pipeline's counters.
	Pipeline *PipelineCounters `json:"pipeline,omitempty"`
}

// PipelineCounters are a pipeline's totals since it (re)started on the edge.
type PipelineCounters struct {
	In     uint64 `json:"in"`
	Out    uint64 `json:"out"`
	Errors uint64 `json:"errors"`
	Alerts uint64 `json:"alerts"`
	// Lag is how many WAL records the pipeline has not read yet.
	Lag uint64 `json:"lag"`
}
