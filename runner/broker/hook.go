package broker

import (
	"errors"
	"strings"

	mqtt "github.com/eddy-edge/eddy/internal/mochi"
	"github.com/eddy-edge/eddy/internal/mochi/packets"
)

// hook plugs Eddy's auth, ACL, durability and flow control into mochi.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "eddy" }

func (h *hook) Provides(x byte) bool {
	switch x {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnPublished, mqtt.OnSubscribe, mqtt.OnSubscribed,
		mqtt.OnPacketSent, mqtt.OnQosComplete, mqtt.OnDisconnect, mqtt.OnWillSent, mqtt.OnPacketEncode:
		return true
	}
	return false
}

// OnConnectAuthenticate accepts anonymous clients only when allowed, and
// checks any username against the auth file.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	b := h.b
	if g, ok := cl.Net.Conn.(*guardedConn); ok {
		g.cl.Store(cl) // so that a packet over the limit is answered
	}
	if !pk.Connect.UsernameFlag && len(pk.Connect.Username) == 0 {
		if b.opts.AllowAnonymous {
			return true
		}
		b.authFail.Add(1)
		b.log.Warn("mqtt connection refused: anonymous clients are not allowed", "client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
	if b.auth == nil {
		return b.opts.AllowAnonymous
	}
	if _, ok := b.auth.checkPassword(pk.Connect.Username, pk.Connect.Password); !ok {
		b.authFail.Add(1)
		b.log.Warn("mqtt connection refused: bad username or password", "client", cl.ID, "username", string(pk.Connect.Username), "remote", cl.Net.Remote)
		return false
	}
	return true
}

// OnACLCheck applies the user's ACL to publishes (write), subscription
// filters and deliveries. For a delivery to a network client it also
// applies the slow subscriber policy (admitDelivery): mochi asks it for
// every message it is about to queue for a subscriber.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	b := h.b
	if cl.Net.Inline {
		return true
	}
	if write {
		return b.aclWrite(cl, topic)
	}
	if !b.aclRead(cl, topic) {
		return false
	}
	return b.admitDelivery(cl, topic)
}

// aclUser returns the ACL of cl's user, or nil when it is unrestricted.
func (b *Broker) aclUser(cl *mqtt.Client) *ACL {
	if cl.Net.Inline || b.auth == nil {
		return nil
	}
	u, ok := b.auth.users[string(cl.Properties.Username)]
	if !ok {
		return nil // anonymous (when allowed)
	}
	return u.ACL
}

func aclTopic(topic string) string {
	if strings.HasPrefix(topic, "$share/") {
		if parts := strings.SplitN(topic, "/", 3); len(parts) == 3 {
			return parts[2]
		}
	}
	return topic
}

// aclWrite applies cl's publish ACL to topic, counting refusals.
func (b *Broker) aclWrite(cl *mqtt.Client, topic string) bool {
	acl := b.aclUser(cl)
	if acl == nil {
		return true
	}
	username := string(cl.Properties.Username)
	topic = aclTopic(topic)
	if allowed(acl.Publish, username, cl.ID, topic) {
		return true
	}
	b.deniedPub.Add(1)
	b.log.Warn("mqtt publish denied by ACL", "client", cl.ID, "username", username, "topic", topic)
	return false
}

// aclRead applies cl's subscribe ACL to a filter or a delivered topic.
func (b *Broker) aclRead(cl *mqtt.Client, topic string) bool {
	acl := b.aclUser(cl)
	if acl == nil {
		return true
	}
	return allowed(acl.Subscribe, string(cl.Properties.Username), cl.ID, aclTopic(topic))
}

// OnSubscribe refuses filters over the broker's bounds (see
// Broker.limitSubscriptions).
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	return h.b.limitSubscriptions(cl, pk)
}

// OnSubscribed answers and counts filters refused for the broker's bounds,
// and counts other refused filters (ACL, invalid). codes is the reason code
// slice of the SUBACK mochi sends next, so a code set here is what the
// client gets.
func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	bounded := h.b.answerRefusedSubscriptions(cl, codes)
	h.b.noteSubscribed(cl, pk, codes)
	for i, c := range codes {
		if bounded[i] {
			continue
		}
		if c >= packets.ErrUnspecifiedError.Code {
			h.b.deniedSub.Add(1)
			f := ""
			if i < len(pk.Filters) {
				f = pk.Filters[i].Filter
			}
			h.b.log.Warn("mqtt subscription refused", "client", cl.ID, "filter", f, "code", c)
		}
	}
}

// deliver is OnPublish's answer for a publish mochi may go on with: the
// packet itself, or CodeSuccessIgnore (acknowledged but neither delivered
// nor retained) when it is not retained and nobody subscribes to its
// topic, which spares mochi's subscriber lookup (see subCache).
func (b *Broker) deliver(pk packets.Packet) (packets.Packet, error) {
	if !pk.FixedHeader.Retain && !b.hasSubscribers(pk.TopicName) {
		return pk, errIgnore
	}
	return pk, nil
}

// errIgnore is packets.CodeSuccessIgnore as an error, boxed once (a
// packets.Code is a struct: converting it allocates every time).
var errIgnore error = packets.CodeSuccessIgnore

