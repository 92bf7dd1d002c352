package devices

// This file holds the wire shapes of KubeEdge's Device and DeviceModel
// resources, with json tags exactly as in KubeEdge's CRDs, in both served
// versions. They are decoded strictly and then normalized into Device and
// Model (see load.go); nothing outside this package needs them except a
// controller that writes them back.

// ObjectMeta is the subset of Kubernetes object metadata that devices carry.
// Fields set by the API server are accepted (so `kubectl get -o yaml` output
// loads) and ignored.
type ObjectMeta struct {
	// Name of the object.
	Name string `json:"name"`
	// Namespace defaults to "default".
	Namespace string `json:"namespace,omitempty"`
	// Labels are free-form.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are free-form.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Generation is set by Kubernetes.
	Generation int64 `json:"generation,omitempty"`
	// ResourceVersion is set by Kubernetes.
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// UID is set by Kubernetes.
	UID string `json:"uid,omitempty"`
	// CreationTimestamp is set by Kubernetes.
	CreationTimestamp string `json:"creationTimestamp,omitempty"`
	// ManagedFields is set by Kubernetes and ignored.
	ManagedFields []any `json:"managedFields,omitempty"`
	// OwnerReferences is set by Kubernetes and ignored.
	OwnerReferences []any `json:"ownerReferences,omitempty"`
	// Finalizers is set by Kubernetes and ignored.
	Finalizers []string `json:"finalizers,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the referent.
	Name string `json:"name"`
}

// ---- devices.kubeedge.io/v1beta1 ----

// V1beta1Device is a Device in devices.kubeedge.io/v1beta1.
type V1beta1Device struct {
	// APIVersion is devices.kubeedge.io/v1beta1.
	APIVersion string `json:"apiVersion"`
	// Kind is Device.
	Kind string `json:"kind"`
	// Metadata names the device.
	Metadata ObjectMeta `json:"metadata"`
	// Spec describes the device.
	Spec V1beta1DeviceSpec `json:"spec"`
	// Status is written by KubeEdge (up to v1.22) and ignored on input.
	Status *V1beta1DeviceStatus `json:"status,omitempty"`
}

// V1beta1DeviceSpec is the spec of a v1beta1 Device.
type V1beta1DeviceSpec struct {
	// DeviceModelRef names the DeviceModel in the same namespace.
	DeviceModelRef *LocalObjectReference `json:"deviceModelRef,omitempty"`
	// NodeName is the edge node the device is attached to.
	NodeName string `json:"nodeName,omitempty"`
	// Properties are the device's properties and how to read them.
	Properties []V1beta1DeviceProperty `json:"properties,omitempty"`
	// Protocol says how to reach the device.
	Protocol V1beta1ProtocolConfig `json:"protocol,omitempty"`
	// Methods group properties under a name (accepted, not used by Eddy).
	Methods []V1beta1DeviceMethod `json:"methods,omitempty"`
	// StateReport controls state reporting (KubeEdge v1.23; accepted).
	StateReport *V1beta1StateReport `json:"stateReport,omitempty"`
}

// V1beta1StateReport is KubeEdge's device state reporting setting.
type V1beta1StateReport struct {
	// ReportToCloud enables state reports.
	ReportToCloud bool `json:"reportToCloud,omitempty"`
	// ReportCycle in milliseconds.
	ReportCycle int64 `json:"reportCycle,omitempty"`
}

// V1beta1DeviceMethod is a named group of properties.
type V1beta1DeviceMethod struct {
	// Name of the method.
	Name string `json:"name"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// PropertyNames lists the properties the method touches.
	PropertyNames []string `json:"propertyNames,omitempty"`
}

// V1beta1ProtocolConfig is the protocol of a v1beta1 device; ConfigData is
// free-form in KubeEdge and decoded strictly for the protocols Eddy knows
// (modbus: see ModbusProtocolConfigData).
type V1beta1ProtocolConfig struct {
	// ProtocolName is e.g. modbus.
	ProtocolName string `json:"protocolName,omitempty"`
	// ConfigData holds protocol-specific settings.
	ConfigData map[string]any `json:"configData,omitempty"`
}

