package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/eddy-edge/eddy/pipeline/strictyaml"
)

// Plan is a compiled pipeline: the normalised spec (defaults filled in) and
// the DAG of nodes the engine builds operators from. A Plan is plain data
// (it is shipped to edges as JSON); the engine compiles expressions again
// where it runs.
type Plan struct {
	// Name and Namespace identify the pipeline.
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Version is the resource generation the plan was compiled from (0 for files).
	Version int64 `json:"version"`
	// Hash changes if and only if what the pipeline computes changes: it
	// covers the normalised spec (expressions re-printed, durations
	// canonical, defaults filled) and ignores labels, annotations,
	// generation and node placement.
	Hash string `json:"hash"`
	// Spec is the normalised spec.
	Spec Spec `json:"spec"`
	// Nodes in topological order: the source, the steps, then the sinks,
	// late sinks and errors sinks.
	Nodes []Node `json:"nodes"`
	// Origin is where the pipeline was declared (file:line of the
	// document), for messages; it is not part of the plan shipped to
	// edges.
	Origin strictyaml.Pos `json:"-"`
}

// Node is one vertex of a plan's DAG.
type Node struct {
	// ID is unique within the plan: kind-index for steps (filter-0,
	// window-2), sink-kind-index and late-kind-index for sinks, or the
	// name the user gave.
	ID string `json:"id"`
	// Kind is the step, source or sink kind (filter, window, mqtt, ...).
	Kind string `json:"kind"`
	// Role is source, step, sink, late or errors.
	Role NodeRole `json:"role"`
	// Inputs are the IDs of the nodes feeding this one.
	Inputs []string `json:"inputs,omitempty"`
	// Index is the position in spec.steps, spec.sinks, spec.late or
	// spec.errors.
	Index int `json:"index"`
	// Fields lists the fields known to be present on this node's output,
	// when the schema is known (after an aggregate or alert step).
	Fields []string `json:"fields,omitempty"`
}

// NodeRole is the part a node plays in a plan.
type NodeRole string

// Node roles.
const (
	// RoleSource is the one source node.
	RoleSource NodeRole = "source"
	// RoleStep is an operator step.
	RoleStep NodeRole = "step"
	// RoleSink receives what leaves the last step.
	RoleSink NodeRole = "sink"
	// RoleLate receives events that arrived after their window closed.
	RoleLate NodeRole = "late"
	// RoleErrors receives dead-letter records of events that failed
	// permanently.
	RoleErrors NodeRole = "errors"
)

// Step returns the spec of a step node, or nil when n is not a step of
// this plan (another role, or an index past spec.steps: a plan decoded
// from JSON rather than compiled may say anything).
func (p *Plan) Step(n Node) *Step {
	if n.Role != RoleStep {
		return nil
	}
	return at(p.Spec.Steps, n.Index)
}

// Sink returns the spec of a sink, late or errors node, or nil when n is
// none of these in this plan (another role, or an index past the list its
// role names).
func (p *Plan) Sink(n Node) *Sink {
	switch n.Role {
	case RoleSink:
		return at(p.Spec.Sinks, n.Index)
	case RoleLate:
		return at(p.Spec.Late, n.Index)
	case RoleErrors:
		return at(p.Spec.Errors, n.Index)
	}
	return nil
}

// at returns &s[i], or nil when i is out of range.
func at[T any](s []T, i int) *T {
	if i < 0 || i >= len(s) {
		return nil
	}
	return &s[i]
}

// ID returns namespace/name.
func (p *Plan) ID() string { return p.Namespace + "/" + p.Name }

// IdleTimeout is how long the pipeline's source may be silent before its
// event clock follows processing time: spec.idleTimeout, else its longest
// window (size or gap) plus allowed lateness, else def (a pipeline with no
// window). The edge engine and the Beam live runner both derive it here.
func (p *Plan) IdleTimeout(def time.Duration) time.Duration {
	if p.Spec.IdleTimeout != nil {
		return p.Spec.IdleTimeout.Duration
	}
	var longest time.Duration
	for _, st := range p.Spec.Steps {
		w := st.Window
		if w == nil {
			continue
		}
		var d time.Duration
		switch {
		case w.Tumbling != nil:
			d = w.Tumbling.Duration
		case w.Sliding != nil:
			d = w.Sliding.Size.Duration
		case w.Session != nil:
			d = w.Session.Gap.Duration
		}
		if w.AllowedLateness != nil {
			d += w.AllowedLateness.Duration
		}
		longest = max(longest, d)
	}
	if longest == 0 {
		return def
	}
	return longest
}

