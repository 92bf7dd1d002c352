package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eddy-edge/eddy/internal/mochi"
	"github.com/eddy-edge/eddy/internal/mochi/packets"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/internal/ratelog"
	"github.com/eddy-edge/eddy/pipeline"
)

// Defaults used when the corresponding Options field is zero.
const (
	DefaultAddr                = ":1883"
	DefaultTLSAddr             = ":8883"
	DefaultMaxPendingWrites    = 8192
	DefaultMaxInflight         = 65535
	DefaultHighWater           = 1024
	DefaultBackpressureTimeout = 5 * time.Second
)

// warnEvery is how often one kind of client misbehaviour is logged per
// client at most.
const warnEvery = 10 * time.Second

// Message is one accepted publish as handed to the Appender.
type Message struct {
	// Topic the message was published to.
	Topic string
	// Payload is borrowed: valid only during Append; copy it to keep it,
	// unless Frozen.
	Payload []byte
	// Frozen says nobody modifies Payload after Append, whatever it
	// returns (a network publish's own packet buffer): an Appender may
	// keep it without copying.
	Frozen bool
	// QoS the message was published with (0, 1 or 2).
	QoS byte
	// Retain is the publisher's retain flag.
	Retain bool
	// Client is the publisher's client id ("inline" for the runner's own
	// publishes through Broker.Publish).
	Client string
	// Time the broker accepted the message (from Options.Clock).
	Time time.Time
}

// Appender is where accepted publishes go before they are acknowledged; the
// runner passes its write-ahead log here. When durable is true Append must
// return only once the message is on stable storage. Append is called
// concurrently from many client goroutines (which is what lets a WAL
// group-commit many publishers into one fsync). An error refuses the publish.
type Appender interface {
	Append(ctx context.Context, msg *Message, durable bool) error
}

