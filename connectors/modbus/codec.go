package modbus

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/eddy-edge/eddy/pipeline/devices"
)

// Decode turns the bytes of a read (as returned by the Modbus read
// functions: packed bits for coils and discrete inputs, big-endian
// registers otherwise) into a value of property type t: int64 for INT,
// float64 for FLOAT and DOUBLE, bool for BOOLEAN, string for STRING and
// []byte for BYTES.
//
// Registers are first reordered (IsRegisterSwap reverses the register
// order, IsSwap swaps the two bytes of each register), then read as the
// visitor's data type, then multiplied by Scale. An INT property with a
// fractional scaled value is rounded to the nearest integer.
func Decode(v *devices.ModbusVisitor, t devices.PropertyType, data []byte) (any, error) {
	if v.Register.Bits() || v.DataType == devices.Bool && len(data) == 1 {
		if len(data) < 1 {
			return nil, fmt.Errorf("modbus: empty response for %s %d", v.Register, v.Offset)
		}
		return fromBool(t, data[0]&1 == 1), nil
	}
	n := v.DataType.Registers() * 2
	if n == 0 {
		n = int(v.Limit) * 2
	}
	if len(data) < n {
		return nil, fmt.Errorf("modbus: %s %d: got %d bytes, want %d for %s", v.Register, v.Offset, len(data), n, v.DataType)
	}
	var small [8]byte
	var b []byte
	if n <= len(small) {
		b = small[:n]
	} else {
		b = make([]byte, n)
	}
	copy(b, data[:n])
	reorder(b, v.IsSwap, v.IsRegisterSwap)
	switch v.DataType {
	case devices.String:
		s := strings.TrimRight(string(b), "\x00 ")
		return fromString(t, s)
	case devices.Bytes:
		if t == devices.TypeString {
			return string(b), nil
		}
		return b, nil
	case devices.Bool:
		return fromBool(t, binary.BigEndian.Uint16(b) != 0), nil
	}
	var i int64
	var u uint64
	var f float64
	isFloat, isUint := false, false
	switch v.DataType {
	case devices.Int16:
		i = int64(int16(binary.BigEndian.Uint16(b)))
	case devices.Uint16:
		i = int64(binary.BigEndian.Uint16(b))
	case devices.Int32:
		i = int64(int32(binary.BigEndian.Uint32(b)))
	case devices.Uint32:
		i = int64(binary.BigEndian.Uint32(b))
	case devices.Int64:
		i = int64(binary.BigEndian.Uint64(b))
	case devices.Uint64:
		u, isUint = binary.BigEndian.Uint64(b), true
	case devices.Float32:
		f, isFloat = float64(math.Float32frombits(binary.BigEndian.Uint32(b))), true
	case devices.Float64:
		f, isFloat = math.Float64frombits(binary.BigEndian.Uint64(b)), true
	default:
		return nil, fmt.Errorf("modbus: unknown data type %q", v.DataType)
	}
	scale := v.Scale
	if scale == 0 {
		scale = 1
	}
	if !isFloat && scale == 1 && t != devices.TypeFloat && t != devices.TypeDouble {
		if isUint {
			if u > math.MaxInt64 {
				return nil, fmt.Errorf("modbus: %s %d: %d does not fit an INT", v.Register, v.Offset, u)
			}
			i = int64(u)
		}
		return fromInt(t, i), nil
	}
	switch {
	case isUint:
		f = float64(u)
	case !isFloat:
		f = float64(i)
	}
	return fromFloat(t, applyScale(f, scale))
}

func reorder(b []byte, swapBytes, swapRegs bool) {
	if swapRegs {
		for i, j := 0, len(b)-2; i < j; i, j = i+2, j-2 {
			b[i], b[i+1], b[j], b[j+1] = b[j], b[j+1], b[i], b[i+1]
		}
	}
	if swapBytes {
		for i := 0; i+1 < len(b); i += 2 {
			b[i], b[i+1] = b[i+1], b[i]
		}
	}
}

func fromBool(t devices.PropertyType, b bool) any {
	switch t {
	case devices.TypeInt:
		if b {
			return int64(1)
		}
		return int64(0)
	case devices.TypeString:
		return strconv.FormatBool(b)
	}
	return b
}

func fromInt(t devices.PropertyType, i int64) any {
	switch t {
	case devices.TypeBoolean:
		return i != 0
	case devices.TypeString:
		return strconv.FormatInt(i, 10)
	}
	return i
}

func fromFloat(t devices.PropertyType, f float64) (any, error) {
	switch t {
	case devices.TypeInt:
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > math.MaxInt64 {
			return nil, fmt.Errorf("modbus: %g does not fit an INT", f)
		}
		return int64(math.Round(f)), nil
	case devices.TypeBoolean:
		return f != 0, nil
	case devices.TypeString:
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	}
	return f, nil
}

