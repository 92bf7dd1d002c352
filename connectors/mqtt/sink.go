package mqtt

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/eddy-edge/eddy/pipeline"
)

// Publisher publishes a message; the edge broker implements it.
type Publisher interface {
	Publish(topic string, payload []byte, qos byte, retain bool) error
}

// Sink publishes each event as a JSON object to a topic rendered from a
// {{field}} template.
type Sink struct {
	pub    Publisher
	topic  *pipeline.Template
	qos    byte
	retain bool
	buf    []byte
}

// NewSink returns an MQTT sink for spec publishing through pub.
func NewSink(pub Publisher, spec *pipeline.MQTTSink) (*Sink, error) {
	if pub == nil {
		return nil, fmt.Errorf("mqtt sink needs a broker, and this runner has none")
	}
	t, err := pipeline.ParseTemplate(spec.Topic)
	if err != nil {
		return nil, fmt.Errorf("topic: %w", err)
	}
	return &Sink{pub: pub, topic: t, qos: byte(spec.QoS), retain: spec.Retain}, nil
}

// Write publishes ev. Events unchanged since decoding are forwarded as the
// original payload bytes, without encoding again.
func (s *Sink) Write(_ context.Context, ev *pipeline.Event) error {
	s.buf = s.topic.Append(s.buf[:0], ev)
	payload := ev.Raw
	if payload == nil {
		var err error
		if payload, err = json.Marshal(ev.Fields); err != nil {
			return fmt.Errorf("encoding event as JSON: %w", err)
		}
	}
	return s.pub.Publish(string(s.buf), payload, s.qos, s.retain)
}

// Flush is a no-op: the broker has taken each message when Publish returns.
func (s *Sink) Flush(context.Context) error { return nil }

// Close is a no-op; the broker outlives its sinks.
func (s *Sink) Close() error { return nil }
