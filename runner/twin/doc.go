// Package twin keeps the device twins of one edge node and speaks KubeEdge's
// device-twin MQTT protocol (edgecore's devicetwin module) so that existing
// mappers and edge apps work unchanged:
//
//	$hw/events/device/{ns}/{name}/twin/update      -> .../twin/update/result, .../twin/update/delta, .../twin/update/document
//	$hw/events/device/{ns}/{name}/twin/get         -> .../twin/get/result
//	$hw/events/device/{ns}/{name}/state/update     -> .../state/update/result
//	$hw/events/node/{node}/membership/get          -> .../membership/get/result
//	(SetDevices)                                   -> $hw/events/node/{node}/membership/updated
//	$ke/events/device/{ns}/{name}/data/update      (mapper data; applied as reported values, no reply)
//
// The JSON field names are KubeEdge's (edge/pkg/devicetwin/dttype). Where
// KubeEdge is weak, Eddy does better while staying wire compatible:
//
//   - Values are any JSON value (string, number, bool, object, array) up to
//     Options.MaxValueBytes (64 KiB by default), not a 512-byte restricted
//     charset. Strings keep KubeEdge's string form; deltas compare the string
//     form of values, so "22" and 22 are equal.
//   - Reported values for properties the device model does not declare are
//     kept, flagged "undeclared": true and counted, never dropped.
//   - Desired (expected) values may be set from the edge over MQTT (the
//     broker's ACL decides who may publish); they bump the edge version.
//     Desired values from the cloud (SetDevices) bump the cloud version.
//   - A reported value never goes back in time: an update whose
//     actual_version or timestamp is older than the stored one is rejected
//     with a result (code 409) saying why, so replays after reconnects cannot
//     revert a twin.
//
// Every change is persisted through a Store (in memory, or a snapshot plus a
// CRC-framed append log in a directory) before it is acknowledged, and is
// reported to Options.OnEvent as an event on the internal streams "twin",
// "device_state" and "membership" that pipelines can read.
//
// Writes (HandleMessage, SetDevices) are serialised by one lock, but their
// replies and events are delivered after it is released, ordered per device
// (see outbox.go): the broker may hold a publish for a slow subscriber, and
// that must delay only the device whose topics it reads.
//
// Values is the hot-path lookup used by the enrich step: it takes a read lock
// only and allocates nothing in steady state.
//
// The package owns twin state and the twin protocol. It must not import the
// broker or the device CRD types (the runner adapts both through the small
// Publisher interface, HandleMessage and DeviceSpec), must not start
// goroutines of its own, and must not call the wall clock directly.
package twin
