package pipeline

import (
	"reflect"
	"strings"
	"testing"
)

func TestSourceFields(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want []string
		all  bool
	}{
		{"filter forwards raw", `
  steps: [{filter: "temperature > 30 && site == 'a'"}]
  sinks: [{mqtt: {topic: "out/{{device}}"}}]`, []string{"device", "site", "temperature"}, false},
		{"key and eventTime", `
  key: device
  eventTime: ts
  steps: [{filter: "t > 1"}]
  sinks: [{file: {path: /tmp/x}}]`, []string{"device", "t", "ts"}, false},
		{"map then select narrows", `
  steps:
    - filter: "temperature != nil"
    - map: {temp_f: "temperature * 9 / 5 + 32"}
    - select: [device, temperature, temp_f, ts]
  sinks: [{mqtt: {topic: "clean/{{device}}"}}]`, []string{"device", "temperature", "ts"}, false},
		{"map without select encodes everything", `
  steps: [{map: {f: "x + 1"}}]
  sinks: [{mqtt: {topic: out}}]`, nil, true},
		{"log sink logs every field", `
  steps: [{filter: "x > 1"}]
  sinks: [{log: {level: info}}]`, nil, true},
		{"window reads its aggregates only", `
  key: device
  steps:
    - filter: "ok == true"
    - window: {tumbling: 1s}
    - aggregate: {avg_t: "avg(temperature)", n: "count()"}
    - alert: {when: "avg_t > 30", message: "{{key}} hot"}
  sinks: [{log: {level: info}}]`, []string{"device", "ok", "temperature"}, false},
		{"late sink of a window forwards raw", `
  steps:
    - window: {tumbling: 1s}
    - aggregate: {n: "count()"}
  sinks: [{log: {level: info}}]
  late: [{mqtt: {topic: "late/{{dev.id}}"}}]`, []string{"dev", "dev.id"}, false},
		{"alert carries values", `
  steps: [{alert: {when: "x > 1"}}]
  sinks: [{mqtt: {topic: out}}]`, nil, true},
		{"dedupe without key is the whole event", `
  steps: [{dedupe: {within: 1m}}]
  sinks: [{mqtt: {topic: out}}]`, nil, true},
		{"dedupe key", `
  steps: [{dedupe: {key: "id", within: 1m}}, {throttle: {max: 1, per: 1s}}]
  sinks: [{mqtt: {topic: out}}]`, []string{"id"}, false},
		{"$env reads everything", `
  steps: [{filter: "$env.x > 1"}]
  sinks: [{mqtt: {topic: out}}]`, nil, true},
		{"filter after map reads the mapped name", `
  steps:
    - map: {f: "c * 2"}
    - filter: "f > 1"
    - select: [f]
  sinks: [{mqtt: {topic: out}}]`, []string{"c"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  source: {mqtt: {topic: a}}" + tt.spec + "\n"
			plans, err := Load("p.yaml", []byte(strings.ReplaceAll(src, "\t", "  ")))
			if err != nil {
				t.Fatal(err)
			}
			got, all := plans[0].Spec.SourceFields()
			if all != tt.all || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SourceFields() = %q, %v; want %q, %v", got, all, tt.want, tt.all)
			}
		})
	}
}
