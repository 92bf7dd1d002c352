package beam_test

import (
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/pipeline"
	eddybeam "github.com/eddy-edge/eddy/pipeline/beam"
)

// TestSupport: what Beam cannot run is refused at translation time with
// the field path and what to do instead.
func TestSupport(t *testing.T) {
	head := "apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  source: {mqtt: {topic: t}}\n"
	cases := []struct{ name, body, want string }{
		{"count window", "  steps:\n    - window: {count: 10}\n    - aggregate: {n: count()}\n  sinks: [{file: {path: o}}]\n", "spec.steps[0].window.count: count windows are not supported on Beam"},
		{"mqtt sink without broker", "  sinks: [{mqtt: {topic: out}}]\n", "--mqtt-broker"},
		{"dedupe before window", "  steps:\n    - dedupe: {within: 1m}\n    - window: {tumbling: 1m}\n    - aggregate: {n: count()}\n  sinks: [{file: {path: o}}]\n", "spec.steps[0]: alert, dedupe and throttle before a window"},
		{"ok", "  steps:\n    - window: {tumbling: 1m}\n    - aggregate: {n: count()}\n    - alert: {when: n > 3}\n  sinks: [{file: {path: o}}, {log: {}}]\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plans, err := pipeline.Load("p.yaml", []byte(head+c.body))
			if err != nil {
				t.Fatal(err)
			}
			_, err = eddybeam.Translate(plans[0], eddybeam.Options{Input: "in.jsonl"})
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want it to say %q", err, c.want)
			}
		})
	}
}
