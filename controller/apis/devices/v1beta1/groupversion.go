// Package v1beta1 holds KubeEdge's Device and DeviceModel resources, group
// devices.kubeedge.io version v1beta1 (what KubeEdge 1.15 and later store),
// field for field as KubeEdge declares them so the same YAML applies to a
// cluster with Eddy's CRDs or with KubeEdge's own. Free-form KubeEdge fields
// (protocol and visitor configData, pushMethod) are kept as raw JSON; the
// controller hands the whole object to pipeline/devices, the loader the edge
// and `eddy validate` use, which decodes them strictly.
//
// Like KubeEdge's CRD, Device has no status subresource: status is written
// with a merge patch on the object, which works the same against either CRD.
//
// +kubebuilder:object:generate=true
// +groupName=devices.kubeedge.io
package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is devices.kubeedge.io/v1beta1.
var GroupVersion = schema.GroupVersion{Group: "devices.kubeedge.io", Version: "v1beta1"}

// AddToScheme registers Device and DeviceModel (and their lists).
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Device{}, &DeviceList{}, &DeviceModel{}, &DeviceModelList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