// Options configures a Broker. The zero value listens on :1883 and refuses
// every client until AllowAnonymous or AuthFile is set (New says so).
type Options struct {
	// Addr is the plain TCP listener address, e.g. 127.0.0.1:1883 (":0"
	// picks a free port, see Broker.Addr). Default ":1883". "-" disables it.
	Addr string
	// TLS enables a TLS listener on TLSAddr when not nil.
	TLS *tls.Config
	// TLSAddr is the TLS listener address; default ":8883" when TLS is set.
	TLSAddr string
	// WSAddr enables a WebSocket listener (subprotocol "mqtt", any path)
	// when not empty. It uses TLS too when TLS is set.
	WSAddr string
	// AllowAnonymous lets clients connect without a username. Clients that
	// do send a username are still checked against AuthFile when it is set.
	AllowAnonymous bool
	// AuthFile is a YAML file of users, bcrypt password hashes and ACLs
	// (see AuthFile). It is read once by New.
	AuthFile string
	// Log receives every accepted publish before it is acknowledged. nil
	// means nothing is logged (a plain broker). When it also implements
	// NotifyAppender, network clients' QoS 1/2 publishes are acknowledged
	// asynchronously after their append is durable, so that one client
	// can have many publishes in one group commit (see the package doc).
	Log Appender
	// LogInline makes Broker.Publish log its messages too, so that one
	// pipeline's output can be another pipeline's input.
	LogInline bool
	// LogInlineTopic, when set, narrows LogInline to the topics for which it
	// returns true (the runner: topics some pipeline reads). With a Log
	// that can replay (Replayer), an inline publish to another topic is
	// still logged when it is QoS 1/2 or retained, or when some subscriber
	// of its topic holds a QoS 1/2 subscription (it may be served from the
	// log when it falls behind; see the package doc, "Slow subscribers"):
	// QoS 0 output that only QoS 0 subscribers read is not logged.
	LogInlineTopic func(topic string) bool
	// Logger receives the broker's and mochi's logs; nil discards them.
	Logger *slog.Logger
	// Clock stamps messages and times backpressure waits; nil is clock.Real.
	Clock clock.Clock

	// MaxPendingWrites is the capacity of each client's write queue
	// (default 8192, 8 bytes of memory per slot per client).
	MaxPendingWrites int
	// MaxInflight is how many unacknowledged QoS>0 messages a session may
	// hold (default and maximum 65535).
	MaxInflight int
	// HighWater is the per-subscriber queue/inflight depth at which
	// publishers start to wait (default 1024), only when Log cannot replay
	// (not a Replayer; see the package doc, "Slow subscribers"). It must
	// leave room below MaxPendingWrites and MaxInflight for concurrent
	// publishers.
	HighWater int
	// BackpressureTimeout bounds a publisher's wait for a slow subscriber
	// when Log cannot replay (default 5s); keep it well below clients'
	// keepalive, as a waiting publisher's pings are not answered. With a
	// Replayer nobody waits.
	BackpressureTimeout time.Duration
	// ConnectTimeout bounds how long a new connection may take to send its
	// CONNECT packet (default 10s); then it is closed and counted
	// (Stats.ConnectTimeouts). Without it a connection that never speaks
	// held a goroutine and a descriptor for ever and kept Close waiting.
	ConnectTimeout time.Duration
	// MaxPacketSize is the largest MQTT packet a client may send, in bytes
	// (default DefaultMaxPacketSize, 1 MiB; at most 268435460). It is
	// announced to MQTT 5 clients; a bigger packet is refused from its
	// header, before its body is read: the client is disconnected (MQTT 5:
	// DISCONNECT 0x95 "packet too large") and it is counted
	// (Stats.PacketsTooLarge).
	MaxPacketSize uint32 `json:"maxPacketSize,omitempty"`
	// MaxTopicLength is the longest topic name or subscription filter in
	// bytes (default DefaultMaxTopicLength, 1024).
	MaxTopicLength int `json:"maxTopicLength,omitempty"`
	// MaxTopicLevels is the most '/'-separated levels in a topic name or
	// filter (default DefaultMaxTopicLevels, 32). A publish over either
	// topic bound is refused (MQTT 5: 0x90 "topic name invalid"; MQTT 3.1.1
	// QoS 1/2: disconnect; QoS 0: dropped), a filter gets SUBACK 0x8F
	// (3.1.1: 0x80); both are counted (Stats.TopicsRefused).
	MaxTopicLevels int `json:"maxTopicLevels,omitempty"`
	// MaxSubscriptions is the most filters one session may subscribe to
	// (default DefaultMaxSubscriptions, 256); further filters get SUBACK
	// 0x97 "quota exceeded" (3.1.1: 0x80), counted in
	// Stats.SubscriptionsRefused.
	MaxSubscriptions int `json:"maxSubscriptions,omitempty"`
	// ReceiveMaximum is the most QoS 1/2 publishes one client may have
	// unacknowledged at the broker (default DefaultReceiveMaximum, 1024;
	// at most 65535). It is announced to MQTT 5 clients, and one that
	// sends more is disconnected with 0x93 "receive maximum exceeded"
	// (counted in Stats.ReceiveMaximumExceeded); an MQTT 3.1.1 client,
	// which is told no limit, is instead not read from until earlier
	// publishes are acknowledged.
	ReceiveMaximum int `json:"receiveMaximum,omitempty"`
	// MaxTopicAliases is the topic alias maximum announced to MQTT 5
	// clients (default DefaultMaxTopicAliases, 64): the most topic names
	// one client can make the broker remember for it.
	MaxTopicAliases int `json:"maxTopicAliases,omitempty"`
	// MaxQueuedMessages bounds each subscriber's messages queued for
	// writing plus unacknowledged (default DefaultMaxQueuedMessages, 1000,
	// like mosquitto's max_queued_messages, or half of MaxPendingWrites or
	// MaxInflight when that is smaller). A subscriber over it is slow:
	// with a log that can replay (Options.Log implements Replayer) and a
	// QoS 1/2 subscription, it is served from the log at its own pace until
	// it catches up; a subscriber with only QoS 0 subscriptions loses the
	// deliveries over the bound (counted per client and in
	// Stats.SlowSubscriberDrops, logged at most every 10 s per client).
	// Publishers never wait for it. See the package doc, "Slow
	// subscribers".
	MaxQueuedMessages int `json:"maxQueuedMessages,omitempty"`
	// MaxClients limits concurrent connections; 0 is no limit.
	MaxClients int64 `json:"maxClients,omitempty"`
}

// Stats are the broker's counters, for metrics and the dashboard.
type Stats struct {
	Clients              int64 // connected clients
	Sessions             int64 // known sessions, connected or not (excluding the inline client)
	Subscriptions        int64 // client subscriptions
	InlineSubs           int64 // inline subscriptions (Broker.Subscribe)
	Retained             int64 // retained messages
	Inflight             int64 // unacknowledged QoS>0 messages, all sessions
	MessagesIn           int64 // publishes received (network and inline)
	MessagesOut          int64 // publishes sent to network clients
	Logged               int64 // messages appended to Options.Log
	LogFailures          int64 // publishes refused because Append failed
	DeniedPublishes      int64 // publishes refused by ACL
	DeniedSubscribes     int64 // subscription filters refused (ACL or invalid)
	AuthFailures         int64 // connections refused for bad credentials
	BackpressureWaits    int64 // publishes that had to wait for a slow subscriber
	BackpressureTimeouts int64 // publishes refused after BackpressureTimeout
	Dropped              int64 // deliveries mochi dropped (QoS 0 to a full queue, offline sessions over MaxInflight)
	BytesIn              int64 // bytes received
	BytesOut             int64 // bytes sent

	SlowSubscriberDrops  int64 // deliveries dropped for QoS 0 subscribers over MaxQueuedMessages
	CatchUps             int64 // times a slow QoS 1/2 subscriber was moved to the log
	Lagging              int64 // subscribers being served from the log now
	Replayed             int64 // messages delivered from the log to slow subscribers
	RetentionDisconnects int64 // subscribers disconnected because retention removed messages they had not got

	PacketsTooLarge        int64 // connections closed for a packet over MaxPacketSize
	TopicsRefused          int64 // publishes and filters over MaxTopicLength or MaxTopicLevels
	SubscriptionsRefused   int64 // filters refused because the session holds MaxSubscriptions
	ReceiveMaximumExceeded int64 // MQTT 5 clients disconnected for more than ReceiveMaximum publishes in flight
	ConnectTimeouts        int64 // connections closed for not sending CONNECT within ConnectTimeout
}

