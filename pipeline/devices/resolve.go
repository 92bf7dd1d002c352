package devices

import (
	"fmt"
	"sort"
	"strings"

	"github.com/eddy-edge/eddy/pipeline/strictyaml"
)

// Resolve joins every device to its model (same namespace), copies the
// model's declarations (type, access mode, bounds, unit) into the device's
// properties, parses desired values into their types and validates the
// result. It reports every problem (a strictyaml.Errors with file:line
// when the objects came from Load) and returns the resolved devices in
// input order. The inputs are not modified.
func Resolve(devs []Device, models []Model) ([]Device, error) {
	var errs strictyaml.Errors
	byID := map[string]*Model{}
	for i := range models {
		m := &models[i]
		if _, dup := byID[m.ID()]; dup {
			errs = append(errs, m.src.at("metadata.name", "model %s is declared twice", m.ID()))
			continue
		}
		byID[m.ID()] = m
	}
	seen := map[string]bool{}
	out := make([]Device, 0, len(devs))
	for _, in := range devs {
		d := in
		d.Properties = append([]Property(nil), in.Properties...)
		if seen[d.ID()] {
			errs = append(errs, d.src.at("metadata.name", "device %s is declared twice", d.ID()))
			continue
		}
		seen[d.ID()] = true
		m := byID[d.Namespace+"/"+d.Model]
		if m == nil {
			errs = append(errs, d.src.at("spec.deviceModelRef.name", "unknown model %q in namespace %s%s", d.Model, d.Namespace, knownModels(models, d.Namespace)))
			continue
		}
		errs = append(errs, resolveDevice(&d, m)...)
		out = append(out, d)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func knownModels(models []Model, ns string) string {
	var names []string
	for _, m := range models {
		if m.Namespace == ns {
			names = append(names, m.Name)
		}
	}
	if len(names) == 0 {
		return "; no DeviceModel is declared there, add one"
	}
	sort.Strings(names)
	return "; known models: " + strings.Join(names, ", ")
}

func resolveDevice(d *Device, m *Model) strictyaml.Errors {
	var errs strictyaml.Errors
	fail := func(path, format string, args ...any) {
		errs = append(errs, d.src.at(path, format, args...))
	}
	names := make([]string, len(m.Properties))
	for i, mp := range m.Properties {
		names[i] = mp.Name
	}
	dup := map[string]bool{}
	for i := range d.Properties {
		p := &d.Properties[i]
		path := p.path
		if path == "" {
			path = fmt.Sprintf("properties[%d]", i)
		}
		if dup[p.Name] {
			fail(path, "property %q is listed twice", p.Name)
			continue
		}
		dup[p.Name] = true
		var mp *ModelProperty
		for j := range m.Properties {
			if m.Properties[j].Name == p.Name {
				mp = &m.Properties[j]
			}
		}
		if mp == nil {
			fail(path, "property %q is not in model %s; known properties: %s", p.Name, m.Name, strings.Join(names, ", "))
			continue
		}
		p.Type, p.AccessMode, p.Min, p.Max, p.Unit = mp.Type, mp.AccessMode, mp.Min, mp.Max, mp.Unit
		if p.Modbus != nil {
			mv := *p.Modbus
			p.Modbus = &mv
			errs = append(errs, checkVisitor(d, p, path)...)
		} else if d.Protocol.Modbus != nil {
			fail(path, "property %q has no modbus visitor; say which register holds it", p.Name)
		}
		if p.DesiredText == "" {
			p.Desired = nil
			continue
		}
		dpath := p.desiredPath
		if dpath == "" {
			dpath = path
		}
		if p.AccessMode == ReadOnly {
			fail(dpath, "property %q is ReadOnly in model %s but has desired value %q; remove the desired value or make the property ReadWrite", p.Name, m.Name, p.DesiredText)
			continue
		}
		if p.Modbus != nil && !p.Modbus.Register.Writable() {
			fail(dpath, "property %q has desired value %q but lives in %s registers, which cannot be written; use Coil or HoldingRegister", p.Name, p.DesiredText, p.Modbus.Register)
			continue
		}
		v, err := ParseValue(p.Type, p.DesiredText)
		if err != nil {
			fail(dpath, "desired value of %s property %q: %v", p.Type, p.Name, err)
			continue
		}
		if err := CheckRange(p, v); err != nil {
			fail(dpath, "desired value of %q: %v", p.Name, err)
			continue
		}
		p.Desired = v
	}
	if mb := d.Protocol.Modbus; mb != nil && mb.TCP == nil && mb.RTU == nil {
		fail("spec.protocol", "modbus device has no address; set TCP or RTU")
	}
	return errs
}

// CheckRange returns an error when v (as from ParseValue) is outside the
// property's minimum..maximum.
func CheckRange(p *Property, v any) error {
	var f float64
	switch x := v.(type) {
	case int64:
		f = float64(x)
	case float64:
		f = x
	default:
		return nil
	}
	if p.Min != nil && f < *p.Min {
		return fmt.Errorf("%v is below the minimum %g", v, *p.Min)
	}
	if p.Max != nil && f > *p.Max {
		return fmt.Errorf("%v is above the maximum %g", v, *p.Max)
	}
	return nil
}

// checkVisitor derives a missing data type and checks the visitor against
// the property type.
func checkVisitor(d *Device, p *Property, path string) strictyaml.Errors {
	var errs strictyaml.Errors
	vpath := path + ".visitors.configData"
	if d.APIVersion == V1alpha2 {
		vpath = path + ".modbus"
	}
	fail := func(sub, format string, args ...any) {
		errs = append(errs, d.src.at(vpath+sub, format, args...))
	}
	v := p.Modbus
	if v.Register.Bits() {
		if v.DataType == "" {
			v.DataType = Bool
		}
		if v.DataType != Bool {
			fail(".dataType", "%s holds single bits; dataType must be bool, not %s", v.Register, v.DataType)
		}
		if v.Limit == 0 {
			v.Limit = 1
		}
		if v.Limit != 1 {
			fail(".limit", "read one %s per property (limit 1), not %d", v.Register, v.Limit)
		}
		if p.Type != TypeBoolean && p.Type != TypeInt && p.Type != TypeString {
			fail(".register", "%s property %q cannot live in a %s (a single bit); use BOOLEAN or INT", p.Type, p.Name, v.Register)
		}
		return errs
	}
	if v.DataType == "" {
		v.DataType = defaultDataType(p.Type, v.Limit)
		if v.DataType == "" {
			fail(".dataType", "cannot tell how to read %s property %q from limit %d; set dataType to one of %s", p.Type, p.Name, v.Limit, joinKinds(dataTypes))
			return errs
		}
	}
	if n := v.DataType.Registers(); n > 0 {
		if v.Limit == 0 {
			v.Limit = uint16(n)
		}
		if int(v.Limit) != n {
			fail(".limit", "dataType %s spans %d registers but limit is %d; set limit: %d", v.DataType, n, v.Limit, n)
		}
	} else if v.Limit == 0 {
		fail(".limit", "dataType %s needs limit (the number of registers)", v.DataType)
	}
	switch p.Type {
	case TypeInt, TypeFloat, TypeDouble:
		if !v.DataType.Numeric() && v.DataType != Bool {
			fail(".dataType", "%s property %q cannot be read as %s; use a numeric dataType", p.Type, p.Name, v.DataType)
		}
	case TypeBoolean:
		if !v.DataType.Numeric() && v.DataType != Bool {
			fail(".dataType", "BOOLEAN property %q cannot be read as %s; use bool or an integer dataType", p.Name, v.DataType)
		}
	case TypeBytes:
		if v.DataType != Bytes && v.DataType != String {
			fail(".dataType", "BYTES property %q must be read as bytes, not %s", p.Name, v.DataType)
		}
	case TypeStream:
		fail(".register", "STREAM properties cannot be read over Modbus")
	}
	if v.Scale != 1 && !v.DataType.Numeric() {
		fail(".scale", "scale %g only applies to numeric data types, not %s", v.Scale, v.DataType)
	}
	return errs
}

// defaultDataType picks the data type KubeEdge's mapper would use for a
// property type and register count.
func defaultDataType(t PropertyType, limit uint16) DataType {
	switch t {
	case TypeInt:
		switch limit {
		case 0, 1:
			return Int16
		case 2:
			return Int32
		case 4:
			return Int64
		}
	case TypeFloat:
		switch limit {
		case 0, 2:
			return Float32
		case 4:
			return Float64
		case 1:
			return Int16 // a scaled integer register
		}
	case TypeDouble:
		switch limit {
		case 0, 4:
			return Float64
		case 2:
			return Float32
		case 1:
			return Int16
		}
	case TypeBoolean:
		if limit <= 1 {
			return Bool
		}
	case TypeString:
		if limit > 0 {
			return String
		}
	case TypeBytes:
		if limit > 0 {
			return Bytes
		}
	}
	return ""
}
