package twin

import (
	"encoding/json"
	"sort"
	"sync"
)

// ValueRecord is a persisted twin value.
type ValueRecord struct {
	// Value is the value's compact JSON.
	Value json.RawMessage `json:"value"`
	// Timestamp is when the edge accepted the value (unix ms).
	Timestamp int64 `json:"timestamp,omitempty"`
	// Source is the sender's timestamp of the value (unix ms, 0 if unknown);
	// a report older than it is rejected.
	Source int64 `json:"source,omitempty"`
}

// TwinRecord is the persisted state of one property twin.
type TwinRecord struct {
	Expected        *ValueRecord `json:"expected,omitempty"`
	Actual          *ValueRecord `json:"actual,omitempty"`
	Type            string       `json:"type,omitempty"`
	Optional        bool         `json:"optional,omitempty"`
	Declared        bool         `json:"declared,omitempty"`
	ExpectedVersion Version      `json:"expected_version"`
	ActualVersion   Version      `json:"actual_version"`
	// Rev counts every change of this twin (the "version" of twin events).
	Rev int64 `json:"rev"`
}

// DeviceRecord is the persisted state of one device.
type DeviceRecord struct {
	ID          string                 `json:"id"`
	Name        string                 `json:"name,omitempty"`
	Node        string                 `json:"node,omitempty"`
	Description string                 `json:"description,omitempty"`
	State       string                 `json:"state,omitempty"`
	LastOnline  string                 `json:"last_online,omitempty"`
	Twins       map[string]*TwinRecord `json:"twins,omitempty"`
}

// Record operations.
const (
	OpPutDevice = "put_device" // Device carries the device (its Twins are ignored)
	OpDelDevice = "del_device" // ID names the device
	OpPutTwin   = "put_twin"   // ID, Prop, Twin
	OpDelTwin   = "del_twin"   // ID, Prop
)

// Record is one change in the append log. Records carry full post-change
// state, so replaying a record twice is harmless (idempotent).
type Record struct {
	Op     string        `json:"op"`
	ID     string        `json:"id,omitempty"`
	Prop   string        `json:"prop,omitempty"`
	Device *DeviceRecord `json:"device,omitempty"`
	Twin   *TwinRecord   `json:"twin,omitempty"`
}

// Store persists twin state: a snapshot plus an append log of records.
// Implementations need not be safe for concurrent use; the Manager
// serialises calls.
type Store interface {
	// Load returns the persisted devices (snapshot with the log applied).
	Load() ([]*DeviceRecord, error)
	// Append durably adds records to the log.
	Append(recs []Record) error
	// Compact replaces snapshot and log with the given full state.
	Compact(devices []*DeviceRecord) error
	// Close releases the store.
	Close() error
}

// applyRecord applies r to the device map.
func applyRecord(devs map[string]*DeviceRecord, r Record) {
	switch r.Op {
	case OpPutDevice:
		if r.Device == nil {
			return
		}
		d := *r.Device
		if old := devs[d.ID]; old != nil {
			d.Twins = old.Twins
		} else {
			d.Twins = nil
		}
		if d.Twins == nil {
			d.Twins = map[string]*TwinRecord{}
		}
		devs[d.ID] = &d
	case OpDelDevice:
		delete(devs, r.ID)
	case OpPutTwin:
		d := devs[r.ID]
		if d == nil || r.Twin == nil {
			return
		}
		t := *r.Twin
		d.Twins[r.Prop] = &t
	case OpDelTwin:
		if d := devs[r.ID]; d != nil {
			delete(d.Twins, r.Prop)
		}
	}
}

// sortedDevices returns the map's devices ordered by id.
func sortedDevices(devs map[string]*DeviceRecord) []*DeviceRecord {
	out := make([]*DeviceRecord, 0, len(devs))
	for _, d := range devs {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// cloneDevices deep-copies records through JSON (records are small and this
// runs only on load and compaction).
func cloneDevices(in []*DeviceRecord) []*DeviceRecord {
	b, err := json.Marshal(in)
	if err != nil {
		return nil
	}
	var out []*DeviceRecord
	if err := json.Unmarshal(b, &out); err != nil {
		return nil
	}
	for _, d := range out {
		if d.Twins == nil {
			d.Twins = map[string]*TwinRecord{}
		}
	}
	return out
}

// MemStore is a Store in memory: state survives a Manager being closed and
// reopened on the same MemStore, not a process restart. Its zero value is
// ready to use.
type MemStore struct {
	mu      sync.Mutex
	devs    map[string]*DeviceRecord
	appends int
}

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore { return &MemStore{} }

// Load returns a copy of the stored devices.
func (s *MemStore) Load() ([]*DeviceRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneDevices(sortedDevices(s.devs)), nil
}

// Append applies the records to the stored state.
func (s *MemStore) Append(recs []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.devs == nil {
		s.devs = map[string]*DeviceRecord{}
	}
	for _, r := range recs {
		// Copy what the record points to: the caller may reuse it.
		if r.Device != nil {
			d := *r.Device
			r.Device = &d
		}
		if r.Twin != nil {
			t := copyTwinRecord(r.Twin)
			r.Twin = t
		}
		applyRecord(s.devs, r)
	}
	s.appends += len(recs)
	return nil
}

// Compact replaces the stored state.
func (s *MemStore) Compact(devices []*DeviceRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devs = map[string]*DeviceRecord{}
	for _, d := range cloneDevices(devices) {
		s.devs[d.ID] = d
	}
	s.appends = 0
	return nil
}

// Close does nothing; the state stays for a later Load.
func (s *MemStore) Close() error { return nil }

func copyTwinRecord(t *TwinRecord) *TwinRecord {
	c := *t
	if t.Expected != nil {
		e := *t.Expected
		c.Expected = &e
	}
	if t.Actual != nil {
		a := *t.Actual
		c.Actual = &a
	}
	return &c
}
