package devices

import (
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/eddy-edge/eddy/pipeline/strictyaml"
	"gopkg.in/yaml.v3"
)

// Load decodes the Devices and DeviceModels in a multi-document YAML file
// (devices.kubeedge.io/v1beta1 or v1alpha2). Documents of other API groups
// are skipped, so a file may mix devices with pipelines. Every problem is
// reported, each with file:line and field path; the error is a
// strictyaml.Errors. Devices are returned without their model's
// declarations: call Resolve.
func Load(file string, src []byte) ([]Device, []Model, error) {
	docs, errs := strictyaml.Split(file, src)
	var devs []Device
	var models []Model
	for _, doc := range docs {
		apiVersion, _ := doc.Kind()
		if group, _, _ := strings.Cut(apiVersion, "/"); group != Group {
			continue
		}
		d, m, e := LoadDocument(doc)
		errs = append(errs, e...)
		if d != nil {
			devs = append(devs, *d)
		}
		if m != nil {
			models = append(models, *m)
		}
	}
	if err := errs.Err(); err != nil {
		return nil, nil, err
	}
	return devs, models, nil
}

// LoadDocument decodes one devices.kubeedge.io document: a Device, a
// DeviceModel, or a DeviceStatus (written by KubeEdge v1.23+, carries no
// configuration: both results nil). It returns every problem with
// file:line, and an object only when there is none. Devices still need
// Resolve.
func LoadDocument(doc *strictyaml.Document) (*Device, *Model, strictyaml.Errors) {
	apiVersion, kind := doc.Kind()
	l := loader{src: &source{doc: doc}}
	var errs strictyaml.Errors
	var dev *Device
	var model *Model
	switch {
	case apiVersion == V1beta1 && kind == "Device":
		var raw V1beta1Device
		errs = doc.Decode(&raw)
		if d, ok := l.v1beta1Device(&raw); ok && len(errs) == 0 {
			dev = &d
		}
	case apiVersion == V1alpha2 && kind == "Device":
		var raw V1alpha2Device
		errs = doc.Decode(&raw)
		if d, ok := l.v1alpha2Device(&raw); ok && len(errs) == 0 {
			dev = &d
		}
	case apiVersion == V1beta1 && kind == "DeviceModel":
		var raw V1beta1DeviceModel
		errs = doc.Decode(&raw)
		if m, ok := l.v1beta1Model(&raw); ok && len(errs) == 0 {
			model = &m
		}
	case apiVersion == V1alpha2 && kind == "DeviceModel":
		var raw V1alpha2DeviceModel
		errs = doc.Decode(&raw)
		if m, ok := l.v1alpha2Model(&raw); ok && len(errs) == 0 {
			model = &m
		}
	case apiVersion != V1beta1 && apiVersion != V1alpha2:
		errs = append(errs, atKey(doc, "apiVersion", "unsupported version %q; use %s (or %s)", apiVersion, V1beta1, V1alpha2))
	case kind == "DeviceStatus":
		// Written by KubeEdge v1.23+; carries no configuration.
	default:
		errs = append(errs, atKey(doc, "kind", "unsupported kind %q in %s; use Device or DeviceModel", kind, apiVersion))
	}
	errs = append(errs, l.errs...)
	if len(errs) > 0 {
		return nil, nil, errs
	}
	return dev, model, nil
}

type loader struct {
	src  *source
	errs strictyaml.Errors
}

func (l *loader) fail(path, format string, args ...any) {
	l.errs = append(l.errs, l.src.at(path, format, args...))
}

func (l *loader) meta(m ObjectMeta) (ns, name string) {
	if m.Name == "" {
		l.fail("metadata.name", "missing name; every device and model needs metadata.name")
	}
	ns = m.Namespace
	if ns == "" {
		ns = "default"
	}
	return ns, m.Name
}

func (l *loader) modelRef(ref *LocalObjectReference) string {
	if ref == nil || ref.Name == "" {
		l.fail("spec.deviceModelRef", "missing deviceModelRef.name; name the DeviceModel of this device")
		return ""
	}
	return ref.Name
}

