package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/fleet"
)

// Fleet is the PlanStore, Feed and RuleBus of a real fleet: plans go into the hub's
// plans bucket as fleet envelopes, and the nodes' status records come
// from its nodes bucket (package fleet owns that contract).
type Fleet struct {
	client  *fleet.Client
	clock   clock.Clock
	replies replies // the router's reply subscription, made on first use
}

// NewFleet wraps a fleet client. The client's Writer should name the
// controller (it is recorded in every envelope).
func NewFleet(c *fleet.Client, clk clock.Clock) *Fleet {
	if clk == nil {
		clk = clock.Real{}
	}
	return &Fleet{client: c, clock: clk}
}

// Put writes obj to node's plans.
func (f *Fleet) Put(ctx context.Context, node string, obj Object) error {
	_, err := f.client.Put(ctx, &fleet.Envelope{
		Format: fleet.EnvelopeFormat, Kind: obj.Kind, Namespace: obj.Namespace, Name: obj.Name, Node: node,
		Generation: obj.Version, Hash: obj.Hash, Object: obj.Resource, UpdatedAt: f.clock.Now().UTC(),
	})
	return err
}

// Delete removes an object from node's plans.
func (f *Fleet) Delete(ctx context.Context, node string, kind ObjectKind, namespace, name string) error {
	return f.client.Delete(ctx, fleet.ObjectKey{Node: node, Kind: kind, Namespace: namespace, Name: name})
}

// Holders lists the nodes holding a version of one object, with one
// filtered watch of each plans bucket (<any node>.<kind>.<ns>.<name>).
func (f *Fleet) Holders(ctx context.Context, kind ObjectKind, namespace, name string) ([]ObjectRef, error) {
	probe := fleet.ObjectKey{Node: "x", Kind: kind, Namespace: namespace, Name: name}
	if err := probe.Check(); err != nil {
		return nil, err
	}
	buckets, err := f.client.AllPlans(ctx)
	if err != nil {
		return nil, err
	}
	filter := "*" + probe.String()[1:]
	var out []ObjectRef
	for _, kv := range buckets {
		err := fleet.ScanPlans(ctx, kv, filter, func(ent jetstream.KeyValueEntry) {
			k, err := fleet.ParseKey(ent.Key())
			if err != nil {
				return
			}
			env, err := fleet.DecodeEnvelope(ent.Key(), ent.Value())
			if err != nil {
				// A malformed value is held but current for nobody: Put
				// overwrites it.
				out = append(out, ObjectRef{Node: k.Node, Kind: kind, Namespace: namespace, Name: name})
				return
			}
			out = append(out, ObjectRef{Node: k.Node, Kind: kind, Namespace: namespace, Name: name,
				Version: env.Generation, Hash: env.Hash})
		})
		if err != nil {
			return nil, fmt.Errorf("read plan holders: %w", err)
		}
	}
	return out, nil
}

// TwinReplay is how far back a starting controller reads the edges'
// forwarded twin reports, so a new leader catches up with recent values
// (older ones are already in the Device status).
const TwinReplay = 5 * time.Minute

// Run follows the nodes bucket (every status record is a heartbeat with
// the node's labels and version, and one report per object it holds) and
// the twin reports the edges forward into the up stream
// (<up prefix>.<node>.twin), until ctx ends.
func (f *Fleet) Run(ctx context.Context, sink FeedSink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := f.client.WatchNodes(ctx)
	if err != nil {
		return err
	}
	twinErr := make(chan error, 1)
	go func() { twinErr <- f.twins(ctx, sink) }()
	for {
		select {
		case err := <-twinErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fleet: twin reports: %w", err)
		case st, ok := <-ch:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("fleet: the nodes watch ended (connection to the hub lost?)")
			}
			f.nodeRecord(sink, st)
		}
	}
}

func (f *Fleet) nodeRecord(sink FeedSink, st fleet.NodeStatus) {
	// The edge's clock stamps the record; a record from the future (a
	// skewed clock) counts as now.
	at := st.ReportedAt
	if now := f.clock.Now(); at.After(now) {
		at = now
	}
	reps := make([]Report, 0, len(st.Objects))
	for _, o := range st.Objects {
		r := Report{Node: st.Node, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Version: o.Generation,
			Failed: o.State == fleet.StateFailed || o.State == fleet.StateRejected, Error: o.Error, Time: at}
		if r.Failed && r.Error == "" {
			r.Error = string(o.State)
		}
		if p := o.Pipeline; p != nil {
			r.MessagesIn, r.MessagesOut, r.Errors, r.AlertsFiring = int64(p.In), int64(p.Out), int64(p.Errors), int64(p.Alerts)
		}
		reps = append(reps, r)
	}
	sink.NodeRecord(NodeInfo{Name: st.Node, Labels: st.Labels, Version: st.Version, Time: at,
		Devices: deviceStates(st.Devices)}, reps)
}

// twinEvent is the part of a twin stream record the controller reads.
type twinEvent struct {
	Device    string `json:"device"`
	Property  string `json:"property"`
	Actual    any    `json:"actual"`
	Deleted   bool   `json:"deleted"`
	Timestamp int64  `json:"timestamp"`
}

func (f *Fleet) twins(ctx context.Context, sink FeedSink) error {
	o := f.client.Options()
	cons, err := f.client.JetStream().OrderedConsumer(ctx, o.UpStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{o.UpPrefix + ".*.twin"},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   ptrTime(f.clock.Now().Add(-TwinReplay)),
	})
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); it.Stop() }()
	prefix := o.UpPrefix + "."
	for {
		msg, err := it.Next()
		if err != nil {
			return err
		}
		node, _, _ := strings.Cut(strings.TrimPrefix(msg.Subject(), prefix), ".")
		var ev twinEvent
		if err := json.Unmarshal(msg.Data(), &ev); err != nil || ev.Deleted || ev.Actual == nil {
			continue
		}
		ns, name, ok := strings.Cut(ev.Device, "/")
		if !ok {
			continue
		}
		sink.DeviceTwin(TwinReport{Node: node, Namespace: ns, Name: name, Property: ev.Property,
			Value: twinString(ev.Actual), Time: time.UnixMilli(ev.Timestamp)})
	}
}

// twinString writes a twin value as KubeEdge does: strings as they are,
// numbers and booleans in their JSON form.
func twinString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func ptrTime(t time.Time) *time.Time { return &t }

var _ PlanStore = (*Fleet)(nil)
var _ Feed = (*Fleet)(nil)
