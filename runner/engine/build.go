package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/eddy-edge/eddy/connectors/mqtt"
	"github.com/eddy-edge/eddy/operators"
	"github.com/eddy-edge/eddy/pipeline"
)

// build makes a run of plan: it compiles the expressions, opens every sink
// and builds the fused chain. Nothing is read yet; on error every sink it
// opened is closed again.
func (e *Engine) build(plan *pipeline.Plan) (*run, error) {
	logger := e.opts.Logger.With("pipeline", plan.ID())
	r := &run{e: e, plan: plan, logger: logger, clock: e.opts.Clock, states: map[string]operators.Stateful{},
		done: make(chan struct{}), state: StateStarting, errLog: logLimiter{every: e.opts.ErrorLogInterval}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.writeCtx, r.cancelWrite = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			r.closeSinks()
			r.cancel()
			r.cancelWrite()
		}
	}()
	r.topicFilter = plan.Spec.SourceTopic()
	switch src := plan.Spec.Source; {
	case src.MQTT != nil:
		r.format = mqtt.Format(src.MQTT.Format)
	case src.Stream != nil:
		r.format = mqtt.JSON
	}
	r.decoder = mqtt.Decoder{Format: r.format}
	names, all := plan.Spec.SourceFields()
	r.reads = memberFields{names: names, all: all || e.opts.decodeAll}
	if !r.reads.all {
		// Decode only what the steps read; sinks forward the raw bytes.
		// One Fields map for every event, like the one Event (receivers
		// that keep an event Clone it).
		r.decoder.Fields = mqtt.NewProjection(names)
		r.decoder.Reuse = true
	}
	r.mutates = plan.Spec.ChangesFields()
	var err error
	if plan.Spec.EventTime != "" {
		if r.eventTime, err = pipeline.CompileExpr(plan.Spec.EventTime, nil); err != nil {
			return nil, fmt.Errorf("eventTime: %w", err)
		}
	}
	if plan.Spec.Key != "" {
		if r.key, err = pipeline.CompileExpr(plan.Spec.Key, nil); err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
	}
	r.idleTimeout = plan.IdleTimeout(e.opts.DefaultIdleTimeout)
	r.source = &stepStats{id: "source", kind: string(r.format), role: pipeline.RoleSource}

	// Sinks of every role first: window steps route late events to the
	// late sinks, and every stage may dead-letter to the errors sinks.
	for _, n := range plan.Nodes {
		var into *[]*sinkStage
		switch n.Role {
		case pipeline.RoleSink:
			into = &r.sinks
		case pipeline.RoleLate:
			into = &r.late
		case pipeline.RoleErrors:
			into = &r.errs
		default:
			continue
		}
		s, err := e.opts.Registry.sink(&Build{Plan: plan, Node: n, Logger: logger, Clock: e.opts.Clock})
		if err != nil {
			return nil, err
		}
		*into = append(*into, &sinkStage{sink: s, run: r, stats: &stepStats{id: n.ID, kind: n.Kind, role: n.Role}})
		if be, ok := s.(BatchEnder); ok {
			r.enders = append(r.enders, be)
		}
	}
	lateFn := func(ev *pipeline.Event) {
		r.lateCnt.Add(1)
		if len(r.late) == 0 {
			logger.Warn("late event dropped: it arrived after its window closed; add a late: sink to keep such events",
				"key", ev.Key, "eventTime", ev.EventTime(), "offset", ev.Offset)
			return
		}
		for _, s := range r.late {
			if !s.write(ev) {
				return
			}
		}
	}

	// Steps, built back to front so each knows its next stage.
	var steps []pipeline.Node
	for _, n := range plan.Nodes {
		if n.Role == pipeline.RoleStep {
			steps = append(steps, n)
		}
	}
	var next operators.Emitter = chainEnd{r}
	r.stages = make([]*stage, len(steps))
	for i := len(steps) - 1; i >= 0; i-- {
		n := steps[i]
		b := &Build{Plan: plan, Node: n, Logger: logger.With("step", n.ID), Clock: e.opts.Clock, Late: lateFn, Twins: e.opts.Twins}
		if i+1 < len(steps) {
			b.Next = plan.Step(steps[i+1])
		}
		op, err := e.opts.Registry.step(b)
		if err != nil {
			return nil, err
		}
		st := &stage{op: op, run: r, stats: &stepStats{id: n.ID, kind: n.Kind, role: pipeline.RoleStep}, sample: latencySample}
		out := next
		if n.Kind == "alert" && e.opts.OnAlert != nil {
			out = alertHook{e: e, r: r, next: next}
		}
		st.out = stageOut{stats: st.stats, next: out}
		if sz, ok := op.(operators.Sized); ok {
			st.stats.size = sz.StateSize
		}
		if sf, ok := op.(operators.Stateful); ok {
			r.states[n.ID] = sf
		}
		r.stages[i] = st
		next = st
	}
	for _, st := range r.stages {
		if td, ok := st.op.(operators.TimeDriven); ok {
			r.timed = append(r.timed, timedStage{op: td, out: &st.out})
			if d, ok := td.(operators.Deadliner); ok {
				r.deadliners = append(r.deadliners, d)
			}
		}
	}
	r.head = next
	r.sharedWake = make(chan struct{}, 1)
	if len(r.stages) > 0 && len(r.timed) == 0 {
		// Time-driven steps see the event clock move with every event, so
		// only a chain without them may sleep through events it drops.
		if sc, ok := r.stages[0].op.(operators.Screener); ok {
			r.screen = sc.Screen()
		}
	}
	ok = true
	return r, nil
}

