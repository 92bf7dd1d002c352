package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EndpointType is the kind of a RuleEndpoint.
type EndpointType string

// The endpoint types KubeEdge's router knows.
const (
	// EndpointRest is an HTTP path in the cloud (source) or an HTTP URL
	// (target).
	EndpointRest EndpointType = "rest"
	// EndpointEventBus is an MQTT topic on an edge node.
	EndpointEventBus EndpointType = "eventbus"
	// EndpointServiceBus is an HTTP service on an edge node.
	EndpointServiceBus EndpointType = "servicebus"
)

// Rule routes messages from a source endpoint to a target endpoint.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=eddy
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=`.spec.source`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.target`
// +kubebuilder:printcolumn:name="Success",type=integer,JSONPath=`.status.successMessages`
// +kubebuilder:printcolumn:name="Fail",type=integer,JSONPath=`.status.failMessages`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Rule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec says where messages come from and go to.
	Spec RuleSpec `json:"spec,omitempty"`
	// Status counts messages (written in batches by the controller).
	Status RuleStatus `json:"status,omitempty"`
}

// RuleSpec is KubeEdge's rule spec.
type RuleSpec struct {
	// Source names the source RuleEndpoint.
	Source string `json:"source"`
	// SourceResource: rest {"path": "/a"}; eventbus {"topic": "t",
	// "node_name": "edge-1"}.
	SourceResource map[string]string `json:"sourceResource"`
	// Target names the target RuleEndpoint.
	Target string `json:"target"`
	// TargetResource: rest {"resource": "http://..."}; eventbus
	// {"topic": "t"}; servicebus {"path": "/p"}.
	TargetResource map[string]string `json:"targetResource"`
}

// RuleStatus is KubeEdge's rule status.
type RuleStatus struct {
	// SuccessMessages counts messages delivered.
	SuccessMessages int64 `json:"successMessages,omitempty"`
	// FailMessages counts messages that could not be delivered.
	FailMessages int64 `json:"failMessages,omitempty"`
	// Errors holds the latest errors (newest last, at most a few).
	Errors []string `json:"errors,omitempty"`
}

// +kubebuilder:object:root=true

// RuleList is a list of Rules.
type RuleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the rules.
	Items []Rule `json:"items"`
}

// RuleEndpoint is one end of a Rule.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=re,categories=eddy
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.ruleEndpointType`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RuleEndpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the endpoint's type and properties.
	Spec RuleEndpointSpec `json:"spec,omitempty"`
}

// RuleEndpointSpec is KubeEdge's rule endpoint spec.
type RuleEndpointSpec struct {
	// RuleEndpointType is rest, eventbus or servicebus.
	RuleEndpointType EndpointType `json:"ruleEndpointType"`
	// Properties: servicebus requires service_port (1-65535).
	Properties map[string]string `json:"properties,omitempty"`
}

// +kubebuilder:object:root=true

// RuleEndpointList is a list of RuleEndpoints.
type RuleEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the endpoints.
	Items []RuleEndpoint `json:"items"`
}
