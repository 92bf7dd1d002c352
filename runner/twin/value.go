package twin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// DefaultMaxValueBytes is the default cap on one twin value's JSON encoding.
const DefaultMaxValueBytes = 64 << 10

// value is one stored twin value in its three forms.
type value struct {
	raw json.RawMessage // compact JSON; nil when unset
	str string          // KubeEdge's string form: the string itself, or the JSON text
	dec any             // decoded for pipelines (typed by the declared type)
}

func (v *value) set() bool { return len(v.raw) > 0 }

// parseValue validates and normalises an incoming JSON value.
func parseValue(raw json.RawMessage, typ string, maxBytes int) (value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return value{}, fmt.Errorf("value is missing or null (to delete an undeclared property send \"twin\":{\"<prop>\":null})")
	}
	if len(raw) > maxBytes {
		return value{}, fmt.Errorf("value is %d bytes; the limit is %d bytes (raise Options.MaxValueBytes on the edge runner, or send a smaller value)", len(raw), maxBytes)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return value{}, fmt.Errorf("value is not valid JSON: %v", err)
	}
	return makeValue(buf.Bytes(), typ)
}

// makeValue builds a value from compact, valid JSON and checks it against
// the declared type.
func makeValue(raw []byte, typ string) (value, error) {
	v := value{raw: append(json.RawMessage(nil), raw...)}
	var dec any
	if err := json.Unmarshal(raw, &dec); err != nil {
		return value{}, fmt.Errorf("value is not valid JSON: %v", err)
	}
	if s, ok := dec.(string); ok {
		v.str = s
	} else {
		v.str = string(raw)
	}
	typed, err := typedValue(v.str, dec, typ)
	if err != nil {
		return value{}, err
	}
	v.dec = typed
	return v, nil
}

// typedValue converts a value to the Go type a pipeline expects for the
// declared type (KubeEdge model types INT, FLOAT, DOUBLE, BOOLEAN, STRING,
// BYTES, STREAM; case-insensitive). Unknown or empty types keep the JSON
// decoding. An empty string is allowed for any type (KubeEdge: "no value").
func typedValue(str string, dec any, typ string) (any, error) {
	if str == "" {
		return dec, nil
	}
	switch strings.ToLower(typ) {
	case "int", "integer", "int64":
		n, err := strconv.ParseInt(strings.TrimSpace(str), 10, 64)
		if err != nil {
			if f, ferr := strconv.ParseFloat(strings.TrimSpace(str), 64); ferr == nil && f == float64(int64(f)) {
				return int64(f), nil
			}
			return nil, fmt.Errorf("value %s is not an integer but the property is declared %s", quoteShort(str), typ)
		}
		return n, nil
	case "float", "double", "float64", "number":
		f, err := strconv.ParseFloat(strings.TrimSpace(str), 64)
		if err != nil {
			return nil, fmt.Errorf("value %s is not a number but the property is declared %s", quoteShort(str), typ)
		}
		return f, nil
	case "boolean", "bool":
		b, err := strconv.ParseBool(strings.TrimSpace(str))
		if err != nil {
			return nil, fmt.Errorf("value %s is not true/false but the property is declared %s", quoteShort(str), typ)
		}
		return b, nil
	}
	return dec, nil
}

func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}

// inferType names the type of an undeclared value whose message carries no
// metadata.type: "string" for strings (KubeEdge's default), else the JSON kind.
func inferType(dec any) string {
	switch x := dec.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		if x == float64(int64(x)) {
			return "int"
		}
		return "float"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return "string"
}

// valueFromAny encodes a desired value handed in by SetDevices: strings stay
// JSON strings, json.RawMessage is used as is, anything else is marshalled.
func valueFromAny(x any, typ string, maxBytes int) (value, bool, error) {
	var raw []byte
	switch d := x.(type) {
	case nil:
		return value{}, false, nil
	case string:
		if d == "" {
			return value{}, false, nil
		}
		raw, _ = json.Marshal(d)
	case json.RawMessage:
		if len(bytes.TrimSpace(d)) == 0 || string(bytes.TrimSpace(d)) == "null" {
			return value{}, false, nil
		}
		raw = d
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return value{}, false, fmt.Errorf("desired value cannot be encoded as JSON: %v", err)
		}
		raw = b
	}
	v, err := parseValue(raw, typ, maxBytes)
	return v, err == nil, err
}
