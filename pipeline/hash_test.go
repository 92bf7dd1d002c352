package pipeline_test

import (
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/pipeline"
)

// hashBase is the pipeline the hash tests vary; each case replaces one
// substring of it.
const hashBase = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: overheat, namespace: default, labels: {team: ops}, annotations: {note: a}, generation: 1}
spec:
  nodeSelector: {matchLabels: {site: plant-1}}
  source:
    mqtt: {topic: "factory/+/data", format: json, qos: 1}
  eventTime: ts
  key: device
  steps:
    - filter: "temperature != nil && temperature > -40"
    - map: {temp_f: "temperature * 9 / 5 + 32"}
    - window: {tumbling: 60s, allowedLateness: 2s}
    - aggregate: {avg_t: "avg(temperature)", n: "count()"}
    - name: hot
      alert: {when: "avg_t > 30", for: 30s, cooldown: 5m, severity: warning, message: "{{key}} hot"}
    - dedupe: {key: "alert_id + state", within: 1h}
  sinks:
    - mqtt: {topic: "alerts/{{key}}", qos: 1}
`

func hashOf(t *testing.T, src string) string {
	t.Helper()
	plans, err := pipeline.Load("hash.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Load: %v\n%s", err, src)
	}
	return plans[0].Hash
}

func TestHashSameMeaning(t *testing.T) {
	base := hashOf(t, hashBase)
	tests := []struct{ name, old, new string }{
		{"expression spacing", `temperature != nil && temperature > -40`, `temperature!=nil&&temperature>-40`},
		{"expression parentheses", `temperature * 9 / 5 + 32`, `((temperature * 9) / 5) + 32`},
		{"alert expression spacing", `avg_t > 30`, `avg_t>30`},
		{"aggregate argument spacing", `avg(temperature)`, `avg( temperature )`},
		{"dedupe key spacing", `alert_id + state`, `alert_id+state`},
		{"event time spacing", `eventTime: ts`, `eventTime: " ts "`},
		{"60s is 1m", `tumbling: 60s`, `tumbling: 1m`},
		{"5m is 300s", `cooldown: 5m`, `cooldown: 300s`},
		{"1h is 60m", `within: 1h`, `within: 60m`},
		{"2s is 2000ms", `allowedLateness: 2s`, `allowedLateness: 2000ms`},
		{"labels", `team: ops`, `team: dev, extra: x`},
		{"annotations", `note: a`, `note: b`},
		{"generation", `generation: 1`, `generation: 9`},
		{"node selector", `site: plant-1`, `site: plant-2`},
		{"step name", `name: hot`, `name: overheated`},
		{"aggregate entry order", `{avg_t: "avg(temperature)", n: "count()"}`, `{n: "count()", avg_t: "avg(temperature)"}`},
		{"default format", `format: json, `, ``},
		{"default severity", `severity: warning, `, ``},
		{"default namespace", `namespace: default, `, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(hashBase, tt.old) {
				t.Fatalf("hashBase has no %q", tt.old)
			}
			got := hashOf(t, strings.Replace(hashBase, tt.old, tt.new, 1))
			if got != base {
				t.Errorf("hash changed from %s to %s", base, got)
			}
		})
	}
}

func TestHashDifferentMeaning(t *testing.T) {
	base := hashOf(t, hashBase)
	tests := []struct{ name, old, new string }{
		{"threshold", `avg_t > 30`, `avg_t > 31`},
		{"comparison", `avg_t > 30`, `avg_t >= 30`},
		{"filter", `temperature > -40`, `temperature > -41`},
		{"map field name", `temp_f:`, `temp_F:`},
		{"map expression", `temperature * 9 / 5 + 32`, `temperature * 9 / 5 + 33`},
		{"float literal is not an int", `temperature * 9 / 5 + 32`, `temperature * 9 / 5 + 32.0`},
		{"window size", `tumbling: 60s`, `tumbling: 61s`},
		{"window kind", `tumbling: 60s`, `sliding: {size: 60s, every: 10s}`},
		{"lateness", `allowedLateness: 2s`, `allowedLateness: 3s`},
		{"aggregate function", `avg(temperature)`, `max(temperature)`},
		{"aggregate name", `n: "count()"`, `cnt: "count()"`},
		{"extra aggregate", `n: "count()"`, `n: "count()", hi: "max(temperature)"`},
		{"for", `for: 30s`, `for: 31s`},
		{"cooldown", `cooldown: 5m`, `cooldown: 6m`},
		{"severity", `severity: warning`, `severity: critical`},
		{"message", `{{key}} hot`, `{{key}} is hot`},
		{"dedupe horizon", `within: 1h`, `within: 2h`},
		{"sink topic", `alerts/{{key}}`, `alarms/{{key}}`},
		{"sink qos", `{topic: "alerts/{{key}}", qos: 1}`, `{topic: "alerts/{{key}}", qos: 2}`},
		{"source topic", `factory/+/data`, `factory/#`},
		{"source format", `format: json`, `format: kubeedge`},
		{"source qos", `format: json, qos: 1`, `format: json, qos: 0`},
		{"event time", `eventTime: ts`, `eventTime: time`},
		{"key", `key: device`, `key: topic`},
		{"step order", "    - filter: \"temperature != nil && temperature > -40\"\n    - map: {temp_f: \"temperature * 9 / 5 + 32\"}\n",
			"    - map: {temp_f: \"temperature * 9 / 5 + 32\"}\n    - filter: \"temperature != nil && temperature > -40\"\n"},
		{"extra sink", "    - mqtt: {topic: \"alerts/{{key}}\", qos: 1}\n", "    - mqtt: {topic: \"alerts/{{key}}\", qos: 1}\n    - log: {}\n"},
		{"late sink", "  sinks:\n", "  late: [{log: {}}]\n  sinks:\n"},
		{"idle timeout", "  sinks:\n", "  idleTimeout: 1m\n  sinks:\n"},
	}
	seen := map[string]string{base: "base"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(hashBase, tt.old) {
				t.Fatalf("hashBase has no %q", tt.old)
			}
			got := hashOf(t, strings.Replace(hashBase, tt.old, tt.new, 1))
			if other, dup := seen[got]; dup {
				t.Errorf("hash %s equals that of %s", got, other)
			}
			seen[got] = tt.name
		})
	}
}

