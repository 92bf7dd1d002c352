package engine

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/runner/checkpoint"
	"github.com/eddy-edge/eddy/runner/wal"
)

// TestProjectionChangesNothing runs pipelines of every step kind twice, once
// decoding only the fields SourceFields names and once decoding every
// field, over the same log, and wants the same output, byte for byte.
func TestProjectionChangesNothing(t *testing.T) {
	specs := map[string]string{
		"filter": `
  steps: [{filter: "temperature > 30"}]
  sinks: [{mqtt: {topic: "o/{{device}}"}}]`,
		"map-select": `
  key: device
  steps:
    - filter: "temperature != nil && temperature > -40"
    - map: {temp_f: "temperature * 9 / 5 + 32"}
    - select: [device, temperature, temp_f, ts]
  sinks: [{mqtt: {topic: "o/{{device}}"}}]`,
		"map-drop": `
  steps: [{map: {t2: "temperature * 2"}}, {drop: [nested]}]
  sinks: [{mqtt: {topic: "o/{{site}}"}}]`,
		"window-alert": `
  key: device
  eventTime: ts
  steps:
    - filter: "ok == true"
    - window: {tumbling: 10s}
    - aggregate: {avg_t: "avg(temperature)", n: "count()", mx: "max(humidity)"}
    - alert: {when: "avg_t > 30", message: "{{key}} hot {{avg_t}}"}
  sinks: [{mqtt: {topic: "o/{{key}}"}}]`,
		"dedupe-throttle": `
  key: device
  steps: [{dedupe: {key: "seq", within: 1m}}, {throttle: {max: 3, per: 1m}}]
  sinks: [{mqtt: {topic: "o/{{device}}"}}]`,
		"alert": `
  key: device
  steps: [{alert: {when: "temperature > 30"}}]
  sinks: [{mqtt: {topic: "o/{{key}}"}}]`,
	}
	var payloads []string
	for i := range 60 {
		payloads = append(payloads, fmt.Sprintf(
			`{"device":"d%d","site":"s%d","temperature":%d,"humidity":%d.5,"ok":%v,"seq":%d,"ts":%d,"nested":{"a":[1,{"b":"\u00e9"}]},"extra":"x"}`,
			i%3, i%2, 20+i%17, i%50, i%4 != 0, i/2, 1_700_000_000_000+int64(i)*1000))
	}
	payloads = append(payloads, `[{"device":"a","temperature":40,"ok":true,"ts":1700000100000},{"device":"b","temperature":41}]`,
		`{bad json`, `{"device":"z","temperature":"hot","ok":true,"ts":1700000200000}`)
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			src := "apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  source: {mqtt: {topic: \"in/#\"}}" + spec + "\n"
			plans, err := pipeline.Load("p.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if names, all := plans[0].Spec.SourceFields(); all {
				t.Logf("decodes every field")
			} else {
				t.Logf("decodes %v", names)
			}
			var outs [2][]string
			for i, decodeAll := range []bool{false, true} {
				outs[i] = runOnce(t, plans[0], payloads, decodeAll)
			}
			if !slices.Equal(outs[0], outs[1]) {
				t.Fatalf("projected:\n%s\nall fields:\n%s", strings.Join(outs[0], "\n"), strings.Join(outs[1], "\n"))
			}
			if len(outs[0]) == 0 {
				t.Fatal("no output at all: the test proves nothing")
			}
		})
	}
}

func runOnce(t *testing.T, plan *pipeline.Plan, payloads []string, decodeAll bool) []string {
	log := wal.NewMemory(wal.MemoryOptions{})
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	pub := &published{}
	reg := NewRegistry()
	reg.RegisterSink("mqtt", func(b *Build, s *pipeline.Sink) (Sink, error) { return mqtt.NewSink(pub, s.MQTT) })
	eng, err := New(Options{Log: log, Checkpoints: checkpoint.NewMemoryStore(), Registry: reg, Clock: clk,
		Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour, decodeAll: decodeAll})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for i, p := range payloads {
		if err := log.Append(context.Background(), &wal.Record{Topic: fmt.Sprintf("in/%d", i%2), Payload: []byte(p), Time: clk.Now().UnixNano()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Apply(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, "pipeline reads the log", func() bool {
		st, ok := eng.Status(plan.ID())
		return ok && st.Cursor > log.Last()
	})
	eng.Close() // waits for the batch in progress
	return pub.get()
}
