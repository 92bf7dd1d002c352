// Package v1alpha1 holds Eddy's own Kubernetes resources, group eddy.dev
// version v1alpha1: Pipeline (the spec is pipeline.Spec, the very type the
// YAML files and `eddy validate` use) and EdgeNode (one per registered edge
// runner). The CRDs in deploy/crds are generated from these types with
// controller-gen (`go generate ./controller/...`).
//
// +kubebuilder:object:generate=true
// +groupName=eddy.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is eddy.dev/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "eddy.dev", Version: "v1alpha1"}

// AddToScheme registers Pipeline and EdgeNode (and their lists) in a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Pipeline{}, &PipelineList{}, &EdgeNode{}, &EdgeNodeList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
