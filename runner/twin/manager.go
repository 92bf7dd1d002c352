package twin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
)

// Internal stream names passed to Options.OnEvent.
const (
	// StreamTwin carries one event per property change: device, property,
	// actual, expected, version, undeclared, source ("edge", "cloud" or
	// "data"), type and, for removals, deleted.
	StreamTwin = "twin"
	// StreamDeviceState carries device, state (online/offline/unknown) and
	// last_online when a device's state changes.
	StreamDeviceState = "device_state"
	// StreamMembership carries node, added and removed ([]string device ids)
	// when SetDevices changes the devices of a node.
	StreamMembership = "membership"
)

// LastOnlineLayout is the format of last_online, as in KubeEdge.
const LastOnlineLayout = kubeedge.LastOnlineLayout

// DefaultSnapshotEvery is how many log records trigger a compaction.
const DefaultSnapshotEvery = 10000

// ErrRejected is wrapped by HandleMessage errors for requests that were
// answered with an error result (bad payload, unknown device, stale update).
// Callers usually log these at debug level.
var ErrRejected = errors.New("twin request rejected")

// ErrUnknownTopic is returned by HandleMessage for topics outside the protocol.
var ErrUnknownTopic = errors.New("twin: topic is not part of the device twin protocol")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("twin: manager is closed")

// Publisher sends MQTT messages (the runner adapts the embedded broker).
type Publisher interface {
	Publish(topic string, payload []byte, qos byte, retain bool) error
}

// PublisherFunc adapts a function to a Publisher.
type PublisherFunc func(topic string, payload []byte, qos byte, retain bool) error

// Publish calls f.
func (f PublisherFunc) Publish(topic string, payload []byte, qos byte, retain bool) error {
	return f(topic, payload, qos, retain)
}

// Options configure a Manager. The zero value works: in-memory store, no
// publishing, real clock, discarded logs.
type Options struct {
	// Node is this edge node's name; devices without a Node belong to it.
	Node string
	// Publisher sends results, deltas, documents and membership updates.
	// Nil drops them (state is still kept).
	Publisher Publisher
	// QoS is the MQTT QoS of published messages (KubeEdge: 0).
	QoS byte
	// Store persists twin state. Nil uses a fresh MemStore.
	Store Store
	// SnapshotEvery compacts the store after this many log records
	// (0: DefaultSnapshotEvery; negative: only on Close).
	SnapshotEvery int
	// MaxValueBytes caps one value's JSON size (0: DefaultMaxValueBytes).
	MaxValueBytes int
	// OnEvent receives every change as an event on an internal stream
	// (StreamTwin, StreamDeviceState, StreamMembership). It is called
	// without locks held, in change order; it may call Values but must not
	// call HandleMessage or SetDevices.
	OnEvent func(stream string, device string, fields map[string]any, t time.Time)
	// Clock is the time source (nil: clock.Real{}).
	Clock clock.Clock
	// Logger receives diagnostics (nil: discarded).
	Logger *slog.Logger
}

// DeviceSpec is a device as declared by the cloud (Device + DeviceModel).
type DeviceSpec struct {
	// ID is "namespace/name".
	ID string
	// Node is the node the device is bound to ("" = this node).
	Node string
	// Description is free text shown in membership results.
	Description string
	// Properties are the declared twin properties.
	Properties []PropertySpec
}

// PropertySpec is one declared property.
type PropertySpec struct {
	// Name is the property name (KubeEdge key charset, up to 128 bytes).
	Name string
	// Type is the model type (INT, FLOAT, DOUBLE, BOOLEAN, STRING, ...).
	Type string
	// Desired is the desired value: a string (KubeEdge form; "" = none),
	// json.RawMessage, or any JSON-encodable value; nil = none.
	Desired any
}

// Stats are counters of a Manager.
type Stats struct {
	Devices           int   // devices known
	Twins             int   // property twins known
	UndeclaredTwins   int   // twins the device model does not declare
	Updates           int64 // accepted twin/update and data/update messages
	Rejected          int64 // requests answered with an error result
	UndeclaredReports int64 // reported values for undeclared properties
}