// ClientInfo describes one session.
type ClientInfo struct {
	ID              string
	Username        string
	Remote          string
	Listener        string
	ProtocolVersion byte
	Connected       bool
	CleanSession    bool
	Subscriptions   []string // filters, sorted
	Inflight        int      // unacknowledged QoS>0 messages
	PendingWrites   int      // packets queued for writing
	Dropped         int64    // QoS 0 deliveries dropped for it (queue full)
	Lagging         bool     // served from the log: it fell behind
	LagFrom         uint64   // while Lagging, the next log offset it gets
}

// TopicInfo describes a subscription filter or a retained topic.
type TopicInfo struct {
	// Name is a subscription filter or a topic with a retained message.
	Name string
	// Subscribers is the number of sessions (plus inline subscribers)
	// subscribed with exactly this filter.
	Subscribers int
	// Retained reports a retained message on this exact topic; RetainedBytes
	// is its payload size.
	Retained      bool
	RetainedBytes int
}

// Broker is the embedded MQTT broker. Create it with New, then Start it.
type Broker struct {
	opts Options
	log  *slog.Logger
	clk  clock.Clock
	auth *authenticator
	srv  *mqtt.Server
	lns  []*listener
	// shutDown holds the clients disconnected by Close (*mqtt.Client).
	shutDown sync.Map
	tcp      *listener
	tlsLn    *listener
	wsLn     *listener

	ctx    context.Context
	cancel context.CancelFunc

	startOnce sync.Once
	closeOnce sync.Once
	started   atomic.Bool
	intakeEnd atomic.Bool // StopIntake was called (intake.go)

	inlineMu   sync.Mutex
	inlineNext int
	inlineSubs map[int]string // id -> filter

	notify notifier
	subs   subCache     // which topics have subscribers (subcache.go)
	quiet  atomic.Int64 // inline publishes nobody subscribed to (not given to mochi)

	// Asynchronous acknowledgements (ack.go).
	nlog       NotifyAppender // Options.Log, when it can notify
	maxPending int            // per-client publishes in flight
	qmu        sync.Mutex
	queues     map[*mqtt.Client]*ackQueue
	pending    atomic.Int64

	logged, logFailures, deniedPub, deniedSub, authFail atomic.Int64
	bpWaits, bpTimeouts                                 atomic.Int64

	// Bounds (bounds.go).
	warn                                                           *ratelog.Logger
	tooLarge, topicsRefused, subQuota, receiveMax, connectTimeouts atomic.Int64
	subMu                                                          sync.Mutex
	subRefusals                                                    map[*mqtt.Client][]subRefusal

	// Slow subscribers (slow.go).
	replay                                              Replayer // Options.Log, when it can replay
	delivering                                          inDelivery
	clients                                             sync.Map // *mqtt.Client -> *clientState
	lagMu                                               sync.Mutex
	laggards                                            map[string]*laggard
	nLagging                                            atomic.Int64
	wg                                                  sync.WaitGroup // catch-up goroutines
	slowDrops, catchUps, replayed, retentionDisconnects atomic.Int64

	// Congestion fast path (see mayBeCongested).
	fastPath  bool         // limits leave enough headroom for it
	hotScanAt atomic.Int64 // unix ns of the last scan of all clients
	anyWarm   atomic.Bool  // some client was at or over HighWater/2 then
}

// ErrClosed is returned by operations on a closed broker.
var ErrClosed = errors.New("broker: closed")

