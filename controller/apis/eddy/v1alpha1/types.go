package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eddy-edge/eddy/pipeline"
)

// ConditionType names a status condition of Eddy's resources.
type ConditionType string

// The conditions a Pipeline carries (and Compiled for the KubeEdge kinds).
const (
	// Compiled is True when the spec compiled with the edge's compiler;
	// False with the field path and the compiler's message otherwise.
	Compiled ConditionType = "Compiled"
	// Delivered is True when the current plan was written for every
	// selected node.
	Delivered ConditionType = "Delivered"
	// Running is True when every selected node reports that it runs the
	// current plan.
	Running ConditionType = "Running"
	// Ready is the EdgeNode condition: True while heartbeats arrive.
	Ready ConditionType = "Ready"
)

// Pipeline is a declared stream computation shipped to the edge nodes that
// its selector picks.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pl,categories=eddy
// +kubebuilder:printcolumn:name="Nodes",type=string,JSONPath=`.status.nodes`,description="nodes running the current plan / nodes selected"
// +kubebuilder:printcolumn:name="In",type=integer,JSONPath=`.status.messagesIn`,description="events read, summed over nodes"
// +kubebuilder:printcolumn:name="Alerts",type=integer,JSONPath=`.status.alertsFiring`,description="alerts firing now, summed over nodes"
// +kubebuilder:printcolumn:name="Compiled",type=string,JSONPath=`.status.conditions[?(@.type=="Compiled")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Pipeline struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what the pipeline computes and where it runs.
	Spec PipelineSpec `json:"spec"`
	// Status is written by the controller.
	Status PipelineStatus `json:"status,omitempty"`
}

// PipelineSpec is pipeline.Spec (the YAML format; nodeSelector picks
// EdgeNodes by label) plus an optional list of node names.
type PipelineSpec struct {
	pipeline.Spec `json:",inline"`
	// NodeNames adds these EdgeNodes by name, whatever their labels. A
	// Pipeline with neither nodeSelector nor nodeNames runs nowhere.
	NodeNames []string `json:"nodeNames,omitempty"`
}

// NodeState is where one node stands with one object's current plan.
type NodeState string

// Node states, from the controller's and the edge's reports.
const (
	// NodePending: selected, the plan is not written yet.
	NodePending NodeState = "Pending"
	// NodeDelivered: the plan is in the node's plan store; the node has
	// not reported running it yet.
	NodeDelivered NodeState = "Delivered"
	// NodeRunning: the node reports the current plan's version running.
	NodeRunning NodeState = "Running"
	// NodeFailed: the node reports an error applying the plan.
	NodeFailed NodeState = "Failed"
)

// PipelineStatus is the observed state of a Pipeline.
type PipelineStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Hash of the compiled plan (changes iff what the pipeline computes
	// changes).
	Hash string `json:"hash,omitempty"`
	// Conditions: Compiled, Delivered, Running.
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Nodes is "running/selected", e.g. 3/4.
	Nodes string `json:"nodes,omitempty"`
	// NodesSelected counts the nodes the pipeline is placed on.
	NodesSelected int32 `json:"nodesSelected,omitempty"`
	// NodesRunning counts the nodes running the current plan.
	NodesRunning int32 `json:"nodesRunning,omitempty"`
	// MessagesIn is the number of events read, summed over nodes.
	MessagesIn int64 `json:"messagesIn,omitempty"`
	// MessagesOut is the number of events written to sinks, summed over nodes.
	MessagesOut int64 `json:"messagesOut,omitempty"`
	// Errors counts failed events (expression errors, sink failures).
	Errors int64 `json:"errors,omitempty"`
	// AlertsFiring is the number of alerts firing now, summed over nodes.
	AlertsFiring int64 `json:"alertsFiring,omitempty"`
	// NodeStatuses lists per-node state, nodes not running the current
	// plan first, at most MaxNodeStatuses entries (counts above are
	// always complete).
	NodeStatuses []PipelineNodeStatus `json:"nodeStatuses,omitempty"`
}

// MaxNodeStatuses bounds status.nodeStatuses so that a Pipeline placed on
// thousands of nodes stays far below etcd's object size limit.
const MaxNodeStatuses = 50

// PipelineNodeStatus is one node's view of a pipeline.
type PipelineNodeStatus struct {
	// Node is the EdgeNode name.
	Node string `json:"node"`
	// State is Pending, Delivered, Running or Failed.
	State NodeState `json:"state"`
	// Version is the plan version (generation) the node runs.
	Version int64 `json:"version,omitempty"`
	// Message explains a Failed state.
	Message string `json:"message,omitempty"`
}

// +kubebuilder:object:root=true

// PipelineList is a list of Pipelines.
type PipelineList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the pipelines.
	Items []Pipeline `json:"items"`
}

// EdgeNode is one edge runner known to the controller: created from the
// runner's registration, kept Ready by its heartbeats. Labels set on it in
// the cluster drive Pipeline selection.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=en,categories=eddy
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Pipelines",type=integer,JSONPath=`.status.pipelines`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.version`
// +kubebuilder:printcolumn:name="Last-Seen",type=date,JSONPath=`.status.lastHeartbeatTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EdgeNode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is set by users.
	Spec EdgeNodeSpec `json:"spec,omitempty"`
	// Status is written by the controller from the node's reports.
	Status EdgeNodeStatus `json:"status,omitempty"`
}

// EdgeNodeSpec is the part of an EdgeNode users set.
type EdgeNodeSpec struct {
	// Unschedulable keeps new placements off the node: Pipelines and
	// Devices already on it stay, no new ones are added.
	Unschedulable bool `json:"unschedulable,omitempty"`
}

// EdgeNodeStatus is what the node reported.
type EdgeNodeStatus struct {
	// Conditions: Ready (False after the configured silence).
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// LastHeartbeatTime is when the last heartbeat arrived.
	LastHeartbeatTime *metav1.Time `json:"lastHeartbeatTime,omitempty"`
	// Version is the edge runner's version.
	Version string `json:"version,omitempty"`
	// Labels the node registered with (applied to metadata.labels only when
	// the EdgeNode is created; afterwards the cluster's labels win).
	ReportedLabels map[string]string `json:"reportedLabels,omitempty"`
	// Pipelines counts the pipelines the node runs.
	Pipelines int32 `json:"pipelines,omitempty"`
}

// +kubebuilder:object:root=true

// EdgeNodeList is a list of EdgeNodes.
type EdgeNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the nodes.
	Items []EdgeNode `json:"items"`
}
