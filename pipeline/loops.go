package pipeline

import (
	"fmt"
	"sort"
	"strings"

	"github.com/eddy-edge/eddy/pipeline/strictyaml"
)

// StreamTopic is the log topic of a runner-internal stream (twin,
// device_state, membership); a stream source reads it like any topic.
func StreamTopic(name string) string { return "$eddy/streams/" + name }

// SourceTopic returns the topic filter a spec's source reads ("" when it
// has none).
func (s *Spec) SourceTopic() string {
	switch {
	case s.Source.MQTT != nil:
		return s.Source.MQTT.Topic
	case s.Source.Stream != nil:
		return StreamTopic(s.Source.Stream.Name)
	}
	return ""
}

// TopicOverlap reports whether some topic that the publish template tmpl
// can render matches the MQTT topic filter. A level holding a {{field}}
// reference may render to anything, including several levels (a field
// value may contain '/'), so the answer errs on the side of true; literal
// text around references must fit.
func TopicOverlap(filter, tmpl string) bool {
	return overlap(strings.Split(filter, "/"), strings.Split(tmpl, "/"))
}

func overlap(f, t []string) bool {
	if len(f) == 0 {
		return len(t) == 0
	}
	if f[0] == "#" {
		return true // # also matches the parent level
	}
	if len(t) == 0 {
		return false
	}
	lvl := t[0]
	i := strings.Index(lvl, "{{")
	if i < 0 {
		return (f[0] == "+" || f[0] == lvl) && overlap(f[1:], t[1:])
	}
	// A level with references: the text before the first one is a prefix,
	// the text after the last one a suffix, and the references may expand
	// to one level or to several.
	prefix := lvl[:i]
	suffix := ""
	if j := strings.LastIndex(lvl, "}}"); j >= 0 {
		suffix = lvl[j+2:]
	}
	if f[0] != "+" && !strings.HasPrefix(f[0], prefix) {
		return false
	}
	if (f[0] == "+" || strings.HasSuffix(f[0], suffix) && len(f[0]) >= len(prefix)+len(suffix)) && overlap(f[1:], t[1:]) {
		return true
	}
	for k := 1; k < len(f); k++ {
		if f[k] == "#" {
			return true
		}
		if (f[k] == "+" || strings.HasSuffix(f[k], suffix)) && overlap(f[k+1:], t[1:]) {
			return true
		}
	}
	return false
}

// outputs lists a spec's MQTT sink topics (sinks, late and errors) that
// are not marked allowLoop, with their field paths.
func (s *Spec) loopSinks() (paths, topics []string) {
	add := func(role string, sinks []Sink) {
		for i, k := range sinks {
			if k.MQTT != nil && !k.MQTT.AllowLoop && k.MQTT.Topic != "" {
				paths = append(paths, fmt.Sprintf("spec.%s[%d].mqtt.topic", role, i))
				topics = append(topics, k.MQTT.Topic)
			}
		}
	}
	add("sinks", s.Sinks)
	add("late", s.Late)
	add("errors", s.Errors)
	return
}

// checkOwnLoop reports sinks that publish to topics the pipeline's own
// source reads: every output would come back as input.
func (c *compiler) checkOwnLoop(s *Spec) {
	src := s.SourceTopic()
	if src == "" || CheckTopicFilter(src) != nil {
		return
	}
	paths, topics := s.loopSinks()
	for i, t := range topics {
		if TopicOverlap(src, t) {
			c.errorf(paths[i], "publishes to %q, which this pipeline's own source %q reads: every output would be read again as input (a feedback loop); publish to another topic, narrow the source, or set allowLoop: true on this sink if the loop is intended and a step ends it", t, src)
		}
	}
}