// V1beta1DeviceProperty is one property of a v1beta1 device.
type V1beta1DeviceProperty struct {
	// Name matches a property of the model.
	Name string `json:"name"`
	// Desired is the value the device should have.
	Desired *V1beta1TwinProperty `json:"desired,omitempty"`
	// Visitors says how to read the property.
	Visitors V1beta1VisitorConfig `json:"visitors,omitempty"`
	// ReportCycle in MILLISECONDS.
	ReportCycle int64 `json:"reportCycle,omitempty"`
	// CollectCycle in MILLISECONDS.
	CollectCycle int64 `json:"collectCycle,omitempty"`
	// ReportToCloud sends reported values to the cloud.
	ReportToCloud bool `json:"reportToCloud,omitempty"`
	// PushMethod is KubeEdge's mapper push configuration; accepted and
	// ignored (Eddy pipelines do this job).
	PushMethod map[string]any `json:"pushMethod,omitempty"`
}

// V1beta1TwinProperty is a value with metadata.
type V1beta1TwinProperty struct {
	// Value is the value as a string.
	Value string `json:"value"`
	// Metadata is free-form (e.g. type, timestamp).
	Metadata map[string]string `json:"metadata,omitempty"`
}

// V1beta1VisitorConfig is how a property is read.
type V1beta1VisitorConfig struct {
	// ProtocolName is e.g. modbus.
	ProtocolName string `json:"protocolName,omitempty"`
	// ConfigData holds protocol-specific settings (modbus: see
	// ModbusVisitorConfigData).
	ConfigData map[string]any `json:"configData,omitempty"`
}

// V1beta1DeviceStatus is the status KubeEdge writes (up to v1.22).
type V1beta1DeviceStatus struct {
	// Twins are the reported values.
	Twins []V1beta1Twin `json:"twins,omitempty"`
	// State is online/offline.
	State string `json:"state,omitempty"`
	// LastOnlineTime is a timestamp.
	LastOnlineTime string `json:"lastOnlineTime,omitempty"`
	// ReportToCloud mirrors the spec.
	ReportToCloud bool `json:"reportToCloud,omitempty"`
	// ReportCycle mirrors the spec.
	ReportCycle int64 `json:"reportCycle,omitempty"`
}

// V1beta1Twin is one twin in the v1beta1 status.
type V1beta1Twin struct {
	// PropertyName names the property.
	PropertyName string `json:"propertyName"`
	// Reported is the last value read from the device.
	Reported V1beta1TwinProperty `json:"reported,omitempty"`
	// ObservedDesired is the desired value the mapper has seen.
	ObservedDesired V1beta1TwinProperty `json:"observedDesired,omitempty"`
}

// ModbusProtocolConfigData is spec.protocol.configData of a v1beta1 Modbus
// device: ip+port for Modbus TCP, or serialPort (+ line settings) for RTU.
type ModbusProtocolConfigData struct {
	// SlaveID is the unit id: 1..247 for RTU (required); 0..255 for TCP
	// (default 0, as KubeEdge's Modbus mapper).
	SlaveID *int `json:"slaveID,omitempty"`
	// IP of a Modbus TCP device.
	IP string `json:"ip,omitempty"`
	// Port of a Modbus TCP device (default 502).
	Port int `json:"port,omitempty"`
	// SerialPort of an RTU device, e.g. /dev/ttyUSB0.
	SerialPort string `json:"serialPort,omitempty"`
	// BaudRate of the serial line (default 19200).
	BaudRate int `json:"baudRate,omitempty"`
	// DataBits of the serial line (default 8).
	DataBits int `json:"dataBits,omitempty"`
	// Parity of the serial line: none, even, odd (or N, E, O; default even).
	Parity string `json:"parity,omitempty"`
	// StopBits of the serial line (default 1).
	StopBits int `json:"stopBits,omitempty"`
}

