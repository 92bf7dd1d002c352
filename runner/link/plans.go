package link

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eddy-edge/eddy/fleet"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/pipeline/devices"
)

// planner keeps this node's objects in step with its keys in the plans
// bucket. Every change goes through the planner's one goroutine (run), or
// restore before it starts, so objects are applied one at a time.
type planner struct {
	l *Link

	mu   sync.Mutex
	objs map[string]*object // by key

	lastWarn time.Time // run's goroutine only
}

// object is one key's state on this node.
type object struct {
	key    string
	status fleet.ObjectStatus
	// applied is the envelope in force (nil: nothing runs under the key).
	applied *fleet.Envelope
	// given is the value last read for the key; it differs from applied
	// when it was Rejected or Failed.
	givenRev uint64
}

func newPlanner(l *Link) *planner { return &planner{l: l, objs: map[string]*object{}} }

// restore applies the stored applied set: the edge runs its last plans
// from disk whether or not the hub is reachable.
func (p *planner) restore(ctx context.Context) {
	keys, m := p.l.store.entries()
	if len(keys) == 0 {
		return
	}
	vals := make(map[string]value, len(keys))
	for _, k := range keys {
		vals[k] = value{rev: m[k].Revision, data: m[k].Value}
	}
	p.reconcile(ctx, vals, false)
	p.l.log.Info("applied the last plans from disk", "objects", len(keys))
}

// value is one key's value as read from the bucket.
type value struct {
	rev  uint64
	data []byte
}

// run watches the node's keys while the link is up and makes the watcher
// again after every reconnection.
func (p *planner) run(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		if !p.l.connected.Load() {
			if !sleep(ctx, 50*time.Millisecond) {
				return
			}
			continue
		}
		epoch := p.l.linkEpoch.Load()
		err := p.watch(ctx, epoch)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if time.Since(p.lastWarn) >= 30*time.Second {
				p.lastWarn = time.Now()
				p.l.log.Warn("watching this node's plans (repeats are logged at debug for 30s)", "err", err, "retry_in", backoff)
			} else {
				p.l.log.Debug("watching this node's plans", "err", err, "retry_in", backoff)
			}
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 250 * time.Millisecond
	}
}

// watch runs one watcher until the link's epoch changes (reconnection),
// the watcher ends or ctx ends. The first values after a new watcher are
// the complete current set: everything else applied is removed.
func (p *planner) watch(ctx context.Context, epoch uint64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := p.l.client.WatchPlans(wctx, p.l.cfg.Node)
	if err != nil {
		return err
	}
	defer w.Stop()
	initial := map[string]value{}
	initDone := false
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if p.l.linkEpoch.Load() != epoch {
				return nil // reconnected: watch again (see Link.watchConnection)
			}
		case ent, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("the plan watcher stopped")
			}
			if ent == nil {
				if !initDone {
					initDone = true
					p.reconcile(ctx, initial, true)
					initial = nil
				}
				continue
			}
			var v value
			if ent.Operation() == jetstream.KeyValuePut {
				v = value{rev: ent.Revision(), data: ent.Value()}
			}
			if !initDone {
				if v.data == nil {
					delete(initial, ent.Key())
				} else {
					initial[ent.Key()] = v
				}
				continue
			}
			p.reconcile(ctx, map[string]value{ent.Key(): v}, false)
		}
	}
}

