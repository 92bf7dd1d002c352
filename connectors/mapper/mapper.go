// Package mapper is Eddy's in-process KubeEdge device mapper. A protocol
// driver (connectors/modbus) talks to the devices; the mapper speaks
// KubeEdge's mapper protocol (pipeline/devices/kubeedge) to the node's
// twins and to the broker, as a KubeEdge mapper would over MQTT:
//
//   - every reading is reported as the property's actual value
//     (.../twin/update), and published on the mapper data topic
//     $ke/events/device/{ns}/{name}/data/update at most once per
//     reportCycle, so pipelines and third-party consumers read it like any
//     topic;
//   - a device going online or offline is a .../state/update;
//   - desired values arriving in .../twin/update/delta are queued and
//     written to the device by one background writer. A write that fails
//     while the device does not answer stays queued and is retried when
//     it answers again (online, a reading, a new delta); a write the device
//     refuses while online (out of range, Modbus exception) is dropped until
//     the desired value changes; a written value waits for the next reading
//     to confirm it, so the delta it answers is not written twice.
//
// It owns this policy and nothing else: connections are the driver's,
// twins the twin manager's (reached through Options.Report), MQTT the
// broker's (Options.Publish). It must not import runner packages.
package mapper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/modbus"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
)

// DefaultWriteTimeout bounds one write of a desired value.
const DefaultWriteTimeout = 5 * time.Second

// Driver talks to the devices of one protocol; *modbus.Mapper is one. The
// driver reports readings and state changes to the Mapper's OnReading and
// OnState.
type Driver interface {
	// Start begins polling devs; polling stops when ctx ends or on Close.
	Start(ctx context.Context, devs []devices.Device) error
	// Update replaces the polled devices.
	Update(devs []devices.Device) error
	// Write sets a property of a device to value (the desired value's
	// text, parsed by the property's type).
	Write(ctx context.Context, deviceID, property string, value any) error
	// Close stops polling and closes connections.
	Close() error
}

// Options configure a Mapper. Report is required; the rest works at its
// zero value.
type Options struct {
	// Report hands a mapper message (twin/update, state/update; the topic
	// says which) to the node's twins, as a KubeEdge mapper publishes it to
	// edgecore. Called from the driver's polling goroutines.
	Report func(topic string, payload []byte)
	// Publish sends a data/update message to the broker; nil drops them.
	Publish func(topic string, payload []byte) error
	// WriteTimeout bounds one write (default DefaultWriteTimeout).
	WriteTimeout time.Duration
	// Clock is the time source (nil: the real clock).
	Clock clock.Clock
	// Logger receives writes and state changes (nil: discarded).
	Logger *slog.Logger
}

// Mapper runs a Driver as a KubeEdge mapper. Create it with New, hand its
// OnReading and OnState to the driver, subscribe OnDelta to
// kubeedge.DeltaFilter, then Start (with Declare first when the devices'
// twins are declared in between).
type Mapper struct {
	opts Options
	log  *slog.Logger
	clk  clock.Clock

	mu     sync.RWMutex
	byID   map[string]*devices.Device // the polled devices
	drv    Driver
	cancel context.CancelFunc
	wg     sync.WaitGroup

	repMu      sync.Mutex
	lastReport map[string]time.Time // "id\x00prop" -> last data/update

	wmu     sync.Mutex
	pending map[string]map[string]string // device -> property -> desired text to write
	written map[string]map[string]string // device -> property -> written, not yet read back
	online  map[string]bool
	wake    chan struct{}
}

