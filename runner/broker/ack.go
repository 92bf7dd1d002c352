package broker

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	mqtt "github.com/eddy-edge/eddy/internal/mochi"
	"github.com/eddy-edge/eddy/internal/mochi/packets"
)

// NotifyAppender is an optional capability of an Appender: a durable append
// that reports its completion through a callback instead of blocking. When
// Options.Log implements it, QoS 1/2 publishes from network clients are
// acknowledged asynchronously (see the package doc, "Asynchronous
// acknowledgements").
type NotifyAppender interface {
	Appender
	// AppendNotify appends msg durably. msg and its payload are borrowed
	// only for the duration of the call. On success done is called exactly
	// once: with nil after msg is on stable storage, or with the error that
	// failed it. For calls from the same goroutine, done callbacks run in
	// call order; they may run before AppendNotify returns and on any
	// goroutine, and must be quick. When AppendNotify returns an error, done
	// is never called.
	AppendNotify(ctx context.Context, msg *Message, done func(error)) error
}

// pendingPub is a QoS 1/2 publish whose log append is in flight.
type pendingPub struct {
	pk   packets.Packet // topic alias resolved and cleared; Payload has cap >= 1
	msg  Message        // what is appended (kept here to save an allocation)
	tok  uint64         // in-delivery token (slow.go) until delivered or refused
	done bool           // the append finished (guarded by Broker.qmu)
	err  error          // its error, when done
}

// ackQueue holds one network client's publishes in the order mochi read
// them, so that they are acknowledged and delivered in that order however
// the appends complete. One dispatcher goroutine at a time drains it; it
// works only while the head of the queue is done, so a client whose appends
// are slow holds up no one else. Between batches it parks for up to
// dispatcherIdle, so that a client publishing steadily keeps one goroutine
// (and its grown stack) instead of starting one per group commit.
type ackQueue struct {
	cl        *mqtt.Client
	items     []*pendingPub // FIFO, guarded by Broker.qmu
	running   bool          // a dispatcher goroutine owns the queue
	parked    bool          // ... and waits on kick for the head to be done
	kick      chan struct{} // wakes a parked dispatcher (capacity 1)
	injecting *byte         // payload of the packet being re-injected, or nil
	room      chan struct{} // the dispatcher popped items (capacity 1)
	orphan    *mqtt.Client  // delivers for cl after it disconnected (lazy)
}

// payloadKey identifies a packet by its payload's backing array, which the
// broker owns for re-injected packets (never shared with a packet mochi
// reads from the network). It is nil when the payload has no capacity.
func payloadKey(pk *packets.Packet) *byte {
	if cap(pk.Payload) == 0 {
		return nil
	}
	return &pk.Payload[:1][0]
}

// isInjected reports whether pk is a publish the broker is re-injecting
// for cl after its append became durable.
func (b *Broker) isInjected(cl *mqtt.Client, pk *packets.Packet) bool {
	key := payloadKey(pk)
	if key == nil {
		return false
	}
	b.qmu.Lock()
	defer b.qmu.Unlock()
	q := b.queues[cl]
	return q != nil && q.injecting == key
}

