package broker

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// A topic remembered as having no subscribers must be delivered again as
// soon as someone subscribes (network, wildcard or inline), and stop being
// delivered after the last unsubscribe; publishes nobody reads are still
// logged and counted, and a retained one is still retained.
func TestSubscriberCacheFollowsSubscriptions(t *testing.T) {
	forEachAppender(t, func(t *testing.T, app Appender, log *memLog) {
		b := startBroker(t, Options{AllowAnonymous: true, Log: app, LogInline: true})
		pub := connect(t, brokerURL(b), nil)
		for _, qos := range []byte{0, 1} {
			wait(t, pub.Publish("cache/a", qos, false, "nobody"))
		}
		if err := b.Publish("cache/a", []byte("inline nobody"), 0, false); err != nil {
			t.Fatal(err)
		}

		in := newInbox()
		sub := connect(t, brokerURL(b), nil)
		wait(t, sub.Subscribe("cache/+", 1, in.handler))
		wait(t, pub.Publish("cache/a", 1, false, "net"))
		if err := b.Publish("cache/a", []byte("inline"), 0, false); err != nil {
			t.Fatal(err)
		}
		got := in.waitN(t, 2, 10*time.Second)

		var mu sync.Mutex
		var inline []string
		unsub, err := b.Subscribe("cache/b", func(_ string, p []byte) {
			mu.Lock()
			inline = append(inline, string(p))
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		wait(t, pub.Publish("cache/b", 0, false, "b1"))
		eventually(t, 10*time.Second, "the inline subscriber to get b1", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(inline) == 1
		})
		unsub()
		wait(t, sub.Unsubscribe("cache/+"))
		wait(t, pub.Publish("cache/b", 1, false, "b2"))
		wait(t, pub.Publish("cache/a", 1, true, "kept"))

		// Retained while nobody subscribed: a new subscriber gets it.
		in2 := newInbox()
		sub2 := connect(t, brokerURL(b), nil)
		wait(t, sub2.Subscribe("cache/a", 0, in2.handler))
		if m := in2.waitN(t, 1, 10*time.Second); string(m[0].Payload()) != "kept" {
			t.Fatalf("retained: got %q", m[0].Payload())
		}

		time.Sleep(50 * time.Millisecond) // nothing more may arrive
		got = in.all()
		var payloads []string
		for _, m := range got {
			payloads = append(payloads, string(m.Payload()))
		}
		slices.Sort(payloads) // the QoS 1 publish may be delivered after the inline one
		if fmt.Sprint(payloads) != "[b1 inline net]" {
			t.Fatalf("subscriber got %q, want [b1 inline net]", payloads)
		}
		mu.Lock()
		if fmt.Sprint(inline) != "[b1]" {
			t.Fatalf("inline subscriber got %q, want [b1]", inline)
		}
		mu.Unlock()
		eventually(t, 10*time.Second, "every publish logged", func() bool {
			msgs, _ := log.snapshot()
			return len(msgs) == 8
		})
		if st := b.Stats(); st.MessagesIn < 8 {
			t.Fatalf("MessagesIn %d, want 8 (publishes nobody reads count too)", st.MessagesIn)
		}
	})
}

// BenchmarkPublishNoSubscribers is the inline publish of a sink whose
// topic nobody subscribes to (its output is only logged).
func BenchmarkPublishNoSubscribers(b *testing.B) {
	br := startBroker(b, Options{AllowAnonymous: true, Log: &memLog{}})
	payload := []byte(`{"device":"d1","temperature":21.5}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := br.Publish("out/nobody", payload, 0, false); err != nil {
			b.Fatal(err)
		}
	}
}

// With a log that can replay and LogInlineTopic saying no pipeline reads
// the topic, QoS 0 output is logged only while a subscriber that may be
// served from the log (one holding a QoS 1/2 subscription) reads it;
// QoS 1 and retained output is always logged. Everything is delivered.
func TestInlineOutputLoggedWhenALaggardMayNeedIt(t *testing.T) {
	log := &replayLog{memLog: &memLog{}}
	b := startBroker(t, Options{AllowAnonymous: true, Log: log, LogInline: true,
		LogInlineTopic: func(topic string) bool { return topic == "read/by/pipeline" }})
	logged := func() []string {
		msgs, _ := log.snapshot()
		var out []string
		for _, m := range msgs {
			out = append(out, string(m.Payload))
		}
		return out
	}
	in := newInbox()
	sub := connect(t, brokerURL(b), nil)
	wait(t, sub.Subscribe("out/#", 0, in.handler))
	publish := func(topic, payload string, qos byte, retain bool) {
		t.Helper()
		if err := b.Publish(topic, []byte(payload), qos, retain); err != nil {
			t.Fatal(err)
		}
	}
	publish("out/a", "q0 only-qos0-subscriber", 0, false)
	publish("out/a", "q1", 1, false)
	publish("read/by/pipeline", "read", 0, false)
	wait(t, sub.Subscribe("other/topic", 1, func(paho.Client, paho.Message) {}))
	publish("out/a", "q0 subscriber-may-lag", 0, false)
	wait(t, sub.Unsubscribe("other/topic"))
	publish("out/a", "q0 only-qos0-again", 0, false)
	publish("out/r", "retained", 0, true)

	in.waitN(t, 5, 10*time.Second) // every out/ message is delivered
	want := "[q1 read q0 subscriber-may-lag retained]"
	if got := fmt.Sprint(logged()); got != want {
		t.Fatalf("logged %s, want %s", got, want)
	}
}
