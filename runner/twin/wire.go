package twin

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// Topic prefixes and suffixes of KubeEdge's device-twin protocol
// (edge/pkg/devicetwin/dtcommon/common.go). A device topic is
// DevicePrefix + id + suffix, where id is "namespace/name".
const (
	DevicePrefix        = "$hw/events/device/"
	NodePrefix          = "$hw/events/node/"
	DataPrefix          = "$ke/events/device/"
	SuffixTwinUpdate    = "/twin/update"
	SuffixUpdateResult  = "/twin/update/result"
	SuffixUpdateDelta   = "/twin/update/delta"
	SuffixUpdateDoc     = "/twin/update/document"
	SuffixTwinGet       = "/twin/get"
	SuffixGetResult     = "/twin/get/result"
	SuffixCloudUpdated  = "/twin/cloud_updated"
	SuffixEdgeUpdated   = "/twin/edge_updated"
	SuffixStateUpdate   = "/state/update"
	SuffixStateResult   = "/state/update/result"
	SuffixStateGet      = "/state/get"
	SuffixMemGet        = "/membership/get"
	SuffixMemGetResult  = "/membership/get/result"
	SuffixMemUpdated    = "/membership/updated"
	SuffixMemDetail     = "/membership/detail"
	SuffixMemDetailRes  = "/membership/detail/result"
	SuffixDataUpdate    = "/data/update"
	suffixDeviceUpdated = "/updated"
)

// Subscriptions are the topic filters the runner subscribes HandleMessage
// to. ".../twin/+" already covers ".../twin/update" and ".../twin/get":
// subscribing both would deliver (and apply) every update twice.
var Subscriptions = []string{
	"$hw/events/device/+/+/twin/+",
	"$hw/events/device/+/+/state/update",
	"$hw/events/node/+/membership/get",
	"$ke/events/device/+/+/data/update",
}

// Result codes used in error results, as in KubeEdge (dtcommon).
const (
	CodeBadRequest = 400
	CodeNotFound   = 404
	CodeConflict   = 409
	CodeInternal   = 500
)

// Version is a twin value's version: how many times the cloud and the edge
// have changed it (KubeEdge's TwinVersion).
type Version struct {
	Cloud int64 `json:"cloud"`
	Edge  int64 `json:"edge"`
}

// olderThan reports whether v is behind w in either component.
func (v Version) olderThan(w Version) bool { return v.Cloud < w.Cloud || v.Edge < w.Edge }

// Wire types: the JSON of KubeEdge's dttype package, plus "undeclared".

type wireValueMeta struct {
	Timestamp int64 `json:"timestamp,omitempty"`
}

type wireValue struct {
	Value    json.RawMessage `json:"value,omitempty"`
	Metadata *wireValueMeta  `json:"metadata,omitempty"`
}

type wireTypeMeta struct {
	Type string `json:"type,omitempty"`
}

type wireTwin struct {
	Expected        *wireValue    `json:"expected,omitempty"`
	Actual          *wireValue    `json:"actual,omitempty"`
	Optional        *bool         `json:"optional,omitempty"`
	Metadata        *wireTypeMeta `json:"metadata,omitempty"`
	ExpectedVersion *Version      `json:"expected_version,omitempty"`
	ActualVersion   *Version      `json:"actual_version,omitempty"`
	Undeclared      bool          `json:"undeclared,omitempty"`
}

type wireTwinMsg struct {
	EventID   string               `json:"event_id"`
	Timestamp int64                `json:"timestamp"`
	Twin      map[string]*wireTwin `json:"twin"`
}

type wireDelta struct {
	EventID   string                     `json:"event_id"`
	Timestamp int64                      `json:"timestamp"`
	Twin      map[string]*wireTwin       `json:"twin"`
	Delta     map[string]json.RawMessage `json:"delta"`
}

type wireDoc struct {
	Last    *wireTwin `json:"last"`
	Current *wireTwin `json:"current"`
}

type wireDocument struct {
	EventID   string              `json:"event_id"`
	Timestamp int64               `json:"timestamp"`
	Twin      map[string]*wireDoc `json:"twin"`
}

