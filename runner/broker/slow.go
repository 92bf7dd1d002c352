package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eddy-edge/eddy/internal/mochi"
	"github.com/eddy-edge/eddy/internal/mochi/packets"
)

// DefaultMaxQueuedMessages is how many messages a subscriber may have
// queued for writing plus unacknowledged before it counts as slow (like
// mosquitto's max_queued_messages, whose default is also 1000).
const DefaultMaxQueuedMessages = 1000

// Replayer is an optional capability of Options.Log: reading back what was
// appended, in order. With it, a subscriber that falls behind is served
// from the log at its own pace instead of holding up publishers (see the
// package doc, "Slow subscribers"). The runner's WAL adapter implements it.
type Replayer interface {
	// Next returns an offset at or below the one the next appended message
	// will get (the end of what readers can see is fine). It is called on
	// every publish and must be cheap.
	Next() uint64
	// Replay copies up to len(buf) logged messages with offset >= from into
	// buf without waiting and returns how many, and the offset to continue
	// from; n == 0 means from is at the end of what can be read. Payloads
	// must not be reused by the log afterwards. When messages from `from`
	// on were removed by retention it returns a *GapError.
	Replay(from uint64, buf []Message) (n int, next uint64, err error)
}

// GapError is returned by Replayer.Replay for messages retention removed.
type GapError struct {
	// From is the offset asked for; First the oldest offset still kept.
	From, First uint64
}

// Error says how many messages were lost.
func (e *GapError) Error() string {
	return fmt.Sprintf("log offsets %d..%d were removed by retention before they were delivered (%d messages lost)",
		e.From, e.First-1, e.First-e.From)
}

// laggard is a subscriber being served from the log. It is keyed by
// client id, so that a persistent session that disconnects while behind
// resumes where it was when it comes back.
type laggard struct {
	id       string
	from     uint64                 // next offset to replay
	retained []packets.Subscription // filters subscribed while behind: send their retained messages
}

// inDelivery tracks, for every message that was given to the log but not
// yet handed to subscribers, a lower bound of its offset (Replayer.Next
// before its append). The smallest is where a subscriber that turns slow
// now must start replaying so that no message it misses is left out.
type inDelivery struct {
	mu   sync.Mutex
	next uint64
	toks map[uint64]uint64 // token -> offset bound
}

func (d *inDelivery) add(off uint64) uint64 {
	d.mu.Lock()
	d.next++
	tok := d.next
	if d.toks == nil {
		d.toks = map[uint64]uint64{}
	}
	d.toks[tok] = off
	d.mu.Unlock()
	return tok
}

func (d *inDelivery) remove(tok uint64) {
	if tok == 0 {
		return
	}
	d.mu.Lock()
	delete(d.toks, tok)
	d.mu.Unlock()
}

// low returns the smallest offset bound in delivery, or end when none is.
func (d *inDelivery) low(end uint64) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, off := range d.toks {
		end = min(end, off)
	}
	return end
}

// beginDelivery registers a message about to be logged and delivered; the
// token goes to endDelivery once mochi has handed it to subscribers (or it
// was refused). It returns 0 (nothing to track) without a Replayer.
func (b *Broker) beginDelivery() uint64 {
	if b.replay == nil {
		return 0
	}
	return b.delivering.add(b.replay.Next())
}

func (b *Broker) endDelivery(tok uint64) { b.delivering.remove(tok) }

// clientState is the broker's per-connection bookkeeping for slow
// subscribers and the publish being delivered from the client's read loop.
type clientState struct {
	dropped   atomic.Int64  // QoS 0 deliveries dropped for this client
	tok       atomic.Uint64 // in-delivery token of the publish between OnPublish and OnPublished
	qosSubs   atomic.Bool   // some subscription is QoS 1/2 ...
	qosSubsAt atomic.Int64  // ... as of this many subscriptions + 1 (0: unknown)
	msg       Message       // the publish being logged (OnPublish, on the client's read loop only)
}

func (b *Broker) state(cl *mqtt.Client) *clientState {
	if v, ok := b.clients.Load(cl); ok {
		return v.(*clientState)
	}
	v, _ := b.clients.LoadOrStore(cl, &clientState{})
	return v.(*clientState)
}

// overQueued reports whether cl holds MaxQueuedMessages or more messages
// queued for writing plus unacknowledged.
func (b *Broker) overQueued(cl *mqtt.Client) bool {
	return cl.PendingWrites()+cl.State.Inflight.Len() >= b.opts.MaxQueuedMessages
}

