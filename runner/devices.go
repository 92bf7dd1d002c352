package runner

// Devices on the edge: this file wires pipeline/devices (the KubeEdge
// Device/DeviceModel files), runner/twin (the device twins and KubeEdge's
// twin protocol) and connectors/modbus (the Modbus mapper) into the Runner.
//
//	Device files --LoadDeviceFiles--> resolved devices of this node
//	   |                                   |
//	   v SetDevices                        v Start
//	twin.Manager <--HandleMessage-- broker subscriptions ($hw/..., $ke/...)
//	   |  ^  \--OnEvent--> WAL $eddy/streams/{twin,device_state,membership}
//	   |  |
//	   |  +-- reading (twin/update actual), state (state/update) -- modbus.Mapper
//	   |                                                              ^
//	   +-- .../twin/update/delta on the broker --> write worker --Write+
//
// The mapper publishes each reading on the KubeEdge mapper data topic
// $ke/events/device/{ns}/{name}/data/update (at most once per reportCycle)
// so that pipelines and third-party consumers read it like any topic.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/eddy-edge/eddy/connectors/modbus"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
	"github.com/eddy-edge/eddy/runner/engine"
	"github.com/eddy-edge/eddy/runner/twin"
	"github.com/eddy-edge/eddy/runner/wal"
)

// writeTimeout bounds one Modbus write of a desired value.
const writeTimeout = 5 * time.Second

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
	resolved, err := devices.Resolve(devs, models)
	if err != nil {
		return nil, err
	}
	return resolved, nil
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
	r      *Runner
	log    *slog.Logger
	devs   []devices.Device           // this node's devices
	byID   map[string]*devices.Device // by "namespace/name"
	polled map[string]bool            // devices the in-runner mapper polls
	twins  *twin.Manager
	mapper *modbus.Mapper // nil without Modbus devices
	bg     context.Context

	ctx    context.Context // ends on closeDevices
	cancel context.CancelFunc
	wg     sync.WaitGroup
	unsubs []func()

	repMu      sync.Mutex
	lastReport map[string]time.Time // "id\x00prop" -> last data/update

	wmu     sync.Mutex
	pending map[string]map[string]string // device -> property -> desired text to write
	written map[string]map[string]string // device -> property -> written, not yet read back
	online  map[string]bool
	wake    chan struct{}
}

