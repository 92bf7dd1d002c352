package beam

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"github.com/eddy-edge/eddy/operators/aggregate"
	"github.com/eddy-edge/eddy/pipeline"
)

// Rec's binary form (its Beam coder, encodeRec/decodeRec) and the binary
// form of an event's fields (Rec.Packed). Every element that crosses a
// Beam stage, a shuffle or a side input is a Rec: JSON would be decoded
// and re-encoded at each stage (the cost measured before this encoding:
// a third of the CPU of a direct run went to encoding/json).

// recVersion is the first byte of an encoded Rec, so that a worker of
// another Eddy version fails clearly rather than misreading elements.
const recVersion = 1

// encodeRec is Rec's Beam coder: varints and length-prefixed strings.
func encodeRec(r Rec) []byte {
	b := make([]byte, 0, 1+4*binary.MaxVarintLen64+len(r.Key)+len(r.Topic)+len(r.Packed)+3)
	b = append(b, recVersion)
	b = aggregate.AppendString(b, r.Key)
	b = binary.AppendVarint(b, r.Time)
	b = binary.AppendVarint(b, r.Offset)
	b = aggregate.AppendString(b, r.Topic)
	b = binary.AppendVarint(b, r.WM)
	b = binary.AppendUvarint(b, uint64(len(r.Packed)))
	return append(b, r.Packed...)
}

// decodeRec reads what encodeRec wrote; it never panics on corrupt input.
func decodeRec(b []byte) (Rec, error) {
	if len(b) == 0 || b[0] != recVersion {
		return Rec{}, fmt.Errorf("decoding an element: not an Eddy record of version %d (workers of another Eddy version?)", recVersion)
	}
	rd := aggregate.NewReader(b[1:])
	r := Rec{Key: rd.String(), Time: rd.Varint(), Offset: rd.Varint(), Topic: rd.String(), WM: rd.Varint()}
	n := rd.Len(1)
	if p := rd.Bytes(n); len(p) > 0 {
		r.Packed = append([]byte(nil), p...)
	}
	if err := rd.Err(); err != nil {
		return Rec{}, fmt.Errorf("decoding an element: %w", err)
	}
	if len(rd.Rest()) != 0 {
		return Rec{}, fmt.Errorf("decoding an element: %d bytes after its end", len(rd.Rest()))
	}
	return r, nil
}

// packFields appends the binary form of an event's fields: a count, then
// each name and value (aggregate.AppendValue: numbers, strings, booleans
// and nil keep their Go type; nested objects and arrays travel as JSON).
func packFields(b []byte, fields map[string]any) []byte {
	b = binary.AppendUvarint(b, uint64(len(fields)))
	for k, v := range fields {
		b = aggregate.AppendString(b, k)
		b = aggregate.AppendValue(b, v)
	}
	return b
}

// unpackFields reads what packFields wrote.
func unpackFields(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	rd := aggregate.NewReader(b)
	n := rd.Len(2) // a name and a value take at least one byte each
	fields := make(map[string]any, n)
	for i := 0; i < n && rd.Err() == nil; i++ {
		k := rd.String()
		fields[k] = rd.Value()
	}
	if err := rd.Err(); err != nil {
		return nil, fmt.Errorf("decoding an event's fields: %w", err)
	}
	if len(rd.Rest()) != 0 {
		return nil, fmt.Errorf("decoding an event's fields: %d bytes after their end", len(rd.Rest()))
	}
	return fields, nil
}

// toRec encodes an event for the next Beam stage.
func toRec(ev *pipeline.Event) (Rec, bool) {
	r := Rec{Key: ev.Key, Time: ev.Time, Offset: int64(ev.Offset), Topic: ev.Topic}
	if ev.Fields != nil {
		r.Packed = packFields(nil, ev.Fields)
	}
	return r, true
}

// toEvent decodes a Rec back into an edge event.
func toEvent(r Rec) (*pipeline.Event, error) {
	fields, err := unpackFields(r.Packed)
	if err != nil {
		return nil, err
	}
	return &pipeline.Event{Key: r.Key, Time: r.Time, Offset: uint64(r.Offset), Topic: r.Topic, Fields: fields}, nil
}

// JSON returns the event's fields as the JSON object a sink writes (what
// the edge writes for an event whose fields a step changed). It fails on
// values JSON cannot hold (NaN, infinities).
func (r Rec) JSON() ([]byte, error) {
	fields, err := unpackFields(r.Packed)
	if err != nil {
		return nil, err
	}
	if fields == nil {
		fields = map[string]any{}
	}
	return json.Marshal(fields)
}

// toLine emits the JSON line a file or log sink writes for an event; an
// event JSON cannot encode is counted (eddy/unencodable_events) and
// skipped.
func toLine(ctx context.Context, r Rec, emit func(string)) {
	b, err := r.JSON()
	if err != nil {
		encodeErrors.Inc(ctx, 1)
		return
	}
	emit(string(b))
}

// noWM is Rec.WM of an event no window of which had closed when it
// arrived.
const noWM = math.MinInt64
