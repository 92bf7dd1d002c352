package broker

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eddy-edge/eddy/internal/mochi/packets"
)

// publishN publishes n messages "prefix-i" of size bytes with paho and
// fails unless every one is acknowledged (QoS 1) or written (QoS 0).
func publishN(t *testing.T, b *Broker, topic string, qos byte, n, size int) time.Duration {
	t.Helper()
	p := connect(t, brokerURL(b), func(o *paho.ClientOptions) { o.SetClientID("publisher") })
	pad := strings.Repeat("x", max(0, size-8))
	start := time.Now()
	toks := make([]paho.Token, n)
	for i := range toks {
		toks[i] = p.Publish(topic, qos, false, fmt.Sprintf("%06d%s", i, pad))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d of %d: %v (connected: %v)", i, n, tok.Error(), p.IsConnected())
		}
	}
	return time.Since(start)
}

// A QoS 0 subscriber that stops reading (a 4 KiB receive buffer, never
// read) loses only its own messages: beyond MaxQueuedMessages they are
// dropped, counted for it and logged; the publisher and a subscriber that
// keeps up are not affected.
func TestSlowQoS0SubscriberDropsAlone(t *testing.T) {
	const n = 5000
	b := startBroker(t, Options{AllowAnonymous: true, Log: &replayLog{memLog: &memLog{}}, MaxQueuedMessages: 100})
	slow, _ := dialV5Buf(t, b.Addr().String(), "slow", 4096)
	slow.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "m/#", Qos: 0}}})
	slow.readType(packets.Suback)
	fast := newInbox()
	f := connect(t, brokerURL(b), func(o *paho.ClientOptions) { o.SetClientID("fast") })
	wait(t, f.Subscribe("m/#", 0, fast.handler))

	// The publisher paces itself on the subscriber that keeps up, so that
	// only the stalled one is over its bound.
	var took time.Duration
	for i := 0; i < n; i += 50 {
		took += publishN(t, b, "m/1", 0, 50, 1024)
		fast.waitN(t, i+50, 20*time.Second)
	}
	st := b.Stats()
	var dropped int64
	for _, c := range b.Clients() {
		if c.ID == "slow" {
			dropped = c.Dropped
		}
	}
	t.Logf("%d QoS 0 publishes in %v; slow subscriber: %d dropped", n, took.Round(time.Millisecond), dropped)
	if st.SlowSubscriberDrops == 0 || dropped != st.SlowSubscriberDrops {
		t.Fatalf("drops: broker %d, slow client %d; want the same, > 0", st.SlowSubscriberDrops, dropped)
	}
	if st.BackpressureWaits != 0 || st.CatchUps != 0 {
		t.Fatalf("a QoS 0 subscriber made publishers wait (%d) or was replayed (%d)", st.BackpressureWaits, st.CatchUps)
	}
}

// A QoS 1 subscriber that stops reading is served from the log: the
// publisher's QoS 1 publishes are all acknowledged without waiting, and
// when the subscriber reads again it gets every message, some twice.
func TestSlowQoS1SubscriberCatchesUpFromLog(t *testing.T) {
	for _, kind := range []struct {
		name string
		log  func() Appender
	}{
		{"sync", func() Appender { return &replayLog{memLog: &memLog{}} }},
		{"notify", func() Appender { return newNotifyReplayLog() }},
	} {
		t.Run(kind.name, func(t *testing.T) {
			const n = 3000
			b := startBroker(t, Options{AllowAnonymous: true, Log: kind.log(), MaxQueuedMessages: 100})
			slow, _ := dialV5Buf(t, b.Addr().String(), "slow", 4096)
			slow.send(subscribe5(1, "m/#"))
			slow.readType(packets.Suback)

			took := publishN(t, b, "m/1", 1, n, 256)
			st := b.Stats()
			t.Logf("%d QoS 1 publishes in %v with a stalled QoS 1 subscriber", n, took.Round(time.Millisecond))
			// It may catch up and fall behind again while the kernel's
			// socket buffers still take its messages.
			if st.CatchUps < 1 || st.Lagging != 1 || st.BackpressureWaits != 0 {
				t.Fatalf("stalled subscriber: catch-ups %d, lagging %d, backpressure waits %d; want >= 1, 1, 0; %+v", st.CatchUps, st.Lagging, st.BackpressureWaits, b.Clients())
			}
			// It reads again, with a normal receive buffer (a 4 KiB one
			// limits TCP to a few hundred messages a second here).
			if err := slow.conn.(*net.TCPConn).SetReadBuffer(1 << 20); err != nil {
				t.Fatal(err)
			}
			got, total := slow.drain(n, 20*time.Second)
			if len(got) != n {
				t.Fatalf("the subscriber got %d of %d messages (%d in all); stats %+v; clients %+v", len(got), n, total, b.Stats(), b.Clients())
			}
			eventually(t, 5*time.Second, "the subscriber to be live again", func() bool { return b.Stats().Lagging == 0 })
			t.Logf("received %d distinct, %d in all; %d replayed from the log", len(got), total, b.Stats().Replayed)

			// Live again: new messages arrive directly.
			publishN(t, b, "m/2", 1, 10, 16)
			if got, _ := slow.drain(10, 10*time.Second); len(got) != 10 {
				t.Fatalf("after catching up: %d of 10", len(got))
			}
		})
	}
}

// A slow subscriber whose messages retention removed before it read them
// is told (DISCONNECT 0x97 with the reason) and counted, not silently
// skipped.
func TestSlowSubscriberBehindRetentionIsDisconnected(t *testing.T) {
	log := &replayLog{memLog: &memLog{}}
	b := startBroker(t, Options{AllowAnonymous: true, Log: log, MaxQueuedMessages: 100})
	// A normal receive buffer: it lags because it acknowledges nothing.
	// (A 4 KiB buffer set before connecting clamps the TCP window for
	// good: the broker's last bytes then wait for zero-window probes,
	// which back off past the broker's grace on a loaded machine, and the
	// DISCONNECT did not arrive before the connection closed.)
	slow, _ := dialV5(t, b.Addr().String(), "slow")
	slow.send(subscribe5(1, "m/#"))
	slow.readType(packets.Suback)
	publishN(t, b, "m/1", 1, 2000, 256)
	if b.Stats().Lagging != 1 {
		t.Fatal("the subscriber is not lagging")
	}
	log.dropBefore(1500)
	for {
		pk, err := slow.read()
		if err != nil {
			t.Fatalf("no DISCONNECT: %v", err)
		}
		if pk.FixedHeader.Type == packets.Disconnect {
			if pk.ReasonCode != packets.ErrQuotaExceeded.Code || !strings.Contains(pk.Properties.ReasonString, "retention") {
				t.Fatalf("DISCONNECT 0x%02x %q", pk.ReasonCode, pk.Properties.ReasonString)
			}
			t.Logf("DISCONNECT 0x%02x %q", pk.ReasonCode, pk.Properties.ReasonString)
			slow.conn.Close()
			break
		}
		if pk.FixedHeader.Type == packets.Publish {
			_ = slow.trySend(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
		}
	}
	eventually(t, 5*time.Second, "the disconnect to be counted", func() bool { return b.Stats().RetentionDisconnects == 1 })
}
