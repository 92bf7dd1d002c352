package pipeline

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Template is a string with {{field}} placeholders, used for sink topics and
// alert messages. {{key}} is the event's key unless the event has a field
// named key. Missing fields render as the empty string.
type Template struct {
	// Source is the template as written.
	Source string
	parts  []tmplPart
}

type tmplPart struct {
	lit   string
	field string // set for placeholders
}

// ParseTemplate parses s. Placeholders hold one field name; whitespace
// around it is ignored.
func ParseTemplate(s string) (*Template, error) {
	t := &Template{Source: s}
	rest := s
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if strings.Contains(rest, "}}") {
				return nil, fmt.Errorf("%q has \"}}\" without \"{{\"", s)
			}
			if rest != "" {
				t.parts = append(t.parts, tmplPart{lit: rest})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, tmplPart{lit: rest[:i]})
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("%q has \"{{\" without \"}}\"", s)
		}
		name := strings.TrimSpace(rest[i+2 : i+j])
		if name == "" || strings.ContainsAny(name, "{} ") {
			return nil, fmt.Errorf("%q: placeholder {{%s}} must hold one field name, e.g. {{device}}", s, rest[i+2:i+j])
		}
		t.parts = append(t.parts, tmplPart{field: name})
		rest = rest[i+j+2:]
	}
}

// Fields returns the field names the template reads.
func (t *Template) Fields() []string {
	var out []string
	for _, p := range t.parts {
		if p.field != "" {
			out = append(out, p.field)
		}
	}
	return out
}

// Static reports whether the template has no placeholders.
func (t *Template) Static() bool {
	for _, p := range t.parts {
		if p.field != "" {
			return false
		}
	}
	return true
}

// Append renders the template for ev onto dst.
func (t *Template) Append(dst []byte, ev *Event) []byte {
	for _, p := range t.parts {
		if p.field == "" {
			dst = append(dst, p.lit...)
			continue
		}
		v, ok := ev.Fields[p.field]
		if !ok && p.field == "key" {
			dst = append(dst, ev.Key...)
			continue
		}
		dst = AppendValue(dst, v)
	}
	return dst
}

// Render renders the template for ev as a string.
func (t *Template) Render(ev *Event) string {
	if len(t.parts) == 1 && t.parts[0].field == "" {
		return t.parts[0].lit
	}
	return string(t.Append(make([]byte, 0, 64), ev))
}

// AppendValue writes a field value as text: strings as they are, numbers
// in their shortest form, nil as nothing, anything else as JSON.
func AppendValue(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return dst
	case string:
		return append(dst, x...)
	case float64:
		return strconv.AppendFloat(dst, x, 'g', -1, 64)
	case float32:
		return strconv.AppendFloat(dst, float64(x), 'g', -1, 32)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case int32:
		return strconv.AppendInt(dst, int64(x), 10)
	case uint64:
		return strconv.AppendUint(dst, x, 10)
	case bool:
		return strconv.AppendBool(dst, x)
	case json.Number:
		return append(dst, x...)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Appendf(dst, "%v", v)
	}
	return append(dst, b...)
}
