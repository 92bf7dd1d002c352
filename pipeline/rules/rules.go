// Package rules is KubeEdge's router vocabulary (rules.kubeedge.io/v1 Rule
// and RuleEndpoint) as Eddy reads it: the documents as users write them,
// strict loading with file:line errors for `eddy validate`, and Compile,
// which turns a Rule and its two endpoints into a Route: the one routing
// plan that the controller serves and ships to edges, and that the edge
// applies. `eddy validate`, the controller and the edge all use Compile
// and Route.Check, so they agree on every error.
//
// Three source→target pairs exist, as in KubeEdge:
//
//   - rest→eventbus: an HTTP request to the controller's router at
//     /{node}/{namespace}/{path} is published on the edge's MQTT broker
//     under targetResource.topic.
//   - eventbus→rest: what edge apps publish on {namespace}/{topic} (topic
//     from sourceResource) is forwarded up and POSTed to
//     targetResource.resource.
//   - rest→servicebus: an HTTP request to the router is made to
//     http://127.0.0.1:{service_port}{path} on the edge, and the response
//     returned.
//
// Eddy's additions are annotations: rules.eddy.dev/node-names (a comma
// list) and rules.eddy.dev/node-selector (a Kubernetes label selector over
// EdgeNode labels) place one Rule on many nodes.
//
// This package is pure: no I/O, no goroutines; it imports no runner,
// controller or client-go.
package rules

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/eddy-edge/eddy/pipeline/devices"
)

// Group is the API group of Rule and RuleEndpoint; APIVersion the only
// version KubeEdge serves.
const (
	Group      = "rules.kubeedge.io"
	APIVersion = Group + "/v1"
)

// Eddy's placement annotations on a Rule.
const (
	// AnnotationNodeNames lists nodes a Rule is placed on, comma separated.
	AnnotationNodeNames = "rules.eddy.dev/node-names"
	// AnnotationNodeSelector is a label selector over EdgeNode labels
	// ("site=plant-1,tier in (a,b)"; Kubernetes' selector syntax).
	AnnotationNodeSelector = "rules.eddy.dev/node-selector"
)

// EndpointType is the type of a RuleEndpoint.
type EndpointType string

// The endpoint types of KubeEdge's router.
const (
	// Rest is an HTTP path of the router (source) or an HTTP URL (target)
	// in the cloud.
	Rest EndpointType = "rest"
	// EventBus is an MQTT topic on an edge node's broker.
	EventBus EndpointType = "eventbus"
	// ServiceBus is an HTTP service on an edge node's loopback.
	ServiceBus EndpointType = "servicebus"
)

// Valid reports whether t is one of the three types.
func (t EndpointType) Valid() bool { return t == Rest || t == EventBus || t == ServiceBus }

// Pair is a source→target combination, e.g. "rest->eventbus".
type Pair string

// The pairs KubeEdge (and Eddy) route.
const (
	RestToEventBus   Pair = "rest->eventbus"
	EventBusToRest   Pair = "eventbus->rest"
	RestToServiceBus Pair = "rest->servicebus"
)

// Rule is a rules.kubeedge.io/v1 Rule document.
type Rule struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   devices.ObjectMeta `json:"metadata"`
	Spec       RuleSpec           `json:"spec"`
	// Status is written by the controller and ignored on input.
	Status *RuleStatus `json:"status,omitempty"`
}

// RuleSpec is KubeEdge's Rule spec.
type RuleSpec struct {
	// Source names the source RuleEndpoint (same namespace).
	Source string `json:"source"`
	// SourceResource: rest {"path": "/a"}; eventbus {"topic": "t",
	// "node_name": "edge-1"}.
	SourceResource map[string]string `json:"sourceResource"`
	// Target names the target RuleEndpoint (same namespace).
	Target string `json:"target"`
	// TargetResource: rest {"resource": "http://..."}; eventbus
	// {"topic": "t"}; servicebus {"path": "/p"}.
	TargetResource map[string]string `json:"targetResource"`
}

// RuleStatus is KubeEdge's Rule status.
type RuleStatus struct {
	SuccessMessages int64    `json:"successMessages,omitempty"`
	FailMessages    int64    `json:"failMessages,omitempty"`
	Errors          []string `json:"errors,omitempty"`
}

// RuleEndpoint is a rules.kubeedge.io/v1 RuleEndpoint document.
type RuleEndpoint struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   devices.ObjectMeta `json:"metadata"`
	Spec       EndpointSpec       `json:"spec"`
}

// EndpointSpec is KubeEdge's RuleEndpoint spec.
type EndpointSpec struct {
	// RuleEndpointType is rest, eventbus or servicebus.
	RuleEndpointType EndpointType `json:"ruleEndpointType"`
	// Properties: servicebus needs service_port (1-65535).
	Properties map[string]string `json:"properties,omitempty"`
}

