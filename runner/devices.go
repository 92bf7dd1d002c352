package runner

// Devices on the edge: this file wires pipeline/devices (the KubeEdge
// Device/DeviceModel documents), runner/twin (the device twins and
// KubeEdge's twin protocol), connectors/modbus (the Modbus driver) and
// connectors/mapper (the KubeEdge mapper policy) into the Runner.
//
//	Device documents --SetDevices--> twin.Manager + mapper.Mapper(modbus)
//	twin.Manager <--HandleMessage-- broker subscriptions ($hw/..., $ke/...)
//	   |  ^  \--OnEvent--> WAL $eddy/streams/{twin,device_state,membership}
//	   |  +-- Report (twin/update actual, state/update) -- mapper.Mapper <- modbus readings
//	   +-- .../twin/update/delta on the broker --> mapper.OnDelta --> modbus writes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-edge/eddy/connectors/mapper"
	"github.com/eddy-edge/eddy/connectors/modbus"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
	"github.com/eddy-edge/eddy/runner/engine"
	"github.com/eddy-edge/eddy/runner/link"
	"github.com/eddy-edge/eddy/runner/twin"
	"github.com/eddy-edge/eddy/runner/wal"
)

// LoadDeviceFiles reads KubeEdge Device and DeviceModel YAML files
// (devices.kubeedge.io v1beta1 or v1alpha2), joins every device to its
// model across all files and validates the result. Errors carry file:line
// and the field path. The devices of every node are returned, in file
// order.
func LoadDeviceFiles(files []string) ([]devices.Device, error) {
	var devs []devices.Device
	var models []devices.Model
	var errs []error
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("device file %s: %w (check the path given to --devices or the devices: list)", f, err))
			continue
		}
		d, m, err := devices.Load(f, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		devs = append(devs, d...)
		models = append(models, m...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return devices.Resolve(devs, models)
}

// NodeDevices returns the devices bound to node: NodeName equal to node,
// or empty (a device without a node belongs to whichever runner loads it).
func NodeDevices(devs []devices.Device, node string) []devices.Device {
	var out []devices.Device
	for _, d := range devs {
		if d.NodeName == "" || d.NodeName == node {
			out = append(out, d)
		}
	}
	return out
}

// twinSpecs turns resolved devices into the twin manager's declarations.
func twinSpecs(devs []devices.Device) []twin.DeviceSpec {
	specs := make([]twin.DeviceSpec, 0, len(devs))
	for _, d := range devs {
		s := twin.DeviceSpec{ID: d.ID(), Node: d.NodeName, Description: "model " + d.Model}
		for _, p := range d.Properties {
			s.Properties = append(s.Properties, twin.PropertySpec{Name: p.Name, Type: string(p.Type), Desired: p.DesiredText})
		}
		specs = append(specs, s)
	}
	return specs
}

// deviceRuntime holds the runner's device twins and device mappers.
type deviceRuntime struct {
	r     *Runner
	log   *slog.Logger
	twins *twin.Manager
	bg    context.Context // outlives Start's context: twin events keep being logged until Close

	mu      sync.Mutex // serialises SetDevices and closeDevices
	ctx     context.Context
	cancel  context.CancelFunc
	unsubs  []func()
	initial []devices.Device // this node's devices from Config.DeviceFiles

	// mapperPtr is nil until a Modbus device is served. Broker callbacks
	// read it without d.mu: SetDevices holds d.mu while the twins publish
	// the deltas those callbacks receive.
	mapperPtr atomic.Pointer[mapper.Mapper]
	driver    *modbus.Mapper   // the mapper's driver; d.mu
	polling   bool             // the mapper and its driver are started; d.mu
	polled    []devices.Device // what the driver polls; d.mu

	// uplink is the hub link once it started (nil without a hub): told
	// when a device's connection state changes, so the node's status
	// record carries it up soon.
	uplink atomic.Pointer[link.Link]
}

// initDevices builds the twin manager before the engine exists, so that
// enrich steps can read twins. Every runner has one: devices may come
// from files (Config.DeviceFiles) or later through SetDevices.
func (r *Runner) initDevices(ctx context.Context) (engine.TwinLookup, error) {
	d := &deviceRuntime{r: r, log: r.logger.With("component", "devices"), bg: context.WithoutCancel(ctx)}
	if len(r.cfg.DeviceFiles) > 0 {
		all, err := LoadDeviceFiles(r.cfg.DeviceFiles)
		if err != nil {
			return nil, err
		}
		d.initial = NodeDevices(all, r.cfg.Node)
		if n := len(all) - len(d.initial); n > 0 {
			d.log.Info("devices bound to other nodes are not served here", "skipped", n, "node", r.cfg.Node)
		}
	}
	var store twin.Store
	if r.cfg.DataDir == "" {
		store = twin.NewMemStore()
	} else {
		fs, err := twin.OpenFileStore(filepath.Join(r.cfg.DataDir, "twins"), twin.FileStoreOptions{Logger: d.log})
		if err != nil {
			return nil, err
		}
		store = fs
	}
	var err error
	d.twins, err = twin.New(ctx, twin.Options{
		Node: r.cfg.Node,
		Publisher: twin.PublisherFunc(func(topic string, payload []byte, qos byte, retain bool) error {
			return r.broker.Publish(topic, payload, qos, retain)
		}),
		Store:   store,
		OnEvent: d.onTwinEvent,
		Clock:   r.cfg.Clock,
		Logger:  r.logger.With("component", "twin"),
	})
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("loading twin state: %w", err)
	}
	r.devices = d
	return d.twins, nil
}

