package broker

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eddy-edge/eddy/internal/mochi/packets"
)

func TestFrameGuardScan(t *testing.T) {
	enc := func(pk packets.Packet) []byte {
		pk.ProtocolVersion = 4
		var b bytes.Buffer
		if err := pk.PublishEncode(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	small := enc(publish5("a/b", make([]byte, 10), 0, 0))
	big := enc(publish5("a/b", make([]byte, 300), 0, 0)) // 2-byte length
	stream := append(append(append([]byte(nil), small...), small...), big...)
	bigAt := 2 * len(small)
	// Fed whole and one byte at a time, the guard passes exactly the bytes
	// before the big packet's header.
	for _, chunk := range []int{len(stream), 1, 3, 7} {
		g := frameGuard{max: 100}
		passed := 0
		for i := 0; i < len(stream) && !g.refused; i += chunk {
			p := stream[i:min(i+chunk, len(stream))]
			passed += g.scan(p)
		}
		if !g.refused || passed != bigAt && chunk == len(stream) || passed > bigAt+2 {
			t.Fatalf("chunk %d: refused %v, passed %d bytes, big packet at %d", chunk, g.refused, passed, bigAt)
		}
		if g.tooBig != uint64(len(big)) {
			t.Fatalf("chunk %d: refused size %d, want %d", chunk, g.tooBig, len(big))
		}
	}
	g := frameGuard{max: uint64(len(big))}
	if g.scan(stream) != len(stream) || g.refused {
		t.Fatal("a packet exactly at the limit was refused")
	}
}

func FuzzFrameGuard(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0, 1, 'a', 0x30, 0xff, 0xff, 0xff, 0x7f}, uint16(50))
	f.Add([]byte{0xc0, 0x00, 0xe0, 0x00}, uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		g := frameGuard{max: uint64(limit)}
		n := g.scan(data)
		if n < 0 || n > len(data) || (n < len(data) && !g.refused) {
			t.Fatalf("scan returned %d of %d (refused %v)", n, len(data), g.refused)
		}
		if g.refused && g.tooBig <= uint64(limit) {
			t.Fatalf("refused a packet of %d bytes under the limit %d", g.tooBig, limit)
		}
	})
}

