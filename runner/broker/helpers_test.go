package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// memLog is an in-memory Appender that records what it is given.
type memLog struct {
	mu      sync.Mutex
	msgs    []Message
	durable []bool
	fail    atomic.Bool
}

func (m *memLog) Append(_ context.Context, msg *Message, durable bool) error {
	if m.fail.Load() {
		return errors.New("disk full")
	}
	c := *msg
	c.Payload = append([]byte(nil), msg.Payload...)
	m.mu.Lock()
	m.msgs = append(m.msgs, c)
	m.durable = append(m.durable, durable)
	m.mu.Unlock()
	return nil
}

func (m *memLog) snapshot() ([]Message, []bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Message(nil), m.msgs...), append([]bool(nil), m.durable...)
}

// startBroker starts a broker on loopback ":0" ports and closes it when the
// test ends.
func startBroker(t testing.TB, opts Options) *Broker {
	t.Helper()
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func brokerURL(b *Broker) string { return "tcp://" + b.Addr().String() }

// connect returns a connected paho (MQTT 3.1.1) client.
func connect(t testing.TB, url string, mod func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("t-%d", time.Now().UnixNano())).
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).SetConnectTimeout(5 * time.Second)
	if mod != nil {
		mod(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

func wait(t testing.TB, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("paho token timed out")
	}
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
}

// inbox collects messages delivered to a paho handler.
type inbox struct {
	mu   sync.Mutex
	msgs []paho.Message
	ch   chan struct{}
}

func newInbox() *inbox { return &inbox{ch: make(chan struct{}, 1)} }

func (in *inbox) handler(_ paho.Client, m paho.Message) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
	select {
	case in.ch <- struct{}{}:
	default:
	}
}

func (in *inbox) all() []paho.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]paho.Message(nil), in.msgs...)
}

// waitN polls until at least n messages arrived or the deadline passes.
func (in *inbox) waitN(t testing.TB, n int, d time.Duration) []paho.Message {
	t.Helper()
	deadline := time.After(d)
	for {
		if m := in.all(); len(m) >= n {
			return m
		}
		select {
		case <-in.ch:
		case <-deadline:
			t.Fatalf("got %d messages, want %d", len(in.all()), n)
		}
	}
}

// eventually polls cond until it is true or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mosquitto returns the path of a mosquitto client binary, skipping the
// test when it is absent outside CI.
func mosquitto(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: apt-get install -y mosquitto-clients", name)
		}
		t.Skipf("%s not installed (apt-get install -y mosquitto-clients)", name)
	}
	return p
}
