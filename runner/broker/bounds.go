package broker

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eddy-edge/eddy/internal/mochi"
	"github.com/eddy-edge/eddy/internal/mochi/packets"
)

// Defaults for the bounds on what one client can make the broker hold.
const (
	// DefaultMaxPacketSize is the largest MQTT packet accepted (1 MiB), like
	// NATS' max_payload. A bigger packet is refused from its fixed header,
	// before its body is read or allocated.
	DefaultMaxPacketSize = 1 << 20
	// DefaultMaxTopicLength is the longest topic name or filter, in bytes.
	DefaultMaxTopicLength = 1024
	// DefaultMaxTopicLevels is the most '/'-separated levels in a topic
	// name or filter.
	DefaultMaxTopicLevels = 32
	// DefaultMaxSubscriptions is the most subscription filters one session
	// may hold.
	DefaultMaxSubscriptions = 256
	// DefaultReceiveMaximum is the most QoS 1/2 publishes one client may
	// have unacknowledged at the broker (announced to MQTT 5 clients).
	DefaultReceiveMaximum = 1024
	// DefaultMaxTopicAliases is the topic alias maximum announced to MQTT 5
	// clients (mochi would otherwise accept 65535 aliases per client).
	DefaultMaxTopicAliases = 64
)

// maxMQTTPacket is the largest size the MQTT length encoding allows.
const maxMQTTPacket = 268435455 + 5

// errPacketTooLarge is what a guarded connection's Read returns once the
// client sent a packet over the limit.
var errPacketTooLarge = errors.New("mqtt packet over the broker's maximum packet size")

// frameGuard follows the MQTT framing (fixed header byte, remaining length,
// body) of a connection's incoming bytes without copying them, so that a
// packet over the size limit is refused from its header: nothing of it is
// read into memory. mochi checks the same limit but closes the connection
// without the MQTT 5 DISCONNECT 0x95 the client is owed.
type frameGuard struct {
	max     uint64
	state   uint8  // guardHeader, guardLength, guardBody
	length  uint64 // remaining length being decoded
	shift   uint   // next 7-bit group of the remaining length
	lenLen  uint64 // bytes of the remaining length seen
	skip    uint64 // body bytes still to pass
	tooBig  uint64 // size of the refused packet, once refused
	refused bool
}

const (
	guardHeader = iota
	guardLength
	guardBody
)

// scan consumes p and returns how many of its bytes come before the header
// of a packet over the limit (len(p) when there is none).
func (g *frameGuard) scan(p []byte) int {
	for i := 0; i < len(p); {
		switch g.state {
		case guardHeader:
			g.state, g.length, g.shift, g.lenLen = guardLength, 0, 0, 0
			i++
		case guardLength:
			b := p[i]
			i++
			g.length |= uint64(b&0x7f) << g.shift
			g.shift += 7
			g.lenLen++
			if b&0x80 != 0 && g.lenLen < 4 {
				continue
			}
			// A fifth length byte is malformed: mochi refuses it itself.
			if size := 1 + g.lenLen + g.length; size > g.max {
				g.refused, g.tooBig = true, size
				// Hand mochi nothing of this packet: the bytes before its
				// header (earlier, complete packets) are still processed.
				return max(i-1-int(g.lenLen), 0)
			}
			g.skip = g.length
			g.state = guardBody
			if g.skip == 0 {
				g.state = guardHeader
			}
		case guardBody:
			n := min(uint64(len(p)-i), g.skip)
			g.skip -= n
			i += int(n)
			if g.skip == 0 {
				g.state = guardHeader
			}
		}
	}
	return len(p)
}

// guardedConn is a client connection whose incoming packets are held to
// the broker's maximum packet size, and whose writes can be corked
// (cork.go).
type guardedConn struct {
	net.Conn
	b     *Broker
	guard frameGuard
	cl    atomic.Pointer[mqtt.Client] // set once the client authenticated
	once  sync.Once
	w     corkedWrites
	raw   syscall.RawConn // for TryWrite; nil when the connection has no file descriptor
}

// NetConn returns the connection c guards (as tls.Conn's does).
func (c *guardedConn) NetConn() net.Conn { return c.Conn }

func (c *guardedConn) Read(p []byte) (int, error) {
	if c.guard.refused {
		return 0, errPacketTooLarge
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if k := c.guard.scan(p[:n]); k < n {
			c.once.Do(c.refuse)
			if k == 0 {
				return 0, errPacketTooLarge
			}
			return k, nil
		}
	}
	return n, err
}

// refuse counts and logs a packet over the limit and tells an MQTT 5
// client why it is disconnected (DISCONNECT 0x95); MQTT 3.1.1 has no way to
// say it, so that connection is just closed.
func (c *guardedConn) refuse() {
	b := c.b
	b.tooLarge.Add(1)
	id, version := "", byte(0)
	cl := c.cl.Load()
	if cl != nil {
		id, version = cl.ID, cl.Properties.ProtocolVersion
	}
	b.warn.Warn("too-large", "mqtt packet refused: larger than the broker's maximum packet size; client disconnected",
		"client", id, "remote", c.RemoteAddr().String(), "size", c.guard.tooBig, "max_packet_size", b.opts.MaxPacketSize)
	if cl != nil && version == 5 {
		_ = b.srv.DisconnectClient(cl, packets.ErrPacketTooLarge)
	}
}

