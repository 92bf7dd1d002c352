package broker

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eddy-edge/eddy/internal/mochi/packets"
)

// A Batch's deliveries reach a real subscriber in order, and a subscriber
// that never reads neither holds up Flush nor costs the one that reads a
// message: its share goes to its queue and is dropped at its bound.
func TestBatchDeliversInOrderPastAStalledSubscriber(t *testing.T) {
	const n = 10000
	pad := strings.Repeat("x", 1018) // 10 MB in all: more than the stalled socket's buffers hold
	b := startBroker(t, Options{AllowAnonymous: true, MaxQueuedMessages: 100})
	stalled, _ := dialV5Buf(t, b.Addr().String(), "stalled", 4096)
	stalled.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "out/#", Qos: 0}}})
	stalled.readType(packets.Suback)
	in := newInbox()
	sub := connect(t, brokerURL(b), func(o *paho.ClientOptions) { o.SetClientID("reader") })
	wait(t, sub.Subscribe("out/#", 0, in.handler))

	bt := b.NewBatch()
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for i := 0; i < n; i += 100 {
			for j := i; j < i+100; j++ {
				if err := bt.PublishFrozen(context.Background(), "out/x", []byte(fmt.Sprintf("%06d%s", j, pad)), 0, false); err != nil {
					t.Errorf("publish %d: %v", j, err)
					return
				}
			}
			bt.Flush()
			in.waitN(t, i+100, 20*time.Second) // paced on the reader
		}
	}()
	select {
	case <-flushed:
	case <-time.After(60 * time.Second):
		t.Fatal("publishing through a Batch stalled behind a subscriber that does not read")
	}
	got := in.waitN(t, n, 20*time.Second)
	for i, m := range got {
		if want := fmt.Sprintf("%06d", i); string(m.Payload()[:6]) != want {
			t.Fatalf("message %d is %q..., want %q", i, m.Payload()[:6], want)
		}
	}
	var dropped int64
	for _, c := range b.Clients() {
		if c.ID == "stalled" {
			dropped = c.Dropped
		}
	}
	if dropped == 0 {
		t.Fatal("the stalled subscriber dropped nothing: its deliveries were held somewhere unbounded")
	}
	t.Logf("stalled subscriber: %d of %d dropped", dropped, n)
}

// TryWrite never waits: on a socket whose peer does not read, it returns
// 0 once the socket's buffers are full.
func TestTryWriteDoesNotWait(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c := <-accepted
	defer c.Close()
	b := &Broker{}
	g := b.guardConn(c).(*guardedConn)
	p := make([]byte, 64<<10)
	total := 0
	for range 10000 { // a few MB fill any socket buffer
		n, err := g.TryWrite(p)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n == 0 {
			t.Logf("socket full after %d bytes", total)
			return
		}
	}
	t.Fatalf("wrote %d bytes to a peer that does not read without the socket filling", total)
}