// TestHashIgnoresNameButPlanKeepsIt checks that metadata which does not
// change the computation is still carried in the plan.
func TestHashIgnoresNameButPlanKeepsIt(t *testing.T) {
	plans, err := pipeline.Load("a.yaml", []byte(strings.Replace(hashBase, "generation: 1", "generation: 4", 1)))
	if err != nil {
		t.Fatal(err)
	}
	p := plans[0]
	if p.Version != 4 || p.Name != "overheat" || p.Namespace != "default" {
		t.Errorf("plan identity = %s v%d", p.ID(), p.Version)
	}
	if p.Spec.NodeSelector == nil || p.Spec.NodeSelector.MatchLabels["site"] != "plant-1" {
		t.Errorf("node selector lost from the plan: %+v", p.Spec.NodeSelector)
	}
	if p.Spec.Steps[4].Name != "hot" {
		t.Errorf("step name lost from the plan")
	}
	if len(p.Hash) != 24 {
		t.Errorf("hash %q: want 24 hex digits", p.Hash)
	}
}

// TestHashDoesNotModifySpec checks that hashing normalises a copy.
func TestHashDoesNotModifySpec(t *testing.T) {
	f := "a  >  1"
	s := pipeline.Spec{Key: "x  +  y", Steps: []pipeline.Step{{Name: "n", Filter: &f, Map: map[string]string{"b": "1 +  2"}}},
		NodeSelector: &pipeline.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}
	pipeline.Hash(&s)
	if s.Key != "x  +  y" || *s.Steps[0].Filter != "a  >  1" || s.Steps[0].Name != "n" || s.Steps[0].Map["b"] != "1 +  2" || s.NodeSelector == nil {
		t.Errorf("Hash modified its input: %+v", s)
	}
}