// ModbusVisitorConfigData is properties[].visitors.configData of a
// v1beta1 Modbus device (and, without dataType, the v1alpha2 visitor).
type ModbusVisitorConfigData struct {
	// Register is Coil, DiscreteInput, Input or HoldingRegister, or
	// KubeEdge's spellings CoilRegister, DiscreteInputRegister,
	// InputRegister.
	Register string `json:"register"`
	// Offset is the first register or coil address.
	Offset int `json:"offset"`
	// Limit is the number of registers (or coils) to read.
	Limit int `json:"limit,omitempty"`
	// Scale multiplies the raw value (default 1).
	Scale float64 `json:"scale,omitempty"`
	// IsSwap swaps the two bytes of every register.
	IsSwap bool `json:"isSwap,omitempty"`
	// IsRegisterSwap reverses the order of the registers.
	IsRegisterSwap bool `json:"isRegisterSwap,omitempty"`
	// DataType is how the registers are read (see DataType); derived from
	// the property type and limit when absent.
	DataType string `json:"dataType,omitempty"`
}

// V1beta1DeviceModel is a DeviceModel in devices.kubeedge.io/v1beta1.
type V1beta1DeviceModel struct {
	// APIVersion is devices.kubeedge.io/v1beta1.
	APIVersion string `json:"apiVersion"`
	// Kind is DeviceModel.
	Kind string `json:"kind"`
	// Metadata names the model.
	Metadata ObjectMeta `json:"metadata"`
	// Spec describes the model.
	Spec V1beta1DeviceModelSpec `json:"spec"`
}

// V1beta1DeviceModelSpec is the spec of a v1beta1 DeviceModel.
type V1beta1DeviceModelSpec struct {
	// Properties of devices of this model.
	Properties []V1beta1ModelProperty `json:"properties,omitempty"`
	// Protocol is the protocol name, e.g. modbus.
	Protocol string `json:"protocol,omitempty"`
}

