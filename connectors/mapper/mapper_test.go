package mapper

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/connectors/modbus"
	"github.com/eddy-edge/eddy/internal/modbustest"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
)

// wire records what the mapper sends, as a twin manager and a broker see it.
type wire struct {
	mu      sync.Mutex
	reports []string // topics handed to Report
	actual  map[string]string
	states  []string
	data    int // data/update messages published
}

func (w *wire) report(topic string, payload []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reports = append(w.reports, topic)
	t, _ := kubeedge.ParseTopic(topic)
	switch t.Kind {
	case kubeedge.TwinUpdate:
		var m kubeedge.TwinUpdateMsg
		_ = json.Unmarshal(payload, &m)
		for k, tw := range m.Twin {
			var s string
			_ = json.Unmarshal(tw.Actual.Value, &s)
			w.actual[k] = s
		}
	case kubeedge.StateUpdate:
		var m kubeedge.StateUpdateMsg
		_ = json.Unmarshal(payload, &m)
		w.states = append(w.states, m.State)
	}
}

func (w *wire) publish(topic string, payload []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := kubeedge.ParseTopic(topic); ok && t.Kind == kubeedge.DataUpdate && t.ID == "default/plc-1" {
		w.data++
	}
	return nil
}

func (w *wire) get(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f()
}

func eventually(t *testing.T, clk *clock.Fake, step time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		clk.Advance(step)
		time.Sleep(5 * time.Millisecond) // poll interval of an integration test, not a fixed wait
	}
}

// TestMapperWithModbusSlave runs the mapper with the real Modbus driver
// against the simulated slave over TCP with unit id 0 (what KubeEdge's
// mapper sends when the Device names none): readings become twin reports,
// data/update is throttled to reportCycle, and a delta is written to the
// slave once, then confirmed by the next reading.
func TestMapperWithModbusSlave(t *testing.T) {
	regs := modbus.NewRegisters()
	setpoint := &devices.ModbusVisitor{Register: devices.HoldingRegister, Offset: 2, Limit: 1, Scale: 1, DataType: devices.Int16}
	if err := regs.Set(setpoint, devices.TypeInt, int64(200)); err != nil {
		t.Fatal(err)
	}
	addr := modbustest.Serve(t, modbus.SlaveOptions{Registers: regs})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	dev := devices.Device{Namespace: "default", Name: "plc-1",
		Protocol: devices.Protocol{Name: "modbus", Modbus: &devices.Modbus{SlaveID: 0, TCP: &devices.TCP{Addr: addr}}},
		Properties: []devices.Property{{Name: "setpoint", Type: devices.TypeInt, AccessMode: devices.ReadWrite,
			CollectCycle: time.Second, ReportCycle: 10 * time.Second, Modbus: setpoint}}}

	clk := clock.NewFake(time.Unix(1700000000, 0))
	w := &wire{actual: map[string]string{}}
	m := New(Options{Report: w.report, Publish: w.publish, Clock: clk})
	drv := modbus.New(modbus.Options{Clock: clk, OnReading: m.OnReading, OnState: m.OnState, Timeout: time.Second})
	if err := m.Start(ctx, drv, []devices.Device{dev}); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !m.Polls("default/plc-1") || m.Polls("default/other") {
		t.Fatal("Polls does not say which devices the mapper polls")
	}

	eventually(t, clk, time.Second, "the first reading", func() bool {
		var v string
		w.get(func() { v = w.actual["setpoint"] })
		return v == "200"
	})
	w.get(func() {
		if len(w.states) == 0 || w.states[0] != kubeedge.StateOnline {
			t.Errorf("states = %v; want online first", w.states)
		}
	})

	// Ten readings in 9.5s of device time: one data/update (reportCycle 10s),
	// a twin report for every reading.
	var reportsBefore, dataBefore int
	w.get(func() { reportsBefore, dataBefore = len(w.reports), w.data })
	for range 19 {
		clk.Advance(500 * time.Millisecond)
		time.Sleep(2 * time.Millisecond)
	}
	eventually(t, clk, 0, "more readings", func() bool {
		var n int
		w.get(func() { n = len(w.reports) })
		return n >= reportsBefore+5
	})
	w.get(func() {
		if w.data-dataBefore > 1 {
			t.Errorf("%d data/update messages in less than one reportCycle; want at most 1", w.data-dataBefore)
		}
	})

	// A delta is written to the slave.
	delta, _ := json.Marshal(kubeedge.TwinDeltaMsg{Delta: map[string]json.RawMessage{"setpoint": kubeedge.StringValue("215")}})
	m.OnDelta(kubeedge.DeviceTopic("default/plc-1", kubeedge.TwinUpdateDelta), delta)
	eventually(t, clk, time.Second, "the desired value in the slave", func() bool {
		v, _ := regs.Get(setpoint, devices.TypeInt)
		return v == int64(215)
	})
	eventually(t, clk, time.Second, "the written value read back", func() bool {
		var v string
		w.get(func() { v = w.actual["setpoint"] })
		return v == "215"
	})

	// Devices removed: no longer polled.
	if err := m.SetDevices(nil); err != nil {
		t.Fatal(err)
	}
	if m.Polls("default/plc-1") {
		t.Error("a removed device is still polled")
	}
}

// TestDeclareBeforeStart: a delta of a declared device is queued before
// the driver polls it, nothing is reported until Start, and the queued
// value is written once the device answers (the order the runner uses:
// declare, then the twins' first deltas, then poll).
func TestDeclareBeforeStart(t *testing.T) {
	regs := modbus.NewRegisters()
	setpoint := &devices.ModbusVisitor{Register: devices.HoldingRegister, Offset: 2, Limit: 1, Scale: 1, DataType: devices.Int16}
	addr := modbustest.Serve(t, modbus.SlaveOptions{Registers: regs})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dev := devices.Device{Namespace: "default", Name: "plc-1",
		Protocol: devices.Protocol{Name: "modbus", Modbus: &devices.Modbus{TCP: &devices.TCP{Addr: addr}}},
		Properties: []devices.Property{{Name: "setpoint", Type: devices.TypeInt, AccessMode: devices.ReadWrite,
			CollectCycle: time.Second, Modbus: setpoint}}}

	clk := clock.NewFake(time.Unix(1700000000, 0))
	w := &wire{actual: map[string]string{}}
	m := New(Options{Report: w.report, Publish: w.publish, Clock: clk})
	defer m.Close()
	drv := modbus.New(modbus.Options{Clock: clk, OnReading: m.OnReading, OnState: m.OnState, Timeout: time.Second})
	m.Declare([]devices.Device{dev})
	delta, _ := json.Marshal(kubeedge.TwinDeltaMsg{Delta: map[string]json.RawMessage{"setpoint": kubeedge.StringValue("215")}})
	m.OnDelta(kubeedge.DeviceTopic("default/plc-1", kubeedge.TwinUpdateDelta), delta)
	if err := m.SetDevices([]devices.Device{dev}); err == nil {
		t.Error("SetDevices before Start succeeded")
	}
	w.get(func() {
		if len(w.reports) != 0 {
			t.Errorf("reported %v before Start", w.reports)
		}
	})
	if err := m.Start(ctx, drv, []devices.Device{dev}); err != nil {
		t.Fatal(err)
	}
	eventually(t, clk, time.Second, "the desired value queued before Start in the slave", func() bool {
		v, _ := regs.Get(setpoint, devices.TypeInt)
		return v == int64(215)
	})
}
