package broker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eddy-edge/eddy/internal/mochi/packets"

	"github.com/eddy-edge/eddy/runner/wal"
)

// walNotify adapts a real write-ahead log to NotifyAppender, as the runner
// does.
type walNotify struct{ log wal.Log }

func (a walNotify) Append(ctx context.Context, msg *Message, durable bool) error {
	d := wal.Async
	if durable {
		d = wal.Durable
	}
	return a.log.AppendWith(ctx, d, walRec(msg))
}

func (a walNotify) AppendNotify(ctx context.Context, msg *Message, done func(error)) error {
	return a.log.AppendNotify(ctx, wal.Durable, done, walRec(msg))
}

func walRec(msg *Message) *wal.Record {
	return &wal.Record{Time: msg.Time.UnixNano(), Topic: msg.Topic, Payload: msg.Payload, QoS: msg.QoS, Retain: msg.Retain, Client: msg.Client}
}

// walSync hides AppendNotify, so the broker blocks in OnPublish (the old
// behaviour, kept for Appenders that cannot notify).
type walSync struct{ w walNotify }

func (a walSync) Append(ctx context.Context, msg *Message, durable bool) error {
	return a.w.Append(ctx, msg, durable)
}

func openWAL(t testing.TB) *wal.File {
	t.Helper()
	l, err := wal.Open(context.Background(), t.TempDir(), wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// One paho client pipelines 2,000 QoS 1 and 2 publishes without waiting:
// all are acknowledged, delivered in order and logged in order in a real
// WAL, and mochi counts each publish once.
func TestAsyncAckPipelinedInOrder(t *testing.T) {
	l := openWAL(t)
	b := startBroker(t, Options{AllowAnonymous: true, Log: walNotify{l}})
	in := newInbox()
	sub := connect(t, brokerURL(b), func(o *paho.ClientOptions) { o.SetOrderMatters(true) })
	wait(t, sub.Subscribe("pipe/#", 2, in.handler))
	pub := connect(t, brokerURL(b), nil)
	const n = 2000
	toks := make([]paho.Token, n)
	for i := range toks {
		qos := byte(1)
		if i%10 == 9 {
			qos = 2 // the PUBREC/PUBREL/PUBCOMP flow on the injected pass
		}
		toks[i] = pub.Publish("pipe/t", qos, false, fmt.Sprintf("m%05d", i))
	}
	for _, tok := range toks {
		wait(t, tok)
	}
	got := in.waitN(t, n, 20*time.Second)
	for i, m := range got {
		if want := fmt.Sprintf("m%05d", i); string(m.Payload()) != want {
			t.Fatalf("delivery %d = %q, want %q (out of order)", i, m.Payload(), want)
		}
	}
	recs := make([]wal.Record, n)
	for k := 0; k < n; {
		c, err := l.Read(context.Background(), uint64(k+1), recs[k:])
		if err != nil {
			t.Fatal(err)
		}
		k += c
	}
	for i, r := range recs {
		if want := fmt.Sprintf("m%05d", i); string(r.Payload) != want || r.Topic != "pipe/t" {
			t.Fatalf("log offset %d = %s %q, want pipe/t %q", r.Offset, r.Topic, r.Payload, want)
		}
	}
	// The subscriber acknowledges its deliveries after its handler ran.
	eventually(t, 5*time.Second, "acknowledgements to complete", func() bool { return b.PendingAcks() == 0 && b.Stats().Inflight == 0 })
	st := b.Stats()
	if st.MessagesIn != n || st.Logged != n || st.LogFailures != 0 || st.Inflight != 0 {
		t.Fatalf("stats %+v; want MessagesIn = Logged = %d, no failures, nothing inflight", st, n)
	}
	t.Logf("wal: %d records in %d fsyncs, largest batch %d", n, l.Stats().Fsyncs, l.Stats().MaxBatchSeen)
}

// Nothing is acknowledged or delivered before the append is durable, for
// QoS 1 and QoS 2, and everything is once it is.
func TestAsyncAckWaitsForDurable(t *testing.T) {
	log := &notifyLog{memLog: &memLog{}}
	b := startBroker(t, Options{AllowAnonymous: true, Log: log})
	in := newInbox()
	sub := connect(t, brokerURL(b), nil)
	wait(t, sub.Subscribe("hold/#", 2, in.handler))
	pub := connect(t, brokerURL(b), nil)
	log.hold()
	t1 := pub.Publish("hold/1", 1, false, "one")
	t2 := pub.Publish("hold/2", 2, false, "two")
	eventually(t, 5*time.Second, "both publishes to be appended", func() bool {
		msgs, _ := log.snapshot()
		return len(msgs) == 2
	})
	if b.PendingAcks() != 2 {
		t.Fatalf("PendingAcks = %d, want 2", b.PendingAcks())
	}
	// The appends are not durable: a round trip through the broker on the
	// same connection must come back before any acknowledgement.
	wait(t, pub.Publish("other", 0, false, "x"))
	wait(t, sub.Unsubscribe("nothing"))
	if t1.WaitTimeout(100*time.Millisecond) || t2.WaitTimeout(100*time.Millisecond) {
		t.Fatal("a publish was acknowledged before its append was durable")
	}
	if m := in.all(); len(m) != 0 {
		t.Fatalf("delivered %d messages before they were durable", len(m))
	}
	log.release()
	wait(t, t1)
	wait(t, t2)
	got := in.waitN(t, 2, 10*time.Second)
	if string(got[0].Payload()) != "one" || string(got[1].Payload()) != "two" || got[1].Qos() != 2 {
		t.Fatalf("delivered %q qos %d, %q qos %d", got[0].Payload(), got[0].Qos(), got[1].Payload(), got[1].Qos())
	}
}

// A client that disconnects while its publish is being appended gets no
// acknowledgement, but the publish is in the log, so it is delivered.
func TestAsyncAckClientGoneStillDelivered(t *testing.T) {
	log := &notifyLog{memLog: &memLog{}}
	b := startBroker(t, Options{AllowAnonymous: true, Log: log})
	in := newInbox()
	sub := connect(t, brokerURL(b), nil)
	wait(t, sub.Subscribe("gone/#", 1, in.handler))
	rc := dialRaw(t, b, "gone-pub", 4)
	log.hold()
	rc.publish(t, "gone/t", 1, 7, "kept")
	eventually(t, 5*time.Second, "the publish to be appended", func() bool { return b.PendingAcks() == 1 })
	_ = rc.conn.Close()
	eventually(t, 5*time.Second, "the publisher to be gone", func() bool { return b.Stats().Clients == 1 })
	log.release()
	got := in.waitN(t, 1, 10*time.Second)
	if got[0].Topic() != "gone/t" || string(got[0].Payload()) != "kept" {
		t.Fatalf("delivered %s %q", got[0].Topic(), got[0].Payload())
	}
	if st := b.Stats(); st.Logged != 1 || st.MessagesIn != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// MQTT 5 topic aliases are resolved on the first pass: the injected publish
// carries the topic name, and re-binding an alias while earlier publishes
// are still being appended does not change where they go.
func TestAsyncAckTopicAliases(t *testing.T) {
	log := &notifyLog{memLog: &memLog{}}
	b := startBroker(t, Options{AllowAnonymous: true, Log: log})
	in := newInbox()
	sub := connect(t, brokerURL(b), nil)
	wait(t, sub.Subscribe("alias/#", 1, in.handler))
	rc := dialRaw(t, b, "alias-pub", 5)
	log.hold()
	sends := []struct{ topic, payload string }{
		{"alias/a", "1"}, // binds alias 1 to alias/a
		{"", "2"},        // alias 1 = alias/a
		{"alias/b", "3"}, // re-binds alias 1 to alias/b
		{"", "4"},        // alias 1 = alias/b
	}
	for i, s := range sends {
		rc.publishAlias(t, s.topic, 1, uint16(i+1), 1, s.payload)
	}
	eventually(t, 5*time.Second, "the publishes to be appended", func() bool { return b.PendingAcks() == 4 })
	log.release()
	for i := range sends {
		ack := rc.read(t)
		if ack.FixedHeader.Type != packets.Puback || ack.PacketID != uint16(i+1) || ack.ReasonCode != 0 {
			t.Fatalf("ack %d: type %d id %d reason %#x, want PUBACK id %d success", i, ack.FixedHeader.Type, ack.PacketID, ack.ReasonCode, i+1)
		}
	}
	got := in.waitN(t, 4, 10*time.Second)
	want := []string{"alias/a 1", "alias/a 2", "alias/b 3", "alias/b 4"}
	for i, m := range got {
		if s := m.Topic() + " " + string(m.Payload()); s != want[i] {
			t.Fatalf("delivery %d = %q, want %q", i, s, want[i])
		}
	}
	msgs, _ := log.snapshot()
	for i, m := range msgs {
		if s := m.Topic + " " + string(m.Payload); s != want[i] {
			t.Fatalf("logged %d = %q, want %q", i, s, want[i])
		}
	}
}

// A failed append is refused in order with the other publishes of the same
// client: MQTT 5 gets a negative PUBACK / PUBREC, earlier and later
// publishes that were logged are acknowledged, the refused one is never
// delivered.
func TestAsyncAckFailureInOrder(t *testing.T) {
	log := &notifyLog{memLog: &memLog{}, late: true}
	b := startBroker(t, Options{AllowAnonymous: true, Log: log})
	in := newInbox()
	sub := connect(t, brokerURL(b), nil)
	wait(t, sub.Subscribe("mix/#", 2, in.handler))
	rc := dialRaw(t, b, "mix-pub", 5)
	log.hold()
	rc.publish(t, "mix/t", 1, 1, "ok1")
	eventually(t, 5*time.Second, "the first publish to be appended", func() bool { return b.PendingAcks() == 1 })
	log.fail.Store(true)
	rc.publish(t, "mix/t", 1, 2, "bad1")
	rc.publish(t, "mix/t", 2, 3, "bad2")
	eventually(t, 5*time.Second, "the failing publishes to be queued", func() bool { return b.PendingAcks() == 3 })
	log.fail.Store(false)
	rc.publish(t, "mix/t", 1, 4, "ok2")
	eventually(t, 5*time.Second, "the last publish to be appended", func() bool { return b.PendingAcks() == 4 })
	log.release()
	want := []struct {
		typ    byte
		id     uint16
		reason byte
	}{
		{packets.Puback, 1, 0},
		{packets.Puback, 2, packets.ErrImplementationSpecificError.Code},
		{packets.Pubrec, 3, packets.ErrImplementationSpecificError.Code},
		{packets.Puback, 4, 0},
	}
	for i, w := range want {
		ack := rc.read(t)
		if ack.FixedHeader.Type != w.typ || ack.PacketID != w.id || ack.ReasonCode != w.reason {
			t.Fatalf("ack %d: type %d id %d reason %#x, want type %d id %d reason %#x", i, ack.FixedHeader.Type, ack.PacketID, ack.ReasonCode, w.typ, w.id, w.reason)
		}
	}
	got := in.waitN(t, 2, 10*time.Second)
	wait(t, sub.Unsubscribe("nothing")) // a round trip: anything else would have arrived by now
	if got = in.all(); len(got) != 2 || string(got[0].Payload()) != "ok1" || string(got[1].Payload()) != "ok2" {
		for _, m := range got {
			t.Errorf("delivered %q", m.Payload())
		}
		t.Fatal("want exactly ok1, ok2")
	}
	if st := b.Stats(); st.LogFailures != 2 || st.Logged != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// rawClient speaks MQTT over a plain connection with mochi's codec, for
// what paho cannot do (hold a connection without acknowledging, send topic
// aliases, show reason codes).
type rawClient struct {
	conn    net.Conn
	r       *bufio.Reader
	version byte
}

func dialRaw(t *testing.T, b *Broker, id string, version byte) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	rc := &rawClient{conn: conn, r: bufio.NewReader(conn), version: version}
	rc.write(t, packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: version,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: id,
			Keepalive:        60,
			Clean:            true,
		},
	})
	if ack := rc.read(t); ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("connect: type %d reason %#x", ack.FixedHeader.Type, ack.ReasonCode)
	}
	return rc
}

func (rc *rawClient) publish(t *testing.T, topic string, qos byte, id uint16, payload string) {
	rc.publishAlias(t, topic, qos, id, 0, payload)
}

func (rc *rawClient) publishAlias(t *testing.T, topic string, qos byte, id, alias uint16, payload string) {
	t.Helper()
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: qos},
		ProtocolVersion: rc.version,
		TopicName:       topic,
		PacketID:        id,
		Payload:         []byte(payload),
	}
	if alias > 0 {
		pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = alias, true
	}
	rc.write(t, pk)
}

func (rc *rawClient) write(t *testing.T, pk packets.Packet) {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	default:
		t.Fatalf("rawClient cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// read returns the next CONNACK, PUBACK or PUBREC.
func (rc *rawClient) read(t *testing.T) packets.Packet {
	t.Helper()
	_ = rc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	hb, err := rc.r.ReadByte()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	pk := packets.Packet{ProtocolVersion: rc.version}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		t.Fatal(err)
	}
	n, _, err := packets.DecodeLength(rc.r)
	if err != nil {
		t.Fatal(err)
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(rc.r, body); err != nil {
		t.Fatal(err)
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	default:
		t.Fatalf("rawClient got unexpected packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pk
}