// reconcile applies the given values (data nil: the key was deleted). With
// full, vals is the complete set and every other known key is removed.
// Pipelines are applied one by one; devices and models together, because
// devices are resolved against their models.
func (p *planner) reconcile(ctx context.Context, vals map[string]value, full bool) {
	if full {
		p.mu.Lock()
		for k := range p.objs {
			if _, ok := vals[k]; !ok {
				vals[k] = value{}
			}
		}
		p.mu.Unlock()
		keys, _ := p.l.store.entries()
		for _, k := range keys {
			if _, ok := vals[k]; !ok {
				vals[k] = value{}
			}
		}
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	devicesChanged := map[string]*fleet.Envelope{} // key -> new envelope (nil: removed)
	for _, k := range keys {
		v := vals[k]
		o := p.object(k)
		if v.data == nil {
			if o.applied == nil && o.status.State == "" {
				p.drop(k)
				continue
			}
			if o.applied != nil && o.applied.Kind == fleet.KindRule {
				p.removeRule(o)
				continue
			}
			if o.applied != nil && o.applied.Kind != fleet.KindPipeline {
				devicesChanged[k] = nil
				continue
			}
			p.removePipeline(ctx, o)
			continue
		}
		if v.rev != 0 && v.rev == o.givenRev && o.status.State != "" {
			continue // already handled this revision
		}
		o.givenRev = v.rev
		env, err := fleet.DecodeEnvelope(k, v.data)
		if err != nil {
			p.reject(o, v.rev, nil, err)
			continue
		}
		if env.Kind == fleet.KindRule {
			p.applyRule(o, v, env)
			continue
		}
		if env.Kind != fleet.KindPipeline {
			devicesChanged[k] = env
			p.setGiven(o, v.rev, env)
			continue
		}
		p.applyPipeline(ctx, o, v, env)
	}
	if len(devicesChanged) > 0 {
		p.applyDevices(ctx, devicesChanged, vals)
	}
	p.l.notify()
}

func (p *planner) object(key string) *object {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.objs[key]
	if o == nil {
		o = &object{key: key}
		if k, err := fleet.ParseKey(key); err == nil {
			o.status = fleet.ObjectStatus{Key: key, Kind: k.Kind, Namespace: k.Namespace, Name: k.Name}
		} else {
			o.status = fleet.ObjectStatus{Key: key}
		}
		o.status.State = ""
		p.objs[key] = o
	}
	return o
}

func (p *planner) drop(key string) {
	p.mu.Lock()
	delete(p.objs, key)
	p.mu.Unlock()
}

func (p *planner) setStatus(o *object, f func(s *fleet.ObjectStatus)) {
	p.mu.Lock()
	f(&o.status)
	p.mu.Unlock()
}

// inForce records that o's value v is in force on this node: saved in
// the local store (a restart applies it without the hub), kept as
// o.applied, and reported with state and hash.
func (p *planner) inForce(o *object, v value, env *fleet.Envelope, state fleet.ObjectState, hash string) {
	if err := p.l.store.put(o.key, v.rev, v.data); err != nil {
		p.l.log.Error("saving the applied set", "err", err)
	}
	o.applied = env
	p.setStatus(o, func(s *fleet.ObjectStatus) {
		s.State, s.Error, s.Revision, s.Generation, s.Hash = state, "", v.rev, env.Generation, hash
	})
}

// forget removes o, deleted on the hub, from the local store and from the
// planner.
func (p *planner) forget(o *object) {
	if err := p.l.store.put(o.key, 0, nil); err != nil {
		p.l.log.Error("saving the applied set", "err", err)
	}
	p.drop(o.key)
}

func (p *planner) setGiven(o *object, rev uint64, env *fleet.Envelope) {
	p.setStatus(o, func(s *fleet.ObjectStatus) {
		s.Revision, s.Generation, s.Hash = rev, env.Generation, env.Hash
	})
}

// reject records that the value under a key cannot be applied. What ran
// under the key before keeps running.
func (p *planner) reject(o *object, rev uint64, env *fleet.Envelope, err error) {
	p.l.log.Warn("refused a plan", "key", o.key, "err", err)
	p.setStatus(o, func(s *fleet.ObjectStatus) {
		s.State, s.Error, s.Revision = fleet.StateRejected, err.Error(), rev
		if env != nil {
			s.Generation, s.Hash = env.Generation, env.Hash
		}
	})
}

func (p *planner) fail(o *object, rev uint64, env *fleet.Envelope, err error) {
	p.l.log.Warn("could not apply a plan", "key", o.key, "err", err)
	p.setStatus(o, func(s *fleet.ObjectStatus) {
		s.State, s.Error, s.Revision = fleet.StateFailed, err.Error(), rev
		s.Generation, s.Hash = env.Generation, env.Hash
	})
}

// compilePipeline compiles the pipeline an envelope carries, with the
// edge's own compiler, and checks that it is the object its key names.
func compilePipeline(key string, env *fleet.Envelope) (*pipeline.Plan, error) {
	plans, err := pipeline.Load(key, env.Object)
	if err != nil {
		return nil, err
	}
	if len(plans) != 1 {
		return nil, fmt.Errorf("%s: the object holds %d pipelines; want exactly one", key, len(plans))
	}
	plan := plans[0]
	if plan.Namespace != env.Namespace || plan.Name != env.Name {
		return nil, fmt.Errorf("%s: the object is pipeline %s, not %s/%s", key, plan.ID(), env.Namespace, env.Name)
	}
	plan.Version = env.Generation
	return plan, nil
}

func (p *planner) applyPipeline(ctx context.Context, o *object, v value, env *fleet.Envelope) {
	plan, err := compilePipeline(o.key, env)
	if err != nil {
		p.reject(o, v.rev, env, err)
		return
	}
	if o.applied != nil && o.applied.Hash == env.Hash && o.applied.Generation == env.Generation && o.status.State == fleet.StateRunning {
		return
	}
	if err := p.l.target.ApplyPipeline(ctx, plan, env.Object); err != nil {
		p.fail(o, v.rev, env, err)
		return
	}
	if plan.Hash != env.Hash {
		p.l.log.Info("the edge's compiler hashes this pipeline differently from the writer (different Eddy versions?)",
			"key", o.key, "hash", plan.Hash, "writer_hash", env.Hash)
	}
	p.inForce(o, v, env, fleet.StateRunning, plan.Hash)
	p.l.log.Info("applied a pipeline from the hub", "pipeline", plan.ID(), "generation", env.Generation, "hash", plan.Hash)
}

func (p *planner) removePipeline(ctx context.Context, o *object) {
	if o.applied != nil {
		id := o.applied.Namespace + "/" + o.applied.Name
		if err := p.l.target.RemovePipeline(ctx, id); err != nil {
			p.l.log.Warn("removing a pipeline deleted on the hub", "pipeline", id, "err", err)
		} else {
			p.l.log.Info("removed a pipeline deleted on the hub", "pipeline", id)
		}
	}
	p.forget(o)
}

// applyDevices applies the node's devices and models as one set: the ones
// in force, with changed replacing them and nil entries removed. If the
// set does not load or resolve, nothing changes and the changed objects
// are marked Failed with the reason.
func (p *planner) applyDevices(ctx context.Context, changed map[string]*fleet.Envelope, vals map[string]value) {
	set := map[string]*fleet.Envelope{}
	p.mu.Lock()
	for k, o := range p.objs {
		if o.applied != nil && o.applied.Kind != fleet.KindPipeline && o.applied.Kind != fleet.KindRule {
			set[k] = o.applied
		}
	}
	p.mu.Unlock()
	for k, env := range changed {
		if env == nil {
			delete(set, k)
		} else {
			set[k] = env
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var src bytes.Buffer
	for _, k := range keys {
		src.WriteString("---\n")
		src.Write(set[k].Object)
		src.WriteString("\n")
	}
	var devs []devices.Device
	var err error
	if len(keys) > 0 {
		var models []devices.Model
		devs, models, err = devices.Load("plans "+p.l.cfg.Node, src.Bytes())
		if err == nil {
			devs, err = devices.Resolve(devs, models)
		}
	}
	if err == nil {
		err = p.l.target.SetDevices(ctx, devs)
	}
	for k, env := range changed {
		o := p.object(k)
		if err != nil {
			if env == nil {
				// A delete that leaves the set broken (a device whose
				// model was deleted): keep what runs, report it.
				p.fail(o, 0, o.applied, fmt.Errorf("deleting this object leaves the device set invalid, so it still applies: %w", err))
				continue
			}
			p.fail(o, vals[k].rev, env, err)
			continue
		}
		if env == nil {
			if e := p.l.store.put(k, 0, nil); e != nil {
				p.l.log.Error("saving the applied set", "err", e)
			}
			p.drop(k)
			continue
		}
		if e := p.l.store.put(k, vals[k].rev, vals[k].data); e != nil {
			p.l.log.Error("saving the applied set", "err", e)
		}
		o.applied = env
		p.setStatus(o, func(s *fleet.ObjectStatus) {
			s.State, s.Error, s.Revision, s.Generation, s.Hash = fleet.StateApplied, "", vals[k].rev, env.Generation, env.Hash
		})
	}
	if err == nil {
		p.l.log.Info("applied devices from the hub", "devices", len(devs))
	}
}

// statuses returns every object's status, with pipeline counters, sorted
// by key.
func (p *planner) statuses() []fleet.ObjectStatus {
	p.mu.Lock()
	out := make([]fleet.ObjectStatus, 0, len(p.objs))
	for _, o := range p.objs {
		if o.status.State == "" {
			continue
		}
		out = append(out, o.status)
	}
	p.mu.Unlock()
	for i := range out {
		s := &out[i]
		if s.Kind != fleet.KindPipeline || (s.State != fleet.StateRunning && s.State != fleet.StateStopped) {
			continue
		}
		if ps, ok := p.l.target.PipelineStatus(s.Namespace + "/" + s.Name); ok {
			c := ps.Counters
			s.Pipeline = &c
			if ps.State != "" {
				s.State = ps.State
			}
			if ps.Error != "" {
				s.Error = ps.Error
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// counts returns the number of objects and of Failed or Rejected ones.
func (p *planner) counts() (n, problems int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range p.objs {
		switch o.status.State {
		case "":
			continue
		case fleet.StateFailed, fleet.StateRejected:
			problems++
		}
		n++
	}
	return n, problems
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
