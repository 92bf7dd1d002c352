// Package fleet owns the wire contract between the cloud and Eddy's edge
// runners, and the Go client that writes plans and reads status over NATS.
//
// Everything travels through a NATS hub with JetStream ("eddy hub" for
// development, any NATS cluster in production); nothing here depends on
// which:
//
//   - Plans down. One JetStream key-value bucket (default "eddy_plans")
//     holds the desired objects of every node under the key
//     <node>.<kind>.<namespace>.<name>, e.g. edge-1.pipeline.default.overheat.
//     Each value is an [Envelope]: a versioned JSON record carrying the
//     object's kind, name, generation and hash, and the object itself (a
//     Pipeline, or a KubeEdge Device or DeviceModel, as JSON). The bucket
//     keeps one revision per key, so an edge that was offline for a day
//     reads the current set, not every intermediate version; a delete leaves
//     a marker that watchers see.
//   - Status up. Each edge writes one [NodeStatus] record under its name in
//     a second bucket (default "eddy_nodes"): registration (labels,
//     version, capacity), heartbeat time, link counters and the state of
//     every object it was given, batched and written at a bounded rate.
//   - Data up. Edges publish forwarded records under
//     eddy.up.<node>.<subject> into a stream (default "eddy_up") with a
//     Nats-Msg-Id per record, so resends after an outage are dropped by the
//     stream's duplicate window.
//
// [Client] is what `eddy fleet` and the cloud controller use to put, delete
// and list objects and to read and watch node status. [NodePermissions]
// lists the NATS subjects one node needs, which confine it to its own keys
// and subjects. The edge side (watching plans, applying them, reporting,
// forwarding the outbox) lives in runner/link, which uses the names and
// types defined here.
//
// This package imports pipeline and nats.go only: never the runner, the
// controller or client-go.
package fleet