// Feeds reports whether one of from's sinks (not marked allowLoop)
// publishes to a topic that to's source reads, and names the sink and its
// topic (`spec.sinks[0] "b/{{key}}"`).
func Feeds(from, to *Plan) (sink string, ok bool) {
	src := to.Spec.SourceTopic()
	if src == "" {
		return "", false
	}
	paths, topics := from.Spec.loopSinks()
	for i, t := range topics {
		if TopicOverlap(src, t) {
			return fmt.Sprintf("%s %q", strings.TrimSuffix(paths[i], ".mqtt.topic"), t), true
		}
	}
	return "", false
}

// FindCycle returns a cycle of pipelines that feed each other through
// their sinks and sources (see Feeds), as plan IDs with the sink that
// makes each hop (`default/a -[spec.sinks[0] "b/x"]-> default/b`), or
// nil. Self loops are compile errors and are not reported here, and so
// are plans with the same ID (see CheckUnique).
func FindCycle(plans []*Plan) []string {
	plans = append([]*Plan(nil), plans...)
	sort.Slice(plans, func(i, j int) bool { return plans[i].ID() < plans[j].ID() })
	type edge struct {
		to   int
		sink string
	}
	// Each plan's source and sink topics are split once: the engine calls
	// this on every Apply, and pairwise Feeds calls made applying 300
	// pipelines cost tens of seconds of CPU (n³ splits and Sprintfs).
	type out struct {
		path, topic string
		levels      []string
	}
	ids := make([]string, len(plans))
	srcs := make([][]string, len(plans))
	outs := make([][]out, len(plans))
	for i, p := range plans {
		ids[i] = p.ID()
		if src := p.Spec.SourceTopic(); src != "" {
			srcs[i] = strings.Split(src, "/")
		}
		paths, topics := p.Spec.loopSinks()
		for k, t := range topics {
			outs[i] = append(outs[i], out{paths[k], t, strings.Split(t, "/")})
		}
	}
	adj := make([][]edge, len(plans))
	for i := range plans {
		for j := range plans {
			if i == j || ids[i] == ids[j] || srcs[j] == nil {
				continue
			}
			for _, o := range outs[i] { // as Feeds(plans[i], plans[j])
				if overlap(srcs[j], o.levels) {
					adj[i] = append(adj[i], edge{j, fmt.Sprintf("%s %q", strings.TrimSuffix(o.path, ".mqtt.topic"), o.topic)})
					break
				}
			}
		}
	}
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(plans))
	var stack []int
	var via []string
	var cycle []string
	var visit func(i int) bool
	visit = func(i int) bool {
		color[i] = grey
		stack = append(stack, i)
		for _, e := range adj[i] {
			via = append(via, e.sink)
			switch color[e.to] {
			case grey:
				start := 0
				for k, n := range stack {
					if n == e.to {
						start = k
					}
				}
				for k := start; k < len(stack); k++ {
					cycle = append(cycle, fmt.Sprintf("%s -[%s]->", plans[stack[k]].ID(), via[k]))
				}
				cycle = append(cycle, plans[e.to].ID())
				return true
			case white:
				if visit(e.to) {
					return true
				}
			}
			via = via[:len(via)-1]
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		return false
	}
	for i := range plans {
		if color[i] == white && visit(i) {
			return cycle
		}
	}
	return nil
}

// CheckUnique returns an error naming both places for every namespace/name
// declared more than once among plans (from one file or several).
func CheckUnique(plans []*Plan) error {
	seen := map[string]*Plan{}
	var errs strictyaml.Errors
	for _, p := range plans {
		if first, dup := seen[p.ID()]; dup {
			errs = append(errs, strictyaml.Error{Pos: p.Origin, Path: "metadata.name",
				Msg: fmt.Sprintf("pipeline %s is already declared at %s; each namespace/name may be declared once (rename one, or set metadata.namespace)", p.ID(), posString(first.Origin))})
			continue
		}
		seen[p.ID()] = p
	}
	return errs.Err()
}

func posString(p strictyaml.Pos) string {
	switch {
	case p.File == "" && p.Line == 0:
		return "an earlier document"
	case p.Line == 0:
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}