type wireResult struct {
	EventID   string `json:"event_id"`
	Timestamp int64  `json:"timestamp"`
	Code      int    `json:"code,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

type wireDevice struct {
	ID          string               `json:"id,omitempty"`
	Name        string               `json:"name,omitempty"`
	Description string               `json:"description,omitempty"`
	State       string               `json:"state,omitempty"`
	LastOnline  string               `json:"last_online,omitempty"`
	Twin        map[string]*wireTwin `json:"twin,omitempty"`
}

type wireDeviceState struct {
	EventID   string     `json:"event_id"`
	Timestamp int64      `json:"timestamp"`
	Device    wireDevice `json:"device"`
}

type wireMembershipGet struct {
	EventID   string       `json:"event_id"`
	Timestamp int64        `json:"timestamp"`
	Devices   []wireDevice `json:"devices"`
}

type wireMembershipUpdate struct {
	EventID   string       `json:"event_id"`
	Timestamp int64        `json:"timestamp"`
	Added     []wireDevice `json:"added_devices"`
	Removed   []wireDevice `json:"removed_devices"`
}

// Incoming messages.

type inValue struct {
	Value    json.RawMessage `json:"value"`
	Metadata *wireValueMeta  `json:"metadata"`
}

type inTwin struct {
	Expected        *inValue      `json:"expected"`
	Actual          *inValue      `json:"actual"`
	Optional        *bool         `json:"optional"`
	Metadata        *wireTypeMeta `json:"metadata"`
	ExpectedVersion *Version      `json:"expected_version"`
	ActualVersion   *Version      `json:"actual_version"`
}

type inUpdate struct {
	EventID   string             `json:"event_id"`
	Timestamp int64              `json:"timestamp"`
	Twin      map[string]*inTwin `json:"twin"`
}

type inData struct {
	EventID   string              `json:"event_id"`
	Timestamp int64               `json:"timestamp"`
	Data      map[string]*inValue `json:"data"`
}

type inBase struct {
	EventID   string `json:"event_id"`
	Timestamp int64  `json:"timestamp"`
	State     string `json:"state"`
}

// newEventID returns a random RFC 4122 version 4 UUID, as KubeEdge's
// BuildBaseMessage does.
func newEventID() string {
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

// topicKind classifies an incoming topic.
type topicKind int

const (
	topicIgnore topicKind = iota
	topicTwinUpdate
	topicTwinGet
	topicStateUpdate
	topicMemGet
	topicDataUpdate
)

// parseTopic splits a topic into its kind and the device id or node name.
// ok is false for topics outside the protocol.
func parseTopic(topic string) (kind topicKind, id string, ok bool) {
	switch {
	case strings.HasPrefix(topic, DevicePrefix):
		rest := topic[len(DevicePrefix):]
		for _, s := range []struct {
			suffix string
			kind   topicKind
		}{
			{SuffixUpdateResult, topicIgnore}, {SuffixUpdateDelta, topicIgnore},
			{SuffixUpdateDoc, topicIgnore}, {SuffixGetResult, topicIgnore},
			{SuffixCloudUpdated, topicIgnore}, {SuffixEdgeUpdated, topicIgnore},
			{SuffixStateResult, topicIgnore}, {SuffixStateGet, topicIgnore},
			{suffixDeviceUpdated, topicIgnore},
			{SuffixTwinUpdate, topicTwinUpdate}, {SuffixTwinGet, topicTwinGet},
			{SuffixStateUpdate, topicStateUpdate},
		} {
			if strings.HasSuffix(rest, s.suffix) && len(rest) > len(s.suffix) {
				return s.kind, rest[:len(rest)-len(s.suffix)], true
			}
		}
	case strings.HasPrefix(topic, NodePrefix):
		rest := topic[len(NodePrefix):]
		if strings.HasSuffix(rest, SuffixMemGet) && len(rest) > len(SuffixMemGet) {
			return topicMemGet, rest[:len(rest)-len(SuffixMemGet)], true
		}
		for _, s := range []string{SuffixMemGetResult, SuffixMemUpdated, SuffixMemDetail, SuffixMemDetailRes} {
			if strings.HasSuffix(rest, s) {
				return topicIgnore, "", true
			}
		}
	case strings.HasPrefix(topic, DataPrefix):
		rest := topic[len(DataPrefix):]
		if strings.HasSuffix(rest, SuffixDataUpdate) && len(rest) > len(SuffixDataUpdate) {
			return topicDataUpdate, rest[:len(rest)-len(SuffixDataUpdate)], true
		}
	}
	return topicIgnore, "", false
}

// validKey reports whether a twin property name is acceptable: KubeEdge's
// ^[a-zA-Z0-9-_.,:/@#]{1,128}$. Keys stay restricted because they become
// field names (twin_<prop>) in pipelines.
func validKey(k string) bool {
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
