package modbus

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/internal/mqtttest"
	"github.com/eddy-edge/eddy/pipeline/devices"
	"github.com/goburrow/serial"
	"github.com/tbrandon/mbserver"
)

// recorder collects callbacks.
type recorder struct {
	mu       sync.Mutex
	readings map[string]Reading
	states   []bool
}

func newRecorder() *recorder { return &recorder{readings: map[string]Reading{}} }

func (r *recorder) reading(x Reading) {
	r.mu.Lock()
	r.readings[x.Property] = x
	r.mu.Unlock()
}

func (r *recorder) state(_ string, online bool, _ error) {
	r.mu.Lock()
	r.states = append(r.states, online)
	r.mu.Unlock()
}

func (r *recorder) value(p string) any {
	r.mu.Lock()
	defer r.mu.Unlock()
	if x, ok := r.readings[p]; ok {
		return x.Value
	}
	return nil
}

func (r *recorder) lastState() (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.states) == 0 {
		return false, 0
	}
	return r.states[len(r.states)-1], len(r.states)
}

// eventually polls cond, advancing the fake clock, until a deadline.
func eventually(t *testing.T, clk *clock.Fake, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		clk.Advance(time.Second)
		time.Sleep(5 * time.Millisecond) // poll interval of an integration test, not a fixed wait
	}
}

func thermo(mb *devices.Modbus) devices.Device {
	return devices.Device{Namespace: "default", Name: "thermo-1", Protocol: devices.Protocol{Name: "modbus", Modbus: mb},
		Properties: []devices.Property{
			{Name: "temperature", Type: devices.TypeFloat, AccessMode: devices.ReadWrite, CollectCycle: time.Second,
				Modbus: &devices.ModbusVisitor{Register: devices.HoldingRegister, Offset: 0, Limit: 1, Scale: 0.1, DataType: devices.Int16}},
			{Name: "energy", Type: devices.TypeInt, AccessMode: devices.ReadWrite, CollectCycle: time.Second,
				Modbus: &devices.ModbusVisitor{Register: devices.HoldingRegister, Offset: 10, Limit: 2, Scale: 1, IsSwap: true, IsRegisterSwap: true, DataType: devices.Int32}},
			{Name: "humidity", Type: devices.TypeDouble, AccessMode: devices.ReadOnly, CollectCycle: time.Second,
				Modbus: &devices.ModbusVisitor{Register: devices.Input, Offset: 4, Limit: 2, Scale: 1, DataType: devices.Float32}},
			{Name: "heater", Type: devices.TypeBoolean, AccessMode: devices.ReadWrite, CollectCycle: time.Second,
				Modbus: &devices.ModbusVisitor{Register: devices.Coil, Offset: 3, Limit: 1, Scale: 1, DataType: devices.Bool}},
		}}
}

