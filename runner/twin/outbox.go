package twin

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Replies and events leave the manager through an outbox, after the write
// lock is released: publishing goes through the broker, which may wait (up
// to its backpressure timeout) for a slow subscriber, and one congested
// subscriber must not stall the twins of every other device.
//
// Order is kept per lane (a device id, or "node:" + a node name for
// membership): every write takes a ticket on each lane it touches while it
// holds the write lock, and delivers once the writes before it on those
// lanes have delivered. So a device's results, deltas and documents go out
// in the order its changes were made, while a write on another device never
// waits for it. Tickets are issued in one total order (under wmu) and a
// write only ever waits for lower tickets, so waiting cannot deadlock.

// pending collects what one write produces, to be delivered after the
// write lock is released.
type pending struct {
	lanes   []string
	tickets []uint64
	pubs    []pub
	events  []event
	now     time.Time
}

type pub struct {
	topic string
	body  any
}

type event struct {
	stream, device string
	fields         map[string]any
}

func (p *pending) publish(topic string, body any) { p.pubs = append(p.pubs, pub{topic, body}) }
func (p *pending) emit(stream, dev string, f map[string]any) {
	p.events = append(p.events, event{stream, dev, f})
}

// lane adds a lane the pending's deliveries are ordered on.
func (p *pending) lane(key string) {
	if !slices.Contains(p.lanes, key) {
		p.lanes = append(p.lanes, key)
	}
}

func nodeLane(node string) string { return "node:" + node }

// outbox orders deliveries per lane.
type outbox struct {
	mu    sync.Mutex
	turn  *sync.Cond
	lanes map[string]*laneState
}

type laneState struct{ issued, done uint64 }

func newOutbox() *outbox {
	o := &outbox{lanes: map[string]*laneState{}}
	o.turn = sync.NewCond(&o.mu)
	return o
}

// enqueue takes p's tickets; wmu held, so tickets follow the order of
// writes. A pending with nothing to deliver takes none.
func (o *outbox) enqueue(p *pending) {
	if len(p.pubs) == 0 && len(p.events) == 0 {
		p.lanes = nil
		return
	}
	slices.Sort(p.lanes)
	o.mu.Lock()
	p.tickets = make([]uint64, len(p.lanes))
	for i, k := range p.lanes {
		l := o.lanes[k]
		if l == nil {
			l = &laneState{}
			o.lanes[k] = l
		}
		p.tickets[i] = l.issued
		l.issued++
	}
	o.mu.Unlock()
}

// wait blocks until every write before p on p's lanes has delivered.
func (o *outbox) wait(p *pending) {
	o.mu.Lock()
	for i, k := range p.lanes {
		for o.lanes[k].done != p.tickets[i] {
			o.turn.Wait()
		}
	}
	o.mu.Unlock()
}

// done marks p delivered and wakes the writes waiting for it.
func (o *outbox) done(p *pending) {
	if len(p.lanes) == 0 {
		return
	}
	o.mu.Lock()
	for _, k := range p.lanes {
		l := o.lanes[k]
		l.done++
		if l.done == l.issued {
			delete(o.lanes, k) // idle: keep the map as small as the traffic
		}
	}
	o.mu.Unlock()
	o.turn.Broadcast()
}

// deliver publishes p's replies and emits its events in lane order; called
// without wmu or mu held. It returns the first publish error.
func (m *Manager) deliver(p *pending) error {
	if len(p.lanes) == 0 && len(p.pubs) == 0 && len(p.events) == 0 {
		return nil
	}
	m.out.wait(p)
	defer m.out.done(p)
	var first error
	for _, x := range p.pubs {
		b, err := json.Marshal(x.body)
		if err == nil && m.opts.Publisher != nil {
			err = m.opts.Publisher.Publish(x.topic, b, m.opts.QoS, false)
		}
		if err != nil {
			m.log.Warn("twin: publish failed", "topic", x.topic, "err", err)
			if first == nil {
				first = fmt.Errorf("twin: publish %s: %w", x.topic, err)
			}
		}
	}
	if m.opts.OnEvent != nil {
		for _, e := range p.events {
			m.opts.OnEvent(e.stream, e.device, e.fields, p.now)
		}
	}
	return first
}
