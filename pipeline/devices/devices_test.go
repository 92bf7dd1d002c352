package devices

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eddy-edge/eddy/pipeline/strictyaml"
)

var update = flag.Bool("update", false, "rewrite golden files")

func f64(f float64) *float64 { return &f }

func loadResolve(t *testing.T, file string) ([]Device, error) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	devs, models, err := Load(filepath.Base(file), src)
	if err != nil {
		return nil, err
	}
	return Resolve(devs, models)
}

// strip drops the unexported source bookkeeping so devices compare by value.
func strip(ds []Device) []Device {
	for i := range ds {
		ds[i].src = nil
		for j := range ds[i].Properties {
			ds[i].Properties[j].path = ""
			ds[i].Properties[j].desiredPath = ""
		}
	}
	return ds
}

func TestLoadResolve(t *testing.T) {
	tests := []struct {
		file string
		want []Device
	}{
		{"testdata/v1beta1.yaml", []Device{
			{Namespace: "default", Name: "thermo-1", APIVersion: V1beta1, Model: "thermo-model", NodeName: "edge-a",
				Protocol: Protocol{Name: "modbus", Modbus: &Modbus{SlaveID: 1, TCP: &TCP{Addr: "10.0.0.5:502"}}},
				Properties: []Property{
					{Name: "temperature", Type: TypeInt, AccessMode: ReadWrite, Min: f64(0), Max: f64(100), Unit: "C",
						Desired: int64(22), DesiredText: "22", CollectCycle: time.Second, ReportCycle: 5 * time.Second, ReportToCloud: true,
						Modbus: &ModbusVisitor{Register: HoldingRegister, Offset: 0, Limit: 1, Scale: 1, DataType: Int16}},
					{Name: "humidity", Type: TypeFloat, AccessMode: ReadOnly, Unit: "%", CollectCycle: 250 * time.Millisecond,
						Modbus: &ModbusVisitor{Register: Input, Offset: 4, Limit: 2, Scale: 0.1, IsSwap: true, IsRegisterSwap: true, DataType: Float32}},
					{Name: "heater", Type: TypeBoolean, AccessMode: ReadWrite, Desired: true, DesiredText: "true", CollectCycle: time.Second,
						Modbus: &ModbusVisitor{Register: Coil, Offset: 3, Limit: 1, Scale: 1, DataType: Bool}},
				}},
			{Namespace: "default", Name: "thermo-2", APIVersion: V1beta1, Model: "thermo-model", NodeName: "edge-b",
				Protocol: Protocol{Name: "modbus", Modbus: &Modbus{SlaveID: 7, RTU: &RTU{Port: "/dev/ttyUSB0", Baud: 9600, DataBits: 8, Parity: "N", StopBits: 1}}},
				Properties: []Property{
					{Name: "temperature", Type: TypeInt, AccessMode: ReadWrite, Min: f64(0), Max: f64(100), Unit: "C", CollectCycle: time.Second,
						Modbus: &ModbusVisitor{Register: HoldingRegister, Offset: 10, Limit: 2, Scale: 1, DataType: Int32}},
				}},
		}},
		{"testdata/v1alpha2.yaml", []Device{
			{Namespace: "default", Name: "thermo-1", APIVersion: V1alpha2, Model: "thermo-model", NodeName: "edge-a",
				Protocol: Protocol{Name: "modbus", Modbus: &Modbus{SlaveID: 1, TCP: &TCP{Addr: "10.0.0.5:502"}}},
				Properties: []Property{
					{Name: "temperature", Type: TypeInt, AccessMode: ReadWrite, Min: f64(0), Max: f64(100), Unit: "C",
						Desired: int64(22), DesiredText: "22", CollectCycle: 2 * time.Second,
						Modbus: &ModbusVisitor{Register: HoldingRegister, Limit: 1, Scale: 1, DataType: Int16}},
					{Name: "humidity", Type: TypeFloat, AccessMode: ReadOnly, CollectCycle: time.Second,
						Modbus: &ModbusVisitor{Register: Input, Offset: 1, Limit: 1, Scale: 0.5, DataType: Int16}},
				}},
			{Namespace: "plant", Name: "thermo-3", APIVersion: V1alpha2, Model: "m",
				Protocol: Protocol{Name: "modbus", Modbus: &Modbus{SlaveID: 3, RTU: &RTU{Port: "/dev/ttyS1", Baud: 115200, DataBits: 8, Parity: "O", StopBits: 2}}},
				Properties: []Property{
					{Name: "p", Type: TypeBoolean, AccessMode: ReadOnly, CollectCycle: time.Second,
						Modbus: &ModbusVisitor{Register: Coil, Offset: 9, Limit: 1, Scale: 1, DataType: Bool}},
				}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			got, err := loadResolve(t, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			got = strip(got)
			if !reflect.DeepEqual(got, tc.want) {
				for i := range got {
					if i < len(tc.want) && !reflect.DeepEqual(got[i], tc.want[i]) {
						t.Errorf("device %d:\n got %+v\nwant %+v", i, got[i], tc.want[i])
						for j := range got[i].Properties {
							if j < len(tc.want[i].Properties) {
								t.Logf("prop %d got %+v %+v\nwant %+v %+v", j, got[i].Properties[j], got[i].Properties[j].Modbus, tc.want[i].Properties[j], tc.want[i].Properties[j].Modbus)
							}
						}
					}
				}
				if len(got) != len(tc.want) {
					t.Errorf("got %d devices, want %d", len(got), len(tc.want))
				}
			}
			if got[0].ID() != got[0].Namespace+"/"+got[0].Name {
				t.Errorf("ID() = %q", got[0].ID())
			}
		})
	}
}

// TestResolveDoesNotModifyInput guards the promise that Resolve copies.
func TestResolveDoesNotModifyInput(t *testing.T) {
	src, _ := os.ReadFile("testdata/v1beta1.yaml")
	devs, models, err := Load("v1beta1.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(devs, models); err != nil {
		t.Fatal(err)
	}
	if p := devs[0].Properties[0]; p.Type != "" || p.Modbus.DataType != "" || p.Desired != "22" {
		t.Errorf("input modified: %+v %+v", p, p.Modbus)
	}
}

func TestErrorsGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/errors/*.yaml")
	if len(files) == 0 {
		t.Fatal("no error cases")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, err := loadResolve(t, file)
			if err == nil {
				t.Fatal("no error")
			}
			var es strictyaml.Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, want strictyaml.Errors", err)
			}
			for _, e := range es {
				if e.Line == 0 || e.File == "" {
					t.Errorf("error without file:line: %v", e)
				}
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			got := err.Error() + "\n"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, _ := os.ReadFile(golden)
			if got != string(want) {
				t.Errorf("errors differ from %s (run go test -update):\n got:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestSkipsOtherGroups(t *testing.T) {
	src := []byte("apiVersion: eddy.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\n---\napiVersion: devices.kubeedge.io/v1beta1\nkind: DeviceStatus\nmetadata: {name: s}\n")
	devs, models, err := Load("x.yaml", src)
	if err != nil || len(devs) != 0 || len(models) != 0 {
		t.Fatalf("got %v %v %v", devs, models, err)
	}
}

func TestParseValue(t *testing.T) {
	tests := []struct {
		t       PropertyType
		in      string
		want    any
		wantErr bool
	}{
		{TypeInt, "42", int64(42), false},
		{TypeInt, "-7", int64(-7), false},
		{TypeInt, "3.0", int64(3), false},
		{TypeInt, "3.5", nil, true},
		{TypeFloat, "2.5", 2.5, false},
		{TypeDouble, "x", nil, true},
		{TypeBoolean, "true", true, false},
		{TypeBoolean, "yes", nil, true},
		{TypeString, "hi there", "hi there", false},
		{TypeBytes, "ab", []byte("ab"), false},
	}
	for _, tc := range tests {
		got, err := ParseValue(tc.t, tc.in)
		if (err != nil) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseValue(%s, %q) = %#v, %v", tc.t, tc.in, got, err)
		}
	}
}

func FuzzLoad(f *testing.F) {
	for _, g := range []string{"testdata/*.yaml", "testdata/errors/*.yaml", "testdata/kubeedge/*.yaml"} {
		files, _ := filepath.Glob(g)
		for _, file := range files {
			b, _ := os.ReadFile(file)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		devs, models, err := Load("fuzz.yaml", src)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if _, err := Resolve(devs, models); err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}
