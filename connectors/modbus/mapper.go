// Package modbus is Eddy's Modbus mapper: it polls the properties of
// KubeEdge Modbus devices (pipeline/devices) over Modbus TCP or RTU on a
// serial line, decodes registers into typed readings, writes desired
// values, and reports each device going online or offline. It also holds a
// small simulated Modbus slave (Serve) for demos and tests.
//
// It owns the connections to Modbus slaves and nothing else: it does not
// publish to MQTT, keep twins or decide what a reading means;
// connectors/mapper does that with the callbacks in Options (a *Mapper is
// its mapper.Driver). One client serves each serial
// port or TCP address, and requests on it are serialized, because a Modbus
// line cannot carry two requests at once.
package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/pipeline/devices"
	gmodbus "github.com/goburrow/modbus"
)

// Reading is one value read from a device property.
type Reading struct {
	// DeviceID is "namespace/name".
	DeviceID string
	// Property is the property name.
	Property string
	// Type is the property type.
	Type devices.PropertyType
	// Value is int64, float64, bool, string or []byte (see Decode).
	Value any
	// Time is when the value was read (from the injected clock).
	Time time.Time
}

// Text returns the value as KubeEdge twins carry it.
func (r Reading) Text() string { return Text(r.Value) }

// Options configure a Mapper. The zero value works.
type Options struct {
	// Logger receives connection problems; nil discards.
	Logger *slog.Logger
	// Clock drives polling and reconnect backoff; nil is the real clock.
	Clock clock.Clock
	// OnReading is called for every successful read, from the polling
	// goroutine of the property; it must not block for long.
	OnReading func(Reading)
	// OnState is called when a device goes online (it answered, possibly
	// with a Modbus exception) or offline (no answer; err says why).
	// Calls for one device are ordered.
	OnState func(deviceID string, online bool, err error)
	// Timeout of one request (default 1s).
	Timeout time.Duration
	// MinBackoff is the first wait before reconnecting to a device that
	// did not answer (default 500ms); it doubles up to MaxBackoff
	// (default 30s).
	MinBackoff, MaxBackoff time.Duration
}

// Mapper polls Modbus devices. Create it with New, then Start.
type Mapper struct {
	opts Options
	log  *slog.Logger
	clk  clock.Clock

	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	devices map[string]*deviceRunner
	buses   map[string]*bus
}

// New returns a mapper; it does nothing until Start.
func New(opts Options) *Mapper {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	return &Mapper{opts: opts, log: opts.Logger, clk: opts.Clock, devices: map[string]*deviceRunner{}, buses: map[string]*bus{}}
}

// Start begins polling devs (resolved with devices.Resolve; devices of
// other protocols are ignored). Polling stops when ctx ends or Close is
// called.
func (m *Mapper) Start(ctx context.Context, devs []devices.Device) error {
	m.mu.Lock()
	if m.ctx != nil {
		m.mu.Unlock()
		return errors.New("modbus: mapper already started")
	}
	m.ctx, m.cancel = context.WithCancel(ctx)
	m.mu.Unlock()
	return m.Update(devs)
}

