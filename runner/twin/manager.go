package twin

import (
	"context"
	"errors"
	"log/slog"
	"sort"
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
	// without locks held, in change order for each device (changes of
	// different devices may interleave); it may call Values but must not
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

// Manager holds the twins of one edge node. Methods are safe for concurrent
// use; writes are serialised, Values only takes a read lock.
type Manager struct {
	opts     Options
	log      *slog.Logger
	clk      clock.Clock
	store    Store
	maxValue int

	wmu          sync.Mutex     // serialises writers (state changes, persistence); never held while publishing
	out          *outbox        // orders publishing per device, outside wmu
	delivering   sync.WaitGroup // deliveries in progress; Close waits for them
	mu           sync.RWMutex
	devices      map[string]*device
	sinceCompact int
	closed       bool

	updates, rejected, undeclaredReports atomic.Int64
}

// New loads the persisted state from opts.Store and returns a Manager.
func New(ctx context.Context, opts Options) (*Manager, error) {
	m := &Manager{opts: opts, log: opts.Logger, clk: opts.Clock, store: opts.Store, maxValue: opts.MaxValueBytes, out: newOutbox()}
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

// Close compacts the store and closes it, after the replies and events of
// earlier calls have been delivered (so nothing reaches the Publisher or
// OnEvent after Close returns). Close the broker first so that no delivery
// waits on a slow subscriber.
func (m *Manager) Close() error {
	m.wmu.Lock()
	if m.closed {
		m.wmu.Unlock()
		return nil
	}
	m.closed = true
	err := m.compact()
	if cerr := m.store.Close(); err == nil {
		err = cerr
	}
	m.wmu.Unlock()
	m.delivering.Wait()
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