// OnPublish runs on the publisher's goroutine before mochi acknowledges or
// delivers the message: wait for congested subscribers, then log. With a
// NotifyAppender, QoS 1/2 publishes are only queued here and come back
// through mochi once durable (publishAsync); that second pass is let
// through untouched.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	b := h.b
	if cl.Net.Inline {
		return pk, nil // Broker.Publish or the ack dispatcher did both already
	}
	if b.nlog != nil && pk.FixedHeader.Qos > 0 && b.isInjected(cl, &pk) {
		return b.deliver(pk)
	}
	if b.intakeEnd.Load() {
		return h.refuse(cl, pk, packets.ErrServerShuttingDown)
	}
	if err := b.checkTopic(pk.TopicName); err != nil {
		b.topicsRefused.Add(1)
		b.warn.Warn("topic:"+cl.ID, "mqtt publish refused: topic over the broker's bounds",
			"client", cl.ID, "topic", truncate(pk.TopicName, 128), "qos", pk.FixedHeader.Qos, "reason", err)
		return h.refuse(cl, pk, packets.ErrTopicNameInvalid)
	}
	if err := b.waitForSubscribers(b.ctx, cl.ID, pk.TopicName); err != nil {
		code := packets.ErrQuotaExceeded
		if errors.Is(err, ErrClosed) {
			code = packets.ErrServerShuttingDown
		}
		b.log.Warn("mqtt publish refused", "client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos, "reason", err)
		return h.refuse(cl, pk, code)
	}
	if b.opts.Log == nil {
		return b.deliver(pk)
	}
	if b.nlog != nil && pk.FixedHeader.Qos > 0 {
		return h.publishAsync(cl, pk)
	}
	// Tracked until OnPublished, after mochi delivered it (slow.go).
	cs := b.state(cl)
	// The client's own Message: only its read loop gets here, and Append
	// keeps no reference to it (one allocation per publish fewer).
	msg := &cs.msg
	*msg = Message{
		Topic:   pk.TopicName,
		Payload: pk.Payload,
		QoS:     pk.FixedHeader.Qos,
		Retain:  pk.FixedHeader.Retain,
		Client:  cl.ID,
		Time:    b.clk.Now(),
		// The packet's own buffer (mochi decodes each packet from a new
		// one and never writes to it again; its topic string points into
		// it too).
		Frozen: true,
	}
	b.endDelivery(cs.tok.Swap(b.beginDelivery()))
	err := b.opts.Log.Append(b.ctx, msg, msg.QoS > 0)
	*msg = Message{} // no reference to the packet until the next publish
	if err != nil {
		b.endDelivery(cs.tok.Swap(0))
		b.logFailures.Add(1)
		b.log.Error("mqtt publish refused: cannot log it", "client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos, "error", err)
		return h.refuse(cl, pk, packets.ErrImplementationSpecificError)
	}
	b.logged.Add(1)
	return b.deliver(pk)
}

// refuse makes mochi neither acknowledge nor deliver pk. mochi delivers QoS 0
// messages for any error other than ErrRejectPacket, and answers MQTT 5 QoS 2
// with a PUBACK instead of a PUBREC, so each case is handled here.
func (h *hook) refuse(cl *mqtt.Client, pk packets.Packet, code packets.Code) (packets.Packet, error) {
	switch {
	case pk.FixedHeader.Qos == 0:
		return pk, packets.ErrRejectPacket
	case cl.Properties.ProtocolVersion < 5:
		// MQTT 3.1.1 has no negative acknowledgement: close the connection
		// without acknowledging, so the client resends after reconnecting.
		cl.Stop(code)
		return pk, packets.ErrRejectPacket
	case pk.FixedHeader.Qos == 1:
		return pk, code // mochi sends PUBACK with the reason code
	default:
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Pubrec},
			PacketID:    pk.PacketID,
			ReasonCode:  code.Code,
			Properties:  packets.Properties{ReasonString: code.Reason},
		})
		return pk, packets.ErrRejectPacket
	}
}

// OnPacketEncode announces the broker's maximum packet size and topic
// alias maximum in the CONNACK to MQTT 5 clients (mochi enforces both but
// does not announce them).
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && cl.Properties.ProtocolVersion == 5 && pk.ReasonCode < packets.ErrUnspecifiedError.Code {
		pk.Properties.MaximumPacketSize = h.b.opts.MaxPacketSize
		pk.Properties.TopicAliasMaximum = uint16(h.b.opts.MaxTopicAliases)
	}
	return pk
}

// OnPacketSent wakes waiting publishers when a subscriber's queue shrinks.
func (h *hook) OnPacketSent(_ *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type == packets.Publish {
		h.b.notify.broadcast()
	}
}

// OnQosComplete wakes waiting publishers when a subscriber acknowledges.
func (h *hook) OnQosComplete(*mqtt.Client, packets.Packet) { h.b.notify.broadcast() }

// OnPublished ends the tracking of a network client's publish that was
// logged from OnPublish, now that mochi has delivered it.
func (h *hook) OnPublished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline || h.b.replay == nil {
		return
	}
	if v, ok := h.b.clients.Load(cl); ok {
		h.b.endDelivery(v.(*clientState).tok.Swap(0))
	}
}

// OnDisconnect forgets the client's state and wakes publishers and
// catch-up goroutines waiting for it.
func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	h.b.forgetClient(cl, expire)
	h.b.notify.broadcast()
}

// OnWillSent logs a will message (mochi sends wills without OnPublish).
func (h *hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	b := h.b
	if b.opts.Log == nil {
		return
	}
	msg := Message{Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain, Client: cl.ID, Time: b.clk.Now()}
	if err := b.opts.Log.Append(b.ctx, &msg, msg.QoS > 0); err != nil {
		b.logFailures.Add(1)
		b.log.Error("cannot log will message", "client", cl.ID, "topic", pk.TopicName, "error", err)
		return
	}
	b.logged.Add(1)
}
