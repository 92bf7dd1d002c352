package devices

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// loadFiles loads and resolves files together, as `eddy run a.yaml b.yaml`.
func loadFiles(t *testing.T, files ...string) ([]Device, error) {
	t.Helper()
	var devs []Device
	var models []Model
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, m, err := Load(filepath.Base(f), src)
		if err != nil {
			return nil, err
		}
		devs, models = append(devs, d...), append(models, m...)
	}
	return Resolve(devs, models)
}

// TestKubeEdgeV1alpha2Samples loads KubeEdge's own Modbus samples
// (build/crd-samples/devices, unchanged; see testdata/kubeedge/README.md),
// which spell registers CoilRegister.
func TestKubeEdgeV1alpha2Samples(t *testing.T) {
	got, err := loadFiles(t,
		"testdata/kubeedge/modbus-device-model.yaml",
		"testdata/kubeedge/modbustcp-device-instance.yaml",
		"testdata/kubeedge/modbusrtu-device-instance.yaml")
	if err != nil {
		t.Fatalf("KubeEdge's samples are refused:\n%v", err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d devices, want 2", len(got))
	}
	tcp, rtu := got[0], got[1]
	if tcp.ID() != "default/modbustcp-device" || tcp.NodeName != "test" || tcp.Protocol.Modbus.TCP.Addr != "192.168.33.1:502" || tcp.Protocol.Modbus.SlaveID != 1 {
		t.Errorf("tcp device = %+v %+v", tcp, tcp.Protocol.Modbus)
	}
	if r := rtu.Protocol.Modbus.RTU; r == nil || r.Port != "/dev/ttyS0" || r.Baud != 9600 || r.Parity != "E" {
		t.Errorf("rtu device line = %+v", r)
	}
	for _, d := range got {
		for _, p := range d.Properties {
			if p.Modbus.Register != Coil || p.Modbus.DataType != Bool || p.Type != TypeInt {
				t.Errorf("%s.%s: register %s data type %s type %s; want Coil bool INT", d.ID(), p.Name, p.Modbus.Register, p.Modbus.DataType, p.Type)
			}
		}
	}
	if p := tcp.Property("temperature"); p.CollectCycle != 5*time.Second {
		t.Errorf("collectCycle 5000 read as %s; want 5s (milliseconds)", p.CollectCycle)
	}
	if p := tcp.Property("temperature-enable"); p.Desired != int64(0) || p.CollectCycle != DefaultCollectCycle {
		t.Errorf("temperature-enable = %+v", p)
	}
	if p := rtu.Property("temperature-enable"); p.Desired != int64(1) {
		t.Errorf("rtu temperature-enable desired = %#v; want 1", p.Desired)
	}
}

// TestKubeEdgeV1beta1DocsSample loads the v1beta1 sample of KubeEdge's
// "Device CRDs" page: its cycles are written in nanoseconds, which Eddy
// refuses with a message saying how to write them; with the cycles in
// milliseconds it loads, with unit id 0 over TCP as KubeEdge's mapper.
func TestKubeEdgeV1beta1DocsSample(t *testing.T) {
	const file = "testdata/kubeedge/device-crd-docs-v1beta1.yaml"
	_, err := loadFiles(t, file)
	want := "device-crd-docs-v1beta1.yaml:26: spec.properties[0].collectCycle: 10000000000 ms is more than a day; it looks like nanoseconds (10s), but cycles are milliseconds as KubeEdge's mapper framework reads them: write 10000 for 10s\n" +
		"device-crd-docs-v1beta1.yaml:27: spec.properties[0].reportCycle: 10000000000 ms is more than a day; it looks like nanoseconds (10s), but cycles are milliseconds as KubeEdge's mapper framework reads them: write 10000 for 10s"
	if err == nil || err.Error() != want {
		t.Fatalf("error =\n%v\nwant\n%s", err, want)
	}

	src, _ := os.ReadFile(file)
	fixed := strings.ReplaceAll(string(src), "10000000000", "10000")
	devs, models, err := Load("fixed.yaml", []byte(fixed))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Resolve(devs, models)
	if err != nil {
		t.Fatal(err)
	}
	d := got[0]
	mb := d.Protocol.Modbus
	if mb == nil || mb.TCP == nil || mb.TCP.Addr != "172.17.0.3:1502" || mb.SlaveID != 0 {
		t.Fatalf("protocol = %+v", mb)
	}
	p := d.Property("temp")
	if p.CollectCycle != 10*time.Second || p.ReportCycle != 10*time.Second || p.Desired != int64(30) || p.Modbus.Register != HoldingRegister || p.Modbus.DataType != Int16 {
		t.Errorf("temp = %+v %+v", p, p.Modbus)
	}
}

func TestRegisterSpellings(t *testing.T) {
	for in, want := range map[string]RegisterKind{
		"Coil": Coil, "CoilRegister": Coil, "coilregister": Coil,
		"DiscreteInput": DiscreteInput, "DiscreteInputRegister": DiscreteInput,
		"Input": Input, "InputRegister": Input,
		"HoldingRegister": HoldingRegister, "holdingregister": HoldingRegister,
	} {
		if got, ok := ParseRegisterKind(in); !ok || got != want {
			t.Errorf("ParseRegisterKind(%q) = %s, %v; want %s", in, got, ok, want)
		}
	}
	if _, ok := ParseRegisterKind("HoldingRegisters"); ok {
		t.Error("HoldingRegisters accepted")
	}
}

func TestSlaveIDs(t *testing.T) {
	const model = "apiVersion: devices.kubeedge.io/v1beta1\nkind: DeviceModel\nmetadata: {name: m}\nspec:\n  properties: [{name: t, type: INT}]\n---\n"
	dev := func(cfg string) string {
		return model + "apiVersion: devices.kubeedge.io/v1beta1\nkind: Device\nmetadata: {name: d}\nspec:\n  deviceModelRef: {name: m}\n  protocol: {protocolName: modbus, configData: " + cfg + "}\n  properties: [{name: t, visitors: {protocolName: modbus, configData: {register: HoldingRegister, offset: 0}}}]\n"
	}
	tests := []struct {
		cfg  string
		want uint8
		err  string
	}{
		{"{ip: 10.0.0.1}", 0, ""},
		{"{ip: 10.0.0.1, slaveID: 0}", 0, ""},
		{"{ip: 10.0.0.1, slaveID: 255}", 255, ""},
		{"{ip: 10.0.0.1, slaveID: 256}", 0, "slave id 256 is out of range; Modbus TCP unit ids are 0..255"},
		{"{serialPort: /dev/ttyUSB0, slaveID: 7}", 7, ""},
		{"{serialPort: /dev/ttyUSB0, slaveID: 0}", 0, "slave id 0 is out of range for Modbus RTU; use 1..247 (0 is broadcast)"},
		{"{serialPort: /dev/ttyUSB0}", 0, "missing slaveID; a Modbus RTU device needs its unit id (1..247)"},
	}
	for _, tt := range tests {
		devs, models, err := Load("x.yaml", []byte(dev(tt.cfg)))
		if err == nil {
			_, err = Resolve(devs, models)
		}
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.cfg, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: error %v; want %q", tt.cfg, err, tt.err)
		case tt.err == "" && devs[0].Protocol.Modbus.SlaveID != tt.want:
			t.Errorf("%s: slave id %d; want %d", tt.cfg, devs[0].Protocol.Modbus.SlaveID, tt.want)
		}
	}
}