func (l *loader) v1beta1Device(raw *V1beta1Device) (Device, bool) {
	n := len(l.errs)
	d := Device{APIVersion: V1beta1, NodeName: raw.Spec.NodeName, src: l.src}
	d.Namespace, d.Name = l.meta(raw.Metadata)
	d.Model = l.modelRef(raw.Spec.DeviceModelRef)
	d.Protocol.Name = raw.Spec.Protocol.ProtocolName
	if strings.EqualFold(d.Protocol.Name, "modbus") {
		var cfg ModbusProtocolConfigData
		if l.decodeAt(&cfg, "spec.protocol.configData", "spec", "protocol", "configData") || !reflect.ValueOf(cfg).IsZero() {
			d.Protocol.Modbus = l.modbusV1beta1(cfg)
		}
	}
	for i, rp := range raw.Spec.Properties {
		path := fmt.Sprintf("spec.properties[%d]", i)
		p := Property{Name: rp.Name, ReportToCloud: rp.ReportToCloud, path: path}
		p.CollectCycle = l.cycle(rp.CollectCycle, path+".collectCycle", DefaultCollectCycle)
		p.ReportCycle = l.cycle(rp.ReportCycle, path+".reportCycle", 0)
		if rp.Desired != nil {
			p.DesiredText = rp.Desired.Value
			p.Desired = rp.Desired.Value
			p.desiredPath = path + ".desired.value"
		}
		vp := rp.Visitors.ProtocolName
		if vp == "" {
			vp = d.Protocol.Name
		}
		if strings.EqualFold(vp, "modbus") && rp.Visitors.ConfigData != nil {
			var v ModbusVisitorConfigData
			if l.decodeAt(&v, path+".visitors.configData", "spec", "properties", strconv.Itoa(i), "visitors", "configData") || v != (ModbusVisitorConfigData{}) {
				p.Modbus = l.visitor(v, path+".visitors.configData")
			}
		}
		d.Properties = append(d.Properties, p)
	}
	return d, len(l.errs) == n
}

func (l *loader) v1alpha2Device(raw *V1alpha2Device) (Device, bool) {
	n := len(l.errs)
	d := Device{APIVersion: V1alpha2, src: l.src}
	d.Namespace, d.Name = l.meta(raw.Metadata)
	d.Model = l.modelRef(raw.Spec.DeviceModelRef)
	d.NodeName = l.nodeFromSelector(raw.Spec.NodeSelector)
	pr := raw.Spec.Protocol
	if pr.Modbus != nil {
		d.Protocol.Name = "modbus"
		mb := &Modbus{}
		c := pr.Common
		switch {
		case c == nil || (c.COM == nil && c.TCP == nil):
			l.fail("spec.protocol", "missing spec.protocol.common.tcp {ip, port} or spec.protocol.common.com {serialPort, ...}; a Modbus device needs one")
		case c.COM != nil && c.TCP != nil:
			l.fail("spec.protocol.common", "both com and tcp are set; keep one")
		case c.TCP != nil:
			mb.TCP = l.tcp(c.TCP.IP, c.TCP.Port, "spec.protocol.common.tcp")
		default:
			mb.RTU = l.rtu(c.COM.SerialPort, c.COM.BaudRate, c.COM.DataBits, c.COM.Parity, c.COM.StopBits, "spec.protocol.common.com")
		}
		mb.SlaveID = l.slaveID(pr.Modbus.SlaveID, mb.RTU != nil, "spec.protocol.modbus", "slaveID")
		d.Protocol.Modbus = mb
	} else {
		switch {
		case pr.OpcUA != nil:
			d.Protocol.Name = "opcua"
		case pr.Bluetooth != nil:
			d.Protocol.Name = "bluetooth"
		case pr.CustomizedProtocol != nil:
			d.Protocol.Name = "customizedProtocol"
		}
	}
	desired := map[string]*V1alpha2TwinProperty{}
	desiredPath := map[string]string{}
	if raw.Status != nil {
		for i, t := range raw.Status.Twins {
			desired[t.PropertyName] = t.Desired
			desiredPath[t.PropertyName] = fmt.Sprintf("status.twins[%d].desired.value", i)
		}
	}
	seen := map[string]bool{}
	for i, pv := range raw.Spec.PropertyVisitors {
		path := fmt.Sprintf("spec.propertyVisitors[%d]", i)
		p := Property{Name: pv.PropertyName, path: path}
		seen[pv.PropertyName] = true
		p.CollectCycle = l.cycle(pv.CollectCycle, path+".collectCycle", DefaultCollectCycle)
		p.ReportCycle = l.cycle(pv.ReportCycle, path+".reportCycle", 0)
		if t := desired[pv.PropertyName]; t != nil && t.Value != "" {
			p.DesiredText, p.Desired = t.Value, t.Value
			p.desiredPath = desiredPath[pv.PropertyName]
		}
		if pv.Modbus != nil {
			p.Modbus = l.visitor(*pv.Modbus, path+".modbus")
		}
		d.Properties = append(d.Properties, p)
	}
	if raw.Status != nil {
		for i, t := range raw.Status.Twins {
			if !seen[t.PropertyName] {
				l.fail(fmt.Sprintf("status.twins[%d].propertyName", i), "twin %q has no entry in spec.propertyVisitors; add one or remove the twin", t.PropertyName)
			}
		}
	}
	return d, len(l.errs) == n
}