// New checks opts, loads the auth file and prepares the broker. Nothing is
// bound until Start.
func New(opts Options) (*Broker, error) {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.TLS != nil && opts.TLSAddr == "" {
		opts.TLSAddr = DefaultTLSAddr
	}
	if opts.TLS == nil && opts.TLSAddr != "" {
		return nil, fmt.Errorf("broker: TLSAddr %q is set but TLS is nil; give a *tls.Config with a certificate", opts.TLSAddr)
	}
	if opts.MaxPendingWrites <= 0 {
		opts.MaxPendingWrites = DefaultMaxPendingWrites
	}
	if opts.MaxInflight <= 0 || opts.MaxInflight > 65535 {
		opts.MaxInflight = DefaultMaxInflight
	}
	if opts.HighWater <= 0 {
		opts.HighWater = min(DefaultHighWater, opts.MaxPendingWrites/2, opts.MaxInflight/2)
	}
	if opts.HighWater >= opts.MaxPendingWrites || opts.HighWater >= opts.MaxInflight {
		return nil, fmt.Errorf("broker: HighWater %d must be below MaxPendingWrites %d and MaxInflight %d (leave room for concurrent publishers)",
			opts.HighWater, opts.MaxPendingWrites, opts.MaxInflight)
	}
	if opts.BackpressureTimeout <= 0 {
		opts.BackpressureTimeout = DefaultBackpressureTimeout
	}
	if opts.MaxQueuedMessages <= 0 {
		opts.MaxQueuedMessages = min(DefaultMaxQueuedMessages, opts.MaxPendingWrites/2, opts.MaxInflight/2)
	}
	if opts.MaxQueuedMessages >= opts.MaxPendingWrites || opts.MaxQueuedMessages >= opts.MaxInflight {
		return nil, fmt.Errorf("broker: MaxQueuedMessages %d must be below MaxPendingWrites %d and MaxInflight %d (leave room for concurrent publishers)",
			opts.MaxQueuedMessages, opts.MaxPendingWrites, opts.MaxInflight)
	}
	if opts.MaxPacketSize == 0 {
		opts.MaxPacketSize = DefaultMaxPacketSize
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.MaxPacketSize > maxMQTTPacket {
		return nil, fmt.Errorf("broker: MaxPacketSize %d is over MQTT's largest packet (%d bytes); use at most that", opts.MaxPacketSize, maxMQTTPacket)
	}
	if opts.MaxTopicLength <= 0 {
		opts.MaxTopicLength = DefaultMaxTopicLength
	}
	if opts.MaxTopicLevels <= 0 {
		opts.MaxTopicLevels = DefaultMaxTopicLevels
	}
	if opts.MaxSubscriptions <= 0 {
		opts.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if opts.ReceiveMaximum <= 0 {
		opts.ReceiveMaximum = DefaultReceiveMaximum
	}
	if opts.ReceiveMaximum > 65535 {
		return nil, fmt.Errorf("broker: ReceiveMaximum %d is over MQTT's 65535", opts.ReceiveMaximum)
	}
	if opts.MaxTopicAliases <= 0 {
		opts.MaxTopicAliases = DefaultMaxTopicAliases
	}
	if opts.MaxTopicAliases > 65535 {
		return nil, fmt.Errorf("broker: MaxTopicAliases %d is over MQTT's 65535", opts.MaxTopicAliases)
	}
	if !opts.AllowAnonymous && opts.AuthFile == "" {
		return nil, errors.New("broker: no client could connect: set AllowAnonymous, or AuthFile to a users file (see broker.AuthFile)")
	}
	b := &Broker{opts: opts, log: opts.Logger, clk: opts.Clock, inlineSubs: map[int]string{}, queues: map[*mqtt.Client]*ackQueue{},
		subRefusals: map[*mqtt.Client][]subRefusal{}, laggards: map[string]*laggard{}}
	if nl, ok := opts.Log.(NotifyAppender); ok {
		b.nlog = nl
	}
	if rp, ok := opts.Log.(Replayer); ok {
		b.replay = rp
	}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if b.clk == nil {
		b.clk = clock.Real{}
	}
	b.warn = ratelog.New(b.log, b.clk, warnEvery)
	if opts.AuthFile != "" {
		af, err := LoadAuthFile(opts.AuthFile)
		if err != nil {
			return nil, err
		}
		b.auth = newAuthenticator(af)
	}
	b.fastPath = opts.HighWater >= 256 && opts.MaxPendingWrites >= 4*opts.HighWater && opts.MaxInflight >= 4*opts.HighWater
	b.notify.init()

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(opts.MaxPendingWrites)
	caps.MaximumInflight = uint16(opts.MaxInflight)
	caps.MaximumPacketSize = opts.MaxPacketSize
	caps.ReceiveMaximum = uint16(opts.ReceiveMaximum)
	caps.TopicAliasMaximum = uint16(opts.MaxTopicAliases)
	b.maxPending = opts.ReceiveMaximum
	if opts.MaxClients > 0 {
		caps.MaximumClients = opts.MaxClients
	}
	// Sessions are in memory; keep them as long as the process lives.
	b.srv = mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		Logger:                 slog.New(quietClientErrors{b.log.Handler()}).With("component", "mochi"),
		InlineClient:           true,
		SysTopicResendInterval: 10,
		// The hook does nothing for inline publishes (Publish logged and
		// waited already) and changes only CONNACKs: spare mochi the
		// calls, each of which copies the packet in and out.
		InlineSkipsPublishHooks: true,
		EncodeHookTypes:         1 << packets.Connack,
	})
	b.subs.gen = b.srv.Topics.Generation
	if err := b.srv.AddHook(&hook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("broker: add hook: %w", err)
	}
	return b, nil
}

// Start binds the listeners and starts serving. The broker runs until Close
// is called or ctx is cancelled. Start may be called once.
func (b *Broker) Start(ctx context.Context) error {
	err := errors.New("broker: Start called twice")
	b.startOnce.Do(func() { err = b.start(ctx) })
	return err
}

