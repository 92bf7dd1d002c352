// Package broker is the MQTT broker embedded in the edge runner: mochi-mqtt
// with Eddy's authentication, ACLs, durability and flow control.
//
// It owns:
//
//   - the listeners (TCP, optional TLS and WebSocket) and MQTT 3.1.1 / 5
//     sessions, QoS 0/1/2, retained messages, wildcards, in-memory persistent
//     sessions (clean session false);
//
//   - authentication from a YAML auth file with bcrypt hashes, and per-user
//     publish/subscribe ACLs with %u / %c substitution;
//
//   - durability: every accepted publish is handed to Options.Log before the
//     publisher is acknowledged (QoS 1/2 durably, QoS 0 not), and a publish
//     that cannot be logged is refused and never delivered;
//
//   - backpressure: a publish waits while a QoS>0 subscriber it would be
//     delivered to is congested, so that mochi never drops an acknowledged
//     message for a slow subscriber (see Options.HighWater);
//
//   - an inline client for the runner's own publishers (sinks) and
//     subscribers (twin manager).
//
//   - bounds on what one client can make the broker hold (bounds.go):
//     packet size, topic length and levels, subscriptions per session,
//     QoS 1/2 publishes in flight (receive maximum), topic aliases. Each
//     refusal has an MQTT reason (MQTT 5) and a counter in Stats, and is
//     logged at most once per 10 s per client and kind.
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
// resends), so it is neither logged nor delivered — except that a QoS 1/2
// publish refused by the dispatcher's second check (see below) is already
// durable in the log; it is still neither acknowledged nor delivered, and the
// client's resend is a duplicate in the log. The margin between
// HighWater and the hard limits absorbs publishers that pass the check at the
// same moment (one per connected client). A publisher is never made to wait
// for itself. Subscribers that are offline (persistent sessions) do not slow
// publishers: mochi keeps up to MaxInflight QoS>0 messages for them and drops
// (and counts, Stats.Dropped) the rest; every one of them is in the log.
//
// # Asynchronous acknowledgements
//
// mochi handles one client's packets one after another, and acknowledges
// a publish when the publish hook returns. If the hook waited for the
// fsync, a client would get one message per fsync however many it
// pipelines. When Options.Log is a [NotifyAppender] (the runner's WAL is),
// a network client's QoS 1/2 publish instead takes two passes through
// mochi's publish hook:
//
//  1. On the client's read loop: ACL (mochi), backpressure wait, then the
//     publish is queued for the client, its append started with
//     AppendNotify, and the hook returns ErrRejectPacket, so mochi neither
//     acknowledges nor delivers it. The read loop moves on to the next
//     packet; the WAL puts many of them into one group commit.
//  2. When the append is durable, a dispatcher goroutine (at most one per
//     client, running only while that client has finished appends, so a
//     slow client holds up no one else) takes the client's finished
//     publishes in the order they were read, waits again for congested
//     subscribers, and re-injects each with Server.InjectPacket. The hook
//     recognises the re-injected packet (by its payload buffer, which the
//     broker owns) and lets it through: mochi writes the PUBACK or PUBREC
//     (in order; QoS 2 continues with PUBREL/PUBCOMP as usual) and delivers
//     it to subscribers.
//
// The topic alias of an MQTT 5 publish is resolved in the first pass and
// removed from the re-injected packet, so the second pass never rebinds
// the client's aliases. A failed append is refused in order with the
// client's other publishes (MQTT 5: PUBACK/PUBREC 0x83; MQTT 3.1.1:
// disconnect) and never delivered. A publish whose append finishes after
// its client disconnected is in the log, so it was accepted: it is
// delivered (as if published by that client id) but nobody is
// acknowledged, and the client's resend after reconnecting is a duplicate
// (at least once). A publish refused by the second backpressure wait is
// in the log already, and the client's resend is a duplicate there too.
// A client may have as many publishes in flight as the receive maximum the
// broker announces (1024); an MQTT 3.1.1 client that sends more is held
// (its read loop waits) until earlier ones are done. QoS 0 publishes and
// Broker.Publish are unchanged (logged from the hook, QoS 0 without
// waiting), so a client's QoS 0 publish can reach subscribers before its
// earlier QoS 1 publish (MQTT orders a client's messages per topic and
// QoS); the log keeps the order in which they were read. mochi's
// received-message counters count each publish once.
//
// Will messages bypass mochi's publish hook; they are logged (not durably
// ordered before delivery, as nobody waits for their acknowledgement) when
// they are sent.
package broker
