package actions

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/eddy-edge/eddy/connectors/cri"
	"github.com/eddy-edge/eddy/pipeline"
)

// Sink is an action sink of one pipeline: the engine calls Write on the
// pipeline's goroutine for every event that reaches it. Write returns
// once the decision is durable in the log (intent, refused or skipped);
// the container runs in the Manager's background, so a long action never
// stalls the pipeline.
type Sink struct {
	m        *Manager
	id       string // pipeline/sink
	name     string // sink node id
	pipeline string
	spec     pipeline.ActionSink
	on       map[string]bool
	when     *pipeline.Program
	vm       vm.VM
	episode  *pipeline.Template
	command  []*pipeline.Template
	args     []*pipeline.Template
	env      []envTemplate
	target   targetTemplates
	cpu, mem int64
	timeout  time.Duration
	refusal  string // the policy refuses every trigger of this sink, and why
}

type envTemplate struct {
	name string
	t    *pipeline.Template
}

type targetTemplates struct {
	namespace, pod, container *pipeline.Template
	labels                    map[string]string
}

// NewSink builds the action sink of a pipeline's sink node. The spec was
// validated by the compiler; the policy is checked here (a refused image
// makes every trigger a refused record, never a run).
func (m *Manager) NewSink(plan *pipeline.Plan, node string, spec *pipeline.ActionSink) (*Sink, error) {
	s := &Sink{m: m, id: plan.ID() + "/" + node, name: node, pipeline: plan.ID(), spec: *spec, on: map[string]bool{}}
	if s.spec.Do == "" {
		s.spec.Do = pipeline.ActionRun
	}
	if s.spec.Concurrency == "" {
		s.spec.Concurrency = pipeline.ConcurrencyForbid
	}
	if len(s.spec.On) == 0 {
		s.on["firing"] = true
	}
	for _, st := range s.spec.On {
		s.on[st] = true
	}
	var err error
	if spec.When != "" {
		if s.when, err = pipeline.CompileExpr(spec.When, nil); err != nil {
			return nil, fmt.Errorf("action when: %w", err)
		}
	}
	parse := func(src string) (*pipeline.Template, error) {
		if src == "" {
			return nil, nil
		}
		return pipeline.ParseTemplate(src)
	}
	if s.episode, err = parse(spec.Episode); err != nil {
		return nil, err
	}
	for _, src := range spec.Command {
		t, err := pipeline.ParseTemplate(src)
		if err != nil {
			return nil, err
		}
		s.command = append(s.command, t)
	}
	for _, src := range spec.Args {
		t, err := pipeline.ParseTemplate(src)
		if err != nil {
			return nil, err
		}
		s.args = append(s.args, t)
	}
	names := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		t, err := pipeline.ParseTemplate(spec.Env[k])
		if err != nil {
			return nil, err
		}
		s.env = append(s.env, envTemplate{k, t})
	}
	if t := spec.Target; t != nil {
		if s.target.namespace, err = parse(t.Namespace); err != nil {
			return nil, err
		}
		if s.target.pod, err = parse(t.Pod); err != nil {
			return nil, err
		}
		if s.target.container, err = parse(t.Container); err != nil {
			return nil, err
		}
		s.target.labels = t.Labels
	}
	if s.cpu, err = pipeline.ParseCPU(spec.CPU); err != nil {
		return nil, err
	}
	if s.mem, err = pipeline.ParseMemory(spec.Memory); err != nil {
		return nil, err
	}
	s.timeout = 5 * time.Minute
	if spec.Timeout != nil {
		s.timeout = spec.Timeout.Duration
	}
	if s.spec.Do == pipeline.ActionRun && !m.cfg.ImageAllowed(spec.Image) {
		s.refusal = fmt.Sprintf("image %q is not in this edge's allowedImages %v; add it (or a pattern) to actions.allowedImages in the edge config", spec.Image, m.cfg.AllowedImages)
		m.log.Warn("action refused by the edge policy: it will record refused events and never run", "action", s.id, "image", spec.Image)
	}
	return s, nil
}

// Write triggers the action for ev if it matches. An error means the
// decision could not be recorded in the log (retryable); everything else
// (refusals, skips, runtime failures) is reported on the actions stream.
func (s *Sink) Write(ctx context.Context, ev *pipeline.Event) error {
	alertID, state := eventFields(ev)
	if alertID != "" && !s.on[state] {
		return nil
	}
	if s.when != nil {
		ok, err := s.when.RunBool(&s.vm, ev.Fields)
		if err != nil || !ok {
			return nil
		}
	}
	episode := ""
	switch {
	case s.episode != nil:
		episode = s.episode.Render(ev)
	case alertID != "":
		episode = alertID + "/" + state
	}
	if episode == "" {
		episode = "offset-" + strconv.FormatUint(ev.Offset, 10)
	}
	return s.m.trigger(ctx, s, ev, episode, alertID, state)
}