// Route is a compiled Rule: everything the router needs to route it, and
// what is shipped to the edges it is placed on.
type Route struct {
	// Namespace and Name of the Rule.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Pair is what the rule routes.
	Pair Pair `json:"pair"`
	// Path is a rest source's path (starts with '/'): requests to
	// /{node}/{namespace}{path} and below it.
	Path string `json:"path,omitempty"`
	// Topic is the MQTT topic on the edge: the topic published to
	// (rest->eventbus) or the topic filter forwarded up (eventbus->rest,
	// {namespace}/{sourceResource.topic}; + and # allowed).
	Topic string `json:"topic,omitempty"`
	// URL is a rest target (eventbus->rest): where the controller POSTs.
	URL string `json:"url,omitempty"`
	// ServicePort and ServicePath are a servicebus target: the edge calls
	// http://127.0.0.1:{ServicePort}{ServicePath}.
	ServicePort int    `json:"servicePort,omitempty"`
	ServicePath string `json:"servicePath,omitempty"`
	// NodeName is an eventbus source's sourceResource.node_name.
	NodeName string `json:"nodeName,omitempty"`
}

// ID is namespace/name.
func (r *Route) ID() string { return r.Namespace + "/" + r.Name }

// MaxTopicLength bounds topics (the MQTT limit is 65535 bytes; a route's
// topic is written by hand).
const MaxTopicLength = 1024

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Check returns an error naming the first field of r that is not valid.
// Edges call it on every route they receive (outside input).
func (r *Route) Check() error {
	if !dnsLabel.MatchString(r.Namespace) {
		return fmt.Errorf("route namespace %q is not a DNS label", r.Namespace)
	}
	if !dnsLabel.MatchString(r.Name) {
		return fmt.Errorf("rule name %q is not a DNS label (lower-case letters, digits and '-'); Eddy ships rules under keys made of names", r.Name)
	}
	switch r.Pair {
	case RestToEventBus:
		if err := checkPath("path", r.Path); err != nil {
			return err
		}
		return checkTopic("topic", r.Topic, false)
	case EventBusToRest:
		if err := checkTopic("topic", r.Topic, true); err != nil {
			return err
		}
		return checkURL("url", r.URL)
	case RestToServiceBus:
		if err := checkPath("path", r.Path); err != nil {
			return err
		}
		if r.ServicePort < 1 || r.ServicePort > 65535 {
			return fmt.Errorf("servicePort %d is not in 1-65535", r.ServicePort)
		}
		return checkPath("servicePath", r.ServicePath)
	}
	return fmt.Errorf("pair %q is not one of %s, %s, %s", r.Pair, RestToEventBus, EventBusToRest, RestToServiceBus)
}

// DecodeRoute decodes and checks a route as shipped to an edge. Values
// come from the network: every problem is an error, never a panic.
func DecodeRoute(data []byte) (*Route, error) {
	var r Route
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("not a route: %w", err)
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	return &r, nil
}

func checkPath(field, p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%s is empty; want a path such as /a", field)
	case p[0] != '/':
		return fmt.Errorf("%s %q does not start with '/'; write /%s", field, p, p)
	case len(p) > 1024:
		return fmt.Errorf("%s is %d bytes long; at most 1024", field, len(p))
	case strings.ContainsAny(p, "?#\x00 "):
		return fmt.Errorf("%s %q holds a character that has no place in a path (?, #, space or NUL)", field, p)
	}
	return nil
}

func checkTopic(field, t string, filter bool) error {
	switch {
	case t == "":
		return fmt.Errorf("%s is empty; name an MQTT topic", field)
	case len(t) > MaxTopicLength:
		return fmt.Errorf("%s is %d bytes long; at most %d", field, len(t), MaxTopicLength)
	case strings.ContainsRune(t, 0):
		return fmt.Errorf("%s %q holds a NUL character", field, t)
	}
	if !filter {
		if strings.ContainsAny(t, "+#") {
			return fmt.Errorf("%s %q holds a wildcard (+ or #); a message is published on one topic", field, t)
		}
		return nil
	}
	levels := strings.Split(t, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Errorf("%s %q: # must be a whole level and the last one", field, t)
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("%s %q: + must be a whole level", field, t)
		}
	}
	return nil
}

func checkURL(field, s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%s %q is not a URL: %v", field, s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q: want an absolute http:// or https:// URL", field, s)
	}
	return nil
}