func (b *Broker) start(ctx context.Context) error {
	b.ctx, b.cancel = context.WithCancel(ctx)
	bind := func(id, proto, addr string, tlsConf *tls.Config, ws bool) (*listener, error) {
		lc := net.ListenConfig{Control: boundSegments}
		ln, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("broker: %s listener on %q: %w; choose a free address", id, addr, err)
		}
		if tlsConf != nil {
			ln = tls.NewListener(ln, tlsConf)
		}
		l := &listener{id: id, proto: proto, ln: ln, ws: ws, wrap: b.guardConn, ended: b.connEnded, closeClients: b.disconnectListener}
		b.lns = append(b.lns, l)
		return l, nil
	}
	fail := func(err error) error {
		for _, l := range b.lns {
			_ = l.ln.Close()
		}
		b.cancel()
		return err
	}
	var err error
	if b.opts.Addr != "-" {
		if b.tcp, err = bind("tcp", "tcp", b.opts.Addr, nil, false); err != nil {
			return fail(err)
		}
	}
	if b.opts.TLS != nil {
		if b.tlsLn, err = bind("tls", "tcp+tls", b.opts.TLSAddr, b.opts.TLS, false); err != nil {
			return fail(err)
		}
	}
	if b.opts.WSAddr != "" {
		proto := "ws"
		if b.opts.TLS != nil {
			proto = "wss"
		}
		if b.wsLn, err = bind("ws", proto, b.opts.WSAddr, b.opts.TLS, true); err != nil {
			return fail(err)
		}
	}
	for _, l := range b.lns {
		if err := b.srv.AddListener(l); err != nil {
			return fail(fmt.Errorf("broker: add listener %s: %w", l.id, err))
		}
	}
	if err := b.srv.Serve(); err != nil {
		return fail(fmt.Errorf("broker: serve: %w", err))
	}
	b.started.Store(true)
	go func() {
		<-b.ctx.Done()
		_ = b.Close()
	}()
	b.log.Info("mqtt broker started", "tcp", addrString(b.Addr()), "tls", addrString(b.TLSAddr()), "ws", addrString(b.WSAddr()))
	return nil
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// Close disconnects every client and stops the listeners. It is safe to call
// more than once.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		if b.cancel != nil {
			b.cancel()
		}
		b.notify.broadcast()
		if b.started.Load() {
			// The listeners are closed and their connections ended
			// before mochi's Close: its closer could deadlock (see
			// disconnectListener), and its wait for client goroutines
			// raced with connections still starting (WaitGroup.Add
			// during Wait). A client whose handshake ends after its
			// listener's clients were disconnected is disconnected by
			// the sweep below, so the wait ends.
			done := make(chan struct{})
			go func() {
				t := b.clk.NewTicker(50 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-done:
						return
					case <-t.C():
						for _, l := range b.lns {
							b.disconnectListener(l.id)
						}
					}
				}
			}()
			for _, l := range b.lns {
				l.Close(nil) // disconnectListener replaces the closer
			}
			for _, l := range b.lns {
				l.active.Wait()
			}
			close(done)
			_ = b.srv.Close() // finds its listeners closed and no client left
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b.closeCatchUps(ctx)
		cancel()
	})
	return nil
}

