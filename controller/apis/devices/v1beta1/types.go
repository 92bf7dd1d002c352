package v1beta1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Device is one device instance attached to an edge node.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=eddy
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.deviceModelRef.name`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Device struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec describes the device.
	Spec DeviceSpec `json:"spec,omitempty"`
	// Status holds reported twin values and the online state (KubeEdge
	// v1.22's shape; written by the controller from edge reports).
	Status DeviceStatus `json:"status,omitempty"`
}

// DeviceSpec is one device instance.
type DeviceSpec struct {
	// DeviceModelRef names the DeviceModel in the same namespace.
	DeviceModelRef *LocalObjectReference `json:"deviceModelRef,omitempty"`
	// NodeName is the edge node the device is attached to.
	NodeName string `json:"nodeName,omitempty"`
	// Properties are the device's properties and how to read them.
	Properties []DeviceProperty `json:"properties,omitempty"`
	// Protocol says how to reach the device.
	Protocol ProtocolConfig `json:"protocol,omitempty"`
	// Methods group properties under a name.
	Methods []DeviceMethod `json:"methods,omitempty"`
	// StateReport controls state reporting (KubeEdge v1.23).
	StateReport *StateReport `json:"stateReport,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
//
// +structType=atomic
type LocalObjectReference struct {
	// Name of the referent.
	// +kubebuilder:default=""
	Name string `json:"name,omitempty"`
}

// StateReport is KubeEdge's device state reporting setting.
type StateReport struct {
	// ReportToCloud enables state reports.
	ReportToCloud bool `json:"reportToCloud,omitempty"`
	// ReportCycle in milliseconds.
	ReportCycle int64 `json:"reportCycle,omitempty"`
}

// DeviceMethod is a named group of properties.
type DeviceMethod struct {
	// Name of the method.
	Name string `json:"name,omitempty"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// PropertyNames lists the properties the method touches.
	PropertyNames []string `json:"propertyNames,omitempty"`
}

// ProtocolConfig is how the device is reached.
type ProtocolConfig struct {
	// ProtocolName is e.g. modbus.
	ProtocolName string `json:"protocolName,omitempty"`
	// ConfigData holds protocol-specific settings (modbus: slaveID, ip,
	// port, serialPort, baudRate, dataBits, parity, stopBits).
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	ConfigData *apiextensionsv1.JSON `json:"configData,omitempty"`
}

// DeviceProperty is one property of a device.
type DeviceProperty struct {
	// Name matches a property of the model.
	Name string `json:"name,omitempty"`
	// Desired is the value the device should have; a change reaches the
	// edge twin and so the device, as a twin delta.
	Desired *TwinProperty `json:"desired,omitempty"`
	// Visitors says how to read the property.
	Visitors VisitorConfig `json:"visitors,omitempty"`
	// ReportCycle in MILLISECONDS.
	ReportCycle int64 `json:"reportCycle,omitempty"`
	// CollectCycle in MILLISECONDS.
	CollectCycle int64 `json:"collectCycle,omitempty"`
	// ReportToCloud sends reported values to the cloud.
	ReportToCloud bool `json:"reportToCloud,omitempty"`
	// PushMethod is KubeEdge's mapper push configuration (accepted;
	// Eddy pipelines do this job).
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	PushMethod *apiextensionsv1.JSON `json:"pushMethod,omitempty"`
}

// TwinProperty is a value with metadata.
type TwinProperty struct {
	// Value is the value as a string.
	Value string `json:"value"`
	// Metadata is free-form (e.g. type, timestamp).
	Metadata map[string]string `json:"metadata,omitempty"`
}

// VisitorConfig is how a property is read.
type VisitorConfig struct {
	// ProtocolName is e.g. modbus.
	ProtocolName string `json:"protocolName,omitempty"`
	// ConfigData holds protocol-specific settings (modbus: register,
	// offset, limit, scale, isSwap, isRegisterSwap, dataType).
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	ConfigData *apiextensionsv1.JSON `json:"configData,omitempty"`
}

// DeviceState is online or offline, as KubeEdge writes it.
type DeviceState string

// Device states.
const (
	// DeviceOnline: the device's mapper (or Eddy's Modbus poller) reaches it.
	DeviceOnline DeviceState = "online"
	// DeviceOffline: the device does not answer.
	DeviceOffline DeviceState = "offline"
	// DeviceUnknown: nothing reported yet, or the node is not Ready.
	DeviceUnknown DeviceState = "unknown"
)

// DeviceStatus is KubeEdge v1.22's device status.
//
// +kubebuilder:pruning:PreserveUnknownFields
type DeviceStatus struct {
	// Twins are the reported values.
	Twins []Twin `json:"twins,omitempty"`
	// State is online, offline or unknown.
	State DeviceState `json:"state,omitempty"`
	// LastOnlineTime is when the device was last seen online (RFC 3339).
	LastOnlineTime string `json:"lastOnlineTime,omitempty"`
	// ReportToCloud mirrors the spec.
	ReportToCloud bool `json:"reportToCloud,omitempty"`
	// ReportCycle mirrors the spec.
	ReportCycle int64 `json:"reportCycle,omitempty"`
	// Conditions are Eddy's addition (kept by KubeEdge's CRD too, whose
	// status preserves unknown fields): Compiled (the device and its model
	// pass the edge's loader, or the error with its field path) and
	// Delivered (written to the node's plans).
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Twin is one property's reported value.
type Twin struct {
	// PropertyName names the property.
	PropertyName string `json:"propertyName,omitempty"`
	// Reported is the last value read from the device.
	Reported TwinProperty `json:"reported,omitempty"`
	// ObservedDesired is the desired value the edge has applied.
	ObservedDesired TwinProperty `json:"observedDesired,omitempty"`
}

// +kubebuilder:object:root=true

// DeviceList is a list of Devices.
type DeviceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the devices.
	Items []Device `json:"items"`
}

// DeviceModel declares the properties devices of one kind have.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=eddy
type DeviceModel struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec describes the model.
	Spec DeviceModelSpec `json:"spec,omitempty"`
}

// DeviceModelSpec is the spec of a DeviceModel.
type DeviceModelSpec struct {
	// Properties of devices of this model.
	Properties []ModelProperty `json:"properties,omitempty"`
	// Protocol is the protocol name, e.g. modbus.
	Protocol string `json:"protocol,omitempty"`
}

// ModelProperty declares a property of a model.
type ModelProperty struct {
	// Name of the property.
	Name string `json:"name,omitempty"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// Type of the property.
	// +kubebuilder:validation:Enum=INT;FLOAT;DOUBLE;STRING;BOOLEAN;BYTES;STREAM
	Type string `json:"type,omitempty"`
	// AccessMode is ReadWrite or ReadOnly.
	// +kubebuilder:validation:Enum=ReadWrite;ReadOnly
	AccessMode string `json:"accessMode,omitempty"`
	// Minimum as a string number.
	Minimum string `json:"minimum,omitempty"`
	// Maximum as a string number.
	Maximum string `json:"maximum,omitempty"`
	// Unit is free text, e.g. C.
	Unit string `json:"unit,omitempty"`
}

// +kubebuilder:object:root=true

// DeviceModelList is a list of DeviceModels.
type DeviceModelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the models.
	Items []DeviceModel `json:"items"`
}