// New returns a Mapper; it does nothing until Start.
func New(opts Options) *Mapper {
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Report == nil {
		opts.Report = func(string, []byte) {}
	}
	return &Mapper{opts: opts, log: opts.Logger, clk: opts.Clock, byID: map[string]*devices.Device{},
		lastReport: map[string]time.Time{},
		pending:    map[string]map[string]string{}, written: map[string]map[string]string{},
		online: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// Start starts the writer and the driver with devs (resolved devices of
// the driver's protocol).
func (m *Mapper) Start(ctx context.Context, drv Driver, devs []devices.Device) error {
	m.mu.Lock()
	if m.drv != nil {
		m.mu.Unlock()
		return errors.New("mapper: already started")
	}
	ctx, m.cancel = context.WithCancel(ctx)
	m.drv = drv
	m.setLocked(devs)
	m.mu.Unlock()
	m.wg.Add(1)
	go m.writeLoop(ctx)
	if err := drv.Start(ctx, devs); err != nil {
		return fmt.Errorf("mapper: starting the driver: %w", err)
	}
	return nil
}

// SetDevices replaces the polled devices: new ones start, removed ones
// stop, and queued writes of removed devices are dropped.
func (m *Mapper) SetDevices(devs []devices.Device) error {
	m.mu.RLock()
	drv := m.drv
	m.mu.RUnlock()
	if drv == nil {
		return errors.New("mapper: SetDevices before Start")
	}
	m.Declare(devs)
	return drv.Update(devs)
}

// Declare makes devs the mapper's devices without changing what the
// driver polls: deltas of these devices are queued from now on, readings
// of others are ignored, and queued writes of devices no longer listed
// are dropped. It may be called before Start.
//
// A caller that also declares the devices' twins calls Declare first, so
// that the twins' first deltas (the desired values) are queued, and Start
// or SetDevices after, so that the driver reports states and readings of
// devices whose twins exist: drivers report a state only when it changes,
// so a first "offline" refused for an unknown twin is never sent again.
func (m *Mapper) Declare(devs []devices.Device) {
	m.mu.Lock()
	m.setLocked(devs)
	m.mu.Unlock()
	m.wmu.Lock()
	for id := range m.pending {
		if !m.Polls(id) {
			delete(m.pending, id)
			delete(m.written, id)
		}
	}
	m.wmu.Unlock()
}

func (m *Mapper) setLocked(devs []devices.Device) {
	m.byID = make(map[string]*devices.Device, len(devs))
	for i := range devs {
		d := devs[i]
		m.byID[d.ID()] = &d
	}
}

// Polls reports whether the mapper polls the device id.
func (m *Mapper) Polls(id string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.byID[id] != nil
}

func (m *Mapper) device(id string) *devices.Device {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.byID[id]
}

// Close stops the writer and the driver.
func (m *Mapper) Close() error {
	m.mu.Lock()
	drv, cancel := m.drv, m.cancel
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	var err error
	if drv != nil {
		err = drv.Close()
	}
	m.wg.Wait()
	return err
}

// kubeEdgeType is the lower-case type name KubeEdge puts in metadata.
func kubeEdgeType(t devices.PropertyType) string { return strings.ToLower(string(t)) }

// OnReading reports a reading: as the twin's actual value on every
// reading, and on the mapper data topic at most once per reportCycle. A
// reading also confirms a write and lets pending writes try again.
func (m *Mapper) OnReading(rd modbus.Reading) {
	dev := m.device(rd.DeviceID)
	if dev == nil {
		return
	}
	p := dev.Property(rd.Property)
	if p == nil {
		return
	}
	ms := rd.Time.UnixMilli()
	text := rd.Text()
	typ := kubeEdgeType(rd.Type)
	upd, _ := json.Marshal(kubeedge.TwinUpdateMsg{
		BaseMessage: kubeedge.BaseMessage{EventID: kubeedge.NewEventID(), Timestamp: ms},
		Twin: map[string]*kubeedge.MsgTwin{rd.Property: {
			Actual:   &kubeedge.TwinValue{Value: kubeedge.StringValue(text), Metadata: &kubeedge.ValueMetadata{Timestamp: ms}},
			Metadata: &kubeedge.TypeMetadata{Type: typ},
		}},
	})
	m.opts.Report(kubeedge.DeviceTopic(rd.DeviceID, kubeedge.TwinUpdate), upd)

	if m.opts.Publish != nil && m.reportDue(rd.DeviceID, p, rd.Time) {
		data, _ := json.Marshal(kubeedge.DataUpdateMsg{
			BaseMessage: kubeedge.BaseMessage{EventID: kubeedge.NewEventID(), Timestamp: ms},
			Data: map[string]*kubeedge.DataValue{rd.Property: {
				Value: kubeedge.StringValue(text), Metadata: kubeedge.DataMetadata{Type: typ, Timestamp: ms},
			}},
		})
		topic := kubeedge.DeviceTopic(rd.DeviceID, kubeedge.DataUpdate)
		if err := m.opts.Publish(topic, data); err != nil {
			m.log.Debug("mapper data not published", "topic", topic, "err", err)
		}
	}

	m.wmu.Lock()
	if w, ok := m.written[rd.DeviceID][rd.Property]; ok {
		delete(m.written[rd.DeviceID], rd.Property)
		if w != text {
			m.log.Debug("device does not hold the written value yet", "device", rd.DeviceID, "property", rd.Property, "written", w, "read", text)
		}
	}
	retry := len(m.pending[rd.DeviceID]) > 0
	m.wmu.Unlock()
	if retry {
		m.kick()
	}
}

// reportDue reports whether a reading of p at t goes on the data topic.
func (m *Mapper) reportDue(id string, p *devices.Property, t time.Time) bool {
	if p.ReportCycle <= 0 {
		return true
	}
	k := id + "\x00" + p.Name
	m.repMu.Lock()
	defer m.repMu.Unlock()
	last, ok := m.lastReport[k]
	if ok && t.Sub(last) < p.ReportCycle {
		return false
	}
	m.lastReport[k] = t
	return true
}

// OnState reports a device going online or offline as a state/update,
// and retries pending writes when it comes back.
func (m *Mapper) OnState(id string, online bool, err error) {
	state := kubeedge.StateOffline
	if online {
		state = kubeedge.StateOnline
	}
	if err != nil {
		m.log.Warn("device offline", "device", id, "err", err)
	} else {
		m.log.Info("device online", "device", id)
	}
	b, _ := json.Marshal(kubeedge.StateUpdateMsg{
		BaseMessage: kubeedge.BaseMessage{EventID: kubeedge.NewEventID(), Timestamp: m.clk.Now().UnixMilli()},
		State:       state,
	})
	m.opts.Report(kubeedge.DeviceTopic(id, kubeedge.StateUpdate), b)
	m.wmu.Lock()
	m.online[id] = online
	retry := online && len(m.pending[id]) > 0
	m.wmu.Unlock()
	if retry {
		m.kick()
	}
}

// OnDelta queues the desired values of a twin/update/delta message for
// writing. It runs on the twin manager's publishing path, so it only
// records and wakes the writer.
func (m *Mapper) OnDelta(topic string, payload []byte) {
	t, ok := kubeedge.ParseTopic(topic)
	if !ok || t.Kind != kubeedge.TwinUpdateDelta {
		return
	}
	id := t.ID
	dev := m.device(id)
	if dev == nil {
		return
	}
	var msg kubeedge.TwinDeltaMsg
	if err := json.Unmarshal(payload, &msg); err != nil {
		m.log.Debug("twin delta not understood", "topic", topic, "err", err)
		return
	}
	queued := false
	m.wmu.Lock()
	for prop, raw := range msg.Delta {
		p := dev.Property(prop)
		if p == nil || p.Modbus == nil || !p.Modbus.Register.Writable() || p.AccessMode == devices.ReadOnly {
			continue
		}
		text := string(raw)
		var s string
		if json.Unmarshal(raw, &s) == nil {
			text = s
		}
		if m.written[id][prop] == text {
			continue // written, waiting for the next reading to confirm
		}
		if m.pending[id] == nil {
			m.pending[id] = map[string]string{}
		}
		m.pending[id][prop] = text
		queued = true
	}
	m.wmu.Unlock()
	if queued {
		m.kick()
	}
}

func (m *Mapper) kick() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes queued desired values, in device then property order.
func (m *Mapper) writeLoop(ctx context.Context) {
	defer m.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		}
		type job struct{ id, prop, value string }
		var jobs []job
		m.wmu.Lock()
		for id, props := range m.pending {
			for p, v := range props {
				jobs = append(jobs, job{id, p, v})
			}
		}
		m.wmu.Unlock()
		sort.Slice(jobs, func(i, j int) bool {
			if jobs[i].id != jobs[j].id {
				return jobs[i].id < jobs[j].id
			}
			return jobs[i].prop < jobs[j].prop
		})
		for _, j := range jobs {
			if ctx.Err() != nil {
				return
			}
			wctx, cancel := context.WithTimeout(ctx, m.opts.WriteTimeout)
			m.mu.RLock()
			drv := m.drv
			m.mu.RUnlock()
			err := drv.Write(wctx, j.id, j.prop, j.value)
			cancel()
			m.wmu.Lock()
			if m.pending[j.id][j.prop] != j.value {
				m.wmu.Unlock()
				continue // superseded while writing; the newer value is queued
			}
			switch {
			case err == nil:
				delete(m.pending[j.id], j.prop)
				if m.written[j.id] == nil {
					m.written[j.id] = map[string]string{}
				}
				m.written[j.id][j.prop] = j.value
				m.log.Info("desired value written", "device", j.id, "property", j.prop, "value", j.value)
			case m.online[j.id] && ctx.Err() == nil:
				delete(m.pending[j.id], j.prop)
				m.log.Warn("device refused the desired value; set another desired value to try again",
					"device", j.id, "property", j.prop, "value", j.value, "err", err)
			default:
				m.log.Debug("desired value not written yet; retrying when the device answers",
					"device", j.id, "property", j.prop, "value", j.value, "err", err)
			}
			m.wmu.Unlock()
		}
	}
}

var _ Driver = (*modbus.Mapper)(nil)
