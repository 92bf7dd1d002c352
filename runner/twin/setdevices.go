package twin

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
)

// SetDevices makes specs the complete set of devices (as from the cloud's
// Device resources): new devices are added, missing ones removed, declared
// properties and types updated, and changed desired values applied with a
// bumped cloud version. An empty desired value leaves the current expected
// value alone. A property no longer declared keeps its reported value as an
// undeclared twin (or is removed if it has none). Membership updates are
// published per node, and deltas/documents for devices whose twins changed.
//
// It is the one way to replace the device set at runtime (files, the
// cloud link): a spec that fails validation changes nothing.
func (m *Manager) SetDevices(ctx context.Context, specs []DeviceSpec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	parsed, err := m.parseSpecs(specs)
	if err != nil {
		return err
	}
	m.wmu.Lock()
	if m.closed {
		m.wmu.Unlock()
		return ErrClosed
	}
	now := m.clk.Now()
	plan := m.planDevices(parsed, now)
	if err := m.persist(plan.recs); err != nil {
		m.wmu.Unlock()
		return err
	}
	m.install(plan)
	p := m.announce(plan, now)
	m.out.enqueue(p)
	m.delivering.Add(1)
	defer m.delivering.Done()
	m.wmu.Unlock()
	return m.deliver(p)
}

// Check validates specs as SetDevices would, changing nothing; callers
// that must change other things together with the twins check first.
func (m *Manager) Check(specs []DeviceSpec) error {
	_, err := m.parseSpecs(specs)
	return err
}

// parsedSpec is a validated DeviceSpec with its desired values parsed.
type parsedSpec struct {
	DeviceSpec
	props []parsedProp
}

type parsedProp struct {
	spec    PropertySpec
	desired value
	has     bool // a desired value is set
}

// parseSpecs validates every spec before anything changes.
func (m *Manager) parseSpecs(specs []DeviceSpec) ([]parsedSpec, error) {
	seen := make(map[string]bool, len(specs))
	out := make([]parsedSpec, len(specs))
	for i, s := range specs {
		where := fmt.Sprintf("devices[%d] (%s)", i, s.ID)
		if s.ID == "" || strings.Count(s.ID, "/") > 1 || strings.HasPrefix(s.ID, "/") || strings.HasSuffix(s.ID, "/") || strings.ContainsAny(s.ID, "+#") {
			return nil, fmt.Errorf("twin: %s: device id %q is invalid; use \"namespace/name\"", where, s.ID)
		}
		if seen[s.ID] {
			return nil, fmt.Errorf("twin: %s: device id %q appears twice; each Device must be listed once", where, s.ID)
		}
		seen[s.ID] = true
		out[i].DeviceSpec = s
		props := make(map[string]bool, len(s.Properties))
		for j, ps := range s.Properties {
			pw := fmt.Sprintf("%s.properties[%d] (%s)", where, j, ps.Name)
			if !kubeedge.ValidKey(ps.Name) {
				return nil, fmt.Errorf("twin: %s: property name %q is invalid; use %s", pw, ps.Name, kubeedge.KeyRule)
			}
			if props[ps.Name] {
				return nil, fmt.Errorf("twin: %s: property %q is declared twice", pw, ps.Name)
			}
			props[ps.Name] = true
			v, has, err := valueFromAny(ps.Desired, strings.ToLower(ps.Type), m.maxValueBytes())
			if err != nil {
				return nil, fmt.Errorf("twin: %s: desired value: %v", pw, err)
			}
			out[i].props = append(out[i].props, parsedProp{spec: ps, desired: v, has: has})
		}
	}
	return out, nil
}

// devicePlan is what SetDevices will do: the next device set, each
// device's twin changes, the records to persist and the membership moves.
type devicePlan struct {
	devices []devChanges
	recs    []Record
	added   map[string][]*device // by node
	removed map[string][]*device // by node
}

type devChanges struct {
	d       *device
	changes []change
	isNew   bool
}

// planDevices diffs the parsed specs against the current devices; it
// mutates nothing (wmu held).
func (m *Manager) planDevices(specs []parsedSpec, now time.Time) *devicePlan {
	plan := &devicePlan{added: map[string][]*device{}, removed: map[string][]*device{}}
	seen := make(map[string]bool, len(specs))
	for _, s := range specs {
		seen[s.ID] = true
		old := m.devices[s.ID]
		d := &device{id: s.ID, name: s.ID[strings.LastIndexByte(s.ID, '/')+1:], node: s.Node, description: s.Description, twins: map[string]*twinState{}}
		isNew := old == nil
		if !isNew {
			d.state, d.lastOnline, d.twins = old.state, old.lastOnline, old.twins
		}
		if isNew || old.node != d.node || old.description != d.description || old.name != d.name {
			plan.recs = append(plan.recs, Record{Op: OpPutDevice, Device: d.record()})
		}
		changes := planTwins(d, s.props, m.nowMS(now))
		for _, c := range changes {
			if c.new == nil {
				plan.recs = append(plan.recs, Record{Op: OpDelTwin, ID: d.id, Prop: c.prop})
			} else {
				plan.recs = append(plan.recs, Record{Op: OpPutTwin, ID: d.id, Prop: c.prop, Twin: c.new.record()})
			}
		}
		plan.devices = append(plan.devices, devChanges{d: d, changes: changes, isNew: isNew})
		switch {
		case isNew:
			plan.added[m.nodeOf(d)] = append(plan.added[m.nodeOf(d)], d)
		case m.nodeOf(old) != m.nodeOf(d):
			plan.removed[m.nodeOf(old)] = append(plan.removed[m.nodeOf(old)], old)
			plan.added[m.nodeOf(d)] = append(plan.added[m.nodeOf(d)], d)
		}
	}
	for _, old := range m.sorted() {
		if !seen[old.id] {
			plan.recs = append(plan.recs, Record{Op: OpDelDevice, ID: old.id})
			plan.removed[m.nodeOf(old)] = append(plan.removed[m.nodeOf(old)], old)
		}
	}
	return plan
}

