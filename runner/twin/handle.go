package twin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
)

// HandleMessage processes one MQTT message on a twin protocol topic (see
// Subscriptions) and publishes the replies. It returns an error wrapping
// ErrRejected when the request was answered with an error result,
// ErrUnknownTopic for foreign topics, and other errors when persisting or
// publishing failed. Replies to its own topics (results, deltas) are ignored.
func (m *Manager) HandleMessage(ctx context.Context, topic string, payload []byte) error {
	t, ok := kubeedge.ParseTopic(topic)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	switch t.Kind {
	case kubeedge.TwinUpdate, kubeedge.TwinGet, kubeedge.StateUpdate, kubeedge.MembershipGet, kubeedge.DataUpdate:
	default:
		return nil // results, deltas and documents (our own replies) and what edgecore ignores too
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := &pending{}
	if t.Kind == kubeedge.MembershipGet {
		p.lane(nodeLane(t.Node))
	} else {
		p.lane(t.ID)
	}
	m.wmu.Lock()
	if m.closed {
		m.wmu.Unlock()
		return ErrClosed
	}
	now := m.clk.Now()
	p.now = now
	var err error
	switch t.Kind {
	case kubeedge.TwinUpdate:
		err = m.handleUpdate(p, t.ID, payload, now)
	case kubeedge.TwinGet:
		err = m.handleGet(p, t.ID, payload, now)
	case kubeedge.StateUpdate:
		err = m.handleState(p, t.ID, payload, now)
	case kubeedge.MembershipGet:
		err = m.handleMemGet(p, t.Node, payload, now)
	case kubeedge.DataUpdate:
		err = m.handleData(p, t.ID, payload, now)
	}
	m.out.enqueue(p)
	m.delivering.Add(1)
	defer m.delivering.Done()
	m.wmu.Unlock()
	// Publish without the lock: the broker may wait for a slow subscriber
	// of this device's topics, and the other devices must not wait with it.
	if derr := m.deliver(p); derr != nil {
		err = errors.Join(err, derr)
	}
	return err
}

// reject queues an error result and returns the matching error.
func (m *Manager) reject(p *pending, topic, eventID string, code int, reason string, now time.Time) error {
	m.rejected.Add(1)
	p.publish(topic, kubeedge.ResultMsg{BaseMessage: kubeedge.BaseMessage{EventID: eventID, Timestamp: m.nowMS(now)}, Code: code, Reason: reason})
	return fmt.Errorf("%w: %s", ErrRejected, reason)
}

// change is one property change computed from a request.
type change struct {
	prop           string
	old, new       *twinState // old nil = added; new nil = deleted
	expChg, actChg bool
	source         string
}

// eventFields is the StreamTwin event of a change.
func (c *change) eventFields(device string) map[string]any {
	f := map[string]any{"device": device, "property": c.prop, "source": c.source}
	if c.new == nil {
		f["actual"], f["expected"], f["deleted"] = nil, nil, true
		f["version"], f["undeclared"], f["type"] = c.old.rev+1, !c.old.declared, c.old.typ
	} else {
		f["actual"], f["expected"] = c.new.actual.dec, c.new.expected.dec
		f["version"], f["undeclared"], f["type"] = c.new.rev, !c.new.declared, c.new.typ
	}
	return f
}

// applyUpdate computes the changes an update would make. It mutates nothing.
func (m *Manager) applyUpdate(d *device, twins map[string]*kubeedge.MsgTwin, msgTS int64, now time.Time, source string) ([]change, int, string) {
	keys := make([]string, 0, len(twins))
	for k := range twins {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	nowMS := m.nowMS(now)
	var out []change
	for _, k := range keys {
		in := twins[k]
		if !kubeedge.ValidKey(k) {
			return nil, kubeedge.CodeBadRequest, fmt.Sprintf("property name %s is invalid: use "+kubeedge.KeyRule, quoteShort(k))
		}
		old := d.twins[k]
		if in == nil {
			if old == nil {
				continue
			}
			if old.declared {
				return nil, kubeedge.CodeBadRequest, fmt.Sprintf("property %s of device %s is declared by its device model and cannot be deleted from the edge; remove it from the Device spec instead", k, d.id)
			}
			out = append(out, change{prop: k, old: old, source: source})
			continue
		}
		var t twinState
		if old != nil {
			t = *old
		} else {
			t = twinState{key: "twin_" + k, optional: true}
			if in.Optional != nil {
				t.optional = *in.Optional
			}
		}
		if !t.declared && in.Metadata != nil && in.Metadata.Type != "" {
			t.typ = in.Metadata.Type
		}
		c := change{prop: k, old: old, source: source}
		if in.Expected != nil {
			v, err := parseValue(in.Expected.Value, t.typ, m.maxValue)
			if err != nil {
				return nil, kubeedge.CodeBadRequest, fmt.Sprintf("twin.%s.expected: %v", k, err)
			}
			src := msgTS
			if in.Expected.Metadata != nil && in.Expected.Metadata.Timestamp > 0 {
				src = in.Expected.Metadata.Timestamp
			}
			if reason := stale(d.id, k, "expected", in.ExpectedVersion, t.expVer, src, t.expSrc); reason != "" {
				return nil, kubeedge.CodeConflict, reason
			}
			t.expected, t.expTS, t.expSrc = v, nowMS, max(src, t.expSrc)
			if source == "cloud" {
				t.expVer.Cloud++
			} else {
				t.expVer.Edge++
			}
			c.expChg = true
		}
		if in.Actual != nil {
			v, err := parseValue(in.Actual.Value, t.typ, m.maxValue)
			if err != nil {
				return nil, kubeedge.CodeBadRequest, fmt.Sprintf("twin.%s.actual: %v", k, err)
			}
			src := msgTS
			if in.Actual.Metadata != nil && in.Actual.Metadata.Timestamp > 0 {
				src = in.Actual.Metadata.Timestamp
			}
			if reason := stale(d.id, k, "actual", in.ActualVersion, t.actVer, src, t.actSrc); reason != "" {
				return nil, kubeedge.CodeConflict, reason
			}
			t.actual, t.actTS, t.actSrc = v, nowMS, max(src, t.actSrc)
			t.actVer.Edge++
			c.actChg = true
		}
		if t.typ == "" {
			switch {
			case t.actual.set():
				t.typ = inferType(t.actual.dec)
			case t.expected.set():
				t.typ = inferType(t.expected.dec)
			default:
				t.typ = "string"
			}
		}
		if !c.expChg && !c.actChg && old != nil {
			continue
		}
		t.rev++
		c.new = &t
		out = append(out, c)
	}
	return out, 0, ""
}

// stale explains why an incoming value is older than the stored one ("" if not).
func stale(dev, prop, side string, inVer *Version, cur Version, src, curSrc int64) string {
	if inVer != nil && inVer.OlderThan(cur) {
		return fmt.Sprintf("twin.%s.%s of device %s not applied: %s_version {cloud:%d, edge:%d} is older than the stored {cloud:%d, edge:%d}; this is a replayed or out-of-order update (send the version from the latest twin/update/result, or leave it out)",
			prop, side, dev, side, inVer.Cloud, inVer.Edge, cur.Cloud, cur.Edge)
	}
	if src > 0 && curSrc > src {
		return fmt.Sprintf("twin.%s.%s of device %s not applied: its timestamp %d ms is older than the stored value's %d ms; this is a replayed or out-of-order update (send the current time as timestamp)",
			prop, side, dev, src, curSrc)
	}
	return ""
}

// commit persists and installs changes of one device and queues the
// replies. wmu held.
func (m *Manager) commit(d *device, changes []change, p *pending, now time.Time) error {
	recs := make([]Record, 0, len(changes))
	for _, c := range changes {
		if c.new == nil {
			recs = append(recs, Record{Op: OpDelTwin, ID: d.id, Prop: c.prop})
		} else {
			recs = append(recs, Record{Op: OpPutTwin, ID: d.id, Prop: c.prop, Twin: c.new.record()})
		}
	}
	if err := m.persist(recs); err != nil {
		return err
	}
	m.mu.Lock()
	for _, c := range changes {
		if c.new == nil {
			delete(d.twins, c.prop)
		} else {
			d.twins[c.prop] = c.new
		}
	}
	m.mu.Unlock()
	for _, c := range changes {
		p.emit(StreamTwin, d.id, c.eventFields(d.id))
	}
	return nil
}

// queueDocAndDelta queues twin/update/document and, if non-empty,
// twin/update/delta for d. mu not needed (wmu held).
func (m *Manager) queueDocAndDelta(d *device, changes []change, eventID string, now time.Time, p *pending) {
	nowMS := m.nowMS(now)
	doc := kubeedge.TwinDocumentMsg{BaseMessage: kubeedge.BaseMessage{EventID: eventID, Timestamp: nowMS}, Twin: make(map[string]*kubeedge.TwinDoc, len(changes))}
	for _, c := range changes {
		wd := &kubeedge.TwinDoc{}
		if c.old != nil {
			wd.Last = c.old.wire(true, true, false)
		}
		if c.new != nil {
			wd.Current = c.new.wire(true, true, false)
		}
		doc.Twin[c.prop] = wd
	}
	if len(doc.Twin) > 0 {
		p.publish(kubeedge.DeviceTopic(d.id, kubeedge.TwinUpdateDocument), doc)
	}
	if delta, ok := m.delta(d, now); ok {
		p.publish(kubeedge.DeviceTopic(d.id, kubeedge.TwinUpdateDelta), delta)
	}
}

// delta is KubeEdge's BuildDeviceTwinDelta: every twin with a non-empty
// expected value is listed; delta[k] = expected where the string forms of
// expected and actual differ.
func (m *Manager) delta(d *device, now time.Time) (kubeedge.TwinDeltaMsg, bool) {
	w := kubeedge.TwinDeltaMsg{BaseMessage: kubeedge.BaseMessage{EventID: kubeedge.NewEventID(), Timestamp: m.nowMS(now)},
		Twin: map[string]*kubeedge.MsgTwin{}, Delta: map[string]json.RawMessage{}}
	for k, t := range d.twins {
		if !t.expected.set() || t.expected.str == "" {
			continue
		}
		if t.expected.str != t.actual.str {
			w.Delta[k] = t.expected.raw
		}
		w.Twin[k] = t.wire(true, true, false)
	}
	return w, len(w.Delta) > 0
}

func (m *Manager) handleUpdate(p *pending, id string, payload []byte, now time.Time) error {
	resTopic := kubeedge.DeviceTopic(id, kubeedge.TwinUpdateResult)
	var in kubeedge.TwinUpdateMsg
	if err := json.Unmarshal(payload, &in); err != nil {
		return m.reject(p, resTopic, "", kubeedge.CodeBadRequest, fmt.Sprintf("twin/update payload for device %s is not valid JSON: %v", id, err), now)
	}
	if in.Twin == nil {
		return m.reject(p, resTopic, in.EventID, kubeedge.CodeBadRequest, fmt.Sprintf("twin/update for device %s has no \"twin\" object; send {\"twin\":{\"<prop>\":{\"actual\":{\"value\":...}}}}", id), now)
	}
	d := m.devices[id]
	if d == nil {
		return m.reject(p, resTopic, in.EventID, kubeedge.CodeNotFound, fmt.Sprintf("device %s is not known on this node; declare it with a Device resource bound to this node", id), now)
	}
	changes, code, reason := m.applyUpdate(d, in.Twin, in.Timestamp, now, "edge")
	if code != 0 {
		return m.reject(p, resTopic, in.EventID, code, reason, now)
	}
	if err := m.commit(d, changes, p, now); err != nil {
		_ = m.reject(p, resTopic, in.EventID, kubeedge.CodeInternal, "twin state could not be saved on the edge: "+err.Error(), now)
		return err
	}
	m.updates.Add(1)
	res := kubeedge.TwinUpdateMsg{BaseMessage: kubeedge.BaseMessage{EventID: in.EventID, Timestamp: m.nowMS(now)}, Twin: make(map[string]*kubeedge.MsgTwin, len(changes))}
	for _, c := range changes {
		if c.new == nil {
			res.Twin[c.prop] = nil
			continue
		}
		if !c.new.declared && c.actChg {
			m.undeclaredReports.Add(1)
		}
		res.Twin[c.prop] = c.new.wire(c.expChg, c.actChg, true)
	}
	p.publish(resTopic, res)
	m.queueDocAndDelta(d, changes, in.EventID, now, p)
	return nil
}

func (m *Manager) handleData(p *pending, id string, payload []byte, now time.Time) error {
	var in kubeedge.DataUpdateMsg
	if err := json.Unmarshal(payload, &in); err != nil {
		m.rejected.Add(1)
		return fmt.Errorf("%w: data/update payload for device %s is not valid JSON: %v", ErrRejected, id, err)
	}
	d := m.devices[id]
	if d == nil || len(in.Data) == 0 {
		return nil // third-party data for devices we do not twin: not ours
	}
	twins := make(map[string]*kubeedge.MsgTwin, len(in.Data))
	for k, v := range in.Data {
		if v != nil {
			twins[k] = &kubeedge.MsgTwin{Actual: &kubeedge.TwinValue{Value: v.Value, Metadata: &kubeedge.ValueMetadata{Timestamp: v.Metadata.Timestamp}}}
		}
	}
	changes, code, reason := m.applyUpdate(d, twins, in.Timestamp, now, "data")
	if code != 0 {
		m.rejected.Add(1)
		return fmt.Errorf("%w: %s", ErrRejected, reason)
	}
	if err := m.commit(d, changes, p, now); err != nil {
		return err
	}
	m.updates.Add(1)
	for _, c := range changes {
		if c.new != nil && !c.new.declared {
			m.undeclaredReports.Add(1)
		}
	}
	return nil
}

func (m *Manager) handleGet(p *pending, id string, payload []byte, now time.Time) error {
	resTopic := kubeedge.DeviceTopic(id, kubeedge.TwinGetResult)
	var in kubeedge.StateUpdateMsg
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &in); err != nil {
			return m.reject(p, resTopic, "", kubeedge.CodeBadRequest, fmt.Sprintf("twin/get payload for device %s is not valid JSON: %v", id, err), now)
		}
	}
	d := m.devices[id]
	if d == nil {
		return m.reject(p, resTopic, in.EventID, kubeedge.CodeNotFound, fmt.Sprintf("Device %s not found while getting twin; declare it with a Device resource bound to this node", id), now)
	}
	res := kubeedge.TwinUpdateMsg{BaseMessage: kubeedge.BaseMessage{EventID: in.EventID, Timestamp: m.nowMS(now)}, Twin: make(map[string]*kubeedge.MsgTwin, len(d.twins))}
	for k, t := range d.twins {
		res.Twin[k] = t.wire(true, true, false)
	}
	p.publish(resTopic, res)
	return nil
}