// nodeFromSelector returns the node named by a KubeEdge v1alpha2 node
// selector (matchExpressions values are node names).
func (l *loader) nodeFromSelector(sel *NodeSelector) string {
	if sel == nil {
		return ""
	}
	var nodes []string
	for _, t := range sel.NodeSelectorTerms {
		for _, e := range t.MatchExpressions {
			nodes = append(nodes, e.Values...)
		}
	}
	switch len(nodes) {
	case 0:
		return ""
	case 1:
		return nodes[0]
	}
	l.fail("spec.nodeSelector", "names %d nodes (%s); a device is attached to exactly one node", len(nodes), strings.Join(nodes, ", "))
	return ""
}

// decodeAt strictly decodes the YAML node at keys (below the document
// root) into out, reporting errors under path.
func (l *loader) decodeAt(out any, path string, keys ...string) bool {
	n := nodeAt(l.src.doc.Root, keys...)
	if n == nil {
		l.fail(path, "missing %s", path)
		return false
	}
	sub := &strictyaml.Document{File: l.src.doc.File, Root: n, Positions: map[string]strictyaml.Pos{}}
	errs := sub.Decode(out)
	for _, e := range errs {
		if e.Path == "" {
			e.Path = path
		} else {
			e.Path = path + "." + e.Path
		}
		l.errs = append(l.errs, e)
	}
	for p, pos := range sub.Positions {
		if p == "" {
			l.src.doc.Positions[path] = pos
		} else {
			l.src.doc.Positions[path+"."+p] = pos
		}
	}
	return len(errs) == 0
}

func nodeAt(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					next = n.Content[i+1]
				}
			}
			if next == nil {
				return nil
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(n.Content) {
				return nil
			}
			n = n.Content[i]
		default:
			return nil
		}
	}
	return n
}

func (l *loader) cycle(ms int64, path string, def time.Duration) time.Duration {
	switch {
	case ms < 0:
		l.fail(path, "%d is negative; cycles are milliseconds >= 0 (e.g. 1000 for 1s)", ms)
		return def
	case ms == 0:
		return def
	case ms > int64(24*time.Hour/time.Millisecond):
		if ms%int64(time.Millisecond) == 0 {
			// KubeEdge's docs write cycles in nanoseconds (10000000000
			// "once every 10 seconds"); its mapper framework reads ms.
			d := time.Duration(ms)
			l.fail(path, "%d ms is more than a day; it looks like nanoseconds (%s), but cycles are milliseconds as KubeEdge's mapper framework reads them: write %d for %s", ms, d, ms/int64(time.Millisecond), d)
		} else {
			l.fail(path, "%d ms is more than a day; cycles are in milliseconds (1000 = 1s)", ms)
		}
		return def
	}
	return time.Duration(ms) * time.Millisecond
}

// slaveID checks a Modbus unit id. On a serial line it is required and
// 1..247 (0 is broadcast, 248..255 reserved). Over TCP any 0..255 is valid
// (a gateway routes by it, a single device usually ignores it) and a
// missing id is 0, what KubeEdge's Modbus mapper sends then.
func (l *loader) slaveID(id *int, serial bool, parent, key string) uint8 {
	path := parent + "." + key
	switch {
	case id == nil && serial:
		l.fail(parent, "missing %s; a Modbus RTU device needs its unit id (1..247)", key)
		return 0
	case id == nil:
		return 0
	case serial && (*id < 1 || *id > 247):
		l.fail(path, "slave id %d is out of range for Modbus RTU; use 1..247 (0 is broadcast)", *id)
		return 0
	case *id < 0 || *id > 255:
		l.fail(path, "slave id %d is out of range; Modbus TCP unit ids are 0..255", *id)
		return 0
	}
	return uint8(*id)
}

