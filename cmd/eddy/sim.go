package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/spf13/cobra"
)

func simCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "sim", Short: "Device simulators"}
	cmd.AddCommand(simMQTTCommand(g))
	cmd.AddCommand(simModbusCommand(g))
	return cmd
}

// simOptions configure the MQTT device simulator.
type simOptions struct {
	broker   string
	username string
	password string
	devices  int
	rate     float64
	seed     uint64
	format   string
	topic    string
	qos      int
	count    int
	hot      int
	prefix   string
}

func simMQTTCommand(g *globals) *cobra.Command {
	o := &simOptions{}
	cmd := &cobra.Command{
		Use:   "mqtt",
		Short: "Publish simulated thermometer readings over MQTT",
		Long: `Publish simulated device readings: each device's temperature is a random walk
around 22 °C; the first --hot devices drift up to about 35 °C so that an overheat
alert has something to find. --format json publishes
  {"device":"thermo-1","temperature":22.4,"humidity":41.0,"ts":1700000000000}
to --topic (default factory/{device}/data); --format kubeedge publishes the KubeEdge
mapper message {"event_id":"","timestamp":...,"data":{"temperature":{"value":"22.4",
"metadata":{"type":"float","timestamp":...}}}} to $ke/events/device/default/{device}/data/update.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return simulate(cmd.Context(), g.logger(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.broker, "broker", "tcp://127.0.0.1:1883", "MQTT broker URL")
	f.StringVar(&o.username, "username", "", "MQTT username")
	f.StringVar(&o.password, "password", "", "MQTT password")
	f.IntVar(&o.devices, "devices", 5, "number of simulated devices")
	f.Float64Var(&o.rate, "rate", 10, "messages per second, all devices together")
	f.Uint64Var(&o.seed, "seed", 1, "random seed (same seed, same readings)")
	f.StringVar(&o.format, "format", "json", "payload format: json or kubeedge")
	f.StringVar(&o.topic, "topic", "", "topic template with {device} (default depends on --format)")
	f.IntVar(&o.qos, "qos", 1, "MQTT QoS (0, 1 or 2)")
	f.IntVar(&o.count, "count", 0, "stop after this many messages (0: run until interrupted)")
	f.IntVar(&o.hot, "hot", 1, "how many devices overheat")
	f.StringVar(&o.prefix, "prefix", "thermo-", "device name prefix")
	return cmd
}

type simDevice struct {
	name string
	temp float64
	hum  float64
	hot  bool
}

// simulate publishes readings until ctx ends or count is reached.
func simulate(ctx context.Context, logger *slog.Logger, o *simOptions) error {
	if o.devices <= 0 || o.rate <= 0 {
		return fmt.Errorf("--devices and --rate must be > 0")
	}
	if o.qos < 0 || o.qos > 2 {
		return fmt.Errorf("--qos must be 0, 1 or 2")
	}
	if o.topic == "" {
		switch o.format {
		case "json":
			o.topic = "factory/{device}/data"
		case "kubeedge":
			o.topic = "$ke/events/device/default/{device}/data/update"
		default:
			return fmt.Errorf("--format %q: use json or kubeedge", o.format)
		}
	}
	opts := paho.NewClientOptions().AddBroker(o.broker).SetClientID(fmt.Sprintf("eddy-sim-%d", o.seed)).
		SetUsername(o.username).SetPassword(o.password).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).SetOrderMatters(false)
	c := paho.NewClient(opts)
	if t := c.Connect(); !t.WaitTimeout(30*time.Second) || t.Error() != nil {
		return fmt.Errorf("connecting to %s: %v", o.broker, t.Error())
	}
	defer c.Disconnect(250)
	rng := rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15))
	devs := make([]*simDevice, o.devices)
	for i := range devs {
		devs[i] = &simDevice{name: fmt.Sprintf("%s%d", o.prefix, i+1), temp: 20 + rng.Float64()*4, hum: 35 + rng.Float64()*10, hot: i < o.hot}
	}
	interval := time.Duration(float64(time.Second) / o.rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	logger.Info("simulating devices", "broker", o.broker, "devices", o.devices, "rate", o.rate, "format", o.format)
	for n := 0; o.count == 0 || n < o.count; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		d := devs[n%len(devs)]
		d.step(rng)
		now := time.Now()
		payload, err := d.payload(o.format, now)
		if err != nil {
			return err
		}
		topic := strings.ReplaceAll(o.topic, "{device}", d.name)
		t := c.Publish(topic, byte(o.qos), false, payload)
		if o.qos == 0 {
			continue
		}
		// Wait for the PUBACK, but not past a stop: while the broker is
		// gone paho holds the publish until it reconnects.
		select {
		case <-ctx.Done():
			return nil
		case <-t.Done():
		case <-time.After(30 * time.Second):
			return fmt.Errorf("publishing to %s: no acknowledgement in 30s", topic)
		}
		if err := t.Error(); err != nil {
			return fmt.Errorf("publishing to %s: %v", topic, err)
		}
	}
	return nil
}

// step moves the device's readings one step of a bounded random walk;
// hot devices are pulled towards 35 °C, others towards 22 °C.
func (d *simDevice) step(rng *rand.Rand) {
	target := 22.0
	if d.hot {
		target = 35
	}
	d.temp += (target-d.temp)*0.05 + rng.NormFloat64()*0.3
	d.hum = math.Max(0, math.Min(100, d.hum+rng.NormFloat64()*0.5))
}

func (d *simDevice) payload(format string, now time.Time) ([]byte, error) {
	t := math.Round(d.temp*10) / 10
	h := math.Round(d.hum*10) / 10
	ms := now.UnixMilli()
	if format == "kubeedge" {
		type meta struct {
			Type      string `json:"type"`
			Timestamp int64  `json:"timestamp"`
		}
		type value struct {
			Value    string `json:"value"`
			Metadata meta   `json:"metadata"`
		}
		return json.Marshal(map[string]any{"event_id": "", "timestamp": ms, "data": map[string]value{
			"temperature": {Value: fmt.Sprint(t), Metadata: meta{"float", ms}},
			"humidity":    {Value: fmt.Sprint(h), Metadata: meta{"float", ms}},
		}})
	}
	return json.Marshal(map[string]any{"device": d.name, "temperature": t, "humidity": h, "ts": ms})
}
