package twin

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
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

// mosquittoSub runs mosquitto_sub for n messages on topics and returns once
// the broker holds its subscriptions; wait returns "topic payload" lines.
func mosquittoSub(t *testing.T, srv *mqtt.Server, port string, n int, topics ...string) (wait func() []string) {
	t.Helper()
	args := []string{"-h", "127.0.0.1", "-p", port, "-v", "-C", fmt.Sprint(n), "-W", "10"}
	for _, tp := range topics {
		args = append(args, "-t", tp)
	}
	cmd := exec.Command("mosquitto_sub", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan []string, 1)
	go func() {
		var got []string
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "$") {
				got = append(got, l)
			}
		}
		lines <- got
	}()
	// Poll the broker (mosquitto_sub's own output is block-buffered).
	for deadline := time.Now().Add(10 * time.Second); ; {
		ready := true
		for _, tp := range topics {
			if len(srv.Topics.Subscribers(tp).Subscriptions) == 0 {
				ready = false
			}
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("mosquitto_sub did not subscribe within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return func() []string {
		var got []string
		select {
		case got = <-lines:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Fatal("mosquitto_sub did not finish")
		}
		_ = cmd.Wait()
		return got
	}
}

func mosquittoPub(t *testing.T, port, topic, msg string) {
	t.Helper()
	if out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", topic, "-m", msg).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
}

var tsRE = regexp.MustCompile(`"timestamp":\d+`)

func normalizeWire(s string) string { return tsRE.ReplaceAllString(normalize(s), `"timestamp":T`) }

// TestInteropMosquitto talks to the Manager through a real mochi broker with
// Debian's mosquitto clients, and checks the exact JSON on the wire.
func TestInteropMosquitto(t *testing.T) {
	for _, tool := range []string{"mosquitto_sub", "mosquitto_pub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install -y mosquitto-clients)", tool)
		}
	}
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
			wait := mosquittoSub(t, srv, port, len(st.want), st.listen...)
			mosquittoPub(t, port, st.topic, st.msg)
			got := wait()
			if len(got) != len(st.want) {
				t.Fatalf("got %d messages %q, want %d", len(got), got, len(st.want))
			}
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
