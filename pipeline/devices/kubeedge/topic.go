// Package kubeedge is the one home of KubeEdge's device MQTT protocol in
// Eddy: the topic grammar of edgecore's devicetwin module and of the
// mappers ($hw/events/device/{id}/..., $hw/events/node/{node}/...,
// $ke/events/device/{id}/data/update) and the JSON shapes of the messages
// sent on them (KubeEdge's edge/pkg/devicetwin/dttype and the mapper's
// data/update). The twin manager (runner/twin), the MQTT "kubeedge" payload
// format (connectors/mqtt) and the Modbus mapper all use it, so a topic or a
// field name is spelled in exactly one place.
//
// Since KubeEdge v1.16.2/v1.17 a device id is "namespace/name"; older
// mappers send a bare name, which SplitDeviceID reads as namespace
// "default".
//
// The package is pure vocabulary: no I/O, no goroutines, no state.
package kubeedge

import "strings"

// Topic prefixes. A device topic is DevicePrefix + id + suffix, a node
// topic NodePrefix + node + suffix, and the mapper's data topic
// DataPrefix + id + "/data/update".
const (
	DevicePrefix = "$hw/events/device/"
	NodePrefix   = "$hw/events/node/"
	DataPrefix   = "$ke/events/device/"
)

// TopicKind says which message of the protocol a topic carries.
type TopicKind int

// The topics of the protocol (edge/pkg/devicetwin/dtcommon/common.go), and
// the mapper's data topic.
const (
	// TopicUnknown is a topic outside the protocol.
	TopicUnknown TopicKind = iota

	// Device topics ($hw/events/device/{id}/...).
	TwinUpdate         // twin/update: a mapper or app reports or sets values
	TwinUpdateResult   // twin/update/result: the answer to twin/update
	TwinUpdateDelta    // twin/update/delta: desired values that differ from reported ones
	TwinUpdateDocument // twin/update/document: last and current twin of each change
	TwinGet            // twin/get: ask for the twin
	TwinGetResult      // twin/get/result: the answer to twin/get
	TwinCloudUpdated   // twin/cloud_updated
	TwinEdgeUpdated    // twin/edge_updated
	StateUpdate        // state/update: a mapper reports online/offline
	StateUpdateResult  // state/update/result: the answer to state/update
	StateGet           // state/get
	DeviceUpdated      // updated: device attributes changed

	// Node topics ($hw/events/node/{node}/...).
	MembershipGet          // membership/get: ask for the node's devices
	MembershipGetResult    // membership/get/result: the answer
	MembershipUpdated      // membership/updated: devices added to / removed from the node
	MembershipDetail       // membership/detail
	MembershipDetailResult // membership/detail/result

	// Mapper data ($ke/events/device/{id}/data/update).
	DataUpdate
)

type suffix struct {
	kind TopicKind
	text string
}

// deviceSuffixes are tried in order; a suffix that ends with another
// (twin/update/result, twin/update) comes first.
var deviceSuffixes = []suffix{
	{TwinUpdateResult, "/twin/update/result"},
	{TwinUpdateDelta, "/twin/update/delta"},
	{TwinUpdateDocument, "/twin/update/document"},
	{TwinGetResult, "/twin/get/result"},
	{StateUpdateResult, "/state/update/result"},
	{TwinUpdate, "/twin/update"},
	{TwinGet, "/twin/get"},
	{TwinCloudUpdated, "/twin/cloud_updated"},
	{TwinEdgeUpdated, "/twin/edge_updated"},
	{StateUpdate, "/state/update"},
	{StateGet, "/state/get"},
	{DeviceUpdated, "/updated"},
}

var nodeSuffixes = []suffix{
	{MembershipGetResult, "/membership/get/result"},
	{MembershipDetailResult, "/membership/detail/result"},
	{MembershipGet, "/membership/get"},
	{MembershipUpdated, "/membership/updated"},
	{MembershipDetail, "/membership/detail"},
}

const dataSuffix = "/data/update"

// Suffix returns the topic suffix of a kind, e.g. "/twin/update" for
// TwinUpdate, or "" for TopicUnknown.
func (k TopicKind) Suffix() string {
	if k == DataUpdate {
		return dataSuffix
	}
	for _, list := range [][]suffix{deviceSuffixes, nodeSuffixes} {
		for _, s := range list {
			if s.kind == k {
				return s.text
			}
		}
	}
	return ""
}

// IsNode reports whether the kind is a node topic (membership).
func (k TopicKind) IsNode() bool { return k >= MembershipGet && k <= MembershipDetailResult }