// A publish over MaxPacketSize is refused from its header: an MQTT 5
// client is told the limit in its CONNACK and gets DISCONNECT 0x95, the
// refusal is counted, nothing is logged or delivered, and the broker does
// not read the 20 MB body into memory.
func TestMaxPacketSize(t *testing.T) {
	log := &memLog{}
	b := startBroker(t, Options{AllowAnonymous: true, Log: log})
	if b.opts.MaxPacketSize != DefaultMaxPacketSize {
		t.Fatalf("default MaxPacketSize = %d, want %d", b.opts.MaxPacketSize, DefaultMaxPacketSize)
	}
	sub := newInbox()
	s := connect(t, brokerURL(b), nil)
	wait(t, s.Subscribe("big/#", 0, sub.handler))

	c, ack := dialV5(t, b.Addr().String(), "v5-big")
	if ack.Properties.MaximumPacketSize != DefaultMaxPacketSize || ack.Properties.TopicAliasMaximum != DefaultMaxTopicAliases {
		t.Fatalf("CONNACK announces maximum packet size %d, topic alias maximum %d; want %d, %d",
			ack.Properties.MaximumPacketSize, ack.Properties.TopicAliasMaximum, DefaultMaxPacketSize, DefaultMaxTopicAliases)
	}
	// Just under the limit passes.
	c.send(publish5("big/ok", make([]byte, DefaultMaxPacketSize-100), 1, 1))
	if pk := c.readType(packets.Puback); pk.ReasonCode != 0 {
		t.Fatalf("publish under the limit: PUBACK 0x%02x", pk.ReasonCode)
	}
	sub.waitN(t, 1, 10*time.Second)

	huge := encode5(t, publish5("big/huge", make([]byte, 20<<20), 1, 2))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	go c.conn.Write(huge) // the broker hangs up mid-write
	pk, err := c.read()
	if err != nil || pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != packets.ErrPacketTooLarge.Code {
		t.Fatalf("20 MB publish: got %+v %v, want DISCONNECT 0x95", pk.FixedHeader, err)
	}
	eventually(t, 5*time.Second, "the refusal to be counted", func() bool { return b.Stats().PacketsTooLarge == 1 })
	runtime.ReadMemStats(&after)
	// The test's own packet was encoded before; the broker must not have
	// allocated room for its body.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Errorf("allocated %d MB while refusing a 20 MB publish: the broker read its body", grew>>20)
	}

	// MQTT 3.1.1 (mosquitto_pub): the connection is closed, counted.
	pub := mosquitto(t, "mosquitto_pub")
	file := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(file, bytes.Repeat([]byte("x"), 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(b.Addr().String(), ":")
	out, err := exec.Command(pub, "-h", host, "-p", port, "-q", "1", "-t", "big/mosq", "-f", file).CombinedOutput()
	if err == nil {
		t.Errorf("mosquitto_pub of 2 MiB succeeded: %s", out)
	}
	eventually(t, 5*time.Second, "the second refusal to be counted", func() bool { return b.Stats().PacketsTooLarge == 2 })
	msgs, _ := log.snapshot()
	for _, m := range msgs {
		if m.Topic != "big/ok" {
			t.Errorf("refused publish %q was logged", m.Topic)
		}
	}
	if got := sub.all(); len(got) != 1 {
		t.Errorf("subscriber got %d messages, want only the one under the limit", len(got))
	}
}

func TestTopicBounds(t *testing.T) {
	log := &memLog{}
	b := startBroker(t, Options{AllowAnonymous: true, Log: log, MaxTopicLength: 64, MaxTopicLevels: 4})
	deep := "a/b/c/d/e"
	long := strings.Repeat("x", 65)

	c, _ := dialV5(t, b.Addr().String(), "v5-topics")
	c.send(publish5(deep, []byte("1"), 1, 1))
	if pk := c.readType(packets.Puback); pk.ReasonCode != packets.ErrTopicNameInvalid.Code {
		t.Fatalf("publish with 5 levels: PUBACK 0x%02x, want 0x90", pk.ReasonCode)
	}
	c.send(publish5(long, []byte("2"), 1, 2))
	if pk := c.readType(packets.Puback); pk.ReasonCode != packets.ErrTopicNameInvalid.Code {
		t.Fatalf("publish to a 65-byte topic: PUBACK 0x%02x, want 0x90", pk.ReasonCode)
	}
	c.send(subscribe5(3, "ok/+", "a/b/c/d/#", long))
	if pk := c.readType(packets.Suback); !bytes.Equal(pk.ReasonCodes, []byte{1, 0x8f, 0x8f}) {
		t.Fatalf("SUBACK codes % x, want 01 8f 8f", pk.ReasonCodes)
	}

	// MQTT 3.1.1: QoS 0 is dropped, the filter refused with 0x80.
	p := connect(t, brokerURL(b), nil)
	wait(t, p.Publish(deep, 0, false, "3"))
	tok := p.Subscribe(long, 1, nil)
	wait(t, tok)
	if codes := tok.(*paho.SubscribeToken).Result(); codes[long] != 0x80 {
		t.Fatalf("3.1.1 SUBACK for a long filter: %v", codes)
	}
	wait(t, p.Publish("ok/fine", 0, false, "4")) // a later publish is not held up
	eventually(t, 5*time.Second, "the good publish to be logged", func() bool {
		msgs, _ := log.snapshot()
		return len(msgs) == 1
	})
	if msgs, _ := log.snapshot(); msgs[0].Topic != "ok/fine" {
		t.Fatalf("logged %q", msgs[0].Topic)
	}
	if st := b.Stats(); st.TopicsRefused != 6 {
		t.Fatalf("TopicsRefused = %d, want 6 (2 v5 publishes, 2 v5 filters, a 3.1.1 publish and filter)", st.TopicsRefused)
	}
	if err := b.Publish(deep, nil, 0, false); err == nil {
		t.Fatal("inline publish over the level bound was accepted")
	}
}

func TestMaxSubscriptions(t *testing.T) {
	b := startBroker(t, Options{AllowAnonymous: true, MaxSubscriptions: 3})
	c, _ := dialV5(t, b.Addr().String(), "v5-subs")
	c.send(subscribe5(1, "s/1", "s/2"))
	if pk := c.readType(packets.Suback); !bytes.Equal(pk.ReasonCodes, []byte{1, 1}) {
		t.Fatalf("first SUBACK % x", pk.ReasonCodes)
	}
	// One more fits; a resubscription takes no room; the rest are refused.
	c.send(subscribe5(2, "s/1", "s/3", "s/4", "s/3", "s/5"))
	if pk := c.readType(packets.Suback); !bytes.Equal(pk.ReasonCodes, []byte{1, 1, 0x97, 1, 0x97}) {
		t.Fatalf("second SUBACK % x, want 01 01 97 01 97", pk.ReasonCodes)
	}
	if st := b.Stats(); st.SubscriptionsRefused != 2 || st.Subscriptions != 3 {
		t.Fatalf("stats: %d refused, %d subscriptions; want 2, 3", st.SubscriptionsRefused, st.Subscriptions)
	}
	// The refused filters were not subscribed.
	c.send(publish5("s/4", []byte("x"), 0, 0))
	c.send(publish5("s/3", []byte("y"), 0, 0))
	if pk := c.readType(packets.Publish); pk.TopicName != "s/3" {
		t.Fatalf("delivered %q, want only s/3", pk.TopicName)
	}
}

// An MQTT 5 client told a receive maximum of 4 that sends a fifth QoS 1
// publish while four wait for the log is disconnected with 0x93.
func TestReceiveMaximum(t *testing.T) {
	nl := &notifyLog{memLog: &memLog{}}
	b := startBroker(t, Options{AllowAnonymous: true, Log: nl, ReceiveMaximum: 4})
	c, ack := dialV5(t, b.Addr().String(), "v5-recvmax")
	if ack.Properties.ReceiveMaximum != 4 {
		t.Fatalf("CONNACK receive maximum %d, want 4", ack.Properties.ReceiveMaximum)
	}
	nl.hold()
	defer nl.release()
	for i := uint16(1); i <= 5; i++ {
		c.send(publish5("r/1", []byte("x"), 1, i))
	}
	pk := c.readType(packets.Disconnect)
	if pk.ReasonCode != packets.ErrReceiveMaximum.Code {
		t.Fatalf("DISCONNECT 0x%02x, want 0x93", pk.ReasonCode)
	}
	if got := b.Stats().ReceiveMaximumExceeded; got != 1 {
		t.Fatalf("ReceiveMaximumExceeded = %d", got)
	}
}