type twinState struct {
	key              string // "twin_" + property
	expected, actual value
	expTS, actTS     int64 // edge acceptance time (ms)
	expSrc, actSrc   int64 // sender time (ms)
	typ              string
	optional         bool
	declared         bool
	expVer, actVer   Version
	rev              int64
}

type device struct {
	id, name, node, description string
	state, lastOnline           string
	twins                       map[string]*twinState
}

// Manager holds the twins of one edge node. Methods are safe for concurrent
// use; writes are serialised, Values only takes a read lock.
type Manager struct {
	opts     Options
	log      *slog.Logger
	clk      clock.Clock
	store    Store
	maxValue int

	wmu          sync.Mutex // serialises writers (state changes, persistence, publishing)
	mu           sync.RWMutex
	devices      map[string]*device
	sinceCompact int
	closed       bool

	updates, rejected, undeclaredReports atomic.Int64
}

// New loads the persisted state from opts.Store and returns a Manager.
func New(ctx context.Context, opts Options) (*Manager, error) {
	m := &Manager{opts: opts, log: opts.Logger, clk: opts.Clock, store: opts.Store, maxValue: opts.MaxValueBytes}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.clk == nil {
		m.clk = clock.Real{}
	}
	if m.store == nil {
		m.store = NewMemStore()
	}
	if m.maxValue <= 0 {
		m.maxValue = DefaultMaxValueBytes
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	recs, err := m.store.Load()
	if err != nil {
		return nil, err
	}
	m.devices = make(map[string]*device, len(recs))
	for _, r := range recs {
		d := &device{id: r.ID, name: r.Name, node: r.Node, description: r.Description,
			state: r.State, lastOnline: r.LastOnline, twins: make(map[string]*twinState, len(r.Twins))}
		for k, tr := range r.Twins {
			t, err := twinFromRecord(k, tr)
			if err != nil {
				m.log.Warn("twin: dropping unreadable persisted twin", "device", r.ID, "property", k, "err", err)
				continue
			}
			d.twins[k] = t
		}
		m.devices[r.ID] = d
	}
	return m, nil
}

func twinFromRecord(k string, tr *TwinRecord) (*twinState, error) {
	t := &twinState{key: "twin_" + k, typ: tr.Type, optional: tr.Optional, declared: tr.Declared,
		expVer: tr.ExpectedVersion, actVer: tr.ActualVersion, rev: tr.Rev}
	if tr.Expected != nil && len(tr.Expected.Value) > 0 {
		v, err := makeValue(tr.Expected.Value, "")
		if err != nil {
			return nil, err
		}
		v.dec, _ = typedValue(v.str, v.dec, t.typ)
		t.expected, t.expTS, t.expSrc = v, tr.Expected.Timestamp, tr.Expected.Source
	}
	if tr.Actual != nil && len(tr.Actual.Value) > 0 {
		v, err := makeValue(tr.Actual.Value, "")
		if err != nil {
			return nil, err
		}
		v.dec, _ = typedValue(v.str, v.dec, t.typ)
		t.actual, t.actTS, t.actSrc = v, tr.Actual.Timestamp, tr.Actual.Source
	}
	return t, nil
}

func (t *twinState) record() *TwinRecord {
	r := &TwinRecord{Type: t.typ, Optional: t.optional, Declared: t.declared,
		ExpectedVersion: t.expVer, ActualVersion: t.actVer, Rev: t.rev}
	if t.expected.set() {
		r.Expected = &ValueRecord{Value: t.expected.raw, Timestamp: t.expTS, Source: t.expSrc}
	}
	if t.actual.set() {
		r.Actual = &ValueRecord{Value: t.actual.raw, Timestamp: t.actTS, Source: t.actSrc}
	}
	return r
}

func (d *device) record() *DeviceRecord {
	return &DeviceRecord{ID: d.id, Name: d.name, Node: d.node, Description: d.description,
		State: d.state, LastOnline: d.lastOnline}
}

// wire renders a twin in KubeEdge's JSON. exp/act select the value sides;
// versions adds expected_version/actual_version for the selected sides.
func (t *twinState) wire(exp, act, versions bool) *kubeedge.MsgTwin {
	opt := t.optional
	w := &kubeedge.MsgTwin{Optional: &opt, Metadata: &kubeedge.TypeMetadata{Type: t.typ}, Undeclared: !t.declared}
	if exp && t.expected.set() {
		w.Expected = &kubeedge.TwinValue{Value: t.expected.raw, Metadata: &kubeedge.ValueMetadata{Timestamp: t.expTS}}
		if versions {
			v := t.expVer
			w.ExpectedVersion = &v
		}
	}
	if act && t.actual.set() {
		w.Actual = &kubeedge.TwinValue{Value: t.actual.raw, Metadata: &kubeedge.ValueMetadata{Timestamp: t.actTS}}
		if versions {
			v := t.actVer
			w.ActualVersion = &v
		}
	}
	return w
}

func (m *Manager) nowMS(now time.Time) int64 { return now.UnixMilli() }

// pending collects what one write produces, to be sent after persisting.
type pending struct {
	pubs   []pub
	events []event
}

type pub struct {
	topic string
	body  any
}

type event struct {
	stream, device string
	fields         map[string]any
}

func (p *pending) publish(topic string, body any) { p.pubs = append(p.pubs, pub{topic, body}) }
func (p *pending) emit(stream, dev string, f map[string]any) {
	p.events = append(p.events, event{stream, dev, f})
}

// flush publishes and emits; called with wmu held, mu not held.
func (m *Manager) flush(p *pending, now time.Time) error {
	var first error
	for _, x := range p.pubs {
		b, err := json.Marshal(x.body)
		if err == nil && m.opts.Publisher != nil {
			err = m.opts.Publisher.Publish(x.topic, b, m.opts.QoS, false)
		}
		if err != nil {
			m.log.Warn("twin: publish failed", "topic", x.topic, "err", err)
			if first == nil {
				first = fmt.Errorf("twin: publish %s: %w", x.topic, err)
			}
		}
	}
	if m.opts.OnEvent != nil {
		for _, e := range p.events {
			m.opts.OnEvent(e.stream, e.device, e.fields, now)
		}
	}
	return first
}

// persist appends records and compacts when due; wmu held.
func (m *Manager) persist(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	if err := m.store.Append(recs); err != nil {
		return fmt.Errorf("twin: persist: %w", err)
	}
	m.sinceCompact += len(recs)
	every := m.opts.SnapshotEvery
	if every == 0 {
		every = DefaultSnapshotEvery
	}
	if every > 0 && m.sinceCompact >= every {
		if err := m.compact(); err != nil {
			m.log.Warn("twin: compaction failed; the log keeps growing", "err", err)
		}
	}
	return nil
}

func (m *Manager) compact() error {
	recs := make([]*DeviceRecord, 0, len(m.devices))
	for _, d := range m.devices {
		r := d.record()
		r.Twins = make(map[string]*TwinRecord, len(d.twins))
		for k, t := range d.twins {
			r.Twins[k] = t.record()
		}
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	if err := m.store.Compact(recs); err != nil {
		return err
	}
	m.sinceCompact = 0
	return nil
}

// Close compacts the store and closes it.
func (m *Manager) Close() error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	err := m.compact()
	if cerr := m.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// Stats returns the manager's counters.
func (m *Manager) Stats() Stats {
	m.mu.RLock()
	s := Stats{Devices: len(m.devices)}
	for _, d := range m.devices {
		s.Twins += len(d.twins)
		for _, t := range d.twins {
			if !t.declared {
				s.UndeclaredTwins++
			}
		}
	}
	m.mu.RUnlock()
	s.Updates = m.updates.Load()
	s.Rejected = m.rejected.Load()
	s.UndeclaredReports = m.undeclaredReports.Load()
	return s
}

// Values adds twin_<prop> for each of props that device has: the reported
// (actual) value, or the desired (expected) value when nothing was reported.
// With no props it adds all of the device's twins. Values are typed by the
// declared type (int64, float64, bool, string) or decoded JSON. It takes a
// read lock only and does not allocate once dst holds the keys.
func (m *Manager) Values(device string, props []string, dst map[string]any) {
	m.mu.RLock()
	d := m.devices[device]
	if d != nil {
		if len(props) == 0 {
			for _, t := range d.twins {
				t.put(dst)
			}
		} else {
			for _, p := range props {
				if t := d.twins[p]; t != nil {
					t.put(dst)
				}
			}
		}
	}
	m.mu.RUnlock()
}

func (t *twinState) put(dst map[string]any) {
	switch {
	case t.actual.set():
		dst[t.key] = t.actual.dec
	case t.expected.set():
		dst[t.key] = t.expected.dec
	}
}

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
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.closed {
		return ErrClosed
	}
	now := m.clk.Now()
	switch t.Kind {
	case kubeedge.TwinUpdate:
		return m.handleUpdate(t.ID, payload, now)
	case kubeedge.TwinGet:
		return m.handleGet(t.ID, payload, now)
	case kubeedge.StateUpdate:
		return m.handleState(t.ID, payload, now)
	case kubeedge.MembershipGet:
		return m.handleMemGet(t.Node, payload, now)
	case kubeedge.DataUpdate:
		return m.handleData(t.ID, payload, now)
	}
	return nil
}

// reject publishes an error result and returns the matching error.
func (m *Manager) reject(topic, eventID string, code int, reason string, now time.Time) error {
	m.rejected.Add(1)
	p := &pending{}
	p.publish(topic, kubeedge.ResultMsg{BaseMessage: kubeedge.BaseMessage{EventID: eventID, Timestamp: m.nowMS(now)}, Code: code, Reason: reason})
	if err := m.flush(p, now); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s", ErrRejected, reason)
}

// change is one property change computed from a request.
type change struct {
	prop           string
	old, new       *twinState // old nil = added; new nil = deleted
	expChg, actChg bool
	source         string
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
		f := map[string]any{"device": d.id, "property": c.prop, "source": c.source}
		if c.new == nil {
			f["actual"], f["expected"], f["deleted"] = nil, nil, true
			f["version"], f["undeclared"], f["type"] = c.old.rev+1, !c.old.declared, c.old.typ
		} else {
			f["actual"], f["expected"] = c.new.actual.dec, c.new.expected.dec
			f["version"], f["undeclared"], f["type"] = c.new.rev, !c.new.declared, c.new.typ
		}
		p.emit(StreamTwin, d.id, f)
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

func (m *Manager) handleUpdate(id string, payload []byte, now time.Time) error {
	resTopic := kubeedge.DeviceTopic(id, kubeedge.TwinUpdateResult)
	var in kubeedge.TwinUpdateMsg
	if err := json.Unmarshal(payload, &in); err != nil {
		return m.reject(resTopic, "", kubeedge.CodeBadRequest, fmt.Sprintf("twin/update payload for device %s is not valid JSON: %v", id, err), now)
	}
	if in.Twin == nil {
		return m.reject(resTopic, in.EventID, kubeedge.CodeBadRequest, fmt.Sprintf("twin/update for device %s has no \"twin\" object; send {\"twin\":{\"<prop>\":{\"actual\":{\"value\":...}}}}", id), now)
	}
	d := m.devices[id]
	if d == nil {
		return m.reject(resTopic, in.EventID, kubeedge.CodeNotFound, fmt.Sprintf("device %s is not known on this node; declare it with a Device resource bound to this node", id), now)
	}
	changes, code, reason := m.applyUpdate(d, in.Twin, in.Timestamp, now, "edge")
	if code != 0 {
		return m.reject(resTopic, in.EventID, code, reason, now)
	}
	p := &pending{}
	if err := m.commit(d, changes, p, now); err != nil {
		_ = m.reject(resTopic, in.EventID, kubeedge.CodeInternal, "twin state could not be saved on the edge: "+err.Error(), now)
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
	return m.flush(p, now)
}

func (m *Manager) handleData(id string, payload []byte, now time.Time) error {
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
	p := &pending{}
	if err := m.commit(d, changes, p, now); err != nil {
		return err
	}
	m.updates.Add(1)
	for _, c := range changes {
		if c.new != nil && !c.new.declared {
			m.undeclaredReports.Add(1)
		}
	}
	return m.flush(p, now)
}

func (m *Manager) handleGet(id string, payload []byte, now time.Time) error {
	resTopic := kubeedge.DeviceTopic(id, kubeedge.TwinGetResult)
	var in kubeedge.StateUpdateMsg
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &in); err != nil {
			return m.reject(resTopic, "", kubeedge.CodeBadRequest, fmt.Sprintf("twin/get payload for device %s is not valid JSON: %v", id, err), now)
		}
	}
	d := m.devices[id]
	if d == nil {
		return m.reject(resTopic, in.EventID, kubeedge.CodeNotFound, fmt.Sprintf("Device %s not found while getting twin; declare it with a Device resource bound to this node", id), now)
	}
	res := kubeedge.TwinUpdateMsg{BaseMessage: kubeedge.BaseMessage{EventID: in.EventID, Timestamp: m.nowMS(now)}, Twin: make(map[string]*kubeedge.MsgTwin, len(d.twins))}
	for k, t := range d.twins {
		res.Twin[k] = t.wire(true, true, false)
	}
	p := &pending{}
	p.publish(resTopic, res)
	return m.flush(p, now)
}

func (m *Manager) handleState(id string, payload []byte, now time.Time) error {
	resTopic := kubeedge.DeviceTopic(id, kubeedge.StateUpdateResult)
	var in kubeedge.StateUpdateMsg
	if err := json.Unmarshal(payload, &in); err != nil {
		return m.reject(resTopic, "", kubeedge.CodeBadRequest, fmt.Sprintf("state/update payload for device %s is not valid JSON: %v", id, err), now)
	}
	if in.State != "online" && in.State != "offline" && in.State != "unknown" {
		return m.reject(resTopic, in.EventID, kubeedge.CodeBadRequest, fmt.Sprintf("state/update for device %s has state %s; use \"online\", \"offline\" or \"unknown\"", id, quoteShort(in.State)), now)
	}
	d := m.devices[id]
	if d == nil {
		return m.reject(resTopic, in.EventID, kubeedge.CodeNotFound, fmt.Sprintf("device %s is not known on this node; declare it with a Device resource bound to this node", id), now)
	}
	p := &pending{}
	last := now.UTC().Format(LastOnlineLayout)
	changed := d.state != in.State
	if changed {
		nd := *d
		nd.state, nd.lastOnline = in.State, last
		if err := m.persist([]Record{{Op: OpPutDevice, Device: nd.record()}}); err != nil {
			_ = m.reject(resTopic, in.EventID, kubeedge.CodeInternal, "device state could not be saved on the edge: "+err.Error(), now)
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
	return m.flush(p, now)
}

func (m *Manager) nodeOf(d *device) string {
	if d.node == "" {
		return m.opts.Node
	}
	return d.node
}

func (m *Manager) handleMemGet(node string, payload []byte, now time.Time) error {
	resTopic := kubeedge.NodeTopic(node, kubeedge.MembershipGetResult)
	var in kubeedge.StateUpdateMsg
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &in); err != nil {
			return m.reject(resTopic, "", kubeedge.CodeBadRequest, fmt.Sprintf("membership/get payload for node %s is not valid JSON: %v", node, err), now)
		}
	}
	res := kubeedge.MembershipGetResultMsg{BaseMessage: kubeedge.BaseMessage{EventID: in.EventID, Timestamp: m.nowMS(now)}, Devices: []kubeedge.Device{}}
	for _, d := range m.sorted() {
		if m.nodeOf(d) != node {
			continue
		}
		res.Devices = append(res.Devices, kubeedge.Device{ID: d.id, Name: d.name, Description: d.description, State: d.state, LastOnline: d.lastOnline})
	}
	p := &pending{}
	p.publish(resTopic, res)
	return m.flush(p, now)
}

func (m *Manager) sorted() []*device {
	out := make([]*device, 0, len(m.devices))
	for _, d := range m.devices {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

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

func (m *Manager) maxValueBytes() int {
	if m.maxValue > 0 {
		return m.maxValue
	}
	return DefaultMaxValueBytes
}

// Devices returns a copy of every device with its twins, sorted by id
// (for the API and dashboard).
func (m *Manager) Devices() []*DeviceRecord {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*DeviceRecord, 0, len(m.devices))
	for _, d := range m.devices {
		r := d.record()
		r.Twins = make(map[string]*TwinRecord, len(d.twins))
		for k, t := range d.twins {
			r.Twins[k] = t.record()
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