// Twins returns the twin manager (nil before Start).
func (r *Runner) Twins() *twin.Manager {
	if r.devices == nil {
		return nil
	}
	return r.devices.twins
}

// startDevices subscribes the twins and the mapper to the broker and
// serves the devices of Config.DeviceFiles bound to this node.
func (r *Runner) startDevices(ctx context.Context) error {
	d := r.devices
	d.ctx, d.cancel = context.WithCancel(d.bg)
	for _, f := range twin.Subscriptions {
		unsub, err := r.broker.Subscribe(f, d.onTwinMessage)
		if err != nil {
			return fmt.Errorf("subscribing the device twins to %s: %w", f, err)
		}
		d.unsubs = append(d.unsubs, unsub)
	}
	unsub, err := r.broker.Subscribe(kubeedge.DeltaFilter, d.onDelta)
	if err != nil {
		return fmt.Errorf("subscribing the device mapper to %s: %w", kubeedge.DeltaFilter, err)
	}
	d.unsubs = append(d.unsubs, unsub)
	if len(r.cfg.DeviceFiles) == 0 {
		return nil
	}
	return r.SetDevices(ctx, d.initial)
}

// SetDevices makes devs (resolved with devices.Resolve) the devices this
// runner serves, as given: their twins, and polling of those it can reach
// (Modbus). Devices no longer listed are removed; unchanged ones keep
// running. Callers choose the devices (eddy edge: those of its node). It
// is safe to call at any time after Start, e.g. when the cloud sends a new
// device set; a set that fails validation changes nothing.
func (r *Runner) SetDevices(ctx context.Context, devs []devices.Device) error {
	d := r.devices
	if d == nil || d.ctx == nil {
		return errors.New("runner: SetDevices before Start")
	}
	specs := twinSpecs(devs)
	if err := d.twins.Check(specs); err != nil {
		return fmt.Errorf("declaring device twins: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var polled []devices.Device
	for _, dev := range devs {
		if dev.Protocol.Modbus != nil {
			polled = append(polled, dev)
		}
	}
	// The mapper learns the devices before their twins are declared, so
	// that the twins' first deltas (desired values from the documents)
	// are queued for writing; the driver polls them only after, so that
	// every state and reading it reports is about a declared twin. (The
	// other way round, a device's first "offline" was refused for an
	// unknown twin, and as drivers report only changes, the twin stayed
	// "unknown" while the device was down.)
	mp := d.declarePolled(polled)
	if err := d.twins.SetDevices(ctx, specs); err != nil {
		if mp != nil {
			mp.Declare(d.polled)
		}
		return fmt.Errorf("declaring device twins: %w", err)
	}
	if err := d.poll(mp, polled); err != nil {
		return err
	}
	d.log.Info("devices running", "devices", len(devs), "modbus", len(polled), "node", r.cfg.Node)
	return nil
}

// declarePolled makes polled the mapper's devices without polling them,
// creating the mapper on first use; it returns nil while no device was
// ever polled. d.mu held.
func (d *deviceRuntime) declarePolled(polled []devices.Device) *mapper.Mapper {
	mp := d.mapperPtr.Load()
	if mp == nil {
		if len(polled) == 0 {
			return nil
		}
		mp = mapper.New(mapper.Options{
			Report: d.handle,
			Publish: func(topic string, payload []byte) error {
				return d.r.broker.Publish(topic, payload, 0, false)
			},
			Clock:  d.r.cfg.Clock,
			Logger: d.log,
		})
		d.driver = modbus.New(modbus.Options{
			Logger:    d.r.logger.With("component", "modbus"),
			Clock:     d.r.cfg.Clock,
			OnReading: mp.OnReading,
			OnState:   mp.OnState,
		})
		d.mapperPtr.Store(mp)
	}
	mp.Declare(polled)
	return mp
}

// poll makes the driver poll exactly polled, starting it on first use.
// d.mu held.
func (d *deviceRuntime) poll(mp *mapper.Mapper, polled []devices.Device) error {
	if mp == nil {
		return nil
	}
	if !d.polling {
		if err := mp.Start(d.ctx, d.driver, polled); err != nil {
			_ = mp.Close()
			d.mapperPtr.Store(nil)
			return fmt.Errorf("starting the Modbus mapper: %w", err)
		}
		d.polling = true
	} else if err := mp.SetDevices(polled); err != nil {
		return fmt.Errorf("updating the Modbus mapper: %w", err)
	}
	d.polled = polled
	return nil
}

// closeDevices stops the mapper and closes the twin store.
func (r *Runner) closeDevices() error {
	d := r.devices
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancel != nil {
		d.cancel()
	}
	var errs []error
	if mp := d.mapperPtr.Load(); mp != nil {
		errs = append(errs, mp.Close())
	}
	for _, u := range d.unsubs {
		u()
	}
	errs = append(errs, d.twins.Close())
	return errors.Join(errs...)
}

// onTwinEvent appends a twin manager event to its internal stream in the
// WAL, as a JSON object carrying the device as "device" and "device_id"
// ("namespace/name") and as "namespace" and "name".
func (d *deviceRuntime) onTwinEvent(stream, device string, fields map[string]any, t time.Time) {
	out := make(map[string]any, len(fields)+5)
	for k, v := range fields {
		out[k] = v
	}
	if device != "" {
		ns, name, _ := strings.Cut(device, "/")
		out["device"], out["device_id"], out["namespace"], out["name"] = device, device, ns, name
	}
	out["timestamp"] = t.UnixMilli()
	b, err := json.Marshal(out)
	if err != nil {
		d.log.Warn("twin event cannot be encoded", "stream", stream, "device", device, "err", err)
		return
	}
	rec := &wal.Record{Topic: engine.StreamTopic(stream), Payload: b, Time: t.UnixNano(), Client: "$eddy/twin"}
	if err := d.r.log.AppendWith(d.bg, wal.Buffered, rec); err != nil {
		d.log.Warn("twin event not logged", "stream", stream, "device", device, "err", err)
	}
	if stream == twin.StreamDeviceState {
		if l := d.uplink.Load(); l != nil {
			l.DevicesChanged()
		}
	}
}

// onTwinMessage feeds a broker message to the twin manager. Mapper data
// of devices polled by this runner is skipped: their readings already
// reached the twin as twin/update actual values.
func (d *deviceRuntime) onTwinMessage(topic string, payload []byte) {
	if t, ok := kubeedge.ParseTopic(topic); ok && t.Kind == kubeedge.DataUpdate {
		if mp := d.currentMapper(); mp != nil && mp.Polls(t.ID) {
			return
		}
	}
	d.handle(topic, payload)
}

// onDelta passes twin deltas to the mapper, if any.
func (d *deviceRuntime) onDelta(topic string, payload []byte) {
	if mp := d.currentMapper(); mp != nil {
		mp.OnDelta(topic, payload)
	}
}

// currentMapper returns the mapper without waiting for a SetDevices in
// progress (which may itself be publishing the delta being delivered).
func (d *deviceRuntime) currentMapper() *mapper.Mapper {
	return d.mapperPtr.Load()
}

func (d *deviceRuntime) handle(topic string, payload []byte) {
	err := d.twins.HandleMessage(d.bg, topic, payload)
	switch {
	case err == nil:
	case errors.Is(err, twin.ErrRejected):
		d.log.Debug("twin request rejected", "topic", topic, "err", err)
	case errors.Is(err, twin.ErrClosed):
	default:
		d.log.Warn("twin request failed", "topic", topic, "err", err)
	}
}
