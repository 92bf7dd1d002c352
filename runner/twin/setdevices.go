package twin

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
)

// SetDevices makes specs the complete set of devices (as from the cloud's
// Device resources): new devices are added, missing ones removed, declared
// properties and types updated, and changed desired values applied with a
// bumped cloud version. An empty desired value leaves the current expected
// value alone. A property no longer declared keeps its reported value as an
// undeclared twin (or is removed if it has none). Membership updates are
// published per node, and deltas/documents for devices whose twins changed.
func (m *Manager) SetDevices(ctx context.Context, specs []DeviceSpec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Validate everything first so a bad spec changes nothing.
	seen := make(map[string]bool, len(specs))
	type parsedProp struct {
		spec    PropertySpec
		desired value
		has     bool
	}
	parsed := make([][]parsedProp, len(specs))
	for i, s := range specs {
		where := fmt.Sprintf("devices[%d] (%s)", i, s.ID)
		if s.ID == "" || strings.Count(s.ID, "/") > 1 || strings.HasPrefix(s.ID, "/") || strings.HasSuffix(s.ID, "/") || strings.ContainsAny(s.ID, "+#") {
			return fmt.Errorf("twin: %s: device id %q is invalid; use \"namespace/name\"", where, s.ID)
		}
		if seen[s.ID] {
			return fmt.Errorf("twin: %s: device id %q appears twice; each Device must be listed once", where, s.ID)
		}
		seen[s.ID] = true
		props := make(map[string]bool, len(s.Properties))
		for j, ps := range s.Properties {
			pw := fmt.Sprintf("%s.properties[%d] (%s)", where, j, ps.Name)
			if !kubeedge.ValidKey(ps.Name) {
				return fmt.Errorf("twin: %s: property name %q is invalid; use 1-128 characters from a-z A-Z 0-9 - _ . , : / @ #", pw, ps.Name)
			}
			if props[ps.Name] {
				return fmt.Errorf("twin: %s: property %q is declared twice", pw, ps.Name)
			}
			props[ps.Name] = true
			v, has, err := valueFromAny(ps.Desired, strings.ToLower(ps.Type), m.maxValueBytes())
			if err != nil {
				return fmt.Errorf("twin: %s: desired value: %v", pw, err)
			}
			parsed[i] = append(parsed[i], parsedProp{spec: ps, desired: v, has: has})
		}
	}

	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.closed {
		return ErrClosed
	}
	now := m.clk.Now()
	nowMS := m.nowMS(now)
	p := &pending{}
	var recs []Record
	type devChanges struct {
		d       *device
		changes []change
		isNew   bool
	}
	var all []devChanges
	added := map[string][]*device{}
	removed := map[string][]*device{}

	for i, s := range specs {
		old := m.devices[s.ID]
		d := &device{id: s.ID, name: s.ID[strings.LastIndexByte(s.ID, '/')+1:], node: s.Node, description: s.Description, twins: map[string]*twinState{}}
		isNew := old == nil
		if !isNew {
			d.state, d.lastOnline, d.twins = old.state, old.lastOnline, old.twins
		}
		if isNew || old.node != d.node || old.description != d.description || old.name != d.name {
			recs = append(recs, Record{Op: OpPutDevice, Device: d.record()})
		}
		var changes []change
		declared := map[string]bool{}
		for _, pp := range parsed[i] {
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
		for _, c := range changes {
			if c.new == nil {
				recs = append(recs, Record{Op: OpDelTwin, ID: d.id, Prop: c.prop})
			} else {
				recs = append(recs, Record{Op: OpPutTwin, ID: d.id, Prop: c.prop, Twin: c.new.record()})
			}
		}
		all = append(all, devChanges{d: d, changes: changes, isNew: isNew})
		if isNew {
			added[m.nodeOf(d)] = append(added[m.nodeOf(d)], d)
		} else if m.nodeOf(old) != m.nodeOf(d) {
			removed[m.nodeOf(old)] = append(removed[m.nodeOf(old)], old)
			added[m.nodeOf(d)] = append(added[m.nodeOf(d)], d)
		}
	}
	for _, old := range m.sorted() {
		if !seen[old.id] {
			recs = append(recs, Record{Op: OpDelDevice, ID: old.id})
			removed[m.nodeOf(old)] = append(removed[m.nodeOf(old)], old)
		}
	}
	if err := m.persist(recs); err != nil {
		return err
	}

	// Install.
	m.mu.Lock()
	next := make(map[string]*device, len(all))
	for _, dc := range all {
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
	m.mu.Unlock()

	// Replies and events.
	for _, dc := range all {
		for _, c := range dc.changes {
			f := map[string]any{"device": dc.d.id, "property": c.prop, "source": "cloud"}
			if c.new == nil {
				f["actual"], f["expected"], f["deleted"] = nil, nil, true
				f["version"], f["undeclared"], f["type"] = c.old.rev+1, !c.old.declared, c.old.typ
			} else {
				f["actual"], f["expected"] = c.new.actual.dec, c.new.expected.dec
				f["version"], f["undeclared"], f["type"] = c.new.rev, !c.new.declared, c.new.typ
			}
			p.emit(StreamTwin, dc.d.id, f)
		}
		if len(dc.changes) > 0 && !dc.isNew {
			m.queueDocAndDelta(dc.d, dc.changes, "", now, p)
		} else if dc.isNew {
			if delta, ok := m.delta(dc.d, now); ok {
				p.publish(kubeedge.DeviceTopic(dc.d.id, kubeedge.TwinUpdateDelta), delta)
			}
		}
	}
	nodes := map[string]bool{}
	for n := range added {
		nodes[n] = true
	}
	for n := range removed {
		nodes[n] = true
	}
	nodeList := make([]string, 0, len(nodes))
	for n := range nodes {
		nodeList = append(nodeList, n)
	}
	sort.Strings(nodeList)
	for _, n := range nodeList {
		u := kubeedge.MembershipUpdateMsg{BaseMessage: kubeedge.BaseMessage{EventID: kubeedge.NewEventID(), Timestamp: nowMS}, Added: []kubeedge.Device{}, Removed: []kubeedge.Device{}}
		var addIDs, remIDs []string
		for _, d := range added[n] {
			w := kubeedge.Device{ID: d.id, Name: d.name, Description: d.description, State: d.state, Twin: map[string]*kubeedge.MsgTwin{}}
			for k, t := range d.twins {
				w.Twin[k] = t.wire(true, true, false)
			}
			u.Added = append(u.Added, w)
			addIDs = append(addIDs, d.id)
		}
		for _, d := range removed[n] {
			u.Removed = append(u.Removed, kubeedge.Device{ID: d.id, Name: d.name})
			remIDs = append(remIDs, d.id)
		}
		if n != "" {
			p.publish(kubeedge.NodeTopic(n, kubeedge.MembershipUpdated), u)
		}
		p.emit(StreamMembership, "", map[string]any{"node": n, "added": addIDs, "removed": remIDs})
	}
	return m.flush(p, now)
}
