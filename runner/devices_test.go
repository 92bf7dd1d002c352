package runner_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/eddy-edge/eddy/connectors/modbus"
	"github.com/eddy-edge/eddy/internal/modbustest"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/internal/runnertest"
	"github.com/eddy-edge/eddy/pipeline"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/eddy-edge/eddy/runner"
	"github.com/eddy-edge/eddy/runner/broker"
)

// sensorDevices declares two twin-only devices (no protocol Eddy polls):
// sensor-1 on this runner's node, sensor-2 on another node.
const sensorDevices = `apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: sensor-model, namespace: default}
spec:
  properties:
  - {name: temperature, type: INT, accessMode: ReadWrite}
  - {name: location, type: STRING, accessMode: ReadWrite}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: sensor-1, namespace: default}
spec:
  deviceModelRef: {name: sensor-model}
  nodeName: edge-a
  protocol: {protocolName: virtual}
  properties:
  - {name: temperature, desired: {value: "22"}}
  - {name: location, desired: {value: "hall-3"}}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: sensor-2, namespace: default}
spec:
  deviceModelRef: {name: sensor-model}
  nodeName: edge-b
  protocol: {protocolName: virtual}
  properties:
  - {name: temperature}
`

const (
	sensorUpdate    = "$hw/events/device/default/sensor-1/twin/update"
	sensorResult    = "$hw/events/device/default/sensor-1/twin/update/result"
	sensorDelta     = "$hw/events/device/default/sensor-1/twin/update/delta"
	sensorGet       = "$hw/events/device/default/sensor-1/twin/get"
	sensorGetResult = "$hw/events/device/default/sensor-1/twin/get/result"
)

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// startRunner starts a runner on random ports with the device files.
func startRunner(t testing.TB, dataDir string, files ...string) *runner.Runner {
	t.Helper()
	return runnertest.Start(t, runner.Config{DataDir: dataDir, AllowAnonymous: true, Node: "edge-a", DeviceFiles: files,
		CheckpointInterval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
}

// subscribe starts mosquitto_sub on topics and returns once the runner's
// broker lists exactly those subscriptions for it.
func subscribe(t *testing.T, r *runner.Runner, topics ...string) *mqtttest.Sub {
	t.Helper()
	return runnertest.Subscribe(t, r, mqtttest.SubOptions{Topics: topics})
}

var (
	tsRE   = regexp.MustCompile(`"timestamp":\d+`)
	uuidRE = regexp.MustCompile(`"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"`)
)

func normalize(s string) string {
	return uuidRE.ReplaceAllString(tsRE.ReplaceAllString(s, `"timestamp":T`), `"UUID"`)
}

func twinValue(r *runner.Runner, dev, prop string) any {
	m := map[string]any{}
	r.Twins().Values(dev, []string{prop}, m)
	return m["twin_"+prop]
}

// TestDevicesTwinProtocolInterop speaks KubeEdge's twin protocol to the
// runner's broker with Debian's mosquitto clients and checks the exact JSON.
func TestDevicesTwinProtocolInterop(t *testing.T) {
	mqtttest.RequireClients(t)
	dir := t.TempDir()
	r := startRunner(t, "", writeFile(t, dir, "devices.yaml", sensorDevices))

	now := time.Now().UnixMilli()
	steps := []struct {
		name   string
		topic  string
		msg    string
		listen []string
		want   []string
	}{
		{
			name:   "update -> result + delta",
			topic:  sensorUpdate,
			msg:    fmt.Sprintf(`{"event_id":"it-1","timestamp":%d,"twin":{"temperature":{"actual":{"value":"25"},"metadata":{"type":"int"}}}}`, now),
			listen: []string{sensorResult, sensorDelta},
			want: []string{
				sensorResult + ` {"event_id":"it-1","timestamp":T,"twin":{"temperature":{"actual":{"value":"25","metadata":{"timestamp":T}},"optional":false,"metadata":{"type":"int"},"actual_version":{"cloud":0,"edge":1}}}}`,
				sensorDelta + ` {"event_id":"UUID","timestamp":T,"twin":{"location":{"expected":{"value":"hall-3","metadata":{"timestamp":T}},"optional":false,"metadata":{"type":"string"}},"temperature":{"expected":{"value":"22","metadata":{"timestamp":T}},"actual":{"value":"25","metadata":{"timestamp":T}},"optional":false,"metadata":{"type":"int"}}},"delta":{"location":"hall-3","temperature":"22"}}`,
			},
		},
		{
			name:   "get -> get/result",
			topic:  sensorGet,
			msg:    `{"event_id":"it-2"}`,
			listen: []string{sensorGetResult},
			want: []string{
				sensorGetResult + ` {"event_id":"it-2","timestamp":T,"twin":{"location":{"expected":{"value":"hall-3","metadata":{"timestamp":T}},"optional":false,"metadata":{"type":"string"}},"temperature":{"expected":{"value":"22","metadata":{"timestamp":T}},"actual":{"value":"25","metadata":{"timestamp":T}},"optional":false,"metadata":{"type":"int"}}}}`,
			},
		},
		{
			name:   "an app sets the desired value from the edge -> result",
			topic:  sensorUpdate,
			msg:    fmt.Sprintf(`{"event_id":"it-3","timestamp":%d,"twin":{"temperature":{"expected":{"value":"25"}},"location":{"actual":{"value":"hall-3"}}}}`, now+1),
			listen: []string{sensorResult},
			want: []string{
				sensorResult + ` {"event_id":"it-3","timestamp":T,"twin":{"location":{"actual":{"value":"hall-3","metadata":{"timestamp":T}},"optional":false,"metadata":{"type":"string"},"actual_version":{"cloud":0,"edge":1}},"temperature":{"expected":{"value":"25","metadata":{"timestamp":T}},"optional":false,"metadata":{"type":"int"},"expected_version":{"cloud":1,"edge":1}}}}`,
			},
		},
		{
			name:   "a device of another node is not served here",
			topic:  "$hw/events/device/default/sensor-2/twin/get",
			msg:    `{"event_id":"it-4"}`,
			listen: []string{"$hw/events/device/default/sensor-2/twin/get/result"},
			want: []string{
				`$hw/events/device/default/sensor-2/twin/get/result {"event_id":"it-4","timestamp":T,"code":404,"reason":"Device default/sensor-2 not found while getting twin; declare it with a Device resource bound to this node"}`,
			},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			sub := subscribe(t, r, st.listen...)
			mqtttest.Pub(t, runnertest.BrokerPort(r), st.topic, 1, st.msg)
			got := sub.Lines(len(st.want))
			slices.Sort(got)
			want := slices.Clone(st.want)
			slices.Sort(want)
			for i := range got {
				if g := normalize(got[i]); g != want[i] {
					t.Errorf("message %d\n got %s\nwant %s", i, g, want[i])
				}
			}
		})
	}
}

// TestDevicesTwinSurvivesRestart checks that reported values persist in
// <DataDir>/twins across a restart, and that a replayed older report
// cannot revert them afterwards.
func TestDevicesTwinSurvivesRestart(t *testing.T) {
	mqtttest.RequireClients(t)
	dir, data := t.TempDir(), t.TempDir()
	files := []string{writeFile(t, dir, "devices.yaml", sensorDevices)}
	now := time.Now().UnixMilli()

	r1 := startRunner(t, data, files...)
	mqtttest.Pub(t, runnertest.BrokerPort(r1), sensorUpdate, 1, fmt.Sprintf(`{"event_id":"a","timestamp":%d,"twin":{"temperature":{"actual":{"value":"25"}},"note":{"actual":{"value":{"free":"json"}}}}}`, now))
	mqtttest.WaitFor(t, "the reported temperature", func() bool { return twinValue(r1, "default/sensor-1", "temperature") == int64(25) })
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}

	r2 := startRunner(t, data, files...)
	if got := twinValue(r2, "default/sensor-1", "temperature"); got != int64(25) {
		t.Fatalf("after restart twin_temperature = %#v, want 25", got)
	}
	if got := fmt.Sprint(twinValue(r2, "default/sensor-1", "note")); got != "map[free:json]" {
		t.Fatalf("after restart the undeclared twin note = %s, want map[free:json]", got)
	}
	// A report older than the stored one (a replay after a reconnect) is
	// refused and the twin keeps its value.
	sub := subscribe(t, r2, sensorResult)
	mqtttest.Pub(t, runnertest.BrokerPort(r2), sensorUpdate, 1, fmt.Sprintf(`{"event_id":"old","timestamp":%d,"twin":{"temperature":{"actual":{"value":"19"}}}}`, now-60_000))
	if got := sub.Next(); !strings.Contains(got, `"event_id":"old"`) || !strings.Contains(got, `"code":409`) {
		t.Fatalf("replayed update result = %q, want a 409", got)
	}
	if v := twinValue(r2, "default/sensor-1", "temperature"); v != int64(25) {
		t.Fatalf("after a replayed old report twin_temperature = %#v, want 25", v)
	}
}