// disconnectListener disconnects the clients of listener id when the broker
// closes. It replaces mochi's closer, which lists them with
// Clients.GetByListener: that read-locks the client map twice (RLock, then
// Len's RLock), so a client being added between the two — a writer waiting
// on the lock — deadlocked the shutdown (seen in a test's cleanup under
// load). GetAll locks once.
// A client is disconnected once: a graceful disconnect may wait for the
// client to read (unsent_linux.go), and the client is not Closed until then.
func (b *Broker) disconnectListener(id string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Listener != id || cl.Closed() {
			continue
		}
		if _, done := b.shutDown.LoadOrStore(cl, struct{}{}); !done {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// Addr is the bound address of the TCP listener (nil before Start or when
// disabled).
func (b *Broker) Addr() net.Addr { return b.tcp.addr() }

// TLSAddr is the bound address of the TLS listener, or nil.
func (b *Broker) TLSAddr() net.Addr { return b.tlsLn.addr() }

// WSAddr is the bound address of the WebSocket listener, or nil.
func (b *Broker) WSAddr() net.Addr { return b.wsLn.addr() }

func (b *Broker) running() error {
	if !b.started.Load() {
		return errors.New("broker: not started; call Start first")
	}
	if b.ctx.Err() != nil {
		return ErrClosed
	}
	return nil
}

// Publish publishes a message from the runner itself (sinks) through mochi's
// inline client. It bypasses ACLs, waits for congested subscribers like any
// publisher, and is logged first when Options.LogInline is set (durably for
// qos > 0); if logging fails nothing is delivered and the error is returned.
func (b *Broker) Publish(topic string, payload []byte, qos byte, retain bool) error {
	return b.PublishContext(context.Background(), topic, payload, qos, retain)
}

// PublishContext is Publish whose waits (congested subscribers, the
// durable append) also end when ctx is done, so that a stopping pipeline
// is never held up by the broker.
func (b *Broker) PublishContext(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	return b.publish(ctx, topic, payload, qos, retain, false, nil)
}

// PublishFrozen is PublishContext for a payload the caller never modifies
// afterwards (whatever it returns): the log and the subscribers keep it
// instead of copies.
func (b *Broker) PublishFrozen(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	return b.publish(ctx, topic, payload, qos, retain, true, nil)
}

// Batch publishes like PublishFrozen, but its deliveries to network
// subscribers may wait in their write buffers until Flush, which writes
// each subscriber's share with one system call and without waking its
// write loop (a pipeline publishes a read batch's results this way). A
// subscriber that is behind, or whose buffer is busy, gets its deliveries
// through its queue as usual, under the same bounds. A Batch belongs to
// one goroutine, which must call Flush when its batch ends.
type Batch struct {
	b       *Broker
	pending packets.Batch
}

// NewBatch returns an empty Batch publishing through b.
func (b *Broker) NewBatch() *Batch { return &Batch{b: b} }

// PublishFrozen publishes like Broker.PublishFrozen; the deliveries leave
// by Flush at the latest.
func (bt *Batch) PublishFrozen(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	return bt.b.publish(ctx, topic, payload, qos, retain, true, &bt.pending)
}

// Flush writes the deliveries held since the last Flush; what a
// subscriber's socket does not take at once, its write loop writes. It
// never waits on the network.
func (bt *Batch) Flush() { bt.pending.Flush() }

func (b *Broker) publish(ctx context.Context, topic string, payload []byte, qos byte, retain, frozen bool, batch *packets.Batch) error {
	if err := b.running(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if qos > 2 {
		return fmt.Errorf("broker: publish to %q: qos %d is not 0, 1 or 2", topic, qos)
	}
	// An invalid topic is permanent for this message: retrying it cannot
	// help, so a pipeline dead-letters it and moves on.
	if topic == "" || strings.ContainsAny(topic, "+#\x00") {
		return pipeline.Permanentf("broker: publish to %q: a topic name must be non-empty and contain no wildcards (+ #)", topic)
	}
	if err := b.checkTopic(topic); err != nil {
		b.topicsRefused.Add(1)
		return pipeline.Permanentf("broker: publish to %q: %w", truncate(topic, 128), err)
	}
	// The waits below (congested subscribers without a Replayer, a
	// durable append) end when either ctx or the broker is done. The
	// merged context costs two allocations and an AfterFunc registration,
	// so it is made only for a publish that can wait: a QoS 0 append is
	// queued without waiting, and with a Replayer nobody waits for
	// subscribers.
	bctx := b.ctx
	if ctx.Done() != nil && (b.replay == nil || qos > 0) {
		var cancel context.CancelFunc
		bctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(b.ctx, cancel)()
	}
	if err := b.waitForSubscribers(bctx, mqtt.InlineClientId, topic); err != nil {
		return fmt.Errorf("broker: publish to %q: %w", topic, err)
	}
	logIt := b.opts.Log != nil && (b.opts.LogInline || b.replay != nil)
	if logIt && b.opts.LogInlineTopic != nil && !b.opts.LogInlineTopic(topic) {
		// Nobody reads this output from the log. QoS 1/2 and retained
		// messages are logged anyway when the log can replay; for QoS 0,
		// only a subscriber
		// that can be served from the log when it falls behind (one with a
		// QoS 1/2 subscription) could need it there: a message suppressed
		// for such a laggard must be in the log to be replayed. Whether one
		// subscribes is decided per topic, not by who is behind now
		// (logging only while some client was near its bound lost a message
		// published just before the scan saw the subscriber filling). A
		// subscriber with only QoS 0 subscriptions is never served from the
		// log: its deliveries over the bound are dropped and counted.
		logIt = b.replay != nil && (qos > 0 || retain || b.topicSubs(topic).mayLag)
	}
	var tok uint64
	if logIt {
		tok = b.beginDelivery()
		defer b.endDelivery(tok)
		msg := Message{Topic: topic, Payload: payload, QoS: qos, Retain: retain, Client: mqtt.InlineClientId, Time: b.clk.Now(), Frozen: frozen}
		if err := b.opts.Log.Append(bctx, &msg, qos > 0); err != nil {
			b.logFailures.Add(1)
			return fmt.Errorf("broker: publish to %q: log: %w", topic, err)
		}
		b.logged.Add(1)
	}
	if !retain && !b.hasSubscribers(topic) {
		b.quiet.Add(1) // nobody to deliver to: spare mochi the lookup
		return nil
	}
	var err error
	switch {
	case batch != nil:
		err = b.srv.PublishBatched(topic, payload, retain, qos, batch)
	case frozen:
		err = b.srv.PublishFrozen(topic, payload, retain, qos)
	default:
		err = b.srv.Publish(topic, payload, retain, qos)
	}
	if err != nil {
		return fmt.Errorf("broker: publish to %q: %w", topic, err)
	}
	return nil
}

// Subscribe subscribes fn to filter through the inline client. fn runs
// synchronously on the publisher's goroutine, for every matching message and
// once for each matching retained message; it must be quick, and must not
// modify or keep payload. The returned function unsubscribes.
func (b *Broker) Subscribe(filter string, fn func(topic string, payload []byte)) (unsubscribe func(), err error) {
	if err := b.running(); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, errors.New("broker: subscribe: handler is nil")
	}
	if !mqtt.IsValidFilter(filter, false) {
		return nil, fmt.Errorf("broker: subscribe to %q: invalid topic filter; wildcards fill whole levels, e.g. a/+/c or a/#", filter)
	}
	b.inlineMu.Lock()
	b.inlineNext++
	id := b.inlineNext
	b.inlineSubs[id] = filter
	b.inlineMu.Unlock()
	err = b.srv.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, pk.Payload)
	})
	if err != nil {
		b.inlineMu.Lock()
		delete(b.inlineSubs, id)
		b.inlineMu.Unlock()
		return nil, fmt.Errorf("broker: subscribe to %q: %w", filter, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = b.srv.Unsubscribe(filter, id)
			b.inlineMu.Lock()
			delete(b.inlineSubs, id)
			b.inlineMu.Unlock()
		})
	}, nil
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	in := b.srv.Info
	b.inlineMu.Lock()
	inline := int64(len(b.inlineSubs))
	b.inlineMu.Unlock()
	return Stats{
		Clients:              atomic.LoadInt64(&in.ClientsConnected),
		Sessions:             int64(b.srv.Clients.Len() - 1),
		Subscriptions:        atomic.LoadInt64(&in.Subscriptions),
		InlineSubs:           inline,
		Retained:             atomic.LoadInt64(&in.Retained),
		Inflight:             atomic.LoadInt64(&in.Inflight),
		MessagesIn:           atomic.LoadInt64(&in.MessagesReceived) + b.quiet.Load(),
		MessagesOut:          atomic.LoadInt64(&in.MessagesSent),
		Logged:               b.logged.Load(),
		LogFailures:          b.logFailures.Load(),
		DeniedPublishes:      b.deniedPub.Load(),
		DeniedSubscribes:     b.deniedSub.Load(),
		AuthFailures:         b.authFail.Load(),
		BackpressureWaits:    b.bpWaits.Load(),
		BackpressureTimeouts: b.bpTimeouts.Load(),
		Dropped:              atomic.LoadInt64(&in.MessagesDropped) + atomic.LoadInt64(&in.InflightDropped),
		BytesIn:              atomic.LoadInt64(&in.BytesReceived),
		BytesOut:             atomic.LoadInt64(&in.BytesSent),

		SlowSubscriberDrops:  b.slowDrops.Load(),
		CatchUps:             b.catchUps.Load(),
		Lagging:              b.nLagging.Load(),
		Replayed:             b.replayed.Load(),
		RetentionDisconnects: b.retentionDisconnects.Load(),

		PacketsTooLarge:        b.tooLarge.Load(),
		TopicsRefused:          b.topicsRefused.Load(),
		SubscriptionsRefused:   b.subQuota.Load(),
		ReceiveMaximumExceeded: b.receiveMax.Load(),
		ConnectTimeouts:        b.connectTimeouts.Load(),
	}
}