// Load decodes and compiles every Pipeline document in a YAML file. All
// problems in all documents are returned together, each with file:line and
// field path.
func Load(file string, src []byte) ([]*Plan, error) {
	docs, errs := strictyaml.Split(file, src)
	var plans []*Plan
	for _, doc := range docs {
		if api, kind := doc.Kind(); kind != Kind && !strings.HasPrefix(api, "eddy.dev/") && api != "" {
			continue // another tool's resource (e.g. a KubeEdge Device) in the same file
		}
		plan, derrs := LoadDocument(doc)
		errs = append(errs, derrs...)
		if plan != nil {
			plans = append(plans, plan)
		}
	}
	if err := CheckUnique(plans); err != nil {
		errs = append(errs, err.(strictyaml.Errors)...)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	if len(plans) == 0 {
		return nil, strictyaml.Errors{{Pos: strictyaml.Pos{File: file}, Msg: "no Pipeline documents found"}}
	}
	return plans, nil
}

// LoadDocument decodes and compiles one Pipeline document. It returns
// every problem (decoding and compiling) with file:line, and a plan only
// when there is none.
func LoadDocument(doc *strictyaml.Document) (*Plan, strictyaml.Errors) {
	p, derrs := Decode(doc)
	// Compile even a partly decoded document, so that one run reports
	// every problem; skip what the decoder already reported at a path.
	plan, cerrs := CompileDoc(p, doc)
	errs := derrs
	for _, e := range cerrs {
		if !reportedAt(derrs, e.Path) {
			errs = append(errs, e)
		}
	}
	if len(derrs) > 0 || len(cerrs) > 0 {
		return nil, errs
	}
	plan.Origin = doc.PosOf("metadata.name")
	return plan, nil
}

func reportedAt(errs strictyaml.Errors, path string) bool {
	for _, e := range errs {
		if e.Path == path || strings.HasPrefix(e.Path, path+".") {
			return true
		}
	}
	return false
}

// Decode decodes one YAML document into a Pipeline, strictly.
func Decode(doc *strictyaml.Document) (*Pipeline, strictyaml.Errors) {
	var p Pipeline
	errs := doc.Decode(&p)
	if p.APIVersion != APIVersion {
		errs = append(errs, doc.At("apiVersion", "must be %s, got %q", APIVersion, p.APIVersion))
	}
	if p.Kind != Kind {
		errs = append(errs, doc.At("kind", "must be %s, got %q", Kind, p.Kind))
	}
	return &p, errs
}

// Compile validates p and compiles it to a Plan. Errors carry field paths
// but no file positions; use CompileDoc for YAML input.
func Compile(p *Pipeline) (*Plan, error) {
	plan, errs := CompileDoc(p, &strictyaml.Document{Positions: map[string]strictyaml.Pos{}})
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return plan, nil
}

// CompileDoc validates p, reporting errors at their place in doc.
func CompileDoc(p *Pipeline, doc *strictyaml.Document) (*Plan, strictyaml.Errors) {
	c := &compiler{doc: doc}
	spec := normalise(p.Spec)
	ns := p.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	c.checkName("metadata.name", p.Metadata.Name)
	c.checkName("metadata.namespace", ns)
	plan := &Plan{Name: p.Metadata.Name, Namespace: ns, Version: p.Metadata.Generation, Spec: spec}
	plan.Nodes = c.nodes(&plan.Spec)
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	plan.Hash = Hash(&plan.Spec)
	return plan, nil
}

// Hash returns the hash of a normalised spec (see Plan.Hash).
func Hash(spec *Spec) string {
	s := *spec
	s.NodeSelector = nil
	s.EventTime = NormalizeExpr(s.EventTime)
	s.Key = NormalizeExpr(s.Key)
	s.Steps = make([]Step, len(spec.Steps))
	for i, st := range spec.Steps {
		st.Name = "" // names label metrics; they do not change results
		if st.Filter != nil {
			f := NormalizeExpr(*st.Filter)
			st.Filter = &f
		}
		st.Map = normaliseExprMap(st.Map)
		st.Aggregate = normaliseExprMap(st.Aggregate)
		if st.Alert != nil {
			a := *st.Alert
			a.When = NormalizeExpr(a.When)
			st.Alert = &a
		}
		if st.Dedupe != nil {
			d := *st.Dedupe
			d.Key = NormalizeExpr(d.Key)
			st.Dedupe = &d
		}
		s.Steps[i] = st
	}
	b, _ := json.Marshal(struct {
		Format int   `json:"format"`
		Spec   *Spec `json:"spec"`
	}{1, &s}) // encoding/json sorts map keys, so this is canonical
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

func normaliseExprMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = NormalizeExpr(v)
	}
	return out
}

