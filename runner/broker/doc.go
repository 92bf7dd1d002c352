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
//   - slow subscribers: one that falls behind lags or loses only its own
//     messages; publishers never wait for it (see "Slow subscribers");
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
// # Slow subscribers
//
// The contract: a subscriber that cannot keep up hurts only itself.
// Device publishers and the runner's pipelines (whose MQTT sinks publish
// through Broker.Publish) wait only for the log, never for a subscriber.
//
// A network subscriber is slow when it holds MaxQueuedMessages (default
// 1000, mosquitto's max_queued_messages) or more messages queued for
// writing plus unacknowledged. mochi asks OnACLCheck before each delivery
// it makes; that is where the broker applies the policy:
//
//   - QoS 1/2 (the subscriber has a QoS 1 or 2 subscription, and
//     Options.Log is a [Replayer], as the runner's WAL is): live delivery
//     to it stops and it is served from the log, like a JetStream consumer
//     or a Kafka consumer group: one goroutine per slow subscriber reads
//     the log from a cursor and writes the messages its subscriptions
//     match, at the pace its socket and acknowledgements allow. The cursor
//     starts at the lowest offset that may not have reached it: every
//     message is registered (with a lower bound of its offset, the log's
//     end before its append) from before its append until mochi has handed
//     it to subscribers, and the smallest registered bound is where the
//     replay starts. When the replay reaches the end of the log and the
//     subscriber has room, it goes back to live delivery, and what was
//     appended between its last read and the switch is replayed once more.
//     So nothing is lost while it is in the log, and some messages may
//     arrive twice (QoS 1 is at least once; ordering across the switch
//     back is per topic at least once, not strictly ordered). A persistent
//     session that disconnects while behind resumes from its cursor when it
//     reconnects. With a log that can replay, an inline publish (pipeline
//     output) is logged when a pipeline reads its topic, when it is QoS 1/2
//     or retained, or when some subscriber of its topic holds a QoS 1/2
//     subscription (decided per topic and cached until subscriptions
//     change), so that whatever such a subscriber may miss can be
//     replayed. QoS 0 output that only QoS 0 subscribers read is not
//     logged: they are never served from the log.
//     If retention removes messages before the subscriber got them, it is
//     told: DISCONNECT 0x97 with the number lost (MQTT 3.1.1: disconnected),
//     counted in Stats.RetentionDisconnects. Retained messages of filters
//     it subscribes to while behind are sent by its replay goroutine.
//     Messages that are never logged ($SYS topics) are not replayed.
//   - QoS 0 only: deliveries over the bound are dropped, counted per client
//     (ClientInfo.Dropped) and in Stats.SlowSubscriberDrops, and logged at
//     most once per 10 s per client ("outgoing messages are being
//     dropped"), as mosquitto does.
//
// Without a Replayer (a plain broker, or a log that cannot read back), a
// QoS 1/2 subscriber is not dropped: every publish (any QoS) that would be
// delivered to a connected subscriber holding a QoS>0 subscription waits
// while that subscriber has HighWater or more messages queued or
// unacknowledged, up to BackpressureTimeout; then it is refused (QoS 0:
// dropped; QoS 1/2 over MQTT 5: 0x97 "quota exceeded"; MQTT 3.1.1: the
// publisher is disconnected without an acknowledgement so it resends).
// mochi's own hard limits (MaxPendingWrites, MaxInflight) are sized far
// above both bounds, so that mochi itself never drops an acknowledged
// message for a slow subscriber. Offline persistent sessions keep up to
// MaxInflight messages in mochi.
//
// A [Batch] (a pipeline's MQTT sink publishes through one) puts its
// deliveries straight into each network subscriber's write buffer and
// writes them when the batch is flushed, with one non-blocking write per
// subscriber; what the socket does not take then, the subscriber's write
// loop writes. Only a subscriber with nothing queued and less than 64 KiB
// buffered is written to this way; any other delivery goes through the
// subscriber's queue as above, so the bounds and drops above apply
// unchanged and a flush never waits on a subscriber.
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
//  1. On the client's read loop: ACL (mochi), backpressure wait (only
//     without a Replayer, see "Slow subscribers"), then the
//     publish is queued for the client, its append started with
//     AppendNotify, and the hook returns ErrRejectPacket, so mochi neither
//     acknowledges nor delivers it. The read loop moves on to the next
//     packet; the WAL puts many of them into one group commit.
//  2. When the append is durable, a dispatcher goroutine (at most one per
//     client, running only while that client has finished appends, so a
//     slow client holds up no one else) takes the client's finished
//     publishes in the order they were read, waits again for congested
//     subscribers (only without a Replayer), and re-injects each with Server.InjectPacket. The hook
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
// broker announces (1024); an MQTT 5 client that sends more is
// disconnected with 0x93, an MQTT 3.1.1 client (told no limit) is held
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