// Flush has nothing to do: every decision is durable when Write returns.
func (s *Sink) Flush(context.Context) error { return nil }

// Close leaves running containers alone: they finish (or time out) under
// the Manager, which outlives pipeline replacements.
func (s *Sink) Close() error { return nil }

// render builds the container spec from the event.
func (s *Sink) render(ev *pipeline.Event) *RunSpec {
	r := &RunSpec{Image: s.spec.Image, HostNetwork: s.spec.HostNetwork == nil || *s.spec.HostNetwork,
		CPUMillis: s.cpu, MemoryBytes: s.mem}
	for _, t := range s.command {
		r.Command = append(r.Command, t.Render(ev))
	}
	for _, t := range s.args {
		r.Args = append(r.Args, t.Render(ev))
	}
	for _, e := range s.env {
		r.Env = append(r.Env, cri.EnvVar{Name: e.name, Value: e.t.Render(ev)})
	}
	return r
}

// trigger decides and records; see the package doc for the order.
func (m *Manager) trigger(ctx context.Context, s *Sink, ev *pipeline.Event, episode, alertID, state string) error {
	key := s.id + "\x00" + episode
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.statsOf(s.id)
	if m.seen(key) {
		st.Deduplicated++
		return nil
	}
	st.Triggered++
	rec := Record{Action: s.id, Pipeline: s.pipeline, Do: s.spec.Do, Episode: episode, AlertID: alertID,
		AlertState: state, Key: ev.Key, Image: s.spec.Image}
	refuse := func(state State, why string) error {
		rec.State, rec.Error = state, why
		if err := m.append(ctx, &rec); err != nil {
			st.Triggered--
			return fmt.Errorf("recording a %s action in the log: %w", state, err)
		}
		m.note(rec)
		m.log.Warn("action not run", "action", s.id, "episode", episode, "state", state, "why", why)
		if state == Refused {
			// Also a dead letter: the pipeline's errors: sinks get the
			// event with the reason, like any event a sink refuses for good.
			return pipeline.Permanentf("action %s refused by the edge policy: %s", s.id, why)
		}
		return nil
	}
	if s.refusal != "" {
		return refuse(Refused, s.refusal)
	}
	var replaced []*run
	if s.spec.Do == pipeline.ActionRun {
		if active := m.active[s.id]; len(active) > 0 {
			switch s.spec.Concurrency {
			case pipeline.ConcurrencyForbid:
				return refuse(Skipped, fmt.Sprintf("a run of this action is still going (episode %s) and concurrency is forbid", oneEpisode(active)))
			case pipeline.ConcurrencyReplace:
				for _, r := range active {
					replaced = append(replaced, r)
				}
			}
		}
		if m.running-len(replaced) >= m.cfg.MaxConcurrent {
			return refuse(Skipped, fmt.Sprintf("%d actions already run on this node (actions.maxConcurrent)", m.running))
		}
		rec.Run = s.render(ev)
		rec.TimeoutMs = s.timeout.Milliseconds()
	}
	rec.State = Intent
	rec.TriggeredAt = m.opt.Clock.Now().UnixNano()
	uid := episodeUID(s.id, episode)
	rec.Pod = podName(s.name, uid)
	if err := m.append(ctx, &rec); err != nil {
		st.Triggered--
		return fmt.Errorf("recording the intent of action %s in the log: %w", s.id, err)
	}
	m.note(rec)
	for _, r := range replaced {
		r.cancel(errReplaced)
	}
	switch s.spec.Do {
	case pipeline.ActionRun:
		r := m.newRun(rec)
		m.wg.Add(1)
		go m.execute(r, replaced, false)
	default:
		sel := selector{labels: s.target.labels}
		if s.target.namespace != nil {
			sel.namespace = s.target.namespace.Render(ev)
		}
		if s.target.pod != nil {
			sel.pod = s.target.pod.Render(ev)
		}
		if s.target.container != nil {
			sel.container = s.target.container.Render(ev)
		}
		m.wg.Add(1)
		go m.stopRestart(rec, sel)
	}
	return nil
}

func oneEpisode(runs map[string]*run) string {
	for e := range runs {
		return e
	}
	return ""
}

// newRun registers a run as active. m.mu held.
func (m *Manager) newRun(rec Record) *run {
	ctx, cancel := context.WithCancelCause(m.ctx)
	r := &run{rec: rec, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	if m.active[rec.Action] == nil {
		m.active[rec.Action] = map[string]*run{}
	}
	m.active[rec.Action][rec.Episode] = r
	m.running++
	return r
}