// normalise fills defaults so that equal meaning gives equal specs.
func normalise(s Spec) Spec {
	if s.Source.MQTT != nil {
		m := *s.Source.MQTT
		if m.Format == "" {
			m.Format = "json"
		}
		s.Source.MQTT = &m
	}
	s.Steps = append([]Step(nil), s.Steps...)
	for i := range s.Steps {
		st := &s.Steps[i]
		if st.Window != nil {
			w := *st.Window
			if w.AllowedLateness == nil {
				w.AllowedLateness = &Duration{}
			}
			st.Window = &w
		}
		if st.Alert != nil {
			a := *st.Alert
			if a.Severity == "" {
				a.Severity = "warning"
			}
			if a.For == nil {
				a.For = &Duration{}
			}
			if a.Cooldown == nil {
				a.Cooldown = &Duration{}
			}
			st.Alert = &a
		}
	}
	norm := func(sinks []Sink) []Sink {
		sinks = append([]Sink(nil), sinks...)
		for i := range sinks {
			if l := sinks[i].Log; l != nil && l.Level == "" {
				c := *l
				c.Level = "info"
				sinks[i].Log = &c
			}
		}
		return sinks
	}
	s.Sinks = norm(s.Sinks)
	if s.Late != nil {
		s.Late = norm(s.Late)
	}
	return s
}

type compiler struct {
	doc  *strictyaml.Document
	errs strictyaml.Errors
}

