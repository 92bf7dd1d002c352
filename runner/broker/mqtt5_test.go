package broker

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/internal/mochi/packets"
)

// v5Client is a minimal MQTT 5 client over a raw connection, encoding and
// decoding with mochi's packets package, so that tests can see reason
// codes and CONNACK properties that paho (3.1.1) cannot show.
type v5Client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// dialV5 connects and returns the client and its CONNACK.
func dialV5(t testing.TB, addr, id string) (*v5Client, packets.Packet) {
	t.Helper()
	return dialV5Buf(t, addr, id, 0)
}

// dialV5Buf is dialV5 with a socket receive buffer of rcvbuf bytes (0:
// the system's), to play a subscriber on a slow link.
func dialV5Buf(t testing.TB, addr, id string, rcvbuf int) (*v5Client, packets.Packet) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if rcvbuf > 0 {
		if err := conn.(*net.TCPConn).SetReadBuffer(rcvbuf); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { conn.Close() })
	c := &v5Client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
		ProtocolName: []byte("MQTT"), ClientIdentifier: id, Clean: true, Keepalive: 30,
	}})
	ack, err := c.read()
	if err != nil || ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("connect: %+v %v", ack, err)
	}
	return c, ack
}

func (c *v5Client) send(pk packets.Packet) {
	c.t.Helper()
	if err := c.trySend(pk); err != nil {
		c.t.Fatalf("send %v: %v", pk.FixedHeader.Type, err)
	}
}

func (c *v5Client) trySend(pk packets.Packet) error {
	b, err := encodeErr(pk)
	if err != nil {
		return err
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = c.conn.Write(b)
	return err
}

// encode5 returns the bytes of pk as an MQTT 5 packet.
func encode5(t testing.TB, pk packets.Packet) []byte {
	t.Helper()
	b, err := encodeErr(pk)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func encodeErr(pk packets.Packet) ([]byte, error) {
	pk.ProtocolVersion = 5
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	default:
		return nil, errors.New("v5Client: cannot send this packet type")
	}
	return buf.Bytes(), err
}

// read returns the next packet from the broker (io.EOF once it closed the
// connection).
func (c *v5Client) read() (packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var pk packets.Packet
	pk.ProtocolVersion = 5
	b, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	return pk, err
}

// readType skips packets until one of type typ arrives.
func (c *v5Client) readType(typ byte) packets.Packet {
	c.t.Helper()
	for {
		pk, err := c.read()
		if err != nil {
			c.t.Fatalf("waiting for packet type %d: %v", typ, err)
		}
		if pk.FixedHeader.Type == typ {
			return pk
		}
	}
}

func publish5(topic string, payload []byte, qos byte, id uint16) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, Payload: payload, PacketID: id}
}

func subscribe5(id uint16, filters ...string) packets.Packet {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	return pk
}

// drain reads publishes until it has seen want distinct payloads,
// acknowledging QoS 1 ones, and returns the distinct payloads and the
// total number received (duplicates included).
func (c *v5Client) drain(want int, timeout time.Duration) (map[string]bool, int) {
	c.t.Helper()
	got, total := map[string]bool{}, 0
	deadline := time.Now().Add(timeout)
	for len(got) < want && time.Now().Before(deadline) {
		pk, err := c.read()
		if err != nil {
			c.t.Logf("drain: read: %v (after %d)", err, len(got))
			return got, total
		}
		if pk.FixedHeader.Type != packets.Publish {
			continue
		}
		total++
		got[string(pk.Payload)] = true
		if pk.FixedHeader.Qos == 1 {
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
		}
	}
	return got, total
}
