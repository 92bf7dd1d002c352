// Package broker is the MQTT broker embedded in the edge runner: mochi-mqtt
// with Eddy's authentication, ACLs, durability and flow control.
//
// It owns:
//   - the listeners (TCP, optional TLS and WebSocket) and MQTT 3.1.1 / 5
//     sessions, QoS 0/1/2, retained messages, wildcards, in-memory persistent
//     sessions (clean session false);
//   - authentication from a YAML auth file with bcrypt hashes, and per-user
//     publish/subscribe ACLs with %u / %c substitution;
//   - durability: every accepted publish is handed to Options.Log before the
//     publisher is acknowledged (QoS 1/2 durably, QoS 0 not), and a publish
//     that cannot be logged is refused and never delivered;
//   - backpressure: a publish waits while a QoS>0 subscriber it would be
//     delivered to is congested, so that mochi never drops an acknowledged
//     message for a slow subscriber (see Options.HighWater);
//   - an inline client for the runner's own publishers (sinks) and
//     subscribers (twin manager).
//
// It must not: know what the log is (it sees only the Appender interface, the
// runner adapts it to the WAL), decode payloads, run pipelines, or keep state
// on disk of its own. Sessions live in memory; after a restart the WAL, not
// the broker, is the record of what was accepted.
//
// # Flow control policy
//
// mochi drops a QoS>0 delivery to a subscriber (after the publisher got its
// PUBACK) when the subscriber holds MaxInflight unacknowledged messages, when
// its packet ids are exhausted, or when its write queue (MaxPendingWrites)
// is full. Eddy sizes those limits far above HighWater and makes every publish
// (any QoS) that matches a connected subscriber holding a QoS>0 subscription
// wait while that subscriber has HighWater or more messages queued or
// unacknowledged. The wait ends when the subscriber drains, disconnects, or
// after BackpressureTimeout; on timeout the publish is refused (QoS 0:
// dropped; QoS 1/2 over MQTT 5: PUBACK/PUBREC 0x97 "quota exceeded"; MQTT
// 3.1.1: the publisher is disconnected without an acknowledgement so it
// resends), so it is neither logged nor delivered. The margin between
// HighWater and the hard limits absorbs publishers that pass the check at the
// same moment (one per connected client). A publisher is never made to wait
// for itself. Subscribers that are offline (persistent sessions) do not slow
// publishers: mochi keeps up to MaxInflight QoS>0 messages for them and drops
// (and counts, Stats.Dropped) the rest; every one of them is in the log.
//
// Will messages bypass mochi's publish hook; they are logged (not durably
// ordered before delivery, as nobody waits for their acknowledgement) when
// they are sent.
package broker
