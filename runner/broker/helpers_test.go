package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eddy-edge/eddy/internal/testtools"
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
	return testtools.Tool(t, name, "apt-get install -y mosquitto-clients, or make deps")
}

// notifyLog is a memLog that is also a NotifyAppender, so that the broker
// acknowledges QoS 1/2 asynchronously. With late set, a failure is reported
// through the callback instead of by AppendNotify; while gated, callbacks
// are held until release.
type notifyLog struct {
	*memLog
	late bool

	mu    sync.Mutex
	gated bool
	held  []func(error)
}

func (n *notifyLog) AppendNotify(ctx context.Context, msg *Message, done func(error)) error {
	if n.fail.Load() {
		if n.late {
			done(errors.New("disk full"))
			return nil
		}
		return errors.New("disk full")
	}
	if err := n.memLog.Append(ctx, msg, true); err != nil {
		return err
	}
	n.mu.Lock()
	if n.gated {
		n.held = append(n.held, done)
		n.mu.Unlock()
		return nil
	}
	n.mu.Unlock()
	done(nil)
	return nil
}

// hold makes later appends wait for release before they count as durable.
func (n *notifyLog) hold() {
	n.mu.Lock()
	n.gated = true
	n.mu.Unlock()
}

// release completes the held appends in order and stops holding.
func (n *notifyLog) release() {
	n.mu.Lock()
	held := n.held
	n.held, n.gated = nil, false
	n.mu.Unlock()
	for _, done := range held {
		done(nil)
	}
}

// appenderKinds are the Appenders the durability tests run against: a
// blocking one (the broker acknowledges from OnPublish) and notifying ones
// (the broker acknowledges asynchronously after the callback).
var appenderKinds = []struct {
	name string
	new  func() (Appender, *memLog)
}{
	{"sync", func() (Appender, *memLog) { m := &memLog{}; return m, m }},
	{"notify", func() (Appender, *memLog) { m := &memLog{}; return &notifyLog{memLog: m}, m }},
	{"notify-late-failure", func() (Appender, *memLog) { m := &memLog{}; return &notifyLog{memLog: m, late: true}, m }},
}

// forEachAppender runs f once per appender kind.
func forEachAppender(t *testing.T, f func(t *testing.T, app Appender, log *memLog)) {
	for _, k := range appenderKinds {
		t.Run(k.name, func(t *testing.T) {
			app, log := k.new()
			f(t, app, log)
		})
	}
}

// replayLog is a memLog that can replay what it holds (a Replayer), with
// offsets 1, 2, ... in append order; dropBefore plays retention.
type replayLog struct {
	*memLog
	first atomic.Uint64 // oldest offset kept; 0 means 1
}

func (r *replayLog) Next() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return uint64(len(r.msgs)) + 1
}

func (r *replayLog) Replay(from uint64, buf []Message) (int, uint64, error) {
	first := max(r.first.Load(), 1)
	if from < first {
		return 0, from, &GapError{From: from, First: first}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for off := from; off <= uint64(len(r.msgs)) && n < len(buf); off++ {
		buf[n] = r.msgs[off-1]
		n++
	}
	return n, from + uint64(n), nil
}

// dropBefore makes offsets before off unreadable.
func (r *replayLog) dropBefore(off uint64) { r.first.Store(off) }

// notifyReplayLog is a notifyLog that can replay.
type notifyReplayLog struct {
	*notifyLog
	rp *replayLog
}

func newNotifyReplayLog() *notifyReplayLog {
	m := &memLog{}
	return &notifyReplayLog{notifyLog: &notifyLog{memLog: m}, rp: &replayLog{memLog: m}}
}

func (n *notifyReplayLog) Next() uint64 { return n.rp.Next() }
func (n *notifyReplayLog) Replay(from uint64, buf []Message) (int, uint64, error) {
	return n.rp.Replay(from, buf)
}
