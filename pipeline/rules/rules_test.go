package rules

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/eddy-edge/eddy/pipeline/devices"
)

func ep(name string, t EndpointType, props map[string]string) *RuleEndpoint {
	return &RuleEndpoint{APIVersion: APIVersion, Kind: "RuleEndpoint", Metadata: devices.ObjectMeta{Name: name, Namespace: "default"},
		Spec: EndpointSpec{RuleEndpointType: t, Properties: props}}
}

func rule(src, dst string, sr, tr map[string]string, ann map[string]string) *Rule {
	return &Rule{APIVersion: APIVersion, Kind: "Rule", Metadata: devices.ObjectMeta{Name: "r", Namespace: "default", Annotations: ann},
		Spec: RuleSpec{Source: src, SourceResource: sr, Target: dst, TargetResource: tr}}
}

func TestCompile(t *testing.T) {
	rest, bus, sb := ep("rest", Rest, nil), ep("bus", EventBus, nil), ep("sb", ServiceBus, map[string]string{"service_port": "8080"})
	tests := []struct {
		name     string
		r        *Rule
		src, dst *RuleEndpoint
		want     Route
		err      string
	}{
		{"rest->eventbus", rule("rest", "bus", map[string]string{"path": "/a"}, map[string]string{"topic": "t/x"}, nil), rest, bus,
			Route{Namespace: "default", Name: "r", Pair: RestToEventBus, Path: "/a", Topic: "t/x"}, ""},
		{"eventbus->rest", rule("bus", "rest", map[string]string{"topic": "up/+", "node_name": "edge-1"}, map[string]string{"resource": "https://cloud/x"}, nil), bus, rest,
			Route{Namespace: "default", Name: "r", Pair: EventBusToRest, Topic: "default/up/+", URL: "https://cloud/x", NodeName: "edge-1"}, ""},
		{"eventbus->rest placed by annotation", rule("bus", "rest", map[string]string{"topic": "up"}, map[string]string{"resource": "http://c"}, map[string]string{AnnotationNodeSelector: "site=a"}), bus, rest,
			Route{Namespace: "default", Name: "r", Pair: EventBusToRest, Topic: "default/up", URL: "http://c"}, ""},
		{"rest->servicebus", rule("rest", "sb", map[string]string{"path": "/s"}, map[string]string{"path": "/b"}, nil), rest, sb,
			Route{Namespace: "default", Name: "r", Pair: RestToServiceBus, Path: "/s", ServicePort: 8080, ServicePath: "/b"}, ""},
		{"missing endpoint", rule("rest", "nope", nil, nil, nil), rest, nil, Route{},
			"spec.target: RuleEndpoint default/nope does not exist; create it or fix the name"},
		{"unrouted pair", rule("bus", "bus", map[string]string{"topic": "a"}, map[string]string{"topic": "b"}, nil), bus, bus, Route{},
			"spec: eventbus->eventbus is not routed"},
		{"relative path", rule("rest", "bus", map[string]string{"path": "a"}, map[string]string{"topic": "t"}, nil), rest, bus, Route{},
			`spec.sourceResource.path: path "a" does not start with '/'; write /a`},
		{"wildcard target topic", rule("rest", "bus", map[string]string{"path": "/a"}, map[string]string{"topic": "t/#"}, nil), rest, bus, Route{},
			`spec.targetResource.topic: topic "t/#" holds a wildcard`},
		{"eventbus without node", rule("bus", "rest", map[string]string{"topic": "up"}, map[string]string{"resource": "http://c"}, nil), bus, rest, Route{},
			"spec.sourceResource.node_name: required for an eventbus source"},
		{"bad port", rule("rest", "sb", map[string]string{"path": "/s"}, map[string]string{"path": "/b"}, nil), rest, ep("sb", ServiceBus, map[string]string{"service_port": "0"}), Route{},
			`spec.target: RuleEndpoint sb: spec.properties.service_port: "0": a servicebus endpoint needs the edge service's port`},
		{"name not a label", &Rule{Metadata: devices.ObjectMeta{Name: "a.b", Namespace: "default"}, Spec: RuleSpec{Source: "rest", Target: "bus",
			SourceResource: map[string]string{"path": "/a"}, TargetResource: map[string]string{"topic": "t"}}}, rest, bus, Route{},
			`metadata.name: rule name "a.b" is not a DNS label`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Compile(tt.r, tt.src, tt.dst)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v; want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Fatalf("route %+v\nwant  %+v", *got, tt.want)
			}
			// What the controller ships, the edge reads back.
			b, _ := json.Marshal(got)
			back, err := DecodeRoute(b)
			if err != nil || *back != *got {
				t.Fatalf("DecodeRoute(%s) = %+v, %v", b, back, err)
			}
		})
	}
}

func TestMatchTopic(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"default/t", "default/t", true},
		{"default/t", "default/t/x", false},
		{"default/+", "default/t", true},
		{"default/+", "default/t/x", false},
		{"default/#", "default", true},
		{"default/#", "default/t/x", true},
		{"default/+/x", "default/t/x", true},
		{"default/+/x", "default/t/y", false},
		{"#", "$SYS/x", false},
		{"+/x", "$eddy/x", false},
		{"default/t", "default/", false},
		{"default/+", "default/", true},
	}
	for _, tt := range tests {
		if got := MatchTopic(tt.filter, tt.topic); got != tt.want {
			t.Errorf("MatchTopic(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestConflict(t *testing.T) {
	a := &Route{Namespace: "default", Name: "a", Pair: RestToEventBus, Path: "/a", Topic: "t"}
	b := &Route{Namespace: "default", Name: "b", Pair: RestToServiceBus, Path: "/a", ServicePort: 1, ServicePath: "/"}
	if err := Conflict(b, a); err == nil || !strings.Contains(err.Error(), "/a is already routed by rule default/a") {
		t.Errorf("Conflict = %v", err)
	}
	c := *b
	c.Namespace = "other"
	if err := Conflict(&c, a); err != nil {
		t.Errorf("another namespace: %v", err)
	}
}

// FuzzDecodeRoute: routes come from the network; nothing may panic, and
// whatever decodes passes Check and survives a round trip.
func FuzzDecodeRoute(f *testing.F) {
	f.Add([]byte(`{"namespace":"default","name":"r","pair":"rest->eventbus","path":"/a","topic":"t"}`))
	f.Add([]byte(`{"namespace":"default","name":"r","pair":"eventbus->rest","topic":"default/#","url":"http://c/x"}`))
	f.Add([]byte(`{"namespace":"default","name":"r","pair":"rest->servicebus","path":"/a","servicePort":80,"servicePath":"/b"}`))
	f.Add([]byte(`{"pair":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRoute(data)
		if err != nil {
			return
		}
		if err := r.Check(); err != nil {
			t.Fatalf("decoded route fails Check: %v", err)
		}
		b, _ := json.Marshal(r)
		back, err := DecodeRoute(b)
		if err != nil || *back != *r {
			t.Fatalf("round trip: %+v, %v", back, err)
		}
	})
}

// FuzzMatchTopic: any filter matches itself when it has no wildcard, and
// the matcher never panics.
func FuzzMatchTopic(f *testing.F) {
	f.Add("default/+/x", "default/a/x")
	f.Add("#", "a")
	f.Add("a/#", "a")
	f.Fuzz(func(t *testing.T, filter, topic string) {
		_ = MatchTopic(filter, topic)
		if !strings.ContainsAny(topic, "+#") && !MatchTopic(topic, topic) {
			t.Fatalf("%q does not match itself", topic)
		}
	})
}