func (l *loader) modbusV1beta1(c ModbusProtocolConfigData) *Modbus {
	const p = "spec.protocol.configData"
	mb := &Modbus{}
	switch {
	case c.IP != "" && c.SerialPort != "":
		l.fail(p, "both ip and serialPort are set; keep ip+port for Modbus TCP or serialPort for RTU")
	case c.IP != "":
		mb.TCP = l.tcp(c.IP, c.Port, p)
	case c.SerialPort != "":
		mb.RTU = l.rtu(c.SerialPort, c.BaudRate, c.DataBits, c.Parity, c.StopBits, p)
	default:
		l.fail(p, "missing ip (Modbus TCP) or serialPort (Modbus RTU)")
	}
	mb.SlaveID = l.slaveID(c.SlaveID, mb.RTU != nil, p, "slaveID")
	return mb
}

func (l *loader) tcp(ip string, port int, path string) *TCP {
	if ip == "" {
		l.fail(path+".ip", "missing ip of the Modbus TCP device")
	}
	if port == 0 {
		port = DefaultModbusTCPPort
	}
	if port < 1 || port > 65535 {
		l.fail(path+".port", "port %d is out of range; use 1..65535 (Modbus TCP is usually 502)", port)
	}
	return &TCP{Addr: net.JoinHostPort(ip, strconv.Itoa(port))}
}

func (l *loader) rtu(port string, baud, dataBits int, parity string, stopBits int, path string) *RTU {
	r := &RTU{Port: port, Baud: baud, DataBits: dataBits, StopBits: stopBits}
	if port == "" {
		l.fail(path+".serialPort", "missing serialPort, e.g. /dev/ttyUSB0")
	}
	if r.Baud == 0 {
		r.Baud = DefaultBaudRate
	}
	if r.Baud < 0 {
		l.fail(path+".baudRate", "baud rate %d is negative; use e.g. 9600 or 19200", baud)
	}
	if r.DataBits == 0 {
		r.DataBits = 8
	}
	if r.DataBits < 5 || r.DataBits > 8 {
		l.fail(path+".dataBits", "%d data bits; use 5..8 (Modbus RTU uses 8)", dataBits)
	}
	if r.StopBits == 0 {
		r.StopBits = 1
	}
	if r.StopBits != 1 && r.StopBits != 2 {
		l.fail(path+".stopBits", "%d stop bits; use 1 or 2", stopBits)
	}
	switch strings.ToLower(parity) {
	case "", "e", "even":
		r.Parity = "E"
	case "n", "none":
		r.Parity = "N"
	case "o", "odd":
		r.Parity = "O"
	default:
		l.fail(path+".parity", "unknown parity %q; use none, even or odd", parity)
	}
	return r
}

func (l *loader) visitor(v ModbusVisitorConfigData, path string) *ModbusVisitor {
	mv := &ModbusVisitor{Scale: v.Scale, IsSwap: v.IsSwap, IsRegisterSwap: v.IsRegisterSwap}
	kind, ok := ParseRegisterKind(v.Register)
	if !ok {
		kind = RegisterKind(v.Register)
		l.fail(path+".register", "unknown register kind %q; use one of %s (KubeEdge's CoilRegister, DiscreteInputRegister and InputRegister work too)", v.Register, joinKinds(registerKinds))
	}
	mv.Register = kind
	if v.Offset < 0 || v.Offset > 65535 {
		l.fail(path+".offset", "offset %d is out of range; use 0..65535", v.Offset)
	}
	mv.Offset = uint16(v.Offset)
	if v.Limit < 0 || v.Limit > 125 {
		l.fail(path+".limit", "limit %d is out of range; use 1..125 registers", v.Limit)
	}
	mv.Limit = uint16(max(v.Limit, 0))
	if mv.Scale == 0 {
		mv.Scale = 1
	}
	if v.DataType != "" {
		ok := false
		for _, t := range dataTypes {
			if strings.EqualFold(string(t), v.DataType) {
				mv.DataType, ok = t, true
			}
		}
		if !ok {
			l.fail(path+".dataType", "unknown data type %q; use one of %s", v.DataType, joinKinds(dataTypes))
		}
	}
	if uint32(mv.Offset)+uint32(max(mv.Limit, 1)) > 65536 {
		l.fail(path+".limit", "offset %d + limit %d runs past register 65535", mv.Offset, mv.Limit)
	}
	return mv
}

