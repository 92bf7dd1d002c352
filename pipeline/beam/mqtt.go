package beam

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/pipeline"
)

// mqttSinkFn publishes each event with the edge's own MQTT sink
// (connectors/mqtt.Sink: same topic templates, same payloads) through a
// paho client connected to Options.MQTTBroker.
type mqttSinkFn struct {
	Broker string
	Sink   []byte // the pipeline.MQTTSink, JSON

	client paho.Client
	sink   *mqtt.Sink
}

// pahoPublisher adapts a paho client to mqtt.Publisher.
type pahoPublisher struct{ c paho.Client }

func (p pahoPublisher) Publish(topic string, payload []byte, qos byte, retain bool) error {
	tok := p.c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(30 * time.Second) {
		return fmt.Errorf("publishing to %s: no acknowledgement within 30s", topic)
	}
	return tok.Error()
}

func (f *mqttSinkFn) Setup() error {
	var spec pipeline.MQTTSink
	if err := json.Unmarshal(f.Sink, &spec); err != nil {
		return err
	}
	opts := paho.NewClientOptions().AddBroker(f.Broker).SetClientID(fmt.Sprintf("eddy-beam-%d", time.Now().UnixNano())).
		SetAutoReconnect(true).SetConnectTimeout(10 * time.Second)
	f.client = paho.NewClient(opts)
	if tok := f.client.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return fmt.Errorf("mqtt sink: connecting to %s: %v", f.Broker, tok.Error())
	}
	var err error
	f.sink, err = mqtt.NewSink(pahoPublisher{f.client}, &spec)
	return err
}

func (f *mqttSinkFn) ProcessElement(ctx context.Context, r Rec) error {
	ev, err := toEvent(r)
	if err != nil {
		return err
	}
	return f.sink.Write(ctx, ev)
}

func (f *mqttSinkFn) Teardown() {
	if f.client != nil {
		f.client.Disconnect(250)
	}
}
