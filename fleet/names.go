package fleet

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/eddy-edge/eddy/pipeline/rules"
)

// Default names of the hub's JetStream assets. Options can override them
// (several Eddy fleets may share one NATS system).
const (
	// DefaultDomain is the hub's JetStream domain.
	DefaultDomain = "hub"
	// DefaultPlansBucket is the KV bucket of desired objects per node.
	DefaultPlansBucket = "eddy_plans"
	// DefaultNodesBucket is the KV bucket of node registrations and status.
	DefaultNodesBucket = "eddy_nodes"
	// DefaultUpStream is the stream that stores data forwarded by edges.
	DefaultUpStream = "eddy_up"
	// DefaultUpPrefix is the subject prefix of forwarded data:
	// <prefix>.<node>.<subject>.
	DefaultUpPrefix = "eddy.up"
)

// Kind is the kind of an object shipped to an edge.
type Kind string

// The kinds of objects an edge accepts.
const (
	// KindPipeline is an eddy.dev/v1alpha1 Pipeline.
	KindPipeline Kind = "Pipeline"
	// KindDevice is a KubeEdge devices.kubeedge.io Device.
	KindDevice Kind = "Device"
	// KindDeviceModel is a KubeEdge devices.kubeedge.io DeviceModel.
	KindDeviceModel Kind = "DeviceModel"
	// KindRule is a KubeEdge rules.kubeedge.io Rule, compiled into a
	// route (pipeline/rules.Route) with its endpoints resolved.
	KindRule Kind = "Rule"
)

// kinds is the one table of kinds: what every tool (the edge, `eddy
// fleet apply/get/delete`, their help and their errors) accepts comes
// from it.
var kinds = []struct {
	kind Kind
	// group is the API group of the YAML documents.
	group string
	// resource is the plural `eddy fleet get` lists it under.
	resource string
	// cloudOnly says why `eddy fleet apply` cannot ship it from files
	// ("" when it can).
	cloudOnly string
}{
	{kind: KindDeviceModel, group: devices.Group, resource: "devices"},
	{kind: KindDevice, group: devices.Group, resource: "devices"},
	{kind: KindPipeline, group: "eddy.dev", resource: "pipelines"},
	{kind: KindRule, group: rules.Group, resource: "rules",
		cloudOnly: "a Rule routes through the cloud: the HTTP endpoint of rest sources and the POSTs of eventbus->rest messages are served by eddy controller's router, which eddy fleet does not run"},
}

// Kinds lists every kind, in the order of their plan keys.
func Kinds() []Kind {
	out := make([]Kind, len(kinds))
	for i, k := range kinds {
		out[i] = k.kind
	}
	return out
}

// FileKinds lists the kinds LoadPaths reads from YAML files and `eddy
// fleet apply` ships without a controller.
func FileKinds() []Kind {
	var out []Kind
	for _, k := range kinds {
		if k.cloudOnly == "" {
			out = append(out, k.kind)
		}
	}
	return out
}

// Resources lists the plurals `eddy fleet get` takes, each once.
func Resources() []string {
	var out []string
	for _, k := range kinds {
		if len(out) == 0 || out[len(out)-1] != k.resource {
			out = append(out, k.resource)
		}
	}
	return out
}

// Resource returns the plural `eddy fleet get` lists k under.
func (k Kind) Resource() string {
	for _, e := range kinds {
		if e.kind == k {
			return e.resource
		}
	}
	return ""
}

// CloudOnly says why `eddy fleet apply` does not ship k from files (""
// when it does).
func (k Kind) CloudOnly() string {
	for _, e := range kinds {
		if e.kind == k {
			return e.cloudOnly
		}
	}
	return ""
}

// Group returns k's API group.
func (k Kind) Group() string {
	for _, e := range kinds {
		if e.kind == k {
			return e.group
		}
	}
	return ""
}

// KindList renders kinds as "A, B or C".
func KindList(ks []Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// token is the kind's key token: its name in lower case.
func (k Kind) token() string { return strings.ToLower(string(k)) }

// kindFromToken maps a key token back to a Kind.
func kindFromToken(s string) (Kind, bool) {
	for _, k := range Kinds() {
		if k.token() == s {
			return k, true
		}
	}
	return "", false
}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool { return k.Group() != "" }

// nameRE is a Kubernetes DNS label; node names, namespaces and object names
// all have this form, so they are single NATS subject tokens.
var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// CheckName returns an error when s cannot be a node, namespace or object
// name: a DNS label (lower-case letters, digits and '-', at most 63
// characters). what names the field in the message.
func CheckName(what, s string) error {
	if nameRE.MatchString(s) {
		return nil
	}
	if s == "" {
		return fmt.Errorf("%s is empty; use a DNS label such as edge-1", what)
	}
	return fmt.Errorf("%s %q is not a DNS label (lower-case letters, digits and '-', at most 63 characters, e.g. %q)", what, s, suggestName(s))
}

func suggestName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > 63 {
		out = strings.Trim(out[:63], "-")
	}
	if out == "" {
		out = "edge-1"
	}
	return out
}

// ObjectKey names one object of one node. Its String form is the key in the
// plans bucket: <node>.<kind>.<namespace>.<name>, kind in lower case.
type ObjectKey struct {
	Node      string `json:"node"`
	Kind      Kind   `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String returns the bucket key.
func (k ObjectKey) String() string {
	return k.Node + "." + k.Kind.token() + "." + k.Namespace + "." + k.Name
}

// ID returns namespace/name, the object's id on the edge.
func (k ObjectKey) ID() string { return k.Namespace + "/" + k.Name }

// Check returns an error naming the first invalid part of k.
func (k ObjectKey) Check() error {
	if err := CheckName("node name", k.Node); err != nil {
		return err
	}
	if !k.Kind.Valid() {
		return fmt.Errorf("kind %q is not one of %s", k.Kind, KindList(Kinds()))
	}
	if err := CheckName("namespace", k.Namespace); err != nil {
		return err
	}
	return CheckName("name", k.Name)
}

// ParseKey parses a plans-bucket key.
func ParseKey(s string) (ObjectKey, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return ObjectKey{}, fmt.Errorf("plan key %q: want <node>.<kind>.<namespace>.<name>", s)
	}
	kind, ok := kindFromToken(parts[1])
	if !ok {
		return ObjectKey{}, fmt.Errorf("plan key %q: unknown kind %q; want %s", s, parts[1], strings.ToLower(KindList(Kinds())))
	}
	k := ObjectKey{Node: parts[0], Kind: kind, Namespace: parts[2], Name: parts[3]}
	if err := k.Check(); err != nil {
		return ObjectKey{}, fmt.Errorf("plan key %q: %w", s, err)
	}
	return k, nil
}
