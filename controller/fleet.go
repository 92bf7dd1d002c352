package controller

import (
	"context"
	"encoding/json"
	"time"

	"github.com/eddy-edge/eddy/fleet"
)

// ObjectKind is the kind of an object shipped to a node (fleet's kinds).
type ObjectKind = fleet.Kind

// The kinds the controller ships.
const (
	// KindPipeline is an eddy.dev Pipeline.
	KindPipeline = fleet.KindPipeline
	// KindDevice is a KubeEdge Device.
	KindDevice = fleet.KindDevice
	// KindDeviceModel is a KubeEdge DeviceModel, shipped to every node
	// that has a device of that model.
	KindDeviceModel = fleet.KindDeviceModel
)

// Object is one plan for one node: what the edge applies.
type Object struct {
	// Kind of the object.
	Kind ObjectKind `json:"kind"`
	// Namespace and Name of the resource it was compiled from.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Version is the resource's generation.
	Version int64 `json:"version"`
	// Hash changes iff what the edge must do changes.
	Hash string `json:"hash"`
	// Resource is the object as JSON, as a user writes it in YAML (what
	// the edge loads with the same code as `eddy validate`).
	Resource json.RawMessage `json:"resource"`
}

// ObjectRef names an object held for a node, with its version.
type ObjectRef struct {
	// Node holding the object.
	Node string
	// Kind, Namespace and Name identify the object.
	Kind      ObjectKind
	Namespace string
	Name      string
	// Version and Hash of the plan the node holds.
	Version int64
	Hash    string
}

// PlanStore is the per-node plan store of the fleet (a JetStream KV bucket
// in production). Writes must be idempotent: the controller re-writes
// after restarts and leader changes only what differs.
type PlanStore interface {
	// Put writes obj for node, replacing any older version.
	Put(ctx context.Context, node string, obj Object) error
	// Delete removes an object from node's plans; deleting what is not
	// there is not an error.
	Delete(ctx context.Context, node string, kind ObjectKind, namespace, name string) error
	// Holders lists, for one object, every node holding a version of it.
	Holders(ctx context.Context, kind ObjectKind, namespace, name string) ([]ObjectRef, error)
}

// NodeInfo is an edge runner's registration or heartbeat.
type NodeInfo struct {
	// Name of the node (the EdgeNode name).
	Name string
	// Labels the runner is configured with.
	Labels map[string]string
	// Version of the runner.
	Version string
	// Time the heartbeat was sent (or received).
	Time time.Time
	// Devices is the connection state of every device the node serves.
	Devices []DeviceState
}

// Report is what one node reports about one object it holds.
type Report struct {
	// Node reporting.
	Node string
	// Kind, Namespace and Name of the object.
	Kind      ObjectKind
	Namespace string
	Name      string
	// Version the node runs.
	Version int64
	// Failed is set, with Error, when the node could not apply the version.
	Failed bool
	// Error says why.
	Error string
	// Counters (cumulative since the object started on the node).
	MessagesIn, MessagesOut, Errors int64
	// AlertsFiring now.
	AlertsFiring int64
	// Time of the report.
	Time time.Time
}

// TwinReport is one reported (actual) value of a device property, as the
// edge's twin stream carries it up.
type TwinReport struct {
	// Node that reported it.
	Node string
	// Namespace and Name of the device.
	Namespace, Name string
	// Property and its reported value as a string (KubeEdge's form).
	Property, Value string
	// Time of the change on the edge.
	Time time.Time
}

// FeedSink receives what a Feed reads. Both methods must be cheap: they
// only update memory.
type FeedSink interface {
	// NodeRecord takes one status record of a node: its registration or
	// heartbeat and the full set of objects it holds (an object missing
	// from the set has left the node).
	NodeRecord(NodeInfo, []Report)
	// DeviceTwin takes one reported twin value.
	DeviceTwin(TwinReport)
}

// Feed delivers what the edges send up into sink until ctx ends.
type Feed interface {
	Run(ctx context.Context, sink FeedSink) error
}