type alertHook struct {
	e    *Engine
	r    *run
	next operators.Emitter
}

func (h alertHook) Emit(ev *pipeline.Event) {
	h.e.alert.add(AlertRecord{Pipeline: h.r.plan.ID(), Fields: ev.Clone().Fields, Time: ev.EventTime()})
	h.e.opts.OnAlert(h.r.plan, ev)
	h.next.Emit(ev)
}

// start restores r from its checkpoint (or places its cursor for a first
// run), writes a first checkpoint and starts its goroutine.
func (e *Engine) start(ctx context.Context, r *run) {
	cp, ok, err := e.opts.Checkpoints.Load(ctx, r.plan.ID())
	if err != nil {
		r.logger.Error("loading checkpoint failed; starting without it", "err", err)
		ok = false
	}
	switch {
	case ok && cp.PlanHash == r.plan.Hash:
		if err := r.restore(cp.State); err != nil {
			r.logger.Error("restoring state failed; continuing from the cursor with fresh state", "err", err)
		}
		r.cursor = cp.Offset
		r.logger.Info("pipeline resumed from checkpoint", "offset", cp.Offset)
	case ok:
		r.cursor = cp.Offset
		r.logger.Info("pipeline changed; continuing from the old cursor with fresh state",
			"offset", cp.Offset, "oldHash", cp.PlanHash, "newHash", r.plan.Hash)
	case e.opts.StartAtEnd:
		r.cursor = e.opts.Log.Last() + 1
	default:
		r.cursor = 1
	}
	r.pubCursor.Store(r.cursor)
	r.started = e.opts.Clock.Now()
	r.lastActivity = r.started
	r.heartbeat.Store(r.started.UnixNano())
	r.setState(StateRunning)
	// A first checkpoint right away, so a crash before the next one
	// replays from here rather than from wherever a new pipeline starts.
	r.checkpoint(false)
	e.attachShare(r)
	go r.loop()
}

func (r *run) setState(s State) {
	r.stateMu.Lock()
	r.state = s
	r.stateMu.Unlock()
}

func (r *run) currentState() State {
	r.stateMu.Lock()
	defer r.stateMu.Unlock()
	return r.state
}

func (r *run) setFailed(err error) {
	r.stateMu.Lock()
	r.state, r.err = StateFailed, err
	r.stateMu.Unlock()
}

// stop ends the run and returns when it has: the loop stops between
// events (at once when it is waiting to retry a sink), a sink write in
// progress gets StopGrace to finish, then the final checkpoint is written
// (unless an event was left undelivered: then the run resumes from its
// last checkpoint), the sinks are closed and the state is stopped. It is
// idempotent.
func (r *run) stop() {
	r.stopOnce.Do(func() {
		r.cancel()
		grace := time.AfterFunc(r.e.opts.StopGrace, r.cancelWrite)
		<-r.done
		grace.Stop()
		r.cancelWrite()
		r.closeSinks()
		r.stateMu.Lock()
		if r.state != StateFailed {
			r.state = StateStopped
		}
		r.stateMu.Unlock()
	})
}

func (r *run) closeSinks() {
	for _, group := range [][]*sinkStage{r.sinks, r.late, r.errs} {
		for _, s := range group {
			if err := s.sink.Close(); err != nil {
				r.logger.Warn("closing sink", "sink", s.stats.id, "err", err)
			}
		}
	}
}