func joinKinds[T ~string](ks []T) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

func (l *loader) accessMode(s, path string) AccessMode {
	switch {
	case s == "":
		return ReadWrite
	case strings.EqualFold(s, string(ReadWrite)):
		return ReadWrite
	case strings.EqualFold(s, string(ReadOnly)):
		return ReadOnly
	}
	l.fail(path, "unknown access mode %q; use ReadWrite or ReadOnly", s)
	return ReadWrite
}

func (l *loader) bound(s, path string) *float64 {
	if s == "" {
		return nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		l.fail(path, "%q is not a number; write e.g. \"0\" or \"100.5\"", s)
		return nil
	}
	return &f
}

func (l *loader) v1beta1Model(raw *V1beta1DeviceModel) (Model, bool) {
	n := len(l.errs)
	m := Model{APIVersion: V1beta1, Protocol: raw.Spec.Protocol, src: l.src}
	m.Namespace, m.Name = l.meta(raw.Metadata)
	for i, rp := range raw.Spec.Properties {
		path := fmt.Sprintf("spec.properties[%d]", i)
		p := ModelProperty{Name: rp.Name, Description: rp.Description, Unit: rp.Unit, path: path}
		if rp.Name == "" {
			l.fail(path+".name", "missing property name")
		}
		t := PropertyType(strings.ToUpper(rp.Type))
		ok := false
		for _, k := range propertyTypes {
			ok = ok || k == t
		}
		if !ok {
			l.fail(path+".type", "unknown type %q; use one of %s", rp.Type, joinKinds(propertyTypes))
		}
		p.Type = t
		p.AccessMode = l.accessMode(rp.AccessMode, path+".accessMode")
		p.Min = l.bound(rp.Minimum, path+".minimum")
		p.Max = l.bound(rp.Maximum, path+".maximum")
		l.checkBounds(p, path)
		m.Properties = append(m.Properties, p)
	}
	return m, len(l.errs) == n
}

func (l *loader) checkBounds(p ModelProperty, path string) {
	if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
		l.fail(path+".minimum", "minimum %g is above maximum %g", *p.Min, *p.Max)
	}
	if (p.Min != nil || p.Max != nil) && p.Type != TypeInt && p.Type != TypeFloat && p.Type != TypeDouble {
		l.fail(path, "minimum/maximum only apply to INT, FLOAT and DOUBLE properties, not %s", p.Type)
	}
}

func (l *loader) v1alpha2Model(raw *V1alpha2DeviceModel) (Model, bool) {
	n := len(l.errs)
	m := Model{APIVersion: V1alpha2, Protocol: raw.Spec.Protocol, src: l.src}
	m.Namespace, m.Name = l.meta(raw.Metadata)
	for i, rp := range raw.Spec.Properties {
		path := fmt.Sprintf("spec.properties[%d]", i)
		p := ModelProperty{Name: rp.Name, Description: rp.Description, path: path}
		if rp.Name == "" {
			l.fail(path+".name", "missing property name")
		}
		var spec *V1alpha2TypeSpec
		set := 0
		for _, c := range []struct {
			s *V1alpha2TypeSpec
			t PropertyType
		}{{rp.Type.Int, TypeInt}, {rp.Type.String, TypeString}, {rp.Type.Double, TypeDouble}, {rp.Type.Float, TypeFloat}, {rp.Type.Boolean, TypeBoolean}, {rp.Type.Bytes, TypeBytes}} {
			if c.s != nil {
				spec, p.Type = c.s, c.t
				set++
			}
		}
		if set != 1 {
			l.fail(path+".type", "set exactly one of int, string, double, float, boolean, bytes (got %d)", set)
			continue
		}
		p.AccessMode = l.accessMode(spec.AccessMode, path+".type.accessMode")
		p.Min, p.Max, p.Unit = spec.Minimum, spec.Maximum, spec.Unit
		if spec.DefaultValue != nil {
			p.Default = fmt.Sprint(spec.DefaultValue)
		}
		l.checkBounds(p, path+".type")
		m.Properties = append(m.Properties, p)
	}
	return m, len(l.errs) == n
}

// atKey is an error at a top-level key of a document that was not decoded.
func atKey(doc *strictyaml.Document, key, format string, args ...any) strictyaml.Error {
	e := doc.At(key, format, args...)
	if n := nodeAt(doc.Root, key); n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	return e
}
