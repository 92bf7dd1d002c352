package runner

// The cloud–edge link (runner/link) wired into the runner: the runner is
// the link's Target (pipelines through the engine's Apply/Remove, devices
// through SetDevices, status from the engine), and its state feeds the API,
// metrics and dashboard.

import (
	"context"
	"encoding/json"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/eddy-edge/eddy/runner/api"
	"github.com/eddy-edge/eddy/runner/engine"
	"github.com/eddy-edge/eddy/runner/link"
	"github.com/eddy-edge/eddy/runner/twin"
	"github.com/eddy-edge/eddy/runner/wal"
)

// version is the module version of the running binary ("(devel)" for a
// local build), announced in the node's status record.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// linkTarget adapts the Runner to link.Target.
type linkTarget struct{ r *Runner }

func (t linkTarget) ApplyPipeline(ctx context.Context, plan *pipeline.Plan, src []byte) error {
	return t.r.Apply(ctx, plan, src)
}

func (t linkTarget) RemovePipeline(ctx context.Context, id string) error {
	if _, ok := t.r.engine.Status(id); !ok {
		return nil
	}
	return t.r.Remove(ctx, id)
}

func (t linkTarget) SetDevices(ctx context.Context, devs []devices.Device) error {
	return t.r.SetDevices(ctx, NodeDevices(devs, t.r.cfg.Node))
}

func (t linkTarget) PipelineStatus(id string) (link.PipelineStatus, bool) {
	st, ok := t.r.engine.Status(id)
	if !ok {
		return link.PipelineStatus{}, false
	}
	ps := link.PipelineStatus{Hash: st.Hash, Error: st.Error, State: fleet.StateRunning}
	switch st.State {
	case engine.StateStarting, engine.StateRunning, engine.StateDegraded:
		// Degraded: running, retrying a sink; its error says why.
	case engine.StateStopped:
		ps.State = fleet.StateStopped
	default:
		ps.State = fleet.StateFailed
	}
	c := &ps.Counters
	c.In, c.Lag = uint64(max(st.Source.In, 0)), st.Lag
	for _, s := range st.Steps {
		c.Errors += uint64(max(s.Errors, 0))
		if s.Kind == "alert" {
			c.Alerts += uint64(max(s.Out, 0))
		}
	}
	for _, s := range st.Sinks {
		c.Out += uint64(max(s.In, 0))
		c.Errors += uint64(max(s.Errors, 0))
	}
	c.Errors += uint64(max(st.Source.Errors, 0))
	return ps, true
}

func (t linkTarget) Log() wal.Log { return t.r.log }

// PublishMQTT publishes a rest->eventbus rule's message at QoS 1: it is in
// the WAL (durable) before the call returns, so the router's 200 means the
// edge has it.
func (t linkTarget) PublishMQTT(ctx context.Context, topic string, payload []byte) error {
	return t.r.broker.PublishContext(ctx, topic, payload, 1, false)
}

// DeviceStates reports the twin manager's device connection states
// (link.DeviceStates): they go up in the node's status record.
func (t linkTarget) DeviceStates() []fleet.DeviceState {
	d := t.r.devices
	if d == nil {
		return nil
	}
	states := d.twins.States()
	out := make([]fleet.DeviceState, len(states))
	for i, s := range states {
		ds := fleet.DeviceState{Device: s.ID, State: fleet.DeviceConnState(s.State)}
		if ds.State == "" {
			ds.State = fleet.DeviceUnknown
		}
		if at, err := time.ParseInLocation(twin.LastOnlineLayout, s.LastOnline, time.UTC); err == nil {
			ds.LastOnline = at
		}
		out[i] = ds
	}
	return out
}

// startLink starts the link when a hub is configured.
func (r *Runner) startLink(ctx context.Context) error {
	if !r.cfg.Link.Enabled() {
		return nil
	}
	cfg := r.cfg.Link
	if cfg.Node == "" {
		cfg.Node = r.cfg.Node
	}
	if r.cfg.DataDir != "" {
		cfg.DataDir = filepath.Join(r.cfg.DataDir, "link")
	}
	cfg.Logger, cfg.Clock, cfg.Version = r.logger, r.cfg.Clock, version()
	l, err := link.New(cfg, linkTarget{r})
	if err != nil {
		return err
	}
	if err := l.Start(ctx); err != nil {
		return err
	}
	r.link = l
	if r.devices != nil {
		r.devices.uplink.Store(l)
	}
	return nil
}

// LinkStatus returns the link's state (nil without a hub).
func (r *Runner) LinkStatus() *link.Status {
	if r.link == nil {
		return nil
	}
	st := r.link.Status()
	return &st
}

// FleetObjects returns the state of the objects the hub gave this node.
func (r *Runner) FleetObjects() []fleet.ObjectStatus {
	if r.link == nil {
		return nil
	}
	return r.link.Objects()
}

// Link reports the uplink for the API.
func (r *Runner) Link() api.LinkStatus {
	st := r.LinkStatus()
	if st == nil {
		return api.LinkStatus{State: api.LinkNone}
	}
	return api.LinkStatus{State: string(st.State), Hub: strings.Join(st.Hub, ","), Node: st.Node, Since: st.Since,
		Pending: st.Outbox.Pending, Forwarded: st.Outbox.Forwarded, Duplicates: st.Outbox.Duplicates,
		Errors: st.Outbox.Errors, Reconnects: st.Outbox.Reconnects, Objects: st.Objects, Problems: st.Problems}
}

// alertUplink writes an alert notification to the WAL under the alert
// uplink topic ($eddy/up/alerts.<namespace>.<name>), so the outbox
// forwards it to the hub. Buffered: written before the pipeline moves on,
// fsynced with the next durable batch or within 100ms.
func (r *Runner) alertUplink(plan *pipeline.Plan, ev *pipeline.Event) {
	if r.link == nil {
		return
	}
	b, err := json.Marshal(ev.Fields)
	if err != nil {
		r.logger.Warn("alert uplink: encoding the alert", "pipeline", plan.ID(), "err", err)
		return
	}
	topic := link.UpTopicPrefix + "alerts." + plan.Namespace + "." + plan.Name
	if err := r.log.AppendWith(context.Background(), wal.Buffered, &wal.Record{Topic: topic, Payload: b,
		Time: r.cfg.Clock.Now().UnixNano(), QoS: 1}); err != nil {
		r.logger.Warn("alert uplink: writing the alert to the WAL", "pipeline", plan.ID(), "err", err)
	}
}