func fromString(t devices.PropertyType, s string) (any, error) {
	if t == devices.TypeString || t == devices.TypeBytes {
		if t == devices.TypeBytes {
			return []byte(s), nil
		}
		return s, nil
	}
	return devices.ParseValue(t, s)
}

// Encode turns a value into the register bytes to write (the inverse of
// Decode: divided by Scale, rounded for integer types, range-checked
// against the data type, then byte- and register-swapped). For coils it
// returns 0xFF00 or 0x0000, the WriteSingleCoil encoding. value may be an
// int, int64, float64, bool, string (parsed as property type t) or []byte.
func Encode(v *devices.ModbusVisitor, t devices.PropertyType, value any) ([]byte, error) {
	if s, ok := value.(string); ok && v.DataType != devices.String && v.DataType != devices.Bytes {
		pt := t
		if pt == devices.TypeString {
			pt = devices.TypeDouble
		}
		x, err := devices.ParseValue(pt, s)
		if err != nil {
			return nil, err
		}
		value = x
	}
	if v.Register.Bits() || v.DataType == devices.Bool {
		b, err := truth(value)
		if err != nil {
			return nil, err
		}
		if v.Register.Bits() {
			if b {
				return []byte{0xFF, 0x00}, nil
			}
			return []byte{0, 0}, nil
		}
		out := []byte{0, 0}
		if b {
			out[1] = 1
		}
		reorder(out, v.IsSwap, false)
		return out, nil
	}
	switch v.DataType {
	case devices.String, devices.Bytes:
		var raw []byte
		switch x := value.(type) {
		case string:
			raw = []byte(x)
		case []byte:
			raw = x
		default:
			raw = []byte(fmt.Sprint(x))
		}
		out := make([]byte, int(v.Limit)*2)
		if len(raw) > len(out) {
			return nil, fmt.Errorf("modbus: %d bytes do not fit %d registers", len(raw), v.Limit)
		}
		copy(out, raw)
		reorder(out, v.IsSwap, v.IsRegisterSwap)
		return out, nil
	}
	f, err := number(value)
	if err != nil {
		return nil, err
	}
	scale := v.Scale
	if scale == 0 {
		scale = 1
	}
	f /= scale
	out := make([]byte, v.DataType.Registers()*2)
	switch v.DataType {
	case devices.Float32:
		if math.Abs(f) > math.MaxFloat32 {
			return nil, fmt.Errorf("modbus: %g does not fit float32", f)
		}
		binary.BigEndian.PutUint32(out, math.Float32bits(float32(f)))
	case devices.Float64:
		binary.BigEndian.PutUint64(out, math.Float64bits(f))
	default:
		r := math.Round(f)
		lo, hi := intRange(v.DataType)
		if math.IsNaN(r) || r < lo || r > hi {
			return nil, fmt.Errorf("modbus: %g (after scale %g) does not fit %s (%g..%g)", f*scale, scale, v.DataType, lo, hi)
		}
		switch v.DataType {
		case devices.Int16, devices.Uint16:
			binary.BigEndian.PutUint16(out, uint16(int64(r)))
		case devices.Int32, devices.Uint32:
			binary.BigEndian.PutUint32(out, uint32(int64(r)))
		case devices.Int64:
			binary.BigEndian.PutUint64(out, uint64(int64(r)))
		case devices.Uint64:
			binary.BigEndian.PutUint64(out, uint64(r))
		}
	}
	reorder(out, v.IsSwap, v.IsRegisterSwap)
	return out, nil
}

func intRange(t devices.DataType) (float64, float64) {
	switch t {
	case devices.Int16:
		return math.MinInt16, math.MaxInt16
	case devices.Uint16:
		return 0, math.MaxUint16
	case devices.Int32:
		return math.MinInt32, math.MaxInt32
	case devices.Uint32:
		return 0, math.MaxUint32
	case devices.Int64:
		return math.MinInt64, math.MaxInt64
	}
	return 0, math.MaxUint64
}

func number(v any) (float64, error) {
	switch x := v.(type) {
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case uint16:
		return float64(x), nil
	case uint32:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("modbus: cannot write %T %v as a number", v, v)
}

func truth(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		return strconv.ParseBool(x)
	}
	f, err := number(v)
	if err != nil {
		return false, fmt.Errorf("modbus: cannot write %T %v as a coil; use true or false", v, v)
	}
	return f != 0, nil
}

// Text formats a decoded value the way KubeEdge twins carry it (a string).
func Text(v any) string {
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case string:
		return x
	case []byte:
		return string(x)
	}
	return fmt.Sprint(v)
}

// applyScale multiplies by scale, dividing instead when scale is the
// reciprocal of a whole number (0.1, 0.01, 0.5) so that 234 * 0.1 reads
// 23.4 rather than 23.400000000000002.
func applyScale(f, scale float64) float64 {
	if scale > 0 && scale < 1 {
		if inv := math.Round(1 / scale); math.Abs(inv*scale-1) < 1e-12 {
			return f / inv
		}
	}
	return f * scale
}
