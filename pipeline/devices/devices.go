// Package devices owns Eddy's view of KubeEdge's Device and DeviceModel
// resources: their wire shapes in devices.kubeedge.io/v1beta1 (the storage
// version) and v1alpha2, strict decoding from YAML with file:line errors,
// normalization of both versions into one model (Device, Model), and the
// join and validation of devices against their models (Resolve).
//
// It is pure like the rest of pipeline/: no I/O beyond the bytes handed in,
// no goroutines, no network. Talking to devices is the job of connectors
// (e.g. connectors/modbus); twins are the runner's.
//
// Cycles: KubeEdge declares collectCycle and reportCycle as int64 without a
// unit. The v1beta1 mapper framework multiplies them by time.Millisecond,
// while the legacy mappers (and KubeEdge's own samples) use them as raw
// nanoseconds, so that a sample's "collectCycle: 5000" means 5µs. Eddy
// reads them as MILLISECONDS in both versions: collectCycle: 1000 is 1s.
package devices

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/eddy-edge/eddy/pipeline/strictyaml"
)

// Group is the API group of devices and models.
const Group = "devices.kubeedge.io"

// API versions accepted by Load.
const (
	V1beta1  = Group + "/v1beta1"
	V1alpha2 = Group + "/v1alpha2"
)

// Defaults applied by Load.
const (
	// DefaultCollectCycle is used when a property has no collectCycle (as
	// in KubeEdge's mappers).
	DefaultCollectCycle = time.Second
	// DefaultModbusTCPPort is used when a TCP device has no port.
	DefaultModbusTCPPort = 502
	// DefaultBaudRate is used when a serial device has no baud rate.
	DefaultBaudRate = 19200
)

// PropertyType is the type of a property's value.
type PropertyType string

// Property types, as written in v1beta1 models (v1alpha2's lower-case
// names map onto them).
const (
	TypeInt     PropertyType = "INT"
	TypeFloat   PropertyType = "FLOAT"
	TypeDouble  PropertyType = "DOUBLE"
	TypeString  PropertyType = "STRING"
	TypeBoolean PropertyType = "BOOLEAN"
	TypeBytes   PropertyType = "BYTES"
	TypeStream  PropertyType = "STREAM"
)

var propertyTypes = []PropertyType{TypeInt, TypeFloat, TypeDouble, TypeString, TypeBoolean, TypeBytes, TypeStream}

// AccessMode says whether a property may be written.
type AccessMode string

// Access modes.
const (
	ReadWrite AccessMode = "ReadWrite"
	ReadOnly  AccessMode = "ReadOnly"
)

// RegisterKind is a Modbus data table.
type RegisterKind string

// Modbus tables, as written in KubeEdge's v1alpha2 CRD. KubeEdge's samples
// and Modbus mapper spell three of them differently (CoilRegister,
// DiscreteInputRegister, InputRegister); Load accepts both spellings in
// either API version (see ParseRegisterKind).
const (
	Coil            RegisterKind = "Coil"
	DiscreteInput   RegisterKind = "DiscreteInput"
	Input           RegisterKind = "Input"
	HoldingRegister RegisterKind = "HoldingRegister"
)

var registerKinds = []RegisterKind{Coil, DiscreteInput, Input, HoldingRegister}

// registerSpellings maps every accepted spelling (lower case) to its kind:
// the CRD's names and the names KubeEdge's samples and mapper use.
var registerSpellings = map[string]RegisterKind{
	"coil": Coil, "coilregister": Coil,
	"discreteinput": DiscreteInput, "discreteinputregister": DiscreteInput,
	"input": Input, "inputregister": Input,
	"holdingregister": HoldingRegister, "holding": HoldingRegister,
}

// ParseRegisterKind reads a register kind in any accepted spelling, case
// insensitively: Coil or CoilRegister, DiscreteInput or
// DiscreteInputRegister, Input or InputRegister, HoldingRegister.
func ParseRegisterKind(s string) (RegisterKind, bool) {
	k, ok := registerSpellings[strings.ToLower(strings.TrimSpace(s))]
	return k, ok
}

