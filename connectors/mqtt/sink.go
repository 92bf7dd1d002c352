package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/eddy-edge/eddy/pipeline"
)

// Publisher publishes a message; the edge broker implements it.
type Publisher interface {
	Publish(topic string, payload []byte, qos byte, retain bool) error
}

// ContextPublisher is a Publisher whose waits (a congested subscriber, a
// durable append) end when ctx is done. The sink uses it when the
// publisher has it, so that stopping a pipeline is never held up by the
// broker.
type ContextPublisher interface {
	PublishContext(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
}

// FrozenPublisher is a ContextPublisher that can also take a payload its
// caller never modifies afterwards, and then shares it with subscribers
// instead of copying it. The sink's payloads are always such: an event's
// Raw bytes (a logged record's) or a buffer encoded for this message.
type FrozenPublisher interface {
	PublishFrozen(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
}

// Batcher is a Publisher that can hold a caller's deliveries back until
// the end of its batch (the edge broker: one write to each subscriber per
// batch). The sink publishes through a PublishBatch when its publisher is
// a Batcher, and flushes it at the end of every batch of events (EndBatch)
// and in Flush.
type Batcher interface {
	NewPublishBatch() PublishBatch
}

// PublishBatch publishes frozen payloads (see FrozenPublisher) whose
// deliveries may wait until Flush. It is used by one goroutine.
type PublishBatch interface {
	FrozenPublisher
	Flush()
}

// maxTopicLen is MQTT's limit on a topic name (a two-byte length prefix).
const maxTopicLen = 65535

// CheckTopicName returns why topic cannot be published to, or nil: MQTT
// topic names are non-empty UTF-8 without wildcards (+ #) or NUL, at most
// 65535 bytes.
func CheckTopicName(topic string) error {
	switch {
	case topic == "":
		return fmt.Errorf("topic is empty")
	case len(topic) > maxTopicLen:
		return fmt.Errorf("topic is %d bytes long; MQTT allows %d", len(topic), maxTopicLen)
	case !utf8.ValidString(topic):
		return fmt.Errorf("topic %q is not valid UTF-8", topic)
	case strings.ContainsAny(topic, "+#\x00"):
		return fmt.Errorf("topic %q contains a wildcard (+ #) or NUL; a field rendered into the topic template holds one", topic)
	}
	return nil
}

// Sink publishes each event as a JSON object to a topic rendered from a
// {{field}} template.
type Sink struct {
	pub    Publisher
	topic  *pipeline.Template
	qos    byte
	retain bool
	buf    []byte
	// A topic without {{field}} references is rendered and checked once.
	static    string
	staticErr error
	batch     PublishBatch // nil: the publisher does not batch
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
	s := &Sink{pub: pub, topic: t, qos: byte(spec.QoS), retain: spec.Retain}
	if b, ok := pub.(Batcher); ok {
		s.batch = b.NewPublishBatch()
	}
	if t.Static() {
		s.static = t.String()
		s.staticErr = CheckTopicName(s.static)
	}
	return s, nil
}

// Write publishes ev. Events unchanged since decoding are forwarded as the
// original payload bytes, without encoding again. A rendered topic that is
// not a valid topic name and an event JSON cannot encode (NaN, ±Inf) are
// permanent errors for that event (see pipeline.PermanentError); the
// publisher's errors (broker closed, log full, congested subscribers) are
// retryable.
func (s *Sink) Write(ctx context.Context, ev *pipeline.Event) error {
	topic, err := s.static, s.staticErr
	if !s.topic.Static() {
		s.buf = s.topic.Append(s.buf[:0], ev)
		topic = string(s.buf)
		err = CheckTopicName(topic)
	}
	if err != nil {
		return pipeline.Permanentf("mqtt sink: %w", err)
	}
	payload := ev.Raw
	if payload == nil {
		if payload, err = json.Marshal(ev.Fields); err != nil {
			return pipeline.Permanentf("mqtt sink: encoding event as JSON: %w", err)
		}
	}
	if s.batch != nil {
		return s.batch.PublishFrozen(ctx, topic, payload, s.qos, s.retain)
	}
	if fp, ok := s.pub.(FrozenPublisher); ok {
		return fp.PublishFrozen(ctx, topic, payload, s.qos, s.retain)
	}
	if cp, ok := s.pub.(ContextPublisher); ok {
		return cp.PublishContext(ctx, topic, payload, s.qos, s.retain)
	}
	return s.pub.Publish(topic, payload, s.qos, s.retain)
}

// EndBatch sends the deliveries a batching publisher held back (see
// Batcher); the engine calls it at the end of every batch of events.
func (s *Sink) EndBatch() {
	if s.batch != nil {
		s.batch.Flush()
	}
}

// Flush sends held-back deliveries (EndBatch); otherwise there is nothing
// to do: the broker has taken each message when Publish returns.
func (s *Sink) Flush(context.Context) error {
	s.EndBatch()
	return nil
}

// Close is a no-op; the broker outlives its sinks.
func (s *Sink) Close() error { return nil }
