package broker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// nopLog accepts everything and keeps nothing.
type nopLog struct{}

func (nopLog) Append(context.Context, *Message, bool) error { return nil }

// BenchmarkPubSub measures publish -> subscribe throughput through the
// broker over loopback with paho clients (one publisher, one subscriber,
// 64-byte payloads), with a no-op and an in-memory appender.
//
//	go test -run '^$' -bench PubSub -benchtime 20000x ./runner/broker/
func BenchmarkPubSub(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		for _, lg := range []struct {
			name string
			log  func(testing.TB) Appender
		}{
			{"nop", func(testing.TB) Appender { return nopLog{} }},
			{"mem", func(testing.TB) Appender { return &memLog{} }},
			// A real WAL in a temp dir: fsync per group commit. "sync"
			// blocks the client's read loop until each fsync; "notify"
			// acknowledges after the group commit (AppendNotify).
			{"wal-sync", func(tb testing.TB) Appender { return walSync{w: walNotify{openWAL(tb)}} }},
			{"wal-notify", func(tb testing.TB) Appender { return walNotify{openWAL(tb)} }},
		} {
			b.Run(fmt.Sprintf("qos%d/%s", qos, lg.name), func(b *testing.B) {
				br := startBroker(b, Options{AllowAnonymous: true, Log: lg.log(b)})
				var got atomic.Int64
				done := make(chan struct{})
				sub := connect(b, brokerURL(br), func(o *paho.ClientOptions) { o.SetClientID("bench-sub") })
				n := int64(b.N)
				wait(b, sub.Subscribe("bench/t", qos, func(paho.Client, paho.Message) {
					if got.Add(1) == n {
						close(done)
					}
				}))
				pub := connect(b, brokerURL(br), func(o *paho.ClientOptions) { o.SetClientID("bench-pub") })
				payload := make([]byte, 64)
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				// Keep up to 512 QoS 1 publishes outstanding (a window, as a
				// real device library would).
				window := make(chan paho.Token, 512)
				go func() {
					for tok := range window {
						tok.Wait()
					}
				}()
				for range b.N {
					tok := pub.Publish("bench/t", qos, false, payload)
					if qos > 0 {
						window <- tok
					}
				}
				close(window)
				if qos > 0 {
					select {
					case <-done:
					case <-time.After(60 * time.Second):
						b.Fatalf("received %d of %d QoS 1 messages", got.Load(), n)
					}
				} else {
					// QoS 0 deliveries beyond a subscriber's queue bound
					// (MaxQueuedMessages) are dropped by design: wait
					// until everything arrived or nothing more arrives,
					// and report how much was delivered.
					for last := int64(-1); got.Load() != last && got.Load() < n; {
						last = got.Load()
						select {
						case <-done:
						case <-time.After(time.Second):
						}
					}
					b.ReportMetric(100*float64(got.Load())/float64(n), "%delivered")
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			})
		}
	}
}

// BenchmarkCovers measures the ACL matcher on a typical pattern.
func BenchmarkCovers(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		if !allowed([]string{"devices/%u/#"}, "thermo-1", "c1", "devices/thermo-1/data/update") {
			b.Fatal("denied")
		}
	}
}
