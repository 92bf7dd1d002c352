// Package v1 holds KubeEdge's router resources, group rules.kubeedge.io
// version v1: Rule and RuleEndpoint, field for field as KubeEdge declares
// them. Like KubeEdge's CRDs they have no status subresource; the
// controller writes Rule status with a merge patch, batched (never one
// write per message).
//
// +kubebuilder:object:generate=true
// +groupName=rules.kubeedge.io
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is rules.kubeedge.io/v1.
var GroupVersion = schema.GroupVersion{Group: "rules.kubeedge.io", Version: "v1"}

// AddToScheme registers Rule and RuleEndpoint (and their lists).
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Rule{}, &RuleList{}, &RuleEndpoint{}, &RuleEndpointList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