// planTwins computes the twin changes of one device: declared properties
// take their type and (changed) desired value; twins no longer declared
// become undeclared, or go if nothing was reported. Sorted by property.
func planTwins(d *device, props []parsedProp, nowMS int64) []change {
	var changes []change
	declared := map[string]bool{}
	for _, pp := range props {
		declared[pp.spec.Name] = true
		ot := d.twins[pp.spec.Name]
		var t twinState
		if ot != nil {
			t = *ot
		} else {
			t = twinState{key: "twin_" + pp.spec.Name}
		}
		typ := strings.ToLower(pp.spec.Type)
		if typ == "" {
			typ = "string"
		}
		c := change{prop: pp.spec.Name, old: ot, source: "cloud"}
		meta := ot == nil || !t.declared || t.typ != typ || t.optional
		t.declared, t.typ, t.optional = true, typ, false
		if pp.has && pp.desired.str != t.expected.str {
			t.expected, t.expTS = pp.desired, nowMS
			t.expVer.Cloud++
			c.expChg = true
		}
		if !c.expChg && !meta {
			continue
		}
		if t.expected.set() {
			t.expected.dec, _ = typedValue(t.expected.str, t.expected.dec, typ)
		}
		if t.actual.set() {
			if v, err := typedValue(t.actual.str, t.actual.dec, typ); err == nil {
				t.actual.dec = v
			}
		}
		t.rev++
		c.new = &t
		changes = append(changes, c)
	}
	for k, t := range d.twins {
		if !t.declared || declared[k] {
			continue
		}
		c := change{prop: k, old: t, source: "cloud"}
		if t.actual.set() {
			nt := *t
			nt.declared, nt.optional, nt.expected, nt.expVer = false, true, value{}, Version{Cloud: t.expVer.Cloud + 1, Edge: t.expVer.Edge}
			nt.rev++
			c.new = &nt
		}
		changes = append(changes, c)
	}
	sort.Slice(changes, func(a, b int) bool { return changes[a].prop < changes[b].prop })
	return changes
}

// install makes the plan the current device set (wmu held).
func (m *Manager) install(plan *devicePlan) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[string]*device, len(plan.devices))
	for _, dc := range plan.devices {
		for _, c := range dc.changes {
			if c.new == nil {
				delete(dc.d.twins, c.prop)
			} else {
				dc.d.twins[c.prop] = c.new
			}
		}
		next[dc.d.id] = dc.d
	}
	m.devices = next
}

// announce queues what the plan tells the world: a twin event per change,
// documents and deltas per changed device (a delta only for new devices),
// and a membership update per node that gained or lost devices (wmu held).
func (m *Manager) announce(plan *devicePlan, now time.Time) *pending {
	p := &pending{now: now}
	for _, dc := range plan.devices {
		if len(dc.changes) > 0 || dc.isNew {
			p.lane(dc.d.id)
		}
		for _, c := range dc.changes {
			p.emit(StreamTwin, dc.d.id, c.eventFields(dc.d.id))
		}
		switch {
		case dc.isNew:
			if delta, ok := m.delta(dc.d, now); ok {
				p.publish(kubeedge.DeviceTopic(dc.d.id, kubeedge.TwinUpdateDelta), delta)
			}
		case len(dc.changes) > 0:
			m.queueDocAndDelta(dc.d, dc.changes, "", now, p)
		}
	}
	nodes := map[string]bool{}
	for n := range plan.added {
		nodes[n] = true
	}
	for n := range plan.removed {
		nodes[n] = true
		for _, d := range plan.removed[n] {
			p.lane(d.id)
		}
	}
	nodeList := make([]string, 0, len(nodes))
	for n := range nodes {
		nodeList = append(nodeList, n)
	}
	sort.Strings(nodeList)
	for _, n := range nodeList {
		p.lane(nodeLane(n))
		u := kubeedge.MembershipUpdateMsg{BaseMessage: kubeedge.BaseMessage{EventID: kubeedge.NewEventID(), Timestamp: m.nowMS(now)}, Added: []kubeedge.Device{}, Removed: []kubeedge.Device{}}
		var addIDs, remIDs []string
		for _, d := range plan.added[n] {
			w := kubeedge.Device{ID: d.id, Name: d.name, Description: d.description, State: d.state, Twin: map[string]*kubeedge.MsgTwin{}}
			for k, t := range d.twins {
				w.Twin[k] = t.wire(true, true, false)
			}
			u.Added = append(u.Added, w)
			addIDs = append(addIDs, d.id)
		}
		for _, d := range plan.removed[n] {
			u.Removed = append(u.Removed, kubeedge.Device{ID: d.id, Name: d.name})
			remIDs = append(remIDs, d.id)
		}
		if n != "" {
			p.publish(kubeedge.NodeTopic(n, kubeedge.MembershipUpdated), u)
		}
		p.emit(StreamMembership, "", map[string]any{"node": n, "added": addIDs, "removed": remIDs})
	}
	return p
}