// admitDelivery decides, for one delivery mochi is about to make to a
// network client (from OnACLCheck), whether it goes out live. It returns
// false when the client is being served from the log, or has just become
// slow: then the delivery is suppressed (it will be replayed from the
// log), or dropped and counted when the client has only QoS 0
// subscriptions or there is no log to replay from.
func (b *Broker) admitDelivery(cl *mqtt.Client, topic string) bool {
	if b.nLagging.Load() > 0 {
		b.lagMu.Lock()
		_, behind := b.laggards[cl.ID]
		b.lagMu.Unlock()
		if behind {
			return false
		}
	}
	if !b.overQueued(cl) {
		return true
	}
	switch qos := b.state(cl).hasQoSSubscription(cl); {
	case qos && b.replay != nil:
		b.startCatchUp(cl.ID, "its queue reached MaxQueuedMessages")
		return false
	case qos:
		// No log to replay from: publishers wait for it instead (see
		// waitForSubscribers), within mochi's larger hard limits.
		return true
	}
	b.dropQoS0(cl, topic)
	return false
}

// hasQoSSubscription reports whether cl subscribes to anything with QoS 1
// or 2. It is asked only while cl is over its bound, and remembered until
// its number of subscriptions changes.
func (cs *clientState) hasQoSSubscription(cl *mqtt.Client) bool {
	n := int64(cl.State.Subscriptions.Len())
	if cs.qosSubsAt.Load() == n+1 {
		return cs.qosSubs.Load()
	}
	any := false
	for _, sub := range cl.State.Subscriptions.GetAll() {
		if sub.Qos > 0 {
			any = true
			break
		}
	}
	cs.qosSubs.Store(any)
	cs.qosSubsAt.Store(n + 1)
	return any
}

// dropQoS0 counts and logs (rate-limited, per client) a delivery dropped
// because the subscriber's queue is full.
func (b *Broker) dropQoS0(cl *mqtt.Client, topic string) {
	b.slowDrops.Add(1)
	n := b.state(cl).dropped.Add(1)
	b.warn.Warn("drop:"+cl.ID, "outgoing messages are being dropped for a slow subscriber (its queue is full)",
		"client", cl.ID, "topic", truncate(topic, 128), "dropped_for_client", n, "max_queued_messages", b.opts.MaxQueuedMessages)
}

// startCatchUp moves subscriber id to the log: live deliveries to it stop
// and a goroutine replays the log for it from the lowest offset that may
// not have reached it yet, at the pace it reads and acknowledges.
func (b *Broker) startCatchUp(id, why string) {
	end := b.replay.Next()
	from := b.delivering.low(end)
	b.lagMu.Lock()
	if _, ok := b.laggards[id]; ok || b.ctx.Err() != nil {
		b.lagMu.Unlock()
		return
	}
	lg := &laggard{id: id, from: from}
	b.laggards[id] = lg
	b.nLagging.Add(1)
	b.catchUps.Add(1)
	b.wg.Add(1)
	b.lagMu.Unlock()
	b.warn.Warn("slow:"+id, "mqtt subscriber is slow: serving it from the log until it catches up; publishers do not wait for it",
		"client", id, "reason", why, "from_offset", from, "log_end", end)
	go b.catchUp(lg)
}

// isLaggard reports whether lg is still the registered laggard of its id
// (it is not once its session expired).
func (b *Broker) isLaggard(lg *laggard) bool {
	b.lagMu.Lock()
	defer b.lagMu.Unlock()
	return b.laggards[lg.id] == lg
}

// stopCatchUp forgets id's laggard (the caller's goroutine exits).
func (b *Broker) stopCatchUp(lg *laggard) {
	b.lagMu.Lock()
	if b.laggards[lg.id] == lg {
		delete(b.laggards, lg.id)
		b.nLagging.Add(-1)
	}
	b.lagMu.Unlock()
}

// replayBatch is how many messages one Replay call reads.
const replayBatch = 256

// catchUp replays the log for one slow subscriber until it has caught up
// with the live stream, then hands it back to live delivery. It waits (on
// its own goroutine only) while the subscriber has half its queue bound
// or more outstanding, or is offline with a persistent session.
func (b *Broker) catchUp(lg *laggard) {
	defer b.wg.Done()
	defer b.stopCatchUp(lg)
	buf := make([]Message, replayBatch)
	for {
		cl, room, ok := b.waitForRoom(lg)
		if !ok {
			return // broker closed, or the session is gone
		}
		b.sendRetained(cl, lg)
		n, next, err := b.replay.Replay(lg.from, buf[:min(room, len(buf))])
		var gap *GapError
		if errors.As(err, &gap) {
			b.fellBehind(cl, gap)
			return
		}
		if err != nil {
			b.log.Error("cannot replay the log for a slow subscriber; disconnecting it", "client", lg.id, "error", err)
			_ = b.srv.DisconnectClient(cl, packets.ErrImplementationSpecificError)
			return
		}
		if n == 0 {
			if b.goLive(cl, lg) {
				return
			}
			continue
		}
		b.deliverReplayed(cl, buf[:n])
		clear(buf[:n])
		lg.from = next
	}
}

