package controller

import (
	"context"
	"encoding/json"
	"time"
)

// ObjectKind is the kind of an object shipped to a node.
type ObjectKind string

// The kinds the controller ships.
const (
	// KindPipeline is a compiled pipeline.
	KindPipeline ObjectKind = "Pipeline"
	// KindDevice is a KubeEdge device together with its model.
	KindDevice ObjectKind = "Device"
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
	// Spec is the kind-specific body (a pipeline.Spec, or a device
	// document set).
	Spec json.RawMessage `json:"spec"`
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
	// Twins are reported device property values (Device objects only).
	Twins map[string]string
	// Online is the device state (Device objects only; nil if unknown).
	Online *bool
	// Time of the report.
	Time time.Time
}

// Feed delivers what the edges send up. Run blocks until ctx ends,
// calling node for every registration or heartbeat and report for every
// status report; the callbacks must be cheap (they only update memory).
type Feed interface {
	Run(ctx context.Context, node func(NodeInfo), report func(Report)) error
}
