package twin

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	mqtt "github.com/eddy-edge/eddy/internal/mochi"
	"github.com/eddy-edge/eddy/internal/mochi/hooks/auth"
	"github.com/eddy-edge/eddy/internal/mochi/listeners"
	"github.com/eddy-edge/eddy/internal/mochi/packets"

	"github.com/eddy-edge/eddy/internal/mqtttest"
)

// interopBroker starts an in-process mochi broker on 127.0.0.1:0 with the
// Manager subscribed inline, and returns the broker's port.
func interopBroker(t *testing.T) (*mqtt.Server, string) {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "interop", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() { srv.Close() })

	m, err := New(context.Background(), Options{
		Node: "edge-a",
		Publisher: PublisherFunc(func(topic string, payload []byte, qos byte, retain bool) error {
			return srv.Publish(topic, payload, retain, qos)
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	for i, f := range Subscriptions {
		err := srv.Subscribe(f, i+1, func(cl *mqtt.Client, sub packets.Subscription, pk packets.Packet) {
			_ = m.HandleMessage(context.Background(), pk.TopicName, pk.Payload)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := m.SetDevices(context.Background(), thermoSpec()); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(tcp.Address(), ":")
	return srv, port
}

// subscribe starts mosquitto_sub on topics and returns once the broker
// has a subscriber for each (mosquitto_sub's own output cannot tell).
func subscribe(t *testing.T, srv *mqtt.Server, port string, topics ...string) *mqtttest.Sub {
	t.Helper()
	return mqtttest.StartSub(t, port, mqtttest.SubOptions{Topics: topics, Ready: func() bool {
		for _, tp := range topics {
			if len(srv.Topics.Subscribers(tp).Subscriptions) == 0 {
				return false
			}
		}
		return true
	}})
}

var tsRE = regexp.MustCompile(`"timestamp":\d+`)

func normalizeWire(s string) string { return tsRE.ReplaceAllString(normalize(s), `"timestamp":T`) }

// TestInteropMosquitto talks to the Manager through a real mochi broker with
// Debian's mosquitto clients, and checks the exact JSON on the wire.
func TestInteropMosquitto(t *testing.T) {
	mqtttest.RequireClients(t)
	srv, port := interopBroker(t)

	steps := []struct {
		name   string
		topic  string
		msg    string
		listen []string
		want   []string
	}{
		{
			name:   "update -> result + delta",
			topic:  updTopic,
			msg:    `{"event_id":"it-1","timestamp":1700000000000,"twin":{"temperature":{"actual":{"value":"25"},"metadata":{"type":"int"}}}}`,
			listen: []string{resTopic, deltaTopic},
			want: []string{
				resTopic + ` {"event_id":"it-1","timestamp":T,"twin":{"temperature":{"actual":{"value":"25","metadata":{"timestamp":T}},"optional":false,"metadata":{"type":"int"},"actual_version":{"cloud":0,"edge":1}}}}`,
				deltaTopic + ` {"event_id":"UUID","timestamp":T,"twin":{"temperature":{"expected":{"value":"22","metadata":{"timestamp":T}},"actual":{"value":"25","metadata":{"timestamp":T}},"optional":false,"metadata":{"type":"int"}}},"delta":{"temperature":"22"}}`,
			},
		},
		{
			name:   "get -> get/result",
			topic:  getTopic,
			msg:    `{"event_id":"it-2"}`,
			listen: []string{getResult},
			want: []string{
				getResult + ` {"event_id":"it-2","timestamp":T,"twin":{"mode":{"optional":false,"metadata":{"type":"string"}},"temperature":{"expected":{"value":"22","metadata":{"timestamp":T}},"actual":{"value":"25","metadata":{"timestamp":T}},"optional":false,"metadata":{"type":"int"}}}}`,
			},
		},
		{
			name:   "replayed old update is rejected",
			topic:  updTopic,
			msg:    `{"event_id":"it-3","timestamp":1600000000000,"twin":{"temperature":{"actual":{"value":"19"}}}}`,
			listen: []string{resTopic},
			want: []string{
				resTopic + ` {"event_id":"it-3","timestamp":T,"code":409,"reason":"twin.temperature.actual of device default/thermo-1 not applied: its timestamp T ms is older than the stored value's T ms; this is a replayed or out-of-order update (send the current time as timestamp)"}`,
			},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			sub := subscribe(t, srv, port, st.listen...)
			mqtttest.Pub(t, port, st.topic, 0, st.msg)
			got := sub.Lines(len(st.want))
			for i := range got {
				got[i] = regexp.MustCompile(`timestamp \d+ ms`).ReplaceAllString(normalizeWire(got[i]), "timestamp T ms")
				got[i] = regexp.MustCompile(`value's \d+ ms`).ReplaceAllString(got[i], "value's T ms")
			}
			for i := range st.want {
				if got[i] != st.want[i] {
					t.Errorf("message %d\n got %s\nwant %s", i, got[i], st.want[i])
				}
			}
		})
	}
}