// MatchTopic reports whether topic matches the MQTT topic filter (+ one
// level, # the rest). Like MQTT, wildcards at the first level do not match
// topics beginning with '$'.
func MatchTopic(filter, topic string) bool {
	if filter == topic {
		return true
	}
	if len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		if !fmore || !tmore {
			// "a/#" also matches "a".
			return fmore == tmore || (!tmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}

// FieldError is one problem of a Rule, at a field path.
type FieldError struct {
	// Path is the field, e.g. spec.sourceResource.path.
	Path string
	// Msg says what is wrong and how to fix it.
	Msg string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// FieldErrors are all the problems Compile found.
type FieldErrors []FieldError

func (es FieldErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

// Compile checks a Rule against its endpoints and returns its Route.
// Errors (FieldErrors) name the field (spec.sourceResource.path: ...) and
// say how to fix it. src and dst may be nil when the endpoints do not exist.
func Compile(r *Rule, src, dst *RuleEndpoint) (*Route, error) {
	ns := r.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	var errs FieldErrors
	fail := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if r.Spec.Source == "" {
		fail("spec.source", "required: name the source RuleEndpoint")
	} else if src == nil {
		fail("spec.source", "RuleEndpoint %s/%s does not exist; create it or fix the name", ns, r.Spec.Source)
	}
	if r.Spec.Target == "" {
		fail("spec.target", "required: name the target RuleEndpoint")
	} else if dst == nil {
		fail("spec.target", "RuleEndpoint %s/%s does not exist; create it or fix the name", ns, r.Spec.Target)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for _, ep := range []struct {
		field string
		e     *RuleEndpoint
	}{{"spec.source", src}, {"spec.target", dst}} {
		if err := CheckEndpoint(ep.e); err != nil {
			fail(ep.field, "RuleEndpoint %s: %v", ep.e.Metadata.Name, err)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	rt := &Route{Namespace: ns, Name: r.Metadata.Name,
		Pair: Pair(string(src.Spec.RuleEndpointType) + "->" + string(dst.Spec.RuleEndpointType))}
	sr, tr := r.Spec.SourceResource, r.Spec.TargetResource
	switch rt.Pair {
	case RestToEventBus, RestToServiceBus:
		rt.Path = sr["path"]
		if err := checkPath("path", rt.Path); err != nil {
			fail("spec.sourceResource.path", "%v", err)
		}
	case EventBusToRest:
		topic := sr["topic"]
		if topic == "" {
			fail("spec.sourceResource.topic", "required for an eventbus source: the topic edge apps publish on (as {namespace}/{topic})")
		} else {
			rt.Topic = ns + "/" + topic
			if err := checkTopic("topic", rt.Topic, true); err != nil {
				fail("spec.sourceResource.topic", "%v", err)
			}
		}
		rt.NodeName = sr["node_name"]
		if rt.NodeName != "" && !dnsLabel.MatchString(rt.NodeName) {
			fail("spec.sourceResource.node_name", "%q is not a node name (a DNS label)", rt.NodeName)
		}
		if rt.NodeName == "" && r.Metadata.Annotations[AnnotationNodeNames] == "" && r.Metadata.Annotations[AnnotationNodeSelector] == "" {
			fail("spec.sourceResource.node_name", "required for an eventbus source (or place the rule with the %s or %s annotation)", AnnotationNodeNames, AnnotationNodeSelector)
		}
	default:
		fail("spec", "%s is not routed: the pairs are %s, %s and %s (source %s is %s, target %s is %s)",
			rt.Pair, RestToEventBus, EventBusToRest, RestToServiceBus,
			src.Metadata.Name, src.Spec.RuleEndpointType, dst.Metadata.Name, dst.Spec.RuleEndpointType)
		return nil, errs
	}
	switch dst.Spec.RuleEndpointType {
	case EventBus:
		rt.Topic = tr["topic"]
		if err := checkTopic("topic", rt.Topic, false); err != nil {
			fail("spec.targetResource.topic", "%v", err)
		}
	case Rest:
		rt.URL = tr["resource"]
		if err := checkURL("resource", rt.URL); err != nil {
			fail("spec.targetResource.resource", "%v", err)
		}
	case ServiceBus:
		rt.ServicePort, _ = strconv.Atoi(dst.Spec.Properties["service_port"])
		rt.ServicePath = tr["path"]
		if err := checkPath("path", rt.ServicePath); err != nil {
			fail("spec.targetResource.path", "%v", err)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if err := rt.Check(); err != nil {
		return nil, FieldErrors{{Path: "metadata.name", Msg: err.Error()}}
	}
	return rt, nil
}

// CheckEndpoint checks a RuleEndpoint on its own. The error is a
// FieldError.
func CheckEndpoint(e *RuleEndpoint) error {
	t := e.Spec.RuleEndpointType
	if !t.Valid() {
		return FieldError{Path: "spec.ruleEndpointType", Msg: fmt.Sprintf("%q: use rest, eventbus or servicebus", t)}
	}
	if t == ServiceBus {
		p, err := strconv.Atoi(e.Spec.Properties["service_port"])
		if err != nil || p < 1 || p > 65535 {
			return FieldError{Path: "spec.properties.service_port", Msg: fmt.Sprintf("%q: a servicebus endpoint needs the edge service's port (1-65535)", e.Spec.Properties["service_port"])}
		}
	}
	return nil
}

// NodeNames parses the node-names annotation.
func NodeNames(annotations map[string]string) []string {
	var out []string
	for _, n := range strings.Split(annotations[AnnotationNodeNames], ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}