func (c *compiler) errorf(path, format string, args ...any) {
	c.errs = append(c.errs, c.doc.At(path, format, args...))
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func (c *compiler) checkName(path, name string) {
	switch {
	case name == "":
		c.errorf(path, "is required; use a DNS label such as overheat")
	case !dnsLabel.MatchString(name):
		c.errorf(path, "%q is not a DNS label: use lower-case letters, digits and '-', at most 63, e.g. %s",
			name, suggestLabel(name))
	}
}

func suggestLabel(s string) string {
	s = strings.ToLower(s)
	s = regexp.MustCompile(`[^a-z0-9-]+`).ReplaceAllString(s, "-")
	s = strings.Trim(s, "-")
	if s == "" {
		return "my-pipeline"
	}
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

// exprCheck compiles an expression and reports a compile error at path.
func (c *compiler) exprCheck(path, src string, schema Schema) {
	if _, err := CompileExpr(src, schema); err != nil {
		hint := ""
		if schema != nil {
			hint = "; fields here: " + strings.Join(schema.Names(), ", ")
		}
		c.errorf(path, "bad expression %q: %v%s", src, err, hint)
	}
}

func (c *compiler) nodes(s *Spec) []Node {
	var nodes []Node
	// Source.
	src := Node{ID: "source", Role: RoleSource}
	switch {
	case s.Source.MQTT != nil && s.Source.Stream != nil:
		c.errorf("spec.source", "set exactly one of mqtt or stream, not both")
	case s.Source.MQTT != nil:
		m := s.Source.MQTT
		src.Kind = "mqtt"
		if err := CheckTopicFilter(m.Topic); err != nil {
			c.errorf("spec.source.mqtt.topic", "%v", err)
		}
		switch m.Format {
		case "json", "kubeedge", "raw":
		default:
			c.errorf("spec.source.mqtt.format", "unknown format %q; use json, kubeedge or raw", m.Format)
		}
		if m.QoS < 0 || m.QoS > 2 {
			c.errorf("spec.source.mqtt.qos", "must be 0, 1 or 2, got %d", m.QoS)
		}
	case s.Source.Stream != nil:
		src.Kind = "stream"
		switch s.Source.Stream.Name {
		case "twin", "device_state", "membership", "podlifecycle", "actions":
		default:
			c.errorf("spec.source.stream.name", "unknown stream %q; use twin, device_state, membership, podlifecycle or actions", s.Source.Stream.Name)
		}
	default:
		c.errorf("spec.source", "is required: set mqtt, e.g. source: {mqtt: {topic: \"factory/+/data\"}}")
	}
	nodes = append(nodes, src)
	if s.EventTime != "" {
		c.exprCheck("spec.eventTime", s.EventTime, nil)
	}
	if s.Key != "" {
		c.exprCheck("spec.key", s.Key, nil)
	}

	var schema Schema // nil: fields not known
	prev := "source"
	ids := map[string]string{}
	unique := func(path, id string) {
		if other, dup := ids[id]; dup {
			c.errorf(path, "name %q is already used by %s; names must be unique in a pipeline", id, other)
		}
		ids[id] = path
	}
	windowAt := -1
	for i := range s.Steps {
		st := &s.Steps[i]
		path := fmt.Sprintf("spec.steps[%d]", i)
		kind := c.stepKind(path, st)
		if kind == "" {
			continue
		}
		id := st.Name
		if id == "" {
			id = fmt.Sprintf("%s-%d", kind, i)
		} else if !dnsLabel.MatchString(id) {
			c.errorf(path+".name", "%q is not a DNS label (lower-case letters, digits, '-')", id)
		}
		unique(path+".name", id)
		if windowAt >= 0 && kind != "aggregate" {
			c.errorf(fmt.Sprintf("spec.steps[%d]", windowAt), "a window step must be followed by an aggregate step, e.g. - aggregate: {avg_t: \"avg(temperature)\"}")
			windowAt = -1
		}
		schema = c.step(path, kind, st, schema, windowAt >= 0)
		if kind == "window" {
			windowAt = i
		} else {
			windowAt = -1
		}
		n := Node{ID: id, Kind: kind, Role: RoleStep, Inputs: []string{prev}, Index: i}
		if schema != nil {
			n.Fields = schema.Names()
		}
		nodes = append(nodes, n)
		prev = id
	}
	if windowAt >= 0 {
		c.errorf(fmt.Sprintf("spec.steps[%d]", windowAt), "a window step must be followed by an aggregate step, e.g. - aggregate: {avg_t: \"avg(temperature)\"}")
	}
	if len(s.Sinks) == 0 {
		c.errorf("spec.sinks", "at least one sink is required, e.g. sinks: [{mqtt: {topic: \"alerts/{{key}}\"}}]")
	}
	for i := range s.Sinks {
		if n, ok := c.sink(fmt.Sprintf("spec.sinks[%d]", i), RoleSink, i, &s.Sinks[i], schema, prev); ok {
			unique(fmt.Sprintf("spec.sinks[%d]", i), n.ID)
			nodes = append(nodes, n)
		}
	}
	for i := range s.Late {
		if n, ok := c.sink(fmt.Sprintf("spec.late[%d]", i), RoleLate, i, &s.Late[i], nil, ""); ok {
			unique(fmt.Sprintf("spec.late[%d]", i), n.ID)
			nodes = append(nodes, n)
		}
	}
	for i := range s.Errors {
		if n, ok := c.sink(fmt.Sprintf("spec.errors[%d]", i), RoleErrors, i, &s.Errors[i], deadLetterSchema, ""); ok {
			unique(fmt.Sprintf("spec.errors[%d]", i), n.ID)
			nodes = append(nodes, n)
		}
	}
	c.checkOwnLoop(s)
	if s.IdleTimeout != nil && s.IdleTimeout.Duration <= 0 {
		c.errorf("spec.idleTimeout", "must be > 0, e.g. 30s")
	}
	return nodes
}

func (c *compiler) stepKind(path string, st *Step) string {
	var kinds []string
	add := func(set bool, k string) {
		if set {
			kinds = append(kinds, k)
		}
	}
	add(st.Filter != nil, "filter")
	add(st.Map != nil, "map")
	add(st.Window != nil, "window")
	add(st.Aggregate != nil, "aggregate")
	add(st.Alert != nil, "alert")
	add(st.Dedupe != nil, "dedupe")
	add(st.Throttle != nil, "throttle")
	add(st.Select != nil, "select")
	add(st.Drop != nil, "drop")
	add(st.Enrich != nil, "enrich")
	switch len(kinds) {
	case 1:
		return kinds[0]
	case 0:
		c.errorf(path, "a step needs one operator: filter, map, window, aggregate, alert, dedupe, throttle, select, drop or enrich")
	default:
		c.errorf(path, "a step has exactly one operator, found %s; split it into separate list items", strings.Join(kinds, " and "))
	}
	return ""
}

// step validates one step and returns the schema of its output.
func (c *compiler) step(path, kind string, st *Step, schema Schema, afterWindow bool) Schema {
	switch kind {
	case "filter":
		c.exprCheck(path+".filter", *st.Filter, schema)
	case "map":
		if len(st.Map) == 0 {
			c.errorf(path+".map", "is empty; write field: expression pairs, e.g. map: {temp_f: \"temperature * 9 / 5 + 32\"}")
		}
		add := map[string]any{}
		for _, k := range sortedKeys(st.Map) {
			c.exprCheck(path+".map."+k, st.Map[k], schema)
			add[k] = AnyValue()
		}
		return schema.With(add)
	case "window":
		c.window(path+".window", st.Window)
	case "aggregate":
		if !afterWindow {
			c.errorf(path, "an aggregate step must come right after a window step, e.g. - window: {tumbling: 10s}")
		}
		if len(st.Aggregate) == 0 {
			c.errorf(path+".aggregate", "is empty; write name: function(expression) pairs, e.g. aggregate: {avg_t: \"avg(temperature)\"}")
		}
		out := Schema{"key": "", "window_start": int64(0), "window_end": int64(0)}
		for _, k := range sortedKeys(st.Aggregate) {
			p := path + ".aggregate." + k
			if _, reserved := out[k]; reserved {
				c.errorf(p, "%q is a field every window output has; choose another name", k)
				continue
			}
			fn, arg, err := ParseAggregate(st.Aggregate[k])
			if err != nil {
				c.errorf(p, "%v", err)
				continue
			}
			if arg != "" {
				c.exprCheck(p, arg, schema)
			}
			out[k] = AggregateSample(fn)
		}
		return out
	case "alert":
		a := st.Alert
		if a.When == "" {
			c.errorf(path+".alert.when", "is required, e.g. when: \"avg_t > 30\"")
		} else {
			c.exprCheck(path+".alert.when", a.When, schema)
		}
		if a.Message != "" {
			c.template(path+".alert.message", a.Message, schema)
		}
		return Schema{"alert_id": "", "state": "", "severity": "", "message": "", "key": "",
			"values": AnyValue(), "started_at": "", "ts": "", "resolved_at": "", "pipeline": "", "rule": "", "reason": ""}
	case "dedupe":
		if st.Dedupe.Key != "" {
			c.exprCheck(path+".dedupe.key", st.Dedupe.Key, schema)
		}
		if st.Dedupe.Within.Duration <= 0 {
			c.errorf(path+".dedupe.within", "must be > 0, e.g. within: 1m")
		}
	case "throttle":
		if st.Throttle.Max <= 0 {
			c.errorf(path+".throttle.max", "must be > 0, e.g. max: 10")
		}
		if st.Throttle.Per.Duration <= 0 {
			c.errorf(path+".throttle.per", "must be > 0, e.g. per: 1m")
		}
	case "select":
		if len(st.Select) == 0 {
			c.errorf(path+".select", "is empty; list the fields to keep, e.g. select: [device, temperature]")
		}
		c.known(path+".select", st.Select, schema)
		if schema != nil {
			out := Schema{}
			for _, f := range st.Select {
				if v, ok := schema[f]; ok { // unknown names were reported above
					out[f] = v
				}
			}
			return out
		}
	case "drop":
		if len(st.Drop) == 0 {
			c.errorf(path+".drop", "is empty; list the fields to remove, e.g. drop: [raw, debug]")
		}
		c.known(path+".drop", st.Drop, schema)
		if schema != nil {
			out := schema.With(nil)
			for _, f := range st.Drop {
				delete(out, f)
			}
			return out
		}
	case "enrich":
		if len(st.Enrich.Twin) == 0 {
			c.errorf(path+".enrich.twin", "list the twin properties to add, e.g. twin: [location, limit]")
		}
		add := map[string]any{}
		for _, p := range st.Enrich.Twin {
			add["twin_"+p] = AnyValue()
		}
		return schema.With(add)
	}
	return schema
}

func (c *compiler) known(path string, fields []string, schema Schema) {
	if schema == nil {
		return
	}
	for i, f := range fields {
		if _, ok := schema[f]; !ok {
			c.errorf(fmt.Sprintf("%s[%d]", path, i), "unknown field %q; fields here: %s", f, strings.Join(schema.Names(), ", "))
		}
	}
}

func (c *compiler) template(path, src string, schema Schema) {
	t, err := ParseTemplate(src)
	if err != nil {
		c.errorf(path, "%v", err)
		return
	}
	if schema == nil {
		return
	}
	for _, f := range t.Fields() {
		if root, _, nested := strings.Cut(f, "."); nested {
			if _, ok := schema[root]; ok {
				continue // inside an object whose fields are not known (alert values)
			}
		}
		if _, ok := schema[f]; !ok && f != "key" {
			c.errorf(path, "{{%s}} is not a field here; fields: %s", f, strings.Join(schema.Names(), ", "))
		}
	}
}

func (c *compiler) window(path string, w *WindowSpec) {
	n := 0
	if w.Tumbling != nil {
		n++
		if w.Tumbling.Duration <= 0 {
			c.errorf(path+".tumbling", "must be > 0, e.g. tumbling: 10s")
		}
	}
	if w.Sliding != nil {
		n++
		sz, ev := w.Sliding.Size.Duration, w.Sliding.Every.Duration
		switch {
		case sz <= 0:
			c.errorf(path+".sliding.size", "must be > 0, e.g. size: 1m")
		case ev <= 0:
			c.errorf(path+".sliding.every", "must be > 0, e.g. every: 10s")
		case ev > sz:
			c.errorf(path+".sliding.every", "%v is longer than size %v; use a tumbling window instead", ev, sz)
		case sz%ev != 0:
			c.errorf(path+".sliding.every", "%v does not divide size %v; use e.g. every: %v", ev, sz, divisorBelow(sz, ev))
		case sz/ev > 1000:
			c.errorf(path+".sliding.every", "size/every = %d windows per event is too many (max 1000)", sz/ev)
		}
	}
	if w.Session != nil {
		n++
		if w.Session.Gap.Duration <= 0 {
			c.errorf(path+".session.gap", "must be > 0, e.g. gap: 30s")
		}
	}
	if w.Count != nil {
		n++
		if *w.Count <= 0 {
			c.errorf(path+".count", "must be > 0, e.g. count: 100")
		}
	}
	if n != 1 {
		c.errorf(path, "set exactly one of tumbling, sliding, session or count, e.g. window: {tumbling: 10s}")
	}
}

func (c *compiler) sink(path string, role NodeRole, i int, s *Sink, schema Schema, input string) (Node, bool) {
	var kinds []string
	if s.MQTT != nil {
		kinds = append(kinds, "mqtt")
		if s.MQTT.Topic == "" {
			c.errorf(path+".mqtt.topic", "is required, e.g. topic: \"alerts/{{key}}\"")
		} else {
			c.template(path+".mqtt.topic", s.MQTT.Topic, schema)
			if strings.ContainsAny(strings.ReplaceAll(strings.ReplaceAll(s.MQTT.Topic, "{{", ""), "}}", ""), "+#") {
				c.errorf(path+".mqtt.topic", "a publish topic cannot contain + or #")
			}
		}
		if s.MQTT.QoS < 0 || s.MQTT.QoS > 2 {
			c.errorf(path+".mqtt.qos", "must be 0, 1 or 2, got %d", s.MQTT.QoS)
		}
	}
	if s.File != nil {
		kinds = append(kinds, "file")
		if s.File.Path == "" {
			c.errorf(path+".file.path", "is required, e.g. path: /var/lib/eddy/out.jsonl")
		}
	}
	if s.Log != nil {
		kinds = append(kinds, "log")
		switch s.Log.Level {
		case "debug", "info", "warn", "error":
		default:
			c.errorf(path+".log.level", "unknown level %q; use debug, info, warn or error", s.Log.Level)
		}
	}
	if s.Cloud != nil {
		kinds = append(kinds, "cloud")
		c.cloudSubject(path+".cloud.subject", s.Cloud.Subject, schema)
	}
	if s.Action != nil {
		kinds = append(kinds, "action")
		c.action(path+".action", s.Action, schema)
	}
	if len(kinds) != 1 {
		c.errorf(path, "a sink has exactly one of mqtt, file, log, cloud or action, e.g. - mqtt: {topic: \"alerts/{{key}}\"}")
		return Node{}, false
	}
	id := s.Name
	if id == "" {
		id = fmt.Sprintf("%s-%s-%d", role, kinds[0], i)
	}
	n := Node{ID: id, Kind: kinds[0], Role: role, Index: i}
	if input != "" {
		n.Inputs = []string{input}
	}
	return n, true
}

// cloudSubject checks a cloud sink's subject template: dot-separated
// NATS subject tokens without wildcards or whitespace.
func (c *compiler) cloudSubject(path, subj string, schema Schema) {
	if subj == "" {
		c.errorf(path, "is required, e.g. subject: \"readings.{{key}}\"")
		return
	}
	c.template(path, subj, schema)
	static := strings.ReplaceAll(strings.ReplaceAll(subj, "{{", ""), "}}", "")
	switch {
	case strings.ContainsAny(static, "*> \t\r\n"):
		c.errorf(path, "%q: a subject cannot contain *, > or whitespace", subj)
	case strings.HasPrefix(subj, ".") || strings.HasSuffix(subj, ".") || strings.Contains(subj, ".."):
		c.errorf(path, "%q: empty subject token; write tokens separated by single dots, e.g. readings.{{key}}", subj)
	}
}

// divisorBelow suggests a round period no longer than every that divides
// size: whole seconds (or milliseconds, for sub-second periods) when one
// exists, else the largest exact divisor of the form size/n found in a
// bounded search.
func divisorBelow(size, every time.Duration) time.Duration {
	for _, unit := range []time.Duration{time.Second, time.Millisecond} {
		if every < unit || size%unit != 0 {
			continue
		}
		for d, tries := every-every%unit, 0; d >= unit && tries < 100000; d, tries = d-unit, tries+1 {
			if size%d == 0 {
				return d
			}
		}
	}
	for n, tries := size/every, 0; n <= size && tries < 100000; n, tries = n+1, tries+1 {
		if size%n == 0 && size/n <= every {
			return size / n
		}
	}
	if r := every - every%time.Second; r > 0 {
		return r // nothing exact nearby; a round period
	}
	return every
}

// CheckTopicFilter validates an MQTT topic filter.
func CheckTopicFilter(f string) error {
	if f == "" {
		return fmt.Errorf("is required, e.g. topic: \"factory/+/data\"")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Errorf("%q: # must be a whole level and the last one, e.g. factory/#", f)
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("%q: + must be a whole level, e.g. factory/+/data", f)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
