package modbus

import (
	"math"
	"reflect"
	"testing"

	"github.com/eddy-edge/eddy/pipeline/devices"
)

func vis(reg devices.RegisterKind, dt devices.DataType, limit uint16, scale float64, swap, regSwap bool) *devices.ModbusVisitor {
	return &devices.ModbusVisitor{Register: reg, Limit: limit, Scale: scale, IsSwap: swap, IsRegisterSwap: regSwap, DataType: dt}
}

func TestDecode(t *testing.T) {
	f32 := math.Float32bits(21.5)
	tests := []struct {
		name string
		v    *devices.ModbusVisitor
		t    devices.PropertyType
		data []byte
		want any
	}{
		{"int16 positive", vis(devices.HoldingRegister, devices.Int16, 1, 1, false, false), devices.TypeInt, []byte{0x00, 0x16}, int64(22)},
		{"int16 negative", vis(devices.HoldingRegister, devices.Int16, 1, 1, false, false), devices.TypeInt, []byte{0xFF, 0xFE}, int64(-2)},
		{"uint16 high", vis(devices.Input, devices.Uint16, 1, 1, false, false), devices.TypeInt, []byte{0xFF, 0xFE}, int64(65534)},
		{"int16 scaled to float", vis(devices.Input, devices.Int16, 1, 0.1, false, false), devices.TypeFloat, []byte{0x00, 0xD7}, 21.5},
		{"int16 negative scaled", vis(devices.Input, devices.Int16, 1, 0.5, false, false), devices.TypeDouble, []byte{0xFF, 0xFB}, -2.5},
		{"int scaled rounds", vis(devices.Input, devices.Int16, 1, 0.1, false, false), devices.TypeInt, []byte{0x00, 0xD7}, int64(22)},
		{"byte swap", vis(devices.HoldingRegister, devices.Int16, 1, 1, true, false), devices.TypeInt, []byte{0x16, 0x00}, int64(22)},
		{"int32", vis(devices.HoldingRegister, devices.Int32, 2, 1, false, false), devices.TypeInt, []byte{0x00, 0x01, 0x00, 0x02}, int64(65538)},
		{"int32 negative", vis(devices.HoldingRegister, devices.Int32, 2, 1, false, false), devices.TypeInt, []byte{0xFF, 0xFF, 0xFF, 0xFE}, int64(-2)},
		{"int32 register swap", vis(devices.HoldingRegister, devices.Int32, 2, 1, false, true), devices.TypeInt, []byte{0x00, 0x02, 0x00, 0x01}, int64(65538)},
		{"int32 both swaps", vis(devices.HoldingRegister, devices.Int32, 2, 1, true, true), devices.TypeInt, []byte{0x02, 0x00, 0x01, 0x00}, int64(65538)},
		{"uint32", vis(devices.HoldingRegister, devices.Uint32, 2, 1, false, false), devices.TypeInt, []byte{0xFF, 0xFF, 0xFF, 0xFF}, int64(math.MaxUint32)},
		{"float32", vis(devices.Input, devices.Float32, 2, 1, false, false), devices.TypeFloat, []byte{byte(f32 >> 24), byte(f32 >> 16), byte(f32 >> 8), byte(f32)}, 21.5},
		{"float32 swapped", vis(devices.Input, devices.Float32, 2, 1, true, true), devices.TypeFloat, []byte{byte(f32), byte(f32 >> 8), byte(f32 >> 16), byte(f32 >> 24)}, 21.5},
		{"float32 scaled", vis(devices.Input, devices.Float32, 2, 2, false, false), devices.TypeFloat, []byte{byte(f32 >> 24), byte(f32 >> 16), byte(f32 >> 8), byte(f32)}, 43.0},
		{"float64", vis(devices.Input, devices.Float64, 4, 1, false, false), devices.TypeDouble, []byte{0xC0, 0x09, 0x21, 0xF9, 0xF0, 0x1B, 0x86, 0x6E}, -3.14159},
		{"int64 negative", vis(devices.Input, devices.Int64, 4, 1, false, false), devices.TypeInt, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, int64(-1)},
		{"coil on", vis(devices.Coil, devices.Bool, 1, 1, false, false), devices.TypeBoolean, []byte{0x01}, true},
		{"discrete off", vis(devices.DiscreteInput, devices.Bool, 1, 1, false, false), devices.TypeBoolean, []byte{0x00}, false},
		{"bool register", vis(devices.HoldingRegister, devices.Bool, 1, 1, false, false), devices.TypeBoolean, []byte{0x00, 0x02}, true},
		{"int as boolean", vis(devices.HoldingRegister, devices.Int16, 1, 1, false, false), devices.TypeBoolean, []byte{0x00, 0x00}, false},
		{"string", vis(devices.HoldingRegister, devices.String, 3, 1, false, false), devices.TypeString, []byte("hi!\x00\x00\x00"), "hi!"},
		{"string swapped", vis(devices.HoldingRegister, devices.String, 2, 1, true, false), devices.TypeString, []byte("ihk\x00"), "hi\x00k"},
		{"number as string", vis(devices.HoldingRegister, devices.Int16, 1, 0.5, false, false), devices.TypeString, []byte{0x00, 0x05}, "2.5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.v, tc.t, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if f, ok := got.(float64); ok {
				if w, ok := tc.want.(float64); ok && math.Abs(f-w) < 1e-9 {
					return
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestDecodeShort(t *testing.T) {
	if _, err := Decode(vis(devices.HoldingRegister, devices.Int32, 2, 1, false, false), devices.TypeInt, []byte{1, 2}); err == nil {
		t.Fatal("want error for short data")
	}
}

// TestEncodeRoundTrip writes then reads back through the codec.
func TestEncodeRoundTrip(t *testing.T) {
	tests := []struct {
		v  *devices.ModbusVisitor
		t  devices.PropertyType
		in any
	}{
		{vis(devices.HoldingRegister, devices.Int16, 1, 1, false, false), devices.TypeInt, int64(-300)},
		{vis(devices.HoldingRegister, devices.Int16, 1, 0.1, true, false), devices.TypeFloat, 21.5},
		{vis(devices.HoldingRegister, devices.Int32, 2, 1, true, true), devices.TypeInt, int64(-123456)},
		{vis(devices.HoldingRegister, devices.Uint32, 2, 1, false, true), devices.TypeInt, int64(4000000000)},
		{vis(devices.HoldingRegister, devices.Float32, 2, 1, true, true), devices.TypeFloat, 1.25},
		{vis(devices.HoldingRegister, devices.Float64, 4, 10, false, true), devices.TypeDouble, 12.5},
		{vis(devices.HoldingRegister, devices.Int64, 4, 1, true, true), devices.TypeInt, int64(-1 << 40)},
		{vis(devices.HoldingRegister, devices.String, 4, 1, false, false), devices.TypeString, "eddy"},
		{vis(devices.HoldingRegister, devices.Bool, 1, 1, false, false), devices.TypeBoolean, true},
		{vis(devices.HoldingRegister, devices.Int16, 1, 1, false, false), devices.TypeInt, "42"},
	}
	for _, tc := range tests {
		data, err := Encode(tc.v, tc.t, tc.in)
		if err != nil {
			t.Fatalf("Encode(%v): %v", tc.in, err)
		}
		got, err := Decode(tc.v, tc.t, data)
		if err != nil {
			t.Fatal(err)
		}
		want := tc.in
		if s, ok := want.(string); ok && tc.t != devices.TypeString {
			want, _ = devices.ParseValue(tc.t, s)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s %+v: round trip %#v -> % x -> %#v", tc.t, *tc.v, tc.in, data, got)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		v  *devices.ModbusVisitor
		in any
	}{
		{vis(devices.HoldingRegister, devices.Int16, 1, 1, false, false), int64(40000)},
		{vis(devices.HoldingRegister, devices.Uint16, 1, 1, false, false), int64(-1)},
		{vis(devices.HoldingRegister, devices.Int16, 1, 0.01, false, false), 400.0},
		{vis(devices.HoldingRegister, devices.String, 1, 1, false, false), "too long"},
		{vis(devices.Coil, devices.Bool, 1, 1, false, false), "maybe"},
		{vis(devices.HoldingRegister, devices.Int16, 1, 1, false, false), struct{}{}},
	}
	for _, tc := range tests {
		if b, err := Encode(tc.v, devices.TypeInt, tc.in); err == nil {
			t.Errorf("Encode(%+v, %v) = % x, want error", *tc.v, tc.in, b)
		}
	}
	if b, _ := Encode(vis(devices.Coil, devices.Bool, 1, 1, false, false), devices.TypeBoolean, true); !reflect.DeepEqual(b, []byte{0xFF, 0}) {
		t.Errorf("coil on = % x, want ff 00", b)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7}, uint8(0), uint8(0), 1.0, false, false)
	f.Add([]byte{0xFF, 0xFE}, uint8(1), uint8(1), 0.1, true, true)
	kinds := []devices.RegisterKind{devices.HoldingRegister, devices.Input, devices.Coil, devices.DiscreteInput}
	dts := []devices.DataType{devices.Int16, devices.Uint16, devices.Int32, devices.Uint32, devices.Float32, devices.Int64, devices.Uint64, devices.Float64, devices.Bool, devices.String, devices.Bytes}
	types := []devices.PropertyType{devices.TypeInt, devices.TypeFloat, devices.TypeDouble, devices.TypeBoolean, devices.TypeString, devices.TypeBytes}
	f.Fuzz(func(t *testing.T, data []byte, k, dt uint8, scale float64, swap, regSwap bool) {
		v := &devices.ModbusVisitor{Register: kinds[int(k)%len(kinds)], DataType: dts[int(dt)%len(dts)], Limit: uint16(len(data) / 2), Scale: scale, IsSwap: swap, IsRegisterSwap: regSwap}
		for _, pt := range types {
			got, err := Decode(v, pt, data)
			if err == nil && got == nil {
				t.Fatalf("nil value without error")
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	v := vis(devices.Input, devices.Float32, 2, 0.1, true, true)
	data := []byte{0x00, 0x00, 0xAC, 0x41}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(v, devices.TypeFloat, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeInt16(b *testing.B) {
	v := vis(devices.HoldingRegister, devices.Int16, 1, 1, false, false)
	data := []byte{0x00, 0x16}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(v, devices.TypeInt, data); err != nil {
			b.Fatal(err)
		}
	}
}