// V1beta1ModelProperty declares a property of a model.
type V1beta1ModelProperty struct {
	// Name of the property.
	Name string `json:"name"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// Type is INT, FLOAT, DOUBLE, STRING, BOOLEAN, BYTES or STREAM.
	Type string `json:"type,omitempty"`
	// AccessMode is ReadWrite or ReadOnly.
	AccessMode string `json:"accessMode,omitempty"`
	// Minimum as a string number.
	Minimum string `json:"minimum,omitempty"`
	// Maximum as a string number.
	Maximum string `json:"maximum,omitempty"`
	// Unit is free text, e.g. C.
	Unit string `json:"unit,omitempty"`
}

// ---- devices.kubeedge.io/v1alpha2 ----

// V1alpha2Device is a Device in devices.kubeedge.io/v1alpha2.
type V1alpha2Device struct {
	// APIVersion is devices.kubeedge.io/v1alpha2.
	APIVersion string `json:"apiVersion"`
	// Kind is Device.
	Kind string `json:"kind"`
	// Metadata names the device.
	Metadata ObjectMeta `json:"metadata"`
	// Spec describes the device.
	Spec V1alpha2DeviceSpec `json:"spec"`
	// Status holds the twins; in v1alpha2 users write desired values here.
	Status *V1alpha2DeviceStatus `json:"status,omitempty"`
}

// V1alpha2DeviceSpec is the spec of a v1alpha2 Device.
type V1alpha2DeviceSpec struct {
	// DeviceModelRef names the DeviceModel in the same namespace.
	DeviceModelRef *LocalObjectReference `json:"deviceModelRef,omitempty"`
	// Protocol says how to reach the device.
	Protocol V1alpha2ProtocolConfig `json:"protocol,omitempty"`
	// PropertyVisitors say how to read each property.
	PropertyVisitors []V1alpha2PropertyVisitor `json:"propertyVisitors,omitempty"`
	// Data lists data (non-twin) properties.
	Data *V1alpha2DeviceData `json:"data,omitempty"`
	// NodeSelector picks the node; its values are node names.
	NodeSelector *NodeSelector `json:"nodeSelector,omitempty"`
}

// NodeSelector is Kubernetes' core/v1 NodeSelector.
type NodeSelector struct {
	// NodeSelectorTerms are ORed.
	NodeSelectorTerms []NodeSelectorTerm `json:"nodeSelectorTerms"`
}

// NodeSelectorTerm is one term of a NodeSelector.
type NodeSelectorTerm struct {
	// MatchExpressions are node label requirements.
	MatchExpressions []NodeSelectorRequirement `json:"matchExpressions,omitempty"`
	// MatchFields are node field requirements.
	MatchFields []NodeSelectorRequirement `json:"matchFields,omitempty"`
}

// NodeSelectorRequirement is key operator values.
type NodeSelectorRequirement struct {
	// Key is the label key ("" in KubeEdge's samples).
	Key string `json:"key"`
	// Operator is In, NotIn, Exists, ...
	Operator string `json:"operator"`
	// Values are node names for KubeEdge devices.
	Values []string `json:"values,omitempty"`
}

// V1alpha2ProtocolConfig is the protocol of a v1alpha2 device.
type V1alpha2ProtocolConfig struct {
	// OpcUA settings (accepted, not supported by Eddy's mappers).
	OpcUA map[string]any `json:"opcua,omitempty"`
	// Modbus settings.
	Modbus *V1alpha2ModbusProtocol `json:"modbus,omitempty"`
	// Bluetooth settings (accepted, not supported).
	Bluetooth map[string]any `json:"bluetooth,omitempty"`
	// CustomizedProtocol settings (accepted, not supported).
	CustomizedProtocol map[string]any `json:"customizedProtocol,omitempty"`
	// Common settings: the serial line or TCP address.
	Common *V1alpha2ProtocolCommon `json:"common,omitempty"`
}

// V1alpha2ModbusProtocol is protocol.modbus.
type V1alpha2ModbusProtocol struct {
	// SlaveID is the unit id: 1..247 for RTU (required); 0..255 for TCP
	// (default 0, as KubeEdge's Modbus mapper).
	SlaveID *int `json:"slaveID,omitempty"`
}

// V1alpha2ProtocolCommon is protocol.common.
type V1alpha2ProtocolCommon struct {
	// COM is a serial line.
	COM *V1alpha2COM `json:"com,omitempty"`
	// TCP is a TCP address.
	TCP *V1alpha2TCP `json:"tcp,omitempty"`
	// CommType is e.g. tcp or com (informational).
	CommType string `json:"commType,omitempty"`
	// ReconnTimeout (accepted, ignored).
	ReconnTimeout int64 `json:"reconnTimeout,omitempty"`
	// ReconnRetryTimes (accepted, ignored).
	ReconnRetryTimes int64 `json:"reconnRetryTimes,omitempty"`
	// CollectTimeout (accepted, ignored).
	CollectTimeout int64 `json:"collectTimeout,omitempty"`
	// CollectRetryTimes (accepted, ignored).
	CollectRetryTimes int64 `json:"collectRetryTimes,omitempty"`
	// CollectType is sync or async (accepted, ignored).
	CollectType string `json:"collectType,omitempty"`
	// CustomizedValues are free-form.
	CustomizedValues map[string]any `json:"customizedValues,omitempty"`
}

// V1alpha2COM is a serial line.
type V1alpha2COM struct {
	// SerialPort e.g. /dev/ttyUSB0.
	SerialPort string `json:"serialPort"`
	// BaudRate e.g. 9600.
	BaudRate int `json:"baudRate,omitempty"`
	// DataBits e.g. 8.
	DataBits int `json:"dataBits,omitempty"`
	// Parity: none, even or odd.
	Parity string `json:"parity,omitempty"`
	// StopBits: 1 or 2.
	StopBits int `json:"stopBits,omitempty"`
}

// V1alpha2TCP is a TCP address.
type V1alpha2TCP struct {
	// IP of the device.
	IP string `json:"ip"`
	// Port of the device (default 502).
	Port int `json:"port,omitempty"`
}

// V1alpha2PropertyVisitor says how to read one property.
type V1alpha2PropertyVisitor struct {
	// PropertyName matches a property of the model.
	PropertyName string `json:"propertyName"`
	// ReportCycle in milliseconds (see the package doc).
	ReportCycle int64 `json:"reportCycle,omitempty"`
	// CollectCycle in milliseconds (see the package doc).
	CollectCycle int64 `json:"collectCycle,omitempty"`
	// CustomizedValues are free-form.
	CustomizedValues map[string]any `json:"customizedValues,omitempty"`
	// Modbus visitor.
	Modbus *ModbusVisitorConfigData `json:"modbus,omitempty"`
	// OpcUA visitor (accepted, not supported).
	OpcUA map[string]any `json:"opcua,omitempty"`
	// Bluetooth visitor (accepted, not supported).
	Bluetooth map[string]any `json:"bluetooth,omitempty"`
	// CustomizedProtocol visitor (accepted, not supported).
	CustomizedProtocol map[string]any `json:"customizedProtocol,omitempty"`
}

// V1alpha2DeviceData lists data properties.
type V1alpha2DeviceData struct {
	// DataProperties are properties published as data, not twins.
	DataProperties []V1alpha2DataProperty `json:"dataProperties,omitempty"`
	// DataTopic defaults to $ke/events/device/+/data/update.
	DataTopic string `json:"dataTopic,omitempty"`
}

// V1alpha2DataProperty is one data property.
type V1alpha2DataProperty struct {
	// PropertyName names the property.
	PropertyName string `json:"propertyName"`
	// Metadata is free-form.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// V1alpha2DeviceStatus holds the twins.
type V1alpha2DeviceStatus struct {
	// Twins carry desired and reported values.
	Twins []V1alpha2Twin `json:"twins,omitempty"`
}

// V1alpha2Twin is one twin.
type V1alpha2Twin struct {
	// PropertyName names the property.
	PropertyName string `json:"propertyName"`
	// Desired is the value the device should have.
	Desired *V1alpha2TwinProperty `json:"desired,omitempty"`
	// Reported is the last value read.
	Reported *V1alpha2TwinProperty `json:"reported,omitempty"`
}

// V1alpha2TwinProperty is a value with metadata.
type V1alpha2TwinProperty struct {
	// Value as a string.
	Value string `json:"value"`
	// Metadata is free-form (e.g. type, timestamp).
	Metadata map[string]string `json:"metadata,omitempty"`
}

// V1alpha2DeviceModel is a DeviceModel in devices.kubeedge.io/v1alpha2.
type V1alpha2DeviceModel struct {
	// APIVersion is devices.kubeedge.io/v1alpha2.
	APIVersion string `json:"apiVersion"`
	// Kind is DeviceModel.
	Kind string `json:"kind"`
	// Metadata names the model.
	Metadata ObjectMeta `json:"metadata"`
	// Spec describes the model.
	Spec V1alpha2DeviceModelSpec `json:"spec"`
}

// V1alpha2DeviceModelSpec is the spec of a v1alpha2 DeviceModel.
type V1alpha2DeviceModelSpec struct {
	// Protocol name (informational).
	Protocol string `json:"protocol,omitempty"`
	// Properties of devices of this model.
	Properties []V1alpha2ModelProperty `json:"properties,omitempty"`
}

// V1alpha2ModelProperty declares a property; exactly one type is set.
type V1alpha2ModelProperty struct {
	// Name of the property.
	Name string `json:"name"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// Type holds exactly one of int, string, double, float, boolean, bytes.
	Type V1alpha2PropertyType `json:"type"`
}

// V1alpha2PropertyType is a one-of property type.
type V1alpha2PropertyType struct {
	// Int property.
	Int *V1alpha2TypeSpec `json:"int,omitempty"`
	// String property.
	String *V1alpha2TypeSpec `json:"string,omitempty"`
	// Double property.
	Double *V1alpha2TypeSpec `json:"double,omitempty"`
	// Float property.
	Float *V1alpha2TypeSpec `json:"float,omitempty"`
	// Boolean property.
	Boolean *V1alpha2TypeSpec `json:"boolean,omitempty"`
	// Bytes property.
	Bytes *V1alpha2TypeSpec `json:"bytes,omitempty"`
}

// V1alpha2TypeSpec holds the settings shared by all v1alpha2 types.
type V1alpha2TypeSpec struct {
	// AccessMode is ReadWrite or ReadOnly.
	AccessMode string `json:"accessMode,omitempty"`
	// DefaultValue (any scalar).
	DefaultValue any `json:"defaultValue,omitempty"`
	// Minimum (int and numeric types).
	Minimum *float64 `json:"minimum,omitempty"`
	// Maximum (int and numeric types).
	Maximum *float64 `json:"maximum,omitempty"`
	// Unit is free text.
	Unit string `json:"unit,omitempty"`
}