// checkTopic says why a topic name (or filter) is over the broker's
// bounds, or returns nil.
func (b *Broker) checkTopic(topic string) error {
	if len(topic) > b.opts.MaxTopicLength {
		return fmt.Errorf("topic is %d bytes long, over the broker's maximum of %d", len(topic), b.opts.MaxTopicLength)
	}
	if levels := strings.Count(topic, "/") + 1; levels > b.opts.MaxTopicLevels {
		return fmt.Errorf("topic has %d levels, over the broker's maximum of %d", levels, b.opts.MaxTopicLevels)
	}
	return nil
}

// subRefusal is a subscription filter refused by OnSubscribe, answered in
// the SUBACK by OnSubscribed.
type subRefusal struct {
	index  int
	filter string
	code   packets.Code
	why    string
}

// refusedFilter replaces a refused filter in the SUBSCRIBE packet so that
// mochi neither subscribes it nor sends retained messages for it; it is
// not a valid filter ('#' must be last).
const refusedFilter = "#/refused"

// limitSubscriptions refuses the filters of a SUBSCRIBE that are over the
// topic bounds or would take the session over MaxSubscriptions. It runs
// from OnSubscribe, on the client's read loop, before mochi subscribes.
func (b *Broker) limitSubscriptions(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline {
		return pk
	}
	have := cl.State.Subscriptions.Len()
	var refusals []subRefusal
	seen := map[string]bool{}
	for i, f := range pk.Filters {
		if err := b.checkTopic(f.Filter); err != nil {
			refusals = append(refusals, subRefusal{i, f.Filter, packets.ErrTopicFilterInvalid, err.Error()})
			continue
		}
		if _, ok := cl.State.Subscriptions.Get(f.Filter); ok || seen[f.Filter] {
			continue // a resubscription takes no more room
		}
		if have >= b.opts.MaxSubscriptions {
			refusals = append(refusals, subRefusal{i, f.Filter, packets.ErrQuotaExceeded,
				fmt.Sprintf("the session already holds %d subscriptions, the broker's maximum", have)})
			continue
		}
		seen[f.Filter] = true
		have++
	}
	if len(refusals) == 0 {
		return pk
	}
	filters := append(packets.Subscriptions(nil), pk.Filters...)
	for _, r := range refusals {
		filters[r.index].Filter = refusedFilter
	}
	pk.Filters = filters
	b.subMu.Lock()
	b.subRefusals[cl] = refusals
	b.subMu.Unlock()
	return pk
}

// answerRefusedSubscriptions puts the reason of each filter refused by
// limitSubscriptions into the SUBACK mochi is about to send (codes is the
// SUBACK's reason code slice), counts and logs them.
func (b *Broker) answerRefusedSubscriptions(cl *mqtt.Client, codes []byte) (refused map[int]bool) {
	b.subMu.Lock()
	refusals := b.subRefusals[cl]
	delete(b.subRefusals, cl)
	b.subMu.Unlock()
	if len(refusals) == 0 {
		return nil
	}
	refused = make(map[int]bool, len(refusals))
	for _, r := range refusals {
		if r.index >= len(codes) {
			continue
		}
		refused[r.index] = true
		code := r.code.Code
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrUnspecifiedError.Code // MQTT 3.1.1 has only 0x80
		}
		codes[r.index] = code
		if r.code == packets.ErrQuotaExceeded {
			b.subQuota.Add(1)
		} else {
			b.topicsRefused.Add(1)
		}
		b.warn.Warn("subscribe-bound", "mqtt subscription refused: over the broker's bounds",
			"client", cl.ID, "filter", truncate(r.filter, 128), "reason", r.why, "code", fmt.Sprintf("0x%02x", code))
	}
	return refused
}

// connEnded counts a connection that ended without sending CONNECT in
// time (mochi's "read connection" error on the deadline guardConn set).
func (b *Broker) connEnded(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) && strings.HasPrefix(err.Error(), "read connection") {
		b.connectTimeouts.Add(1)
	}
}

// truncate shortens s for a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// guardConn wraps a new client connection in a frameGuard.
// The connection must send its CONNECT within ConnectTimeout (mochi sets the
// keepalive deadline once it has read it).
func (b *Broker) guardConn(c net.Conn) net.Conn {
	_ = c.SetReadDeadline(time.Now().Add(b.opts.ConnectTimeout))
	g := &guardedConn{Conn: c, b: b, guard: frameGuard{max: uint64(b.opts.MaxPacketSize)}}
	if sc, ok := c.(syscall.Conn); ok {
		g.raw, _ = sc.SyscallConn()
	}
	return g
}