// Update replaces the set of polled devices: new devices start, removed
// ones stop, changed ones restart; unchanged ones keep polling.
func (m *Mapper) Update(devs []devices.Device) error {
	for i := range devs {
		if err := check(&devs[i]); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil {
		return errors.New("modbus: Update before Start")
	}
	want := map[string]devices.Device{}
	for _, d := range devs {
		if d.Protocol.Modbus != nil {
			want[d.ID()] = d
		}
	}
	for id, dr := range m.devices {
		if d, ok := want[id]; !ok || !reflect.DeepEqual(d.Protocol, dr.dev.Protocol) || !reflect.DeepEqual(d.Properties, dr.dev.Properties) {
			dr.stop()
			delete(m.devices, id)
		}
	}
	used := map[string]bool{}
	for id, d := range want {
		key := busKey(d.Protocol.Modbus)
		used[key] = true
		if _, ok := m.devices[id]; ok {
			continue
		}
		b := m.buses[key]
		if b == nil {
			b = m.newBus(d.Protocol.Modbus)
			m.buses[key] = b
		}
		dr := &deviceRunner{m: m, dev: d, bus: b}
		dr.ctx, dr.cancel = context.WithCancel(m.ctx)
		m.devices[id] = dr
		for _, p := range d.Properties {
			if p.Modbus == nil {
				continue
			}
			dr.wg.Add(1)
			go dr.poll(p)
		}
	}
	for key, b := range m.buses {
		if !used[key] {
			b.close()
			delete(m.buses, key)
		}
	}
	return nil
}

func check(d *devices.Device) error {
	for _, p := range d.Properties {
		if p.Modbus != nil && p.Modbus.DataType == "" {
			return fmt.Errorf("modbus: device %s property %s: visitor has no data type; pass devices through devices.Resolve first", d.ID(), p.Name)
		}
	}
	return nil
}

// Close stops polling and closes every connection.
func (m *Mapper) Close() error {
	m.mu.Lock()
	if m.cancel != nil {
		m.cancel()
	}
	runners := m.devices
	m.devices = map[string]*deviceRunner{}
	m.mu.Unlock()
	for _, dr := range runners {
		dr.stop()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, b := range m.buses {
		b.close()
		delete(m.buses, key)
	}
	return nil
}

// Write writes value to a device property: WriteSingleCoil for coils,
// WriteSingleRegister for one register and WriteMultipleRegisters for
// wider types, with the scale inverted and swaps applied. value may be
// typed or a string as in a twin's desired value. It is checked against
// the property's access mode and minimum..maximum.
func (m *Mapper) Write(ctx context.Context, deviceID, property string, value any) error {
	m.mu.Lock()
	dr := m.devices[deviceID]
	m.mu.Unlock()
	if dr == nil {
		return fmt.Errorf("modbus: write %s.%s: unknown device %q", deviceID, property, deviceID)
	}
	p := dr.dev.Property(property)
	if p == nil || p.Modbus == nil {
		return fmt.Errorf("modbus: write %s.%s: device has no Modbus property %q", deviceID, property, property)
	}
	if p.AccessMode == devices.ReadOnly {
		return fmt.Errorf("modbus: write %s.%s: property is ReadOnly in its model", deviceID, property)
	}
	v := p.Modbus
	if !v.Register.Writable() {
		return fmt.Errorf("modbus: write %s.%s: %s registers cannot be written", deviceID, property, v.Register)
	}
	if s, ok := value.(string); ok {
		x, err := devices.ParseValue(p.Type, s)
		if err != nil {
			return fmt.Errorf("modbus: write %s.%s: %w", deviceID, property, err)
		}
		value = x
	}
	if x, ok := value.(int); ok {
		value = int64(x)
	}
	if err := devices.CheckRange(p, value); err != nil {
		return fmt.Errorf("modbus: write %s.%s: %w", deviceID, property, err)
	}
	data, err := Encode(v, p.Type, value)
	if err != nil {
		return fmt.Errorf("modbus: write %s.%s: %w", deviceID, property, err)
	}
	_, err = dr.bus.do(ctx, dr.dev.Protocol.Modbus.SlaveID, true, func(c gmodbus.Client) ([]byte, error) {
		switch {
		case v.Register == devices.Coil:
			return c.WriteSingleCoil(v.Offset, uint16(data[0])<<8|uint16(data[1]))
		case len(data) == 2:
			return c.WriteSingleRegister(v.Offset, uint16(data[0])<<8|uint16(data[1]))
		default:
			return c.WriteMultipleRegisters(v.Offset, uint16(len(data)/2), data)
		}
	})
	dr.report(err)
	if err != nil {
		return fmt.Errorf("modbus: write %s.%s: %w", deviceID, property, err)
	}
	return nil
}

type deviceRunner struct {
	m      *Mapper
	dev    devices.Device
	bus    *bus
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	stateMu sync.Mutex
	state   int // 0 unknown, 1 online, 2 offline
}

func (dr *deviceRunner) stop() {
	dr.cancel()
	dr.wg.Wait()
}

func (dr *deviceRunner) poll(p devices.Property) {
	defer dr.wg.Done()
	cycle := p.CollectCycle
	if cycle <= 0 {
		cycle = devices.DefaultCollectCycle
	}
	t := dr.m.clk.NewTicker(cycle)
	defer t.Stop()
	for {
		dr.read(&p)
		select {
		case <-dr.ctx.Done():
			return
		case <-t.C():
		}
	}
}

func (dr *deviceRunner) read(p *devices.Property) {
	v := p.Modbus
	data, err := dr.bus.do(dr.ctx, dr.dev.Protocol.Modbus.SlaveID, false, func(c gmodbus.Client) ([]byte, error) {
		switch v.Register {
		case devices.Coil:
			return c.ReadCoils(v.Offset, max(v.Limit, 1))
		case devices.DiscreteInput:
			return c.ReadDiscreteInputs(v.Offset, max(v.Limit, 1))
		case devices.Input:
			return c.ReadInputRegisters(v.Offset, v.Limit)
		default:
			return c.ReadHoldingRegisters(v.Offset, v.Limit)
		}
	})
	if errors.Is(err, errBackoff) || dr.ctx.Err() != nil {
		return
	}
	dr.report(err)
	if err != nil {
		var me *gmodbus.ModbusError
		if errors.As(err, &me) {
			dr.m.log.Warn("modbus read failed", "device", dr.dev.ID(), "property", p.Name, "register", v.Register, "offset", v.Offset, "err", err)
		}
		return
	}
	val, err := Decode(v, p.Type, data)
	if err != nil {
		dr.m.log.Warn("modbus decode failed", "device", dr.dev.ID(), "property", p.Name, "err", err)
		return
	}
	if f := dr.m.opts.OnReading; f != nil {
		f(Reading{DeviceID: dr.dev.ID(), Property: p.Name, Type: p.Type, Value: val, Time: dr.m.clk.Now()})
	}
}

// report turns the outcome of a request into an online/offline
// transition. A Modbus exception means the device answered.
func (dr *deviceRunner) report(err error) {
	var me *gmodbus.ModbusError
	online := err == nil || errors.As(err, &me)
	if errors.Is(err, errBackoff) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	dr.stateMu.Lock()
	defer dr.stateMu.Unlock()
	next := 2
	if online {
		next = 1
		err = nil
	}
	if next == dr.state {
		return
	}
	dr.state = next
	if online {
		dr.m.log.Info("modbus device online", "device", dr.dev.ID())
	} else {
		dr.m.log.Warn("modbus device offline", "device", dr.dev.ID(), "err", err)
	}
	if f := dr.m.opts.OnState; f != nil {
		f(dr.dev.ID(), online, err)
	}
}