// initDevices loads Config.DeviceFiles and builds the twin manager, before
// the engine exists, so that enrich steps can read twins. It returns nil
// when no devices are configured.
func (r *Runner) initDevices(ctx context.Context) (engine.TwinLookup, error) {
	if len(r.cfg.DeviceFiles) == 0 {
		return nil, nil
	}
	all, err := LoadDeviceFiles(r.cfg.DeviceFiles)
	if err != nil {
		return nil, err
	}
	d := &deviceRuntime{
		r: r, log: r.logger.With("component", "devices"),
		byID: map[string]*devices.Device{}, polled: map[string]bool{},
		bg:         context.WithoutCancel(ctx),
		lastReport: map[string]time.Time{},
		pending:    map[string]map[string]string{}, written: map[string]map[string]string{},
		online: map[string]bool{}, wake: make(chan struct{}, 1),
	}
	d.devs = NodeDevices(all, r.cfg.Node)
	for i := range d.devs {
		dev := &d.devs[i]
		d.byID[dev.ID()] = dev
		if dev.Protocol.Modbus != nil {
			d.polled[dev.ID()] = true
		}
	}
	if n := len(all) - len(d.devs); n > 0 {
		d.log.Info("devices bound to other nodes are not served here", "skipped", n, "node", r.cfg.Node)
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

// Twins returns the twin manager, or nil when the runner has no devices.
func (r *Runner) Twins() *twin.Manager {
	if r.devices == nil {
		return nil
	}
	return r.devices.twins
}

// startDevices subscribes the twin manager to the broker and starts the
// device mappers, once the broker runs.
func (r *Runner) startDevices(ctx context.Context) error {
	d := r.devices
	if d == nil {
		return nil
	}
	d.ctx, d.cancel = context.WithCancel(d.bg)
	for _, f := range twin.Subscriptions {
		unsub, err := r.broker.Subscribe(f, d.onTwinMessage)
		if err != nil {
			return fmt.Errorf("subscribing the device twins to %s: %w", f, err)
		}
		d.unsubs = append(d.unsubs, unsub)
	}
	if len(d.polled) > 0 {
		d.mapper = modbus.New(modbus.Options{
			Logger:    r.logger.With("component", "modbus"),
			Clock:     r.cfg.Clock,
			OnReading: d.onReading,
			OnState:   d.onState,
		})
		unsub, err := r.broker.Subscribe(kubeedge.DeltaFilter, d.onDelta)
		if err != nil {
			return fmt.Errorf("subscribing the Modbus mapper to %s: %w", kubeedge.DeltaFilter, err)
		}
		d.unsubs = append(d.unsubs, unsub)
		d.wg.Add(1)
		go d.writeLoop()
	}
	// Declare the devices after subscribing, so the first deltas (desired
	// values from the Device files) reach the mapper's writer.
	if err := d.twins.SetDevices(ctx, twinSpecs(d.devs)); err != nil {
		return fmt.Errorf("declaring device twins: %w", err)
	}
	if d.mapper != nil {
		if err := d.mapper.Start(d.ctx, d.devs); err != nil {
			return fmt.Errorf("starting the Modbus mapper: %w", err)
		}
	}
	d.log.Info("devices running", "devices", len(d.devs), "modbus", len(d.polled), "node", r.cfg.Node)
	return nil
}

// closeDevices stops the mappers and closes the twin store.
func (r *Runner) closeDevices() error {
	d := r.devices
	if d == nil {
		return nil
	}
	if d.cancel != nil {
		d.cancel()
	}
	var errs []error
	if d.mapper != nil {
		errs = append(errs, d.mapper.Close())
	}
	for _, u := range d.unsubs {
		u()
	}
	d.wg.Wait()
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
}

// onTwinMessage feeds a broker message to the twin manager. Mapper data
// of devices polled by this runner is skipped: their readings already
// reached the twin as twin/update actual values.
func (d *deviceRuntime) onTwinMessage(topic string, payload []byte) {
	if t, ok := kubeedge.ParseTopic(topic); ok && t.Kind == kubeedge.DataUpdate && d.polled[t.ID] {
		return
	}
	d.handle(topic, payload)
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

// kubeEdgeType is the lower-case type name KubeEdge puts in metadata.
func kubeEdgeType(t devices.PropertyType) string { return strings.ToLower(string(t)) }

// onReading reports a Modbus reading: as the twin's actual value on every
// reading, and on the mapper data topic at most once per reportCycle.
func (d *deviceRuntime) onReading(rd modbus.Reading) {
	dev := d.byID[rd.DeviceID]
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
	d.handle(kubeedge.DeviceTopic(rd.DeviceID, kubeedge.TwinUpdate), upd)

	if d.reportDue(rd.DeviceID, p, rd.Time) {
		data, _ := json.Marshal(kubeedge.DataUpdateMsg{
			BaseMessage: kubeedge.BaseMessage{EventID: kubeedge.NewEventID(), Timestamp: ms},
			Data: map[string]*kubeedge.DataValue{rd.Property: {
				Value: kubeedge.StringValue(text), Metadata: kubeedge.DataMetadata{Type: typ, Timestamp: ms},
			}},
		})
		topic := kubeedge.DeviceTopic(rd.DeviceID, kubeedge.DataUpdate)
		if err := d.r.broker.Publish(topic, data, 0, false); err != nil {
			d.log.Debug("mapper data not published", "topic", topic, "err", err)
		}
	}

	// A reading confirms (or refutes) a write; pending writes get another
	// try now that the device answers.
	d.wmu.Lock()
	if w, ok := d.written[rd.DeviceID][rd.Property]; ok {
		delete(d.written[rd.DeviceID], rd.Property)
		if w != text {
			d.log.Debug("device does not hold the written value yet", "device", rd.DeviceID, "property", rd.Property, "written", w, "read", text)
		}
	}
	retry := len(d.pending[rd.DeviceID]) > 0
	d.wmu.Unlock()
	if retry {
		d.kick()
	}
}

// reportDue reports whether a reading of p at t goes on the data topic.
func (d *deviceRuntime) reportDue(id string, p *devices.Property, t time.Time) bool {
	if p.ReportCycle <= 0 {
		return true
	}
	k := id + "\x00" + p.Name
	d.repMu.Lock()
	defer d.repMu.Unlock()
	last, ok := d.lastReport[k]
	if ok && t.Sub(last) < p.ReportCycle {
		return false
	}
	d.lastReport[k] = t
	return true
}

// onState reports a device going online or offline as a KubeEdge
// state/update, and retries pending writes when it comes back.
func (d *deviceRuntime) onState(id string, online bool, err error) {
	state := kubeedge.StateOffline
	if online {
		state = kubeedge.StateOnline
	}
	if err != nil {
		d.log.Warn("device offline", "device", id, "err", err)
	} else {
		d.log.Info("device online", "device", id)
	}
	b, _ := json.Marshal(kubeedge.StateUpdateMsg{
		BaseMessage: kubeedge.BaseMessage{EventID: kubeedge.NewEventID(), Timestamp: d.r.cfg.Clock.Now().UnixMilli()},
		State:       state,
	})
	d.handle(kubeedge.DeviceTopic(id, kubeedge.StateUpdate), b)
	d.wmu.Lock()
	d.online[id] = online
	retry := online && len(d.pending[id]) > 0
	d.wmu.Unlock()
	if retry {
		d.kick()
	}
}

// onDelta queues the desired values of a twin delta for writing to the
// device. It runs on the twin manager's publishing path, so it only
// records and wakes the writer.
func (d *deviceRuntime) onDelta(topic string, payload []byte) {
	t, ok := kubeedge.ParseTopic(topic)
	if !ok || t.Kind != kubeedge.TwinUpdateDelta {
		return
	}
	id := t.ID
	dev := d.byID[id]
	if dev == nil || !d.polled[id] {
		return
	}
	var msg kubeedge.TwinDeltaMsg
	if err := json.Unmarshal(payload, &msg); err != nil {
		d.log.Debug("twin delta not understood", "topic", topic, "err", err)
		return
	}
	queued := false
	d.wmu.Lock()
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
		if d.written[id][prop] == text {
			continue // written, waiting for the next reading to confirm
		}
		if d.pending[id] == nil {
			d.pending[id] = map[string]string{}
		}
		d.pending[id][prop] = text
		queued = true
	}
	d.wmu.Unlock()
	if queued {
		d.kick()
	}
}

func (d *deviceRuntime) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes queued desired values to devices. A write that fails
// while the device is offline stays queued and is retried when the device
// answers again (online, a reading or a new delta); a write the device
// refuses while online (out of range, Modbus exception) is dropped until
// the desired value changes.
func (d *deviceRuntime) writeLoop() {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-d.wake:
		}
		type job struct{ id, prop, value string }
		var jobs []job
		d.wmu.Lock()
		for id, props := range d.pending {
			for p, v := range props {
				jobs = append(jobs, job{id, p, v})
			}
		}
		d.wmu.Unlock()
		sort.Slice(jobs, func(i, j int) bool {
			if jobs[i].id != jobs[j].id {
				return jobs[i].id < jobs[j].id
			}
			return jobs[i].prop < jobs[j].prop
		})
		for _, j := range jobs {
			if d.ctx.Err() != nil {
				return
			}
			ctx, cancel := context.WithTimeout(d.ctx, writeTimeout)
			err := d.mapper.Write(ctx, j.id, j.prop, j.value)
			cancel()
			d.wmu.Lock()
			if d.pending[j.id][j.prop] != j.value {
				d.wmu.Unlock()
				continue // superseded while writing; the newer value is queued
			}
			switch {
			case err == nil:
				delete(d.pending[j.id], j.prop)
				if d.written[j.id] == nil {
					d.written[j.id] = map[string]string{}
				}
				d.written[j.id][j.prop] = j.value
				d.log.Info("desired value written", "device", j.id, "property", j.prop, "value", j.value)
			case d.online[j.id] && d.ctx.Err() == nil:
				delete(d.pending[j.id], j.prop)
				d.log.Warn("device refused the desired value; set another desired value to try again",
					"device", j.id, "property", j.prop, "value", j.value, "err", err)
			default:
				d.log.Debug("desired value not written yet; retrying when the device answers",
					"device", j.id, "property", j.prop, "value", j.value, "err", err)
			}
			d.wmu.Unlock()
		}
	}
}