// Writable reports whether the Modbus table can be written (coils and
// holding registers).
func (k RegisterKind) Writable() bool { return k == Coil || k == HoldingRegister }

// Bits reports whether the table holds single bits (coils, discrete inputs).
func (k RegisterKind) Bits() bool { return k == Coil || k == DiscreteInput }

// DataType is how a visitor's registers are interpreted. Multi-register
// values are big-endian (first register most significant) unless the
// visitor swaps registers or bytes.
type DataType string

// Data types and the number of 16-bit registers they span.
const (
	Int16   DataType = "int16"   // 1 register
	Uint16  DataType = "uint16"  // 1 register
	Int32   DataType = "int32"   // 2 registers
	Uint32  DataType = "uint32"  // 2 registers
	Float32 DataType = "float32" // 2 registers, IEEE 754
	Int64   DataType = "int64"   // 4 registers
	Uint64  DataType = "uint64"  // 4 registers
	Float64 DataType = "float64" // 4 registers, IEEE 754
	Bool    DataType = "bool"    // 1 coil/discrete input, or 1 register (non-zero is true)
	String  DataType = "string"  // limit registers, 2 ASCII bytes each, NULs trimmed
	Bytes   DataType = "bytes"   // limit registers, raw
)

var dataTypes = []DataType{Int16, Uint16, Int32, Uint32, Float32, Int64, Uint64, Float64, Bool, String, Bytes}

// Registers returns how many registers the type spans, or 0 when it spans
// the visitor's limit (string, bytes).
func (t DataType) Registers() int {
	switch t {
	case Int16, Uint16, Bool:
		return 1
	case Int32, Uint32, Float32:
		return 2
	case Int64, Uint64, Float64:
		return 4
	}
	return 0
}

// Numeric reports whether the type is a number.
func (t DataType) Numeric() bool {
	switch t {
	case Int16, Uint16, Int32, Uint32, Float32, Int64, Uint64, Float64:
		return true
	}
	return false
}

// Device is one device, normalized from either API version and, after
// Resolve, completed with its model's property declarations.
type Device struct {
	// Namespace of the device ("default" when not written).
	Namespace string
	// Name of the device.
	Name string
	// APIVersion it was written in.
	APIVersion string
	// Model names the DeviceModel in the same namespace.
	Model string
	// NodeName is the edge node the device is attached to (v1alpha2: the
	// node selector's value).
	NodeName string
	// Protocol says how to reach the device.
	Protocol Protocol
	// Properties in the order written.
	Properties []Property

	src *source
}

// ID returns "namespace/name", the device id of KubeEdge's topics.
func (d *Device) ID() string { return d.Namespace + "/" + d.Name }

// Pos returns where the device was declared (file and line of its
// metadata.name), or a zero Pos when it was not loaded from a file.
func (d *Device) Pos() strictyaml.Pos { return d.src.pos() }

// Property returns the property named name, or nil.
func (d *Device) Property(name string) *Property {
	for i := range d.Properties {
		if d.Properties[i].Name == name {
			return &d.Properties[i]
		}
	}
	return nil
}

// Protocol is a device's protocol; Modbus is the only one Eddy talks to.
type Protocol struct {
	// Name is the protocol name as written, e.g. modbus.
	Name string
	// Modbus is set for Modbus devices.
	Modbus *Modbus
}

// Modbus addresses one Modbus slave; exactly one of TCP and RTU is set.
type Modbus struct {
	// SlaveID is the unit id: 1..247 on a serial line; 0..255 over TCP,
	// where gateways route by it and single devices usually ignore it (0
	// when not written, as KubeEdge's Modbus mapper sends).
	SlaveID uint8
	// TCP is set for Modbus TCP.
	TCP *TCP
	// RTU is set for Modbus RTU on a serial line.
	RTU *RTU
}

// TCP is a Modbus TCP endpoint.
type TCP struct {
	// Addr is host:port.
	Addr string
}

// RTU is a serial line.
type RTU struct {
	// Port is the device path, e.g. /dev/ttyUSB0.
	Port string
	// Baud rate (default 19200).
	Baud int
	// DataBits (default 8).
	DataBits int
	// Parity is "N", "E" or "O" (default "E", as the Modbus spec says).
	Parity string
	// StopBits is 1 or 2 (default 1).
	StopBits int
}