// String returns the suffix without its leading slash, e.g. "twin/update".
func (k TopicKind) String() string {
	if s := k.Suffix(); s != "" {
		return s[1:]
	}
	return "unknown"
}

// Topic is a parsed protocol topic.
type Topic struct {
	// Kind of message.
	Kind TopicKind
	// ID is the device id as written in the topic ("namespace/name", or a
	// bare name from an old mapper); empty for node topics.
	ID string
	// Node is the node name of a membership topic; empty otherwise.
	Node string
}

// ParseTopic parses a topic of the protocol. The device id (or node name)
// is everything between the prefix and the longest known suffix, so
// devices named "twin", "data" or "state" work. ok is false for topics
// outside the protocol, including an empty id.
func ParseTopic(topic string) (t Topic, ok bool) {
	switch {
	case strings.HasPrefix(topic, DevicePrefix):
		rest := topic[len(DevicePrefix):]
		for _, s := range deviceSuffixes {
			if id, found := strings.CutSuffix(rest, s.text); found && id != "" {
				return Topic{Kind: s.kind, ID: id}, true
			}
		}
	case strings.HasPrefix(topic, NodePrefix):
		rest := topic[len(NodePrefix):]
		for _, s := range nodeSuffixes {
			if node, found := strings.CutSuffix(rest, s.text); found && node != "" {
				return Topic{Kind: s.kind, Node: node}, true
			}
		}
	case strings.HasPrefix(topic, DataPrefix):
		if id, found := strings.CutSuffix(topic[len(DataPrefix):], dataSuffix); found && id != "" {
			return Topic{Kind: DataUpdate, ID: id}, true
		}
	}
	return Topic{}, false
}

// DeviceTopic returns the topic of kind k for device id ("namespace/name"),
// e.g. DeviceTopic("default/thermo-1", TwinUpdate) is
// "$hw/events/device/default/thermo-1/twin/update".
func DeviceTopic(id string, k TopicKind) string {
	if k == DataUpdate {
		return DataPrefix + id + dataSuffix
	}
	return DevicePrefix + id + k.Suffix()
}

// NodeTopic returns the membership topic of kind k for node.
func NodeTopic(node string, k TopicKind) string { return NodePrefix + node + k.Suffix() }

// SplitDeviceID splits "namespace/name" into its parts; a bare name (older
// mappers) has namespace "default". ok is false for an empty part or more
// than two levels.
func SplitDeviceID(id string) (namespace, name string, ok bool) {
	ns, name, found := strings.Cut(id, "/")
	if !found {
		return "default", id, id != ""
	}
	return ns, name, ns != "" && name != "" && !strings.Contains(name, "/")
}

// DeviceOf returns the namespace and name of the device a topic is about:
// any $hw/events/device/... or $ke/events/device/... topic, including
// suffixes this package does not know ({ns}/{name}/{anything}, or
// {name}/{anything} when the second level is data, twin or state). It is
// what the kubeedge payload format uses to name the device of a message.
func DeviceOf(topic string) (namespace, name string, ok bool) {
	if t, known := ParseTopic(topic); known && t.ID != "" {
		if ns, n, ok := SplitDeviceID(t.ID); ok {
			return ns, n, true
		}
	}
	var rest string
	switch {
	case strings.HasPrefix(topic, DevicePrefix):
		rest = topic[len(DevicePrefix):]
	case strings.HasPrefix(topic, DataPrefix):
		rest = topic[len(DataPrefix):]
	default:
		return "", "", false
	}
	levels := strings.Split(rest, "/")
	if levels[0] == "" {
		return "", "", false
	}
	if len(levels) >= 3 && !isSuffixWord(levels[1]) && levels[1] != "" {
		return levels[0], levels[1], true
	}
	return "default", levels[0], true
}

func isSuffixWord(s string) bool { return s == "data" || s == "twin" || s == "state" }

// Subscriptions are the topic filters an edge node's twin service listens
// to, as edgecore does: twin/update and twin/get (".../twin/+" covers both;
// subscribing to both filters would deliver every update twice),
// state/update, membership/get, and the mapper data topic.
var Subscriptions = []string{
	DevicePrefix + "+/+/twin/+",
	DevicePrefix + "+/+" + StateUpdate.Suffix(),
	NodePrefix + "+" + MembershipGet.Suffix(),
	DataPrefix + "+/+" + dataSuffix,
}

// DeltaFilter is the filter a mapper subscribes to for desired values.
const DeltaFilter = DevicePrefix + "+/+/twin/update/delta"
