// Package mqtt holds Eddy's MQTT connector pieces that do not depend on a
// particular broker: payload formats (json, kubeedge, raw) that turn a
// message into event fields, topic matching, and the MQTT sink that
// publishes pipeline output through a Publisher (the edge broker).
package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/eddy-edge/eddy/pipeline/devices/kubeedge"
)

// Format names a payload format.
type Format string

// The payload formats a source can declare.
const (
	// JSON payloads are one object, or an array of objects (one event each).
	JSON Format = "json"
	// KubeEdge payloads are the mapper's data/update and the twin/update
	// messages; each property becomes a field converted by its declared type.
	KubeEdge Format = "kubeedge"
	// Raw payloads become the string field "payload".
	Raw Format = "raw"
)

// Decoded is one event's fields from a message, plus the original JSON when
// the fields are exactly that object (so sinks can forward it unchanged).
type Decoded struct {
	Fields map[string]any
	Raw    []byte
}

// Decode turns one message into zero or more events, calling emit for each.
// Errors say what is wrong with the payload; nothing is emitted for a
// payload that cannot be decoded at all.
func Decode(f Format, topic string, payload []byte, emit func(Decoded)) error {
	switch f {
	case JSON, "":
		return decodeJSON(payload, emit)
	case KubeEdge:
		return decodeKubeEdge(topic, payload, emit)
	case Raw:
		emit(Decoded{Fields: map[string]any{"payload": string(payload)}})
		return nil
	}
	return fmt.Errorf("unknown format %q; use json, kubeedge or raw", f)
}

func decodeJSON(payload []byte, emit func(Decoded)) error {
	p := bytes.TrimSpace(payload)
	if len(p) == 0 {
		return fmt.Errorf("empty payload; want a JSON object such as {\"temperature\": 21.5}")
	}
	switch p[0] {
	case '{':
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			return fmt.Errorf("payload is not valid JSON: %v", jsonErr(err))
		}
		// Raw is the object without surrounding white space: sinks write
		// it as one JSON line, and bytes.TrimSpace also removes
		// characters (\v, U+0085...) that JSON does not allow.
		emit(Decoded{Fields: m, Raw: p})
		return nil
	case '[':
		var arr []json.RawMessage
		if err := json.Unmarshal(p, &arr); err != nil {
			return fmt.Errorf("payload is not valid JSON: %v", jsonErr(err))
		}
		objs := make([]map[string]any, 0, len(arr))
		for i, el := range arr {
			var m map[string]any
			if err := json.Unmarshal(el, &m); err != nil || m == nil {
				return fmt.Errorf("element %d of the array is not a JSON object; want [{...}, {...}]", i)
			}
			objs = append(objs, m)
		}
		for i, m := range objs {
			emit(Decoded{Fields: m, Raw: arr[i]})
		}
		return nil
	}
	return fmt.Errorf("payload is not a JSON object or array (starts with %q); want e.g. {\"temperature\": 21.5}", string(p[:min(len(p), 16)]))
}

func jsonErr(err error) string {
	var se *json.SyntaxError
	if ok := asSyntax(err, &se); ok {
		return fmt.Sprintf("%v at byte %d", se, se.Offset)
	}
	return err.Error()
}

func asSyntax(err error, target **json.SyntaxError) bool {
	se, ok := err.(*json.SyntaxError)
	if ok {
		*target = se
	}
	return ok
}

// kubeEdgeMessage covers both the mapper's data/update message and the
// twin/update message (their shapes are in pipeline/devices/kubeedge).
type kubeEdgeMessage struct {
	kubeedge.BaseMessage
	Data map[string]*kubeedge.DataValue `json:"data"`
	Twin map[string]*kubeedge.MsgTwin   `json:"twin"`
}

func decodeKubeEdge(topic string, payload []byte, emit func(Decoded)) error {
	var msg kubeEdgeMessage
	if err := json.Unmarshal(payload, &msg); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("payload is not a KubeEdge data/update or twin/update message: %s is a JSON %s at byte %d; want e.g. {\"data\": {\"temperature\": {\"value\": \"21\", \"metadata\": {\"type\": \"int\"}}}}", te.Field, te.Value, te.Offset)
		}
		return fmt.Errorf("payload is not a KubeEdge data/update or twin/update message: %v", jsonErr(err))
	}
	if msg.Data == nil && msg.Twin == nil {
		return fmt.Errorf("KubeEdge message has neither \"data\" nor \"twin\"; want {\"timestamp\": ..., \"data\": {\"temperature\": {\"value\": \"21\", \"metadata\": {\"type\": \"int\"}}}}")
	}
	fields := make(map[string]any, len(msg.Data)+len(msg.Twin)+4)
	if ns, name, ok := kubeedge.DeviceOf(topic); ok {
		fields["device"] = name
		fields["namespace"] = ns
		fields["device_id"] = ns + "/" + name
	}
	if msg.Timestamp != 0 {
		fields["timestamp"] = msg.Timestamp
	}
	for prop, v := range msg.Data {
		if v == nil {
			fields[prop] = nil
			continue
		}
		val, err := convert(v.Value, v.Metadata.Type)
		if err != nil {
			return fmt.Errorf("data.%s: %v", prop, err)
		}
		fields[prop] = val
	}
	for prop, t := range msg.Twin {
		if t == nil {
			continue // a deletion: no value
		}
		src := t.Actual
		if src == nil {
			src = t.Expected
		}
		if src == nil {
			continue
		}
		var typ string
		if t.Metadata != nil {
			typ = t.Metadata.Type
		}
		val, err := convert(src.Value, typ)
		if err != nil {
			return fmt.Errorf("twin.%s: %v", prop, err)
		}
		fields[prop] = val
	}
	emit(Decoded{Fields: fields})
	return nil
}

// convert turns a KubeEdge value (usually a JSON string) into a typed value
// according to the declared type (int, float, double, boolean, string, ...).
func convert(raw json.RawMessage, typ string) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var s string
	if raw[0] != '"' {
		// Not a string: keep the JSON value as it is.
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		return v, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	switch strings.ToLower(typ) {
	case "int", "integer", "int32", "int64":
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			if f, ferr := strconv.ParseFloat(strings.TrimSpace(s), 64); ferr == nil {
				return int64(f), nil
			}
			return nil, fmt.Errorf("value %q is not an int", s)
		}
		return i, nil
	case "float", "double", "float32", "float64":
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("value %q is not a %s", s, typ)
		}
		return f, nil
	case "boolean", "bool":
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("value %q is not a boolean", s)
		}
		return b, nil
	}
	return s, nil
}

// MatchTopic reports whether topic matches the MQTT filter (+ and #).
// Topics starting with $ do not match filters starting with a wildcard.
func MatchTopic(filter, topic string) bool {
	if len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fi := strings.IndexByte(filter, '/')
		ti := strings.IndexByte(topic, '/')
		var f, t string
		if fi < 0 {
			f = filter
		} else {
			f = filter[:fi]
		}
		if ti < 0 {
			t = topic
		} else {
			t = topic[:ti]
		}
		switch {
		case f == "#":
			return true
		case f != "+" && f != t:
			return false
		}
		if fi < 0 || ti < 0 {
			// One side is at its last level. "a/#" also matches "a".
			return fi < 0 && ti < 0 || (ti < 0 && filter[fi+1:] == "#")
		}
		filter, topic = filter[fi+1:], topic[ti+1:]
	}
}