// Property is one property of a device.
type Property struct {
	// Name of the property.
	Name string
	// Type of the value (from the model).
	Type PropertyType
	// AccessMode (from the model; default ReadWrite).
	AccessMode AccessMode
	// Min and Max bound numeric values when set (from the model).
	Min, Max *float64
	// Unit is free text (from the model).
	Unit string
	// Desired is the value the device should have, typed after Resolve
	// (int64, float64, bool, string or []byte); nil when none.
	Desired any
	// DesiredText is the desired value as written; "" when none.
	DesiredText string
	// CollectCycle is how often to read the property (default 1s).
	CollectCycle time.Duration
	// ReportCycle is how often to report it (0: every reading).
	ReportCycle time.Duration
	// ReportToCloud sends reported values to the cloud.
	ReportToCloud bool
	// Modbus says where the property lives; nil for other protocols.
	Modbus *ModbusVisitor

	path        string // field path of the property in its source document
	desiredPath string // field path of its desired value
}

// ModbusVisitor says where a property lives in a Modbus slave.
type ModbusVisitor struct {
	// Register is the table.
	Register RegisterKind
	// Offset is the first address (0-based, as on the wire).
	Offset uint16
	// Limit is the number of registers or coils.
	Limit uint16
	// Scale multiplies the raw number when reading and divides when
	// writing (1 when not written).
	Scale float64
	// IsSwap swaps the two bytes in every register.
	IsSwap bool
	// IsRegisterSwap reverses the order of the registers.
	IsRegisterSwap bool
	// DataType says how to interpret the registers.
	DataType DataType
}

// Model is a DeviceModel, normalized from either API version.
type Model struct {
	// Namespace of the model ("default" when not written).
	Namespace string
	// Name of the model.
	Name string
	// APIVersion it was written in.
	APIVersion string
	// Protocol name, e.g. modbus (informational).
	Protocol string
	// Properties declared by the model.
	Properties []ModelProperty

	src *source
}

// ID returns "namespace/name".
func (m *Model) ID() string { return m.Namespace + "/" + m.Name }

// Pos returns where the model was declared, like Device.Pos.
func (m *Model) Pos() strictyaml.Pos { return m.src.pos() }

// ModelProperty declares a property of a model.
type ModelProperty struct {
	// Name of the property.
	Name string
	// Description is free text.
	Description string
	// Type of the value.
	Type PropertyType
	// AccessMode is ReadWrite or ReadOnly.
	AccessMode AccessMode
	// Min and Max bound numeric values when set.
	Min, Max *float64
	// Unit is free text.
	Unit string
	// Default is v1alpha2's defaultValue as text; "" when none.
	Default string

	path string
}

// source remembers where an object was written, for errors.
type source struct {
	doc *strictyaml.Document
}

func (s *source) pos() strictyaml.Pos {
	if s == nil || s.doc == nil {
		return strictyaml.Pos{}
	}
	return s.doc.PosOf("metadata.name")
}

func (s *source) at(path, format string, args ...any) strictyaml.Error {
	if s == nil || s.doc == nil {
		return strictyaml.Error{Path: path, Msg: fmt.Sprintf(format, args...)}
	}
	return s.doc.At(path, format, args...)
}

// ParseValue parses text as a value of type t: int64 for INT, float64 for
// FLOAT and DOUBLE, bool for BOOLEAN, []byte for BYTES, string otherwise.
func ParseValue(t PropertyType, text string) (any, error) {
	switch t {
	case TypeInt:
		i, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			f, ferr := strconv.ParseFloat(text, 64)
			if ferr != nil || f != float64(int64(f)) {
				return nil, fmt.Errorf("%q is not a whole number", text)
			}
			i = int64(f)
		}
		return i, nil
	case TypeFloat, TypeDouble:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", text)
		}
		return f, nil
	case TypeBoolean:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", text)
		}
		return b, nil
	case TypeBytes:
		return []byte(text), nil
	}
	return text, nil
}
