package twin

import (
	"encoding/json"
	"fmt"
	"time"
)

// pending collects what one write produces, to be sent after persisting.
type pending struct {
	pubs   []pub
	events []event
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

// flush publishes and emits; called with wmu held, mu not held.
func (m *Manager) flush(p *pending, now time.Time) error {
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
			m.opts.OnEvent(e.stream, e.device, e.fields, now)
		}
	}
	return first
}

// persist appends records and compacts when due; wmu held.
