package pipeline

// Templates are the small {{field}} strings used in alert messages and sink
// topics: "{{key}} is overheating: avg {{avg_t}}" or "alerts/{{severity}}/{{key}}".
// They are deliberately not text/template: no pipes, functions,
// conditionals or loops, so a template can never fail or loop at run time.
//
// Syntax: "{{name}}" (spaces around the name are ignored) is replaced by
// the event's field name; "{{key}}" is the event's partition key; a dotted
// name "{{values.t}}" walks nested objects when no field has the whole dotted
// name. A field that is missing renders as the empty string. "{{" always
// opens a reference; a lone "}}" is literal text.

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// TemplateKey is the reference that renders the event's partition key
// (Event.Key), falling back to a field named "key" when the
// event has no partition key.
const TemplateKey = "key"

// Template is a parsed {{field}} template. It is immutable and safe for
// concurrent use.
type Template struct {
	src   string
	parts []part
	names []string
}

// part is either literal text (name == "") or a field reference.
type part struct {
	lit  string
	name string
	path []string // name split on '.', when it has more than one segment
}

// ParseTemplate parses a template. Errors name the byte offset of the problem and
// how to fix it.
func ParseTemplate(s string) (*Template, error) {
	t := &Template{src: s}
	seen := map[string]bool{}
	rest := s
	pos := 0
	for rest != "" {
		i := strings.Index(rest, "{{")
		if i < 0 {
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		open := pos + i
		body := rest[i+2:]
		j := strings.Index(body, "}}")
		if j < 0 {
			return nil, fmt.Errorf("template %q: %q at byte %d is not closed; close it with \"}}\"", s, "{{", open)
		}
		name := strings.TrimSpace(body[:j])
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("template %q: reference at byte %d: %v", s, open, err)
		}
		p := part{name: name, path: splitPath(name)}
		t.parts = append(t.parts, p)
		if !seen[name] {
			seen[name] = true
			t.names = append(t.names, name)
		}
		consumed := i + 2 + j + 2
		rest = rest[consumed:]
		pos += consumed
	}
	return t, nil
}

// checkName accepts any non-empty name without white space or braces (the
// same names ParseTemplate accepts, so anything the compiler
// validated also parses here).
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("empty field name; write e.g. {{key}} or {{temperature}}")
	}
	for i, r := range name {
		if unicode.IsSpace(r) || r == '{' || r == '}' {
			return fmt.Errorf("%q: character %q at %d is not allowed in a field name; a reference holds one field name, e.g. {{device}}", name, r, i)
		}
	}
	return nil
}

// splitPath splits a dotted name into its segments, or returns nil when the
// name has no dot or an empty segment (then it is only a field name).
func splitPath(name string) []string {
	if !strings.Contains(name, ".") {
		return nil
	}
	segs := strings.Split(name, ".")
	for _, s := range segs {
		if s == "" {
			return nil
		}
	}
	return segs
}

// String returns the template as written.
func (t *Template) String() string { return t.src }

// Fields returns the names the template references, in order of first use.
func (t *Template) Fields() []string { return append([]string(nil), t.names...) }

// Static reports whether the template has no references, so that Render
// always returns the same text.
func (t *Template) Static() bool { return len(t.names) == 0 }

// Check reports references that cannot resolve against a known schema: a
// name (or the first segment of a dotted name) that is neither "key" nor a
// field of the schema. A nil schema means the fields are not known and
// everything passes. The error lists the known fields.
func (t *Template) Check(schema Schema) error {
	if schema == nil {
		return nil
	}
	var unknown []string
	for _, n := range t.names {
		if n == TemplateKey {
			continue
		}
		if _, ok := schema[n]; ok {
			continue
		}
		head, _, _ := strings.Cut(n, ".")
		if _, ok := schema[head]; ok && head != n {
			continue
		}
		unknown = append(unknown, "{{"+n+"}}")
	}
	if len(unknown) == 0 {
		return nil
	}
	verb := "is not a field"
	if len(unknown) > 1 {
		verb = "are not fields"
	}
	return fmt.Errorf("template %q: %s %s of the event at this step (a missing field renders empty); known fields: %s",
		t.src, strings.Join(unknown, ", "), verb,
		strings.Join(append([]string{TemplateKey}, schema.Names()...), ", "))
}

// Append appends the template, filled from ev, to dst and returns the
// extended buffer. Missing fields render as the empty string. It does not
// allocate for string, number and bool values when dst has room.
func (t *Template) Append(dst []byte, ev *Event) []byte {
	for i := range t.parts {
		p := &t.parts[i]
		if p.name == "" {
			dst = append(dst, p.lit...)
			continue
		}
		if p.name == TemplateKey && ev.Key != "" {
			dst = append(dst, ev.Key...)
			continue
		}
		v, ok := ev.Fields[p.name]
		if !ok && p.path != nil {
			v, ok = lookupPath(ev.Fields, p.path)
		}
		if ok {
			dst = AppendValue(dst, v)
		}
	}
	return dst
}

// Render renders the template into a new string.
func (t *Template) Render(ev *Event) string {
	if t.Static() {
		return t.src
	}
	return string(t.Append(make([]byte, 0, len(t.src)+32), ev))
}

func lookupPath(fields map[string]any, path []string) (any, bool) {
	var cur any = fields
	for _, seg := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = m[seg]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// AppendValue appends the text form of a field value to dst: strings as
// they are, numbers in plain decimal (no exponent between 1e-4 and 1e21),
// booleans as true/false, nil as nothing, times as RFC 3339, and objects
// and arrays as JSON.
func AppendValue(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return dst
	case string:
		return append(dst, x...)
	case []byte:
		return append(dst, x...)
	case bool:
		return strconv.AppendBool(dst, x)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case int8:
		return strconv.AppendInt(dst, int64(x), 10)
	case int16:
		return strconv.AppendInt(dst, int64(x), 10)
	case int32:
		return strconv.AppendInt(dst, int64(x), 10)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint64:
		return strconv.AppendUint(dst, x, 10)
	case float32:
		return appendFloat(dst, float64(x), 32)
	case float64:
		return appendFloat(dst, x, 64)
	case json.Number:
		return append(dst, x...)
	case time.Time:
		return x.UTC().AppendFormat(dst, time.RFC3339Nano)
	case time.Duration:
		return append(dst, x.String()...)
	case error:
		return append(dst, x.Error()...)
	case fmt.Stringer:
		return append(dst, x.String()...)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Appendf(dst, "%v", v)
	}
	return append(dst, b...)
}

func appendFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "+Inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-Inf"...)
	}
	a := math.Abs(f)
	if a == 0 || (a >= 1e-4 && a < 1e21) {
		if bits == 64 && f != math.Trunc(f) {
			// 15 significant digits hide binary noise such as
			// 34.175000000000004 in human-facing text.
			n := len(dst)
			dst = strconv.AppendFloat(dst, f, 'g', 15, 64)
			if !strings.ContainsRune(string(dst[n:]), 'e') {
				return dst
			}
			dst = dst[:n]
		}
		return strconv.AppendFloat(dst, f, 'f', -1, bits)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}