// PendingAcks is the number of network QoS 1/2 publishes whose log append
// is in flight: received, not yet acknowledged nor delivered (always 0
// unless Options.Log is a NotifyAppender). It is not in Stats because
// Stats is converted field for field by the API package.
func (b *Broker) PendingAcks() int64 { return b.pending.Load() }

// Clients lists the sessions the broker knows, connected or not, sorted by
// id (the inline client is not listed).
func (b *Broker) Clients() []ClientInfo {
	all := b.srv.Clients.GetAll()
	out := make([]ClientInfo, 0, len(all))
	for id, cl := range all {
		if cl.Net.Inline {
			continue
		}
		subs := cl.State.Subscriptions.GetAll()
		filters := make([]string, 0, len(subs))
		for f := range subs {
			filters = append(filters, f)
		}
		sort.Strings(filters)
		var dropped int64
		if v, ok := b.clients.Load(cl); ok {
			dropped = v.(*clientState).dropped.Load()
		}
		b.lagMu.Lock()
		lg, lagging := b.laggards[id]
		var lagFrom uint64
		if lagging {
			lagFrom = lg.from
		}
		b.lagMu.Unlock()
		out = append(out, ClientInfo{
			ID:              id,
			Username:        string(cl.Properties.Username),
			Remote:          cl.Net.Remote,
			Listener:        cl.Net.Listener,
			ProtocolVersion: cl.Properties.ProtocolVersion,
			Connected:       !cl.Closed(),
			CleanSession:    cl.Properties.Clean,
			Subscriptions:   filters,
			Inflight:        cl.State.Inflight.Len(),
			PendingWrites:   cl.PendingWrites(),
			Dropped:         dropped,
			Lagging:         lagging,
			LagFrom:         lagFrom,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Topics lists subscription filters (with their subscriber counts) and
// retained topics, sorted by name.
func (b *Broker) Topics() []TopicInfo {
	m := map[string]*TopicInfo{}
	get := func(name string) *TopicInfo {
		t, ok := m[name]
		if !ok {
			t = &TopicInfo{Name: name}
			m[name] = t
		}
		return t
	}
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Inline {
			continue
		}
		for f := range cl.State.Subscriptions.GetAll() {
			get(f).Subscribers++
		}
	}
	b.inlineMu.Lock()
	for _, f := range b.inlineSubs {
		get(f).Subscribers++
	}
	b.inlineMu.Unlock()
	for topic, pk := range b.srv.Topics.Retained.GetAll() {
		t := get(topic)
		t.Retained = true
		t.RetainedBytes = len(pk.Payload)
	}
	out := make([]TopicInfo, 0, len(m))
	for _, t := range m {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// notifier wakes publishers waiting for subscribers to drain.
type notifier struct {
	waiters atomic.Int64
	mu      sync.Mutex
	ch      chan struct{}
}

func (n *notifier) init() { n.ch = make(chan struct{}) }

// wait returns a channel closed at the next broadcast.
func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// broadcast wakes every waiter; it is cheap when nobody waits.
func (n *notifier) broadcast() {
	if n.waiters.Load() == 0 {
		return
	}
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}

// errBackpressure is returned when a congested subscriber did not drain in
// time.
var errBackpressure = errors.New("a subscriber is too slow (backpressure timeout); retry later")

// congested reports whether topic would be delivered to a connected client
// (other than self) that holds a QoS>0 subscription and has HighWater or
// more messages queued or unacknowledged.
func (b *Broker) congested(self, topic string) bool {
	subs := b.srv.Topics.Subscribers(topic)
	check := func(id string, sub packets.Subscription) bool {
		if sub.Qos == 0 || id == self {
			return false
		}
		cl, ok := b.srv.Clients.Get(id)
		if !ok || cl.Closed() {
			return false
		}
		return cl.State.Inflight.Len() >= b.opts.HighWater || cl.PendingWrites() >= b.opts.HighWater
	}
	for id, sub := range subs.Subscriptions {
		if check(id, sub) {
			return true
		}
	}
	for _, group := range subs.Shared {
		for id, sub := range group {
			if check(id, sub) {
				return true
			}
		}
	}
	return false
}

// hotScanEvery is how often mayBeCongested refreshes its view of all
// clients. In that time a client can gain at most a few hundred messages at
// the broker's top rate, less than the HighWater/2 margin below HighWater,
// and far less than the room between HighWater and the hard limits. The
// fast path is only used when the limits leave that much room (the
// defaults do): HighWater >= 256 and both hard limits >= 4*HighWater.
const hotScanEvery = 2 * time.Millisecond

// mayBeCongested is the cheap answer to "could any subscriber be
// congested?": at most every hotScanEvery it scans every client's queue and
// in-flight counts and remembers whether any was at half the high-water
// mark or more. When none was, a publish skips the per-topic subscriber
// lookup, which otherwise costs as much as mochi's own delivery.
func (b *Broker) mayBeCongested() bool {
	now := b.clk.Now().UnixNano()
	last := b.hotScanAt.Load()
	if now-last >= int64(hotScanEvery) && b.hotScanAt.CompareAndSwap(last, now) {
		warm, half := false, b.opts.HighWater/2
		for _, cl := range b.srv.Clients.GetAll() {
			if !cl.Closed() && (cl.State.Inflight.Len() >= half || cl.PendingWrites() >= half) {
				warm = true
				break
			}
		}
		b.anyWarm.Store(warm)
	}
	return b.anyWarm.Load()
}

// waitForSubscribers blocks while congested(self, topic), up to
// BackpressureTimeout.
func (b *Broker) waitForSubscribers(ctx context.Context, self, topic string) error {
	if b.replay != nil {
		return nil // slow subscribers are served from the log: nobody waits
	}
	if (b.fastPath && !b.mayBeCongested()) || !b.congested(self, topic) {
		return nil
	}
	b.bpWaits.Add(1)
	b.notify.waiters.Add(1)
	defer b.notify.waiters.Add(-1)
	deadline := b.clk.Now().Add(b.opts.BackpressureTimeout)
	poll := min(b.opts.BackpressureTimeout/4, 50*time.Millisecond)
	tick := b.clk.NewTicker(poll)
	defer tick.Stop()
	for {
		woken := b.notify.wait()
		if !b.congested(self, topic) {
			return nil
		}
		if !b.clk.Now().Before(deadline) {
			b.bpTimeouts.Add(1)
			return errBackpressure
		}
		select {
		case <-woken:
		case <-tick.C():
		case <-ctx.Done():
			return ErrClosed
		}
	}
}

// quietClientErrors demotes mochi's per-packet client errors (a client that
// went away mid-write, a malformed packet) from WARN to DEBUG: they are the
// client's problem, happen all the time on a shop floor, and mochi logs each
// with a dump of the whole packet.
type quietClientErrors struct{ slog.Handler }

func (q quietClientErrors) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && (r.Message == "error processing packet" || r.Message == "client connection closed") {
		r.Level = slog.LevelDebug
		if !q.Handler.Enabled(ctx, r.Level) {
			return nil
		}
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietClientErrors) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietClientErrors{q.Handler.WithAttrs(attrs)}
}

func (q quietClientErrors) WithGroup(name string) slog.Handler {
	return quietClientErrors{q.Handler.WithGroup(name)}
}