func (m *Manager) handleState(p *pending, id string, payload []byte, now time.Time) error {
	resTopic := kubeedge.DeviceTopic(id, kubeedge.StateUpdateResult)
	var in kubeedge.StateUpdateMsg
	if err := json.Unmarshal(payload, &in); err != nil {
		return m.reject(p, resTopic, "", kubeedge.CodeBadRequest, fmt.Sprintf("state/update payload for device %s is not valid JSON: %v", id, err), now)
	}
	if in.State != "online" && in.State != "offline" && in.State != "unknown" {
		return m.reject(p, resTopic, in.EventID, kubeedge.CodeBadRequest, fmt.Sprintf("state/update for device %s has state %s; use \"online\", \"offline\" or \"unknown\"", id, quoteShort(in.State)), now)
	}
	d := m.devices[id]
	if d == nil {
		return m.reject(p, resTopic, in.EventID, kubeedge.CodeNotFound, fmt.Sprintf("device %s is not known on this node; declare it with a Device resource bound to this node", id), now)
	}
	last := now.UTC().Format(LastOnlineLayout)
	changed := d.state != in.State
	if changed {
		nd := *d
		nd.state, nd.lastOnline = in.State, last
		if err := m.persist([]Record{{Op: OpPutDevice, Device: nd.record()}}); err != nil {
			_ = m.reject(p, resTopic, in.EventID, kubeedge.CodeInternal, "device state could not be saved on the edge: "+err.Error(), now)
			return err
		}
	}
	m.mu.Lock()
	d.state, d.lastOnline = in.State, last
	m.mu.Unlock()
	if changed {
		p.emit(StreamDeviceState, d.id, map[string]any{"device": d.id, "state": d.state, "last_online": last})
	}
	p.publish(resTopic, kubeedge.DeviceStateMsg{BaseMessage: kubeedge.BaseMessage{EventID: kubeedge.NewEventID(), Timestamp: m.nowMS(now)},
		Device: kubeedge.Device{Name: d.name, State: d.state, LastOnline: last}})
	return nil
}

func (m *Manager) handleMemGet(p *pending, node string, payload []byte, now time.Time) error {
	resTopic := kubeedge.NodeTopic(node, kubeedge.MembershipGetResult)
	var in kubeedge.StateUpdateMsg
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &in); err != nil {
			return m.reject(p, resTopic, "", kubeedge.CodeBadRequest, fmt.Sprintf("membership/get payload for node %s is not valid JSON: %v", node, err), now)
		}
	}
	res := kubeedge.MembershipGetResultMsg{BaseMessage: kubeedge.BaseMessage{EventID: in.EventID, Timestamp: m.nowMS(now)}, Devices: []kubeedge.Device{}}
	for _, d := range m.sorted() {
		if m.nodeOf(d) != node {
			continue
		}
		res.Devices = append(res.Devices, kubeedge.Device{ID: d.id, Name: d.name, Description: d.description, State: d.state, LastOnline: d.lastOnline})
	}
	p.publish(resTopic, res)
	return nil
}