// goLive hands lg back to live delivery when the log has nothing more for
// it, then delivers what was appended between its last read and the switch
// (those messages were suppressed for it; some may now arrive twice, which
// QoS 1 allows). It reports false when the log grew meanwhile and catching
// up goes on.
func (b *Broker) goLive(cl *mqtt.Client, lg *laggard) bool {
	if b.overQueued(cl) {
		return false // keep going from the log until it has drained
	}
	b.stopCatchUp(lg)
	buf := make([]Message, replayBatch)
	for {
		n, next, err := b.replay.Replay(lg.from, buf)
		if err != nil || n == 0 {
			break
		}
		b.deliverReplayed(cl, buf[:n])
		lg.from = next
	}
	b.log.Info("mqtt subscriber caught up: back to live delivery", "client", lg.id, "offset", lg.from)
	return true
}

// waitForRoom waits until subscriber id is connected and has room for a
// batch below MaxQueuedMessages (an eighth of it, so that the pipe stays
// full while acknowledgements trickle in), and returns that room. It
// returns false when the broker closes or the session no longer exists.
func (b *Broker) waitForRoom(lg *laggard) (*mqtt.Client, int, bool) {
	id := lg.id
	tick := b.clk.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	b.notify.waiters.Add(1)
	defer b.notify.waiters.Add(-1)
	for {
		woken := b.notify.wait()
		cl, ok := b.srv.Clients.Get(id)
		if !ok || !b.isLaggard(lg) {
			return nil, 0, false
		}
		// Wait for mochi's write queue to be empty too: a packet written
		// while it is not goes to the client's write buffer, flushed only
		// by a later write, and a catch-up goroutine may be the last
		// writer. Live deliveries to a laggard are suppressed, so the
		// queue only drains.
		if !cl.Closed() && cl.PendingWrites() == 0 {
			room := b.opts.MaxQueuedMessages - cl.State.Inflight.Len()
			need := max(1, b.opts.MaxQueuedMessages/8)
			if rm := int(cl.Properties.Props.ReceiveMaximum); rm > 0 {
				// An MQTT 5 client's own receive maximum.
				room = min(room, rm-cl.State.Inflight.Len())
				need = min(need, max(1, rm/2))
			}
			if room >= need {
				return cl, room, true
			}
		}
		select {
		case <-woken:
		case <-tick.C():
		case <-b.ctx.Done():
			return nil, 0, false
		}
	}
}

// fellBehind disconnects a subscriber whose messages retention removed
// before it could read them, and says why.
func (b *Broker) fellBehind(cl *mqtt.Client, gap *GapError) {
	b.retentionDisconnects.Add(1)
	b.log.Warn("mqtt subscriber disconnected: it fell behind the log's retention and lost messages",
		"client", cl.ID, "lost", gap.First-gap.From, "from_offset", gap.From, "first_kept", gap.First)
	code := packets.Code{Code: packets.ErrQuotaExceeded.Code, Reason: "fell behind the broker's log retention: " + gap.Error()}
	b.disconnectGracefully(cl, code)
}

// Bounds of disconnectGracefully's wait for the client to close.
const (
	// disconnectIdleGrace is how long a client gets to close the
	// connection once it reads nothing more (typically: it has received
	// everything up to the DISCONNECT).
	disconnectIdleGrace = time.Second
	// disconnectMaxGrace bounds the whole wait while it keeps reading.
	disconnectMaxGrace = 10 * time.Second
)

// disconnectGracefully sends an MQTT 5 client DISCONNECT with code and
// waits for the client to close the connection itself before closing it:
// closing while it has not read everything up to the DISCONNECT loses the
// DISCONNECT (the client sees EOF or a reset and never learns why). A
// slow subscriber, the usual reason, has a backlog in the socket buffers
// ahead of it: hundreds of kilobytes that a slow reader on a loaded
// machine takes seconds to read. So the wait goes on while the client
// makes progress (the bytes it has not acknowledged shrink, its in-flight
// messages change, mochi's queue drains), up to disconnectMaxGrace, and
// ends disconnectIdleGrace after the last progress. MQTT 3.1.1 clients
// are just disconnected.
func (b *Broker) disconnectGracefully(cl *mqtt.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion == 5 {
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect},
			ReasonCode: code.Code, Properties: packets.Properties{ReasonString: code.Reason}})
		const every = 10 * time.Millisecond
		tick := b.clk.NewTicker(every)
		progress := func() [3]int { return [3]int{unsent(cl.Net.Conn), cl.State.Inflight.Len(), cl.PendingWrites()} }
		last, idle := progress(), time.Duration(0)
		for waited := time.Duration(0); waited < disconnectMaxGrace && idle < disconnectIdleGrace &&
			!cl.Closed() && b.ctx.Err() == nil; waited += every {
			<-tick.C()
			if now := progress(); now != last {
				last, idle = now, 0
			} else {
				idle += every
			}
		}
		tick.Stop()
	}
	cl.Stop(code)
}