// publishAsync is OnPublish's first pass for a network client's QoS 1/2
// publish when the log can notify: it queues the publish for the client,
// starts the append and tells mochi to drop the packet for now (no ack, no
// delivery). The dispatcher re-injects it once it is durable.
func (h *hook) publishAsync(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	b := h.b
	p := &pendingPub{pk: pk}
	// The injected pass runs concurrently with the client's read loop and
	// must not rebind the client's inbound topic aliases: the topic name
	// was resolved by this pass.
	p.pk.Properties.TopicAlias = 0
	p.pk.Properties.TopicAliasFlag = false
	if cap(p.pk.Payload) == 0 {
		p.pk.Payload = make([]byte, 0, 1) // a key for isInjected
	}
	q, err := b.enqueue(cl, p)
	if errors.Is(err, errReceiveMaximum) {
		b.receiveMax.Add(1)
		b.warn.Warn("receive-max:"+cl.ID, "mqtt client disconnected: it broke the receive maximum",
			"client", cl.ID, "receive_maximum", b.maxPending, "reason", err)
		_ = b.srv.DisconnectClient(cl, packets.ErrReceiveMaximum)
		return pk, packets.ErrRejectPacket
	}
	if err != nil {
		b.log.Warn("mqtt publish refused", "client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos, "reason", err)
		return h.refuse(cl, pk, packets.ErrServerShuttingDown)
	}
	p.msg = Message{
		Topic:   pk.TopicName,
		Payload: pk.Payload,
		QoS:     pk.FixedHeader.Qos,
		Retain:  pk.FixedHeader.Retain,
		Client:  cl.ID,
		Time:    b.clk.Now(),
	}
	p.tok = b.beginDelivery()
	if err := b.nlog.AppendNotify(b.ctx, &p.msg, func(err error) { b.complete(q, p, err) }); err != nil {
		b.complete(q, p, err) // refused in order by the dispatcher
	}
	return pk, packets.ErrRejectPacket
}

// errReceiveMaximum refuses an MQTT 5 client's publish over the receive
// maximum the broker announced.
var errReceiveMaximum = errors.New("more QoS 1/2 publishes in flight than the receive maximum the broker announced")

// enqueue appends p to cl's queue, waiting while the client already has
// maxPending publishes in flight (this blocks the client's read loop, which
// is the backpressure MQTT 3.1.1 clients get). MQTT 5 clients were told
// that number as the receive maximum; one that sends more gets
// errReceiveMaximum.
func (b *Broker) enqueue(cl *mqtt.Client, p *pendingPub) (*ackQueue, error) {
	for {
		b.qmu.Lock()
		q := b.queues[cl]
		if q == nil {
			q = &ackQueue{cl: cl, room: make(chan struct{}, 1), kick: make(chan struct{}, 1)}
			b.queues[cl] = q
		}
		if len(q.items) < b.maxPending {
			q.items = append(q.items, p)
			b.pending.Add(1)
			b.qmu.Unlock()
			return q, nil
		}
		b.qmu.Unlock()
		if cl.Properties.ProtocolVersion == 5 {
			// It was told the receive maximum in its CONNACK.
			return nil, errReceiveMaximum
		}
		select {
		case <-q.room:
		case <-b.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// complete records the outcome of p's append and starts q's dispatcher
// when p is at the head of the queue. It is called by the log (possibly on
// its committer goroutine), so it only hands off.
func (b *Broker) complete(q *ackQueue, p *pendingPub, err error) {
	b.qmu.Lock()
	p.done, p.err = true, err
	ready := len(q.items) > 0 && q.items[0].done
	start := ready && !q.running
	wake := ready && q.parked
	if start {
		q.running = true
	}
	if wake {
		q.parked = false
	}
	b.qmu.Unlock()
	switch {
	case start:
		go b.dispatch(q)
	case wake:
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
}

// dispatcherIdle is how long a dispatcher waits for its client's next
// finished publish before it exits.
const dispatcherIdle = 200 * time.Millisecond

// dispatch acknowledges and delivers q's finished publishes in order. When
// the head of the queue is still being appended, or the queue is empty, it
// parks until complete wakes it, and exits after dispatcherIdle without
// work (complete then starts a new one).
func (b *Broker) dispatch(q *ackQueue) {
	var batch []*pendingPub
	var idle *time.Timer
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	for {
		b.qmu.Lock()
		n := 0
		for n < len(q.items) && q.items[n].done {
			n++
		}
		if n == 0 {
			if b.ctx.Err() == nil && !q.cl.Closed() {
				q.parked = true
				b.qmu.Unlock()
				if idle == nil {
					idle = time.NewTimer(dispatcherIdle)
				} else {
					idle.Reset(dispatcherIdle)
				}
				kicked := false
				select {
				case <-q.kick:
					kicked = true
				case <-idle.C:
				case <-b.ctx.Done():
				}
				b.qmu.Lock()
				if kicked || !q.parked {
					// Woken (a kick sent while the timer fired is
					// drained here, so the next park waits afresh).
					select {
					case <-q.kick:
					default:
					}
					b.qmu.Unlock()
					continue
				}
				q.parked = false
			}
			q.running = false
			if len(q.items) == 0 && b.queues[q.cl] == q {
				delete(b.queues, q.cl)
			}
			b.qmu.Unlock()
			return
		}
		batch = append(batch[:0], q.items[:n]...)
		rest := copy(q.items, q.items[n:])
		clear(q.items[rest:])
		q.items = q.items[:rest]
		b.qmu.Unlock()
		select {
		case q.room <- struct{}{}:
		default:
		}
		// The batch's PUBACKs leave in one write (cork.go).
		g := corker(q.cl)
		if g != nil {
			g.cork()
		}
		for i, p := range batch {
			b.finish(q, p, g)
			b.pending.Add(-1)
			batch[i] = nil
		}
		if g != nil {
			g.uncork()
		}
	}
}

// finish acknowledges and delivers one publish whose append finished, or
// refuses it when the append failed. corked is the client's connection
// while the dispatcher holds its writes back, or nil.
func (b *Broker) finish(q *ackQueue, p *pendingPub, corked *guardedConn) {
	defer b.endDelivery(p.tok)
	cl, pk := q.cl, p.pk
	if b.ctx.Err() != nil {
		return // closed: clients are gone; the log has what was accepted
	}
	if p.err != nil && corked != nil {
		corked.uncork() // acknowledge the batch's earlier publishes before refusing this one
		defer corked.cork()
	}
	if p.err != nil {
		b.logFailures.Add(1)
		b.log.Error("mqtt publish refused: cannot log it", "client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos, "error", p.err)
		b.nack(cl, pk, packets.ErrImplementationSpecificError)
		return
	}
	b.logged.Add(1)
	if corked != nil && b.replay == nil && (!b.fastPath || b.mayBeCongested()) {
		// The wait below may last up to BackpressureTimeout: send what
		// is held back first.
		corked.uncork()
		defer corked.cork()
	}
	// Check subscribers again now, just before delivery: the check in the
	// first pass let up to maxPending publishes per client through at
	// once, far more than the margin between HighWater and mochi's hard
	// limits. Here publishes are delivered one at a time per client, which
	// restores the margin the flow control policy relies on.
	if err := b.waitForSubscribers(b.ctx, cl.ID, pk.TopicName); err != nil {
		if errors.Is(err, ErrClosed) {
			return
		}
		if !cl.Closed() {
			// Refused like in the first pass; it is in the log already,
			// so the client's resend is a duplicate there.
			b.log.Warn("mqtt publish refused after it was logged", "client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos, "reason", err)
			b.nack(cl, pk, packets.ErrQuotaExceeded)
			return
		}
		// Nobody to refuse: deliver it anyway (below), best effort.
	}
	if !cl.Closed() {
		b.qmu.Lock()
		q.injecting = payloadKey(&pk)
		b.qmu.Unlock()
		err := b.inject(cl, pk)
		b.qmu.Lock()
		q.injecting = nil
		b.qmu.Unlock()
		if err == nil {
			return
		}
		// mochi returns an error from a publish only before delivering it
		// (the client went away before its acknowledgement could be
		// written, or broke its receive maximum): deliver it below.
	}
	// The publish is in the log, so it was accepted: deliver it. Nobody can
	// be acknowledged; the client resends it after reconnecting (a
	// duplicate, which QoS 1 allows).
	if q.orphan == nil {
		q.orphan = b.srv.NewClient(nil, "local", cl.ID, true)
	}
	if err := b.inject(q.orphan, pk); err != nil {
		b.log.Warn("mqtt publish logged but not delivered", "client", cl.ID, "topic", pk.TopicName, "error", err)
	}
}

// inject runs pk through mochi as if cl had sent it, without counting it a
// second time in mochi's received counters.
func (b *Broker) inject(cl *mqtt.Client, pk packets.Packet) error {
	if err := b.srv.InjectPacket(cl, pk); err != nil {
		return err
	}
	atomic.AddInt64(&b.srv.Info.PacketsReceived, -1)
	atomic.AddInt64(&b.srv.Info.MessagesReceived, -1)
	return nil
}

// nack refuses a QoS 1/2 publish after the fact: a negative PUBACK/PUBREC
// for MQTT 5, a disconnect without acknowledgement for MQTT 3.1.1 (which
// has no negative acknowledgement; the client resends after reconnecting).
func (b *Broker) nack(cl *mqtt.Client, pk packets.Packet, code packets.Code) {
	if cl.Closed() {
		return
	}
	if cl.Properties.ProtocolVersion < 5 {
		cl.Stop(code)
		return
	}
	typ := packets.Puback
	if pk.FixedHeader.Qos == 2 {
		typ = packets.Pubrec
	}
	_ = cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: typ},
		PacketID:    pk.PacketID,
		ReasonCode:  code.Code,
		Properties:  packets.Properties{ReasonString: code.Reason},
	})
}
