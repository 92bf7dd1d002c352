package kubeedge

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// The JSON messages of the protocol, with KubeEdge's field names
// (edge/pkg/devicetwin/dttype). Values are json.RawMessage: KubeEdge sends
// strings ("22"), Eddy also accepts and keeps any JSON value; use
// StringValue to build KubeEdge's form.

// Result codes of error results, as in KubeEdge (dtcommon).
const (
	CodeBadRequest = 400
	CodeNotFound   = 404
	CodeConflict   = 409
	CodeInternal   = 500
)

// Device states of state/update.
const (
	StateOnline  = "online"
	StateOffline = "offline"
	StateUnknown = "unknown"
)

// BaseMessage starts every message.
type BaseMessage struct {
	// EventID identifies the message; results echo the request's.
	EventID string `json:"event_id"`
	// Timestamp is the sender's time in unix milliseconds.
	Timestamp int64 `json:"timestamp"`
}

// ValueMetadata is the metadata of one value.
type ValueMetadata struct {
	// Timestamp is when the value was measured or set, unix milliseconds.
	Timestamp int64 `json:"timestamp,omitempty"`
}

// TwinValue is an expected (desired) or actual (reported) value.
type TwinValue struct {
	// Value is the JSON value (KubeEdge: always a string).
	Value json.RawMessage `json:"value,omitempty"`
	// Metadata carries the value's timestamp.
	Metadata *ValueMetadata `json:"metadata,omitempty"`
}

// TypeMetadata names a twin's type (int, float, double, boolean, string,
// bytes: the model's type in lower case).
type TypeMetadata struct {
	// Type of the value.
	Type string `json:"type,omitempty"`
}

// TwinVersion counts how often the cloud and the edge changed a value.
type TwinVersion struct {
	// Cloud changes.
	Cloud int64 `json:"cloud"`
	// Edge changes.
	Edge int64 `json:"edge"`
}

// OlderThan reports whether v is behind w in either component.
func (v TwinVersion) OlderThan(w TwinVersion) bool { return v.Cloud < w.Cloud || v.Edge < w.Edge }

// MsgTwin is one property's twin in twin/update, its results, deltas,
// documents and membership updates.
type MsgTwin struct {
	// Expected is the desired value.
	Expected *TwinValue `json:"expected,omitempty"`
	// Actual is the reported value.
	Actual *TwinValue `json:"actual,omitempty"`
	// Optional twins may be deleted from the edge.
	Optional *bool `json:"optional,omitempty"`
	// Metadata names the type.
	Metadata *TypeMetadata `json:"metadata,omitempty"`
	// ExpectedVersion is the version of Expected.
	ExpectedVersion *TwinVersion `json:"expected_version,omitempty"`
	// ActualVersion is the version of Actual.
	ActualVersion *TwinVersion `json:"actual_version,omitempty"`
	// Undeclared is Eddy's flag for a property the device model does not
	// declare (KubeEdge drops those); absent otherwise.
	Undeclared bool `json:"undeclared,omitempty"`
}

// TwinUpdateMsg is the body of twin/update, twin/update/result and
// twin/get/result: a map from property name to twin. A null twin deletes
// an undeclared property.
type TwinUpdateMsg struct {
	BaseMessage
	// Twin by property name.
	Twin map[string]*MsgTwin `json:"twin"`
}

// TwinDeltaMsg is the body of twin/update/delta: Delta maps each property
// whose expected value differs from its actual value to the expected one.
type TwinDeltaMsg struct {
	BaseMessage
	// Twin holds every twin with an expected value.
	Twin map[string]*MsgTwin `json:"twin"`
	// Delta by property name.
	Delta map[string]json.RawMessage `json:"delta"`
}

// TwinDoc is a property's twin before and after a change.
type TwinDoc struct {
	// Last is the twin before (nil when added).
	Last *MsgTwin `json:"last"`
	// Current is the twin after (nil when deleted).
	Current *MsgTwin `json:"current"`
}

// TwinDocumentMsg is the body of twin/update/document.
type TwinDocumentMsg struct {
	BaseMessage
	// Twin by property name.
	Twin map[string]*TwinDoc `json:"twin"`
}

// ResultMsg is an error result: the request's event id, a code (Code*) and
// the reason.
type ResultMsg struct {
	BaseMessage
	// Code is an HTTP-like status (Code*).
	Code int `json:"code,omitempty"`
	// Reason says what was wrong.
	Reason string `json:"reason,omitempty"`
}

// StateUpdateMsg is the body of state/update.
type StateUpdateMsg struct {
	BaseMessage
	// State is online, offline or unknown.
	State string `json:"state"`
}

// Device is a device in membership and state messages.
type Device struct {
	// ID is "namespace/name".
	ID string `json:"id,omitempty"`
	// Name is the device name.
	Name string `json:"name,omitempty"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// State is online, offline or unknown.
	State string `json:"state,omitempty"`
	// LastOnline is "2006-01-02 15:04:05" UTC (LastOnlineLayout).
	LastOnline string `json:"last_online,omitempty"`
	// Twin by property name (membership/updated).
	Twin map[string]*MsgTwin `json:"twin,omitempty"`
}

// LastOnlineLayout is the time format of Device.LastOnline.
const LastOnlineLayout = "2006-01-02 15:04:05"

// DeviceStateMsg is the body of state/update/result.
type DeviceStateMsg struct {
	BaseMessage
	// Device whose state changed.
	Device Device `json:"device"`
}

// MembershipGetResultMsg is the body of membership/get/result.
type MembershipGetResultMsg struct {
	BaseMessage
	// Devices of the node.
	Devices []Device `json:"devices"`
}

// MembershipUpdateMsg is the body of membership/updated.
type MembershipUpdateMsg struct {
	BaseMessage
	// Added devices, with their twins.
	Added []Device `json:"added_devices"`
	// Removed devices.
	Removed []Device `json:"removed_devices"`
}

// DataValue is one property in a mapper's data/update.
type DataValue struct {
	// Value is the JSON value (KubeEdge mappers: a string).
	Value json.RawMessage `json:"value"`
	// Metadata carries the type and the time of reading.
	Metadata DataMetadata `json:"metadata"`
}

// DataMetadata is the metadata of a data/update value.
type DataMetadata struct {
	// Type is the property type in lower case (int, float, ...).
	Type string `json:"type,omitempty"`
	// Timestamp of the reading, unix milliseconds.
	Timestamp int64 `json:"timestamp,omitempty"`
}

// DataUpdateMsg is the body of a mapper's $ke/events/device/{id}/data/update.
type DataUpdateMsg struct {
	BaseMessage
	// Data by property name.
	Data map[string]*DataValue `json:"data"`
}

// StringValue returns s as a JSON string, KubeEdge's form of every value.
func StringValue(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always encodes
	return b
}

// NewEventID returns a random RFC 4122 version 4 UUID, as KubeEdge's
// BuildBaseMessage does.
func NewEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// ValidKey reports whether a property name is acceptable as a twin key:
// KubeEdge's ^[a-zA-Z0-9-_.,:/@#]{1,128}$ (dtcommon/util.go).
func ValidKey(k string) bool {
	if len(k) == 0 || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-_.,:/@#", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// KeyRule describes ValidKey's rule for error messages.
const KeyRule = "1-128 characters from a-z A-Z 0-9 - _ . , : / @ #"
