package twin

import (
	"fmt"
	"sort"
	"time"

	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
)

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

func (m *Manager) nodeOf(d *device) string {
	if d.node == "" {
		return m.opts.Node
	}
	return d.node
}

func (m *Manager) sorted() []*device {
	out := make([]*device, 0, len(m.devices))
	for _, d := range m.devices {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