// deliverReplayed sends cl the messages of msgs its subscriptions match.
func (b *Broker) deliverReplayed(cl *mqtt.Client, msgs []Message) {
	for i := range msgs {
		m := &msgs[i]
		subs := b.srv.Topics.Subscribers(m.Topic)
		if sub, ok := subs.Subscriptions[cl.ID]; ok {
			b.deliverTo(cl, sub, m, false)
		}
		for _, group := range subs.Shared {
			if sub, ok := group[cl.ID]; ok {
				b.deliverTo(cl, sub, m, false)
				break
			}
		}
	}
}

// sendRetained sends the retained messages of filters cl subscribed to
// while it was being served from the log (mochi's own sending of them was
// suppressed with its other deliveries).
func (b *Broker) sendRetained(cl *mqtt.Client, lg *laggard) {
	b.lagMu.Lock()
	subs := lg.retained
	lg.retained = nil
	b.lagMu.Unlock()
	for _, sub := range subs {
		for _, pk := range b.srv.Topics.Messages(sub.Filter) {
			m := Message{Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Retain: true, Client: pk.Origin}
			b.deliverTo(cl, sub, &m, true)
		}
	}
}

// deliverTo writes one message to cl the way mochi's publishToClient
// would (QoS downgraded to the subscription's, packet id and in-flight
// tracking for QoS 1/2, retain-as-published, subscription identifiers,
// no-local), but synchronously on the catch-up goroutine, so that the
// socket's pace is the replay's pace.
func (b *Broker) deliverTo(cl *mqtt.Client, sub packets.Subscription, m *Message, retained bool) {
	if sub.NoLocal && m.Client == cl.ID {
		return
	}
	if !b.aclRead(cl, m.Topic) {
		return
	}
	out := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: min(m.QoS, sub.Qos)},
		TopicName:   m.Topic,
		Payload:     m.Payload,
		Origin:      m.Client,
		Created:     m.Time.Unix(),
	}
	if m.Retain && (retained || cl.Properties.ProtocolVersion == 5 && sub.RetainAsPublished) {
		out.FixedHeader.Retain = true
	}
	if len(sub.Identifiers) > 0 {
		for _, id := range sub.Identifiers {
			out.Properties.SubscriptionIdentifier = append(out.Properties.SubscriptionIdentifier, id)
		}
	}
	if out.FixedHeader.Qos > 0 {
		id, err := cl.NextPacketID()
		if err != nil {
			return // the client is at 65535 unacknowledged: it is being disconnected
		}
		out.PacketID = uint16(id)
		if cl.State.Inflight.Set(out) {
			atomic.AddInt64(&b.srv.Info.Inflight, 1)
			cl.State.Inflight.DecreaseSendQuota()
		}
	}
	if err := cl.WritePacket(out); err == nil {
		b.replayed.Add(1)
	}
	// A failed write leaves a QoS 1/2 message in flight: mochi resends it
	// when a persistent session reconnects.
}

// forgetClient drops the broker's state for a connection that ended, and
// the laggard of a session that expired with it.
func (b *Broker) forgetClient(cl *mqtt.Client, expire bool) {
	if v, ok := b.clients.LoadAndDelete(cl); ok {
		b.endDelivery(v.(*clientState).tok.Swap(0))
	}
	if !expire || cl.IsTakenOver() {
		return
	}
	b.lagMu.Lock()
	if lg, ok := b.laggards[cl.ID]; ok && lg != nil {
		if lg != nil {
			delete(b.laggards, cl.ID) // its goroutine sees this and exits
			b.nLagging.Add(-1)
		}
	}
	b.lagMu.Unlock()
}

// noteSubscribed remembers filters a slow subscriber added, so that its
// catch-up goroutine sends their retained messages.
func (b *Broker) noteSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if b.nLagging.Load() == 0 {
		return
	}
	b.lagMu.Lock()
	defer b.lagMu.Unlock()
	lg, ok := b.laggards[cl.ID]
	if !ok {
		return
	}
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] < packets.ErrUnspecifiedError.Code {
			f.Qos = min(f.Qos, codes[i])
			lg.retained = append(lg.retained, f)
		}
	}
}

// closeCatchUps waits for the catch-up goroutines after the broker's
// context ended.
func (b *Broker) closeCatchUps(ctx context.Context) {
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
