package broker

import (
	"context"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// After StopIntake: no new connection is accepted; a connected (3.1.1)
// client's QoS 1 publish is neither acknowledged nor logged
// (the client resends it to the next run); a connected subscriber still
// gets what the runner publishes (a pipeline's last output), until Close.
func TestStopIntake(t *testing.T) {
	log := &memLog{}
	b := startBroker(t, Options{AllowAnonymous: true, Log: log})
	url := brokerURL(b)
	sub := connect(t, url, nil)
	in := newInbox()
	wait(t, sub.Subscribe("out/#", 1, in.handler))
	pub := connect(t, url, nil)
	wait(t, pub.Publish("in/1", 1, false, "before"))

	b.StopIntake()
	if c, err := net.DialTimeout("tcp", b.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("a new connection was accepted after StopIntake")
	}
	tok := pub.Publish("in/1", 1, false, "after")
	if tok.WaitTimeout(500*time.Millisecond) && tok.Error() == nil {
		t.Fatal("a client publish was acknowledged after StopIntake")
	}
	if err := b.PublishContext(context.Background(), "out/last", []byte("flushed"), 1, false); err != nil {
		t.Fatalf("the runner's own publish after StopIntake: %v", err)
	}
	if got := in.waitN(t, 1, 5*time.Second); string(got[0].Payload()) != "flushed" {
		t.Fatalf("subscriber got %q", got[0].Payload())
	}
	msgs, _ := log.snapshot()
	for _, m := range msgs {
		if string(m.Payload) == "after" {
			t.Fatal("a publish refused at intake was logged")
		}
	}
}

// PublishContext returns when its context ends while it waits for a
// congested subscriber, instead of the full BackpressureTimeout.
func TestPublishContextEndsBackpressureWait(t *testing.T) {
	b := startBroker(t, Options{AllowAnonymous: true, HighWater: 4, BackpressureTimeout: time.Minute})
	release := make(chan struct{})
	defer close(release)
	sub := connect(t, brokerURL(b), func(o *paho.ClientOptions) { o.SetOrderMatters(true) })
	wait(t, sub.Subscribe("slow/#", 1, func(paho.Client, paho.Message) { <-release }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if err := b.PublishContext(ctx, "slow/x", []byte("m"), 1, false); err != nil {
				done <- err
				return
			}
		}
	}()
	eventually(t, 10*time.Second, "the publisher to wait for the subscriber", func() bool { return b.Stats().BackpressureWaits > 0 })
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("no error after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("PublishContext kept waiting after its context ended")
	}
}