// TestTCPWithSimulator reads, writes and survives the slave going away,
// against Serve on a real TCP socket.
func TestTCPWithSimulator(t *testing.T) {
	regs := NewRegisters()
	dev := thermo(nil)
	must(t, regs.Set(dev.Properties[0].Modbus, devices.TypeFloat, -12.5))
	must(t, regs.Set(dev.Properties[1].Modbus, devices.TypeInt, int64(-70000)))
	must(t, regs.Set(dev.Properties[2].Modbus, devices.TypeDouble, 55.5))
	must(t, regs.Set(dev.Properties[3].Modbus, devices.TypeBoolean, true))

	addrc := make(chan string, 1)
	start := func(addr string) (context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- Serve(ctx, SlaveOptions{TCPAddr: addr, SlaveID: 1, Registers: regs, Ready: func(a string) { addrc <- a }})
		}()
		return cancel, done
	}
	stopSlave, done := start("127.0.0.1:0")
	addr := <-addrc

	clk := clock.NewFake(time.Unix(0, 0))
	rec := newRecorder()
	m := New(Options{Clock: clk, OnReading: rec.reading, OnState: rec.state, Timeout: 500 * time.Millisecond})
	dev.Protocol.Modbus = &devices.Modbus{SlaveID: 1, TCP: &devices.TCP{Addr: addr}}
	must(t, m.Start(context.Background(), []devices.Device{dev}))
	defer m.Close()

	eventually(t, clk, "first readings", func() bool {
		return rec.value("temperature") == -12.5 && rec.value("energy") == int64(-70000) && rec.value("humidity") == 55.5 && rec.value("heater") == true
	})
	if on, n := rec.lastState(); !on || n != 1 {
		t.Fatalf("state = %v after %d transitions, want online after 1", on, n)
	}

	// Writes reach the slave's registers, with scale and swaps applied.
	ctx := context.Background()
	must(t, m.Write(ctx, "default/thermo-1", "temperature", "23.4"))
	must(t, m.Write(ctx, "default/thermo-1", "energy", int64(123456)))
	must(t, m.Write(ctx, "default/thermo-1", "heater", false))
	if got, _ := regs.Get(dev.Properties[0].Modbus, devices.TypeFloat); got != 23.4 {
		t.Errorf("temperature register = %v, want 23.4", got)
	}
	if got, _ := regs.Get(dev.Properties[1].Modbus, devices.TypeInt); got != int64(123456) {
		t.Errorf("energy registers = %v", got)
	}
	if regs.holding[0] != 234 {
		t.Errorf("raw temperature register = %d, want 234", regs.holding[0])
	}
	if got, _ := regs.Get(dev.Properties[3].Modbus, devices.TypeBoolean); got != false {
		t.Errorf("coil = %v", got)
	}
	if err := m.Write(ctx, "default/thermo-1", "humidity", 1.0); err == nil {
		t.Error("write to a ReadOnly property succeeded")
	}
	eventually(t, clk, "written value read back", func() bool { return rec.value("temperature") == 23.4 })

	// Slave goes away: offline. Comes back on the same address: online.
	stopSlave()
	<-done
	eventually(t, clk, "offline", func() bool { on, n := rec.lastState(); return !on && n == 2 })
	stopSlave, done = start(addr)
	<-addrc
	defer func() { stopSlave(); <-done }()
	eventually(t, clk, "online again", func() bool { on, n := rec.lastState(); return on && n == 3 })
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestTCPWithMbserver checks interoperability with a slave we did not write.
func TestTCPWithMbserver(t *testing.T) {
	s := mbserver.NewServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	ln.Close()
	must(t, s.ListenTCP(addr))
	defer s.Close()
	s.HoldingRegisters[0] = 215 // 21.5 with scale 0.1
	s.HoldingRegisters[10], s.HoldingRegisters[11] = 0x0200, 0x0100
	s.Coils[3] = 1
	clk := clock.NewFake(time.Unix(0, 0))
	rec := newRecorder()
	m := New(Options{Clock: clk, OnReading: rec.reading, OnState: rec.state})
	dev := thermo(&devices.Modbus{SlaveID: 1, TCP: &devices.TCP{Addr: addr}})
	dev.Properties = append(dev.Properties[:2], dev.Properties[3])
	must(t, m.Start(context.Background(), []devices.Device{dev}))
	defer m.Close()
	eventually(t, clk, "readings", func() bool {
		return rec.value("temperature") == 21.5 && rec.value("energy") == int64(65538) && rec.value("heater") == true
	})
	must(t, m.Write(context.Background(), dev.ID(), "temperature", 30.0))
	must(t, m.Write(context.Background(), dev.ID(), "energy", int64(-2)))
	// mbserver's memory has no lock, so check it through the mapper: the
	// slave now answers what was written.
	eventually(t, clk, "written values read back", func() bool {
		return rec.value("temperature") == 30.0 && rec.value("energy") == int64(-2)
	})
}

// TestRTUOverPty runs the mapper against mbserver's RTU slave on a real
// serial pty pair made by socat.
func TestRTUOverPty(t *testing.T) {
	mqtttest.Tool(t, "socat") // skips locally without it, fails in CI
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cmd := exec.Command("socat", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	must(t, cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, ea := os.Stat(a)
		_, eb := os.Stat(b)
		if ea == nil && eb == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("socat did not create the pty pair")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s := mbserver.NewServer()
	// mbserver stops for good after a read timeout: give it a huge one.
	must(t, s.ListenRTU(&serial.Config{Address: a, BaudRate: 19200, DataBits: 8, StopBits: 1, Parity: "N", Timeout: 24 * time.Hour}))
	// No s.Close(): it races with mbserver's own reader goroutine (a data
	// race inside mbserver). Killing socat (deferred above) closes the pty,
	// and mbserver's reader ends on the read error.
	s.HoldingRegisters[0] = 0xFF9C // -100 -> -10.0
	s.Coils[3] = 1

	clk := clock.NewFake(time.Unix(0, 0))
	rec := newRecorder()
	m := New(Options{Clock: clk, OnReading: rec.reading, OnState: rec.state})
	dev := thermo(&devices.Modbus{SlaveID: 1, RTU: &devices.RTU{Port: b, Baud: 19200, DataBits: 8, Parity: "N", StopBits: 1}})
	dev.Properties = append(dev.Properties[:1], dev.Properties[3])
	must(t, m.Start(context.Background(), []devices.Device{dev}))
	defer m.Close()
	eventually(t, clk, "RTU readings", func() bool { return rec.value("temperature") == -10.0 && rec.value("heater") == true })
	must(t, m.Write(context.Background(), dev.ID(), "temperature", "-5.5"))
	eventually(t, clk, "written value read back", func() bool { return rec.value("temperature") == -5.5 })
}

// BenchmarkPollTCP measures sequential reads per second over loopback TCP
// against the simulated slave.
func BenchmarkPollTCP(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan string, 1)
	go Serve(ctx, SlaveOptions{TCPAddr: "127.0.0.1:0", Ready: func(a string) { addrc <- a }})
	m := New(Options{})
	dev := thermo(&devices.Modbus{SlaveID: 1, TCP: &devices.TCP{Addr: <-addrc}})
	bs := m.newBus(dev.Protocol.Modbus)
	defer bs.close()
	dr := &deviceRunner{m: m, dev: dev, bus: bs, ctx: ctx}
	p := dev.Properties[1]
	b.ReportAllocs()
	for b.Loop() {
		dr.read(&p)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}