// TestDevicesTwinStream runs a pipeline on the internal twin stream and
// checks the JSON of a change.
func TestDevicesTwinStream(t *testing.T) {
	dir := t.TempDir()
	r := startRunner(t, t.TempDir(), writeFile(t, dir, "devices.yaml", sensorDevices))
	const spec = `apiVersion: eddy.dev/v1alpha1
kind: Pipeline
metadata: {name: twin-changes, namespace: default}
spec:
  source: {stream: {name: twin}}
  key: device_id
  steps:
    - filter: "property == 'temperature' && source == 'edge'"
  sinks:
    - mqtt: {topic: "out/{{key}}", qos: 0}
`
	var mu sync.Mutex
	var got []string
	unsub, err := r.Broker().Subscribe("out/#", func(topic string, payload []byte) {
		mu.Lock()
		got = append(got, topic+" "+string(payload))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	plans, err := pipeline.Load("twin.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(context.Background(), plans[0], []byte(spec)); err != nil {
		t.Fatal(err)
	}
	msg := fmt.Sprintf(`{"event_id":"s","timestamp":%d,"twin":{"temperature":{"actual":{"value":"31"}}}}`, time.Now().UnixMilli())
	if err := r.Broker().Publish(sensorUpdate, []byte(msg), 0, false); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, "the twin change on the pipeline's sink", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	want := `out/default/sensor-1 {"actual":31,"device":"default/sensor-1","device_id":"default/sensor-1","expected":22,"name":"sensor-1","namespace":"default","property":"temperature","source":"edge","timestamp":T,"type":"int","undeclared":false,"version":2}`
	if len(got) != 1 || normalize(got[0]) != want {
		t.Fatalf("got %q\nwant [%s]", got, want)
	}
}

// TestLoadDeviceFiles checks errors name the file and line, and that
// devices are split by node.
func TestLoadDeviceFiles(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", sensorDevices)
	models, _, _ := strings.Cut(sensorDevices, "---\n")
	onlyModels := writeFile(t, dir, "models.yaml", models)
	onlyDevices := writeFile(t, dir, "devs.yaml", strings.TrimPrefix(sensorDevices, models+"---\n"))
	badModel := writeFile(t, dir, "bad.yaml", strings.Replace(sensorDevices, "deviceModelRef: {name: sensor-model}", "deviceModelRef: {name: sensor-modle}", 1))
	badDesired := writeFile(t, dir, "desired.yaml", strings.Replace(sensorDevices, `value: "22"`, `value: "warm"`, 1))

	tests := []struct {
		name    string
		files   []string
		devices int
		mine    int
		wantErr string
	}{
		{name: "one file", files: []string{good}, devices: 2, mine: 1},
		{name: "models and devices in separate files", files: []string{onlyDevices, onlyModels}, devices: 2, mine: 1},
		{name: "missing file", files: []string{filepath.Join(dir, "nope.yaml")}, wantErr: "nope.yaml: open"},
		{name: "unknown model", files: []string{badModel}, wantErr: `bad.yaml:13: spec.deviceModelRef.name: unknown model "sensor-modle" in namespace default; known models: sensor-model`},
		{name: "bad desired value", files: []string{badDesired}, wantErr: `desired.yaml:`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			devs, err := runner.LoadDeviceFiles(tt.files)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(devs) != tt.devices {
				t.Fatalf("%d devices, want %d", len(devs), tt.devices)
			}
			if n := len(runner.NodeDevices(devs, "edge-a")); n != tt.mine {
				t.Fatalf("%d devices on edge-a, want %d", n, tt.mine)
			}
		})
	}
	// A runner refuses to start with a broken device file.
	r, err := runner.New(runner.Config{MQTTAddr: "127.0.0.1:0", HTTPAddr: "-", AllowAnonymous: true, DeviceFiles: []string{badModel},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "bad.yaml:13") {
		t.Fatalf("Start with a broken device file: err = %v, want bad.yaml:13", err)
	}
}

// BenchmarkTwinUpdatesEndToEnd measures twin updates per second through
// the protocol: a paho client publishes twin/update (QoS 0) to the
// runner's broker; the twin/update/result replies are counted.
func BenchmarkTwinUpdatesEndToEnd(b *testing.B) {
	for _, store := range []struct{ name, dir string }{{"memstore", ""}, {"filestore", "file"}} {
		b.Run(store.name, func(b *testing.B) {
			dir := b.TempDir()
			data := ""
			if store.dir != "" {
				data = filepath.Join(dir, "data")
			}
			r := startRunner(b, data, writeFile(b, dir, "devices.yaml", sensorDevices))
			url := "tcp://" + r.Broker().Addr().String()
			var results atomic.Int64
			done := make(chan struct{}, 1)
			target := int64(b.N)
			// Results are counted inline: a QoS 0 paho subscriber may be
			// dropped messages by the broker when it falls behind.
			unsub, err := r.Broker().Subscribe(sensorResult, func(string, []byte) {
				if results.Add(1) == target {
					done <- struct{}{}
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			defer unsub()
			pub := pahoConnect(b, url, "bench-pub")
			base := time.Now().UnixMilli()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				msg := fmt.Sprintf(`{"event_id":"b%d","timestamp":%d,"twin":{"temperature":{"actual":{"value":"%d"}}}}`, i, base+int64(i), i%100)
				pub.Publish(sensorUpdate, 0, false, msg)
			}
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				b.Fatalf("only %d of %d results arrived", results.Load(), b.N)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
		})
	}
}

func pahoConnect(b testing.TB, url, id string) paho.Client {
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetAutoReconnect(false).SetWriteTimeout(10 * time.Second)
	o.SetOrderMatters(true)
	c := paho.NewClient(o)
	if tok := c.Connect(); tok.Wait() && tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	b.Cleanup(func() { c.Disconnect(100) })
	return c
}

// TestDevicesModbusDesiredWrittenWhenDeviceComesOnline: a desired value
// queued while the slave is down is written once it answers, and the
// device's state changes are events on the device_state stream.
func TestDevicesModbusDesiredWrittenWhenDeviceComesOnline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	slaveAddr := ln.Addr().String()
	ln.Close() // nothing answers there yet
	_, port, _ := net.SplitHostPort(slaveAddr)
	dir := t.TempDir()
	file := writeFile(t, dir, "modbus.yaml", `apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: m}
spec:
  properties:
  - {name: setpoint, type: INT, accessMode: ReadWrite, minimum: "0", maximum: "500"}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: plc-1}
spec:
  deviceModelRef: {name: m}
  protocol: {protocolName: modbus, configData: {ip: 127.0.0.1, port: `+port+`, slaveID: 3}}
  properties:
  - name: setpoint
    collectCycle: 100
    desired: {value: "215"}
    visitors: {protocolName: modbus, configData: {register: HoldingRegister, offset: 7, limit: 1}}
`)
	r := startRunner(t, "", file)
	var mu sync.Mutex
	var states []string
	unsub, err := r.Broker().Subscribe("$hw/events/device/default/plc-1/state/update/result", func(_ string, p []byte) {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range []string{"online", "offline"} {
			if strings.Contains(string(p), `"state":"`+s+`"`) {
				states = append(states, s)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	// The first offline report may come before the subscription above, so
	// read that state from the twin; the online transition after the slave
	// starts is then observed on the protocol.
	mqtttest.WaitFor(t, "the device to go offline", func() bool { return deviceState(r, "default/plc-1") == "offline" })

	regs := modbus.NewRegisters()
	modbustest.Serve(t, modbus.SlaveOptions{TCPAddr: slaveAddr, SlaveID: 3, Registers: regs})
	vis := &devices.ModbusVisitor{Register: devices.HoldingRegister, Offset: 7, Limit: 1, Scale: 1, DataType: devices.Int16}
	mqtttest.WaitFor(t, "the desired value in the slave's register", func() bool {
		v, _ := regs.Get(vis, devices.TypeInt)
		return v == int64(215)
	})
	mqtttest.WaitFor(t, "the twin to report the written value", func() bool { return twinValue(r, "default/plc-1", "setpoint") == int64(215) })
	mqtttest.WaitFor(t, "the online state/update result", func() bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(states, "online") })
	if st := deviceState(r, "default/plc-1"); st != "online" {
		t.Fatalf("device state %q after the slave came up, want online", st)
	}
}

func deviceState(r *runner.Runner, id string) string {
	for _, d := range r.Devices() {
		if d.ID == id {
			return d.State
		}
	}
	return ""
}

// twoSensors declares two twin-only devices on node edge-a.
const twoSensors = `apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: sensor-model, namespace: default}
spec:
  properties:
  - {name: temperature, type: INT, accessMode: ReadWrite}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: sensor-1, namespace: default}
spec:
  deviceModelRef: {name: sensor-model}
  nodeName: edge-a
  properties: [{name: temperature}]
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: sensor-3, namespace: default}
spec:
  deviceModelRef: {name: sensor-model}
  nodeName: edge-a
  properties: [{name: temperature}]
`

// TestCongestedSubscriberDoesNotStallOtherTwins: a subscriber of one
// device's twin results that stops reading does not hold up any twin
// update: past the broker's queue bound it is served from the log on its
// own (the slow subscriber policy), so the twin manager's publishes of
// sensor-1's and sensor-3's replies both go through at once, and the slow
// subscriber gets sensor-1's reply when it reads again.
func TestCongestedSubscriberDoesNotStallOtherTwins(t *testing.T) {
	r := startRunner(t, "", writeFile(t, t.TempDir(), "devices.yaml", twoSensors))
	url := "tcp://127.0.0.1:" + runnertest.BrokerPort(r)
	b := r.Broker()

	// A QoS 1 subscriber of sensor-1's results whose handler blocks:
	// paho (in order) acknowledges nothing more, so its in-flight count grows.
	block := make(chan struct{})
	var unblock sync.Once
	release := func() { unblock.Do(func() { close(block) }) }
	t.Cleanup(release)
	var got sync.Map
	o := paho.NewClientOptions().AddBroker(url).SetClientID("slow-sub").SetAutoReconnect(false).SetOrderMatters(true)
	slow := paho.NewClient(o)
	if tok := slow.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { slow.Disconnect(0) })
	if tok := slow.Subscribe(sensorResult, 1, func(_ paho.Client, m paho.Message) {
		<-block
		got.Store(string(m.Payload()), true)
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	// Fill it past the broker's queue bound: it becomes a slow subscriber.
	for i := range broker.DefaultMaxQueuedMessages + 10 {
		if err := b.Publish(sensorResult, []byte(fmt.Sprintf(`{"fill":%d}`, i)), 1, false); err != nil {
			t.Fatalf("fill %d: %v", i, err)
		}
	}
	mqtttest.WaitFor(t, "the subscriber to be served from the log", func() bool { return b.Stats().Lagging == 1 })

	// sensor-3's result has a fast subscriber.
	fast := subscribe(t, r, "$hw/events/device/default/sensor-3/twin/update/result")

	update := func(v int) []byte {
		return []byte(fmt.Sprintf(`{"event_id":"e%d","timestamp":%d,"twin":{"temperature":{"actual":{"value":"%d"}}}}`, v, time.Now().UnixMilli(), v))
	}
	if err := r.Twins().HandleMessage(context.Background(), sensorUpdate, update(21)); err != nil {
		t.Fatalf("sensor-1 update with a congested subscriber: %v", err)
	}
	if err := r.Twins().HandleMessage(context.Background(), "$hw/events/device/default/sensor-3/twin/update", update(30)); err != nil {
		t.Fatalf("sensor-3 update: %v", err)
	}
	if line := fast.Next(); !strings.Contains(line, `"e30"`) || !strings.Contains(line, `"30"`) {
		t.Errorf("sensor-3 result = %s", line)
	}
	if v := twinValue(r, "default/sensor-1", "temperature"); v != int64(21) {
		t.Errorf("sensor-1 temperature = %v; want 21", v)
	}
	if st := b.Stats(); st.BackpressureWaits != 0 {
		t.Fatalf("%d publishes waited for the congested subscriber", st.BackpressureWaits)
	}
	// Reading again, the slow subscriber gets sensor-1's reply from the log.
	release()
	mqtttest.WaitFor(t, "the slow subscriber to get sensor-1's reply", func() bool {
		found := false
		got.Range(func(k, _ any) bool {
			found = strings.Contains(k.(string), `"e21"`)
			return !found
		})
		return found
	})
}

// TestSetDevicesAtRuntime: a runner started without devices takes a
// device set later (as from the cloud link), replaces it and empties it:
// twins appear and go, the Modbus mapper starts on the first Modbus device
// and stops polling a removed one, and a data/update from a removed device
// is no longer treated as the mapper's own.
func TestSetDevicesAtRuntime(t *testing.T) {
	r := startRunner(t, "")
	ctx := context.Background()
	if n := len(r.Devices()); n != 0 {
		t.Fatalf("%d devices before SetDevices", n)
	}

	regs := modbus.NewRegisters()
	vis := &devices.ModbusVisitor{Register: devices.HoldingRegister, Offset: 1, Limit: 1, Scale: 1, DataType: devices.Int16}
	if err := regs.Set(vis, devices.TypeInt, int64(42)); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(modbustest.Serve(t, modbus.SlaveOptions{Registers: regs}))

	load := func(src string) []devices.Device {
		t.Helper()
		devs, models, err := devices.Load("set.yaml", []byte(src))
		if err == nil {
			devs, err = devices.Resolve(devs, models)
		}
		if err != nil {
			t.Fatal(err)
		}
		return devs
	}
	model := "apiVersion: devices.kubeedge.io/v1beta1\nkind: DeviceModel\nmetadata: {name: m}\nspec:\n  properties: [{name: level, type: INT}]\n---\n"
	twinOnly := model + "apiVersion: devices.kubeedge.io/v1beta1\nkind: Device\nmetadata: {name: tank-1}\nspec:\n  deviceModelRef: {name: m}\n  properties: [{name: level}]\n"
	withModbus := twinOnly + "---\napiVersion: devices.kubeedge.io/v1beta1\nkind: Device\nmetadata: {name: plc-9}\nspec:\n  deviceModelRef: {name: m}\n" +
		"  protocol: {protocolName: modbus, configData: {ip: " + host + ", port: " + port + "}}\n" +
		"  properties: [{name: level, collectCycle: 50, visitors: {protocolName: modbus, configData: {register: HoldingRegister, offset: 1}}}]\n"

	if err := r.SetDevices(ctx, load(twinOnly)); err != nil {
		t.Fatal(err)
	}
	if ids := deviceIDs(r); !slices.Equal(ids, []string{"default/tank-1"}) {
		t.Fatalf("devices = %v", ids)
	}
	if err := r.SetDevices(ctx, load(withModbus)); err != nil {
		t.Fatal(err)
	}
	mqtttest.WaitFor(t, "the Modbus reading in the new device's twin", func() bool { return twinValue(r, "default/plc-9", "level") == int64(42) })

	if err := r.SetDevices(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if ids := deviceIDs(r); len(ids) != 0 {
		t.Fatalf("devices after an empty set = %v", ids)
	}
	// plc-9 is no longer polled: a reading in the slave stays out of the
	// twins, and a third-party mapper may report it again.
	if err := r.SetDevices(ctx, load(strings.Replace(withModbus, "protocol: {protocolName: modbus", "protocol: {protocolName: virtual", 1))); err == nil {
		mqtttest.WaitFor(t, "plc-9 declared as a twin-only device", func() bool { return slices.Contains(deviceIDs(r), "default/plc-9") })
	} else {
		t.Fatal(err)
	}
	mqtttest.Pub(t, runnertest.BrokerPort(r), "$ke/events/device/default/plc-9/data/update", 0, `{"timestamp":1,"data":{"level":{"value":"7","metadata":{"type":"int"}}}}`)
	mqtttest.WaitFor(t, "a third-party mapper's data/update applied to the twin", func() bool { return twinValue(r, "default/plc-9", "level") == int64(7) })
}

func deviceIDs(r *runner.Runner) []string {
	var ids []string
	for _, d := range r.Devices() {
		ids = append(ids, d.ID)
	}
	return ids
}
