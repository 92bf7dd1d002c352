// Package walexport owns the file format of an exported range of the edge's
// write-ahead log: JSON Lines, one record a line, written by `eddy export`
// and read by the Beam translation (pipeline/beam), so that an edge's
// history can be replayed on Beam runners. It does no I/O of its own
// beyond the writer it is given.
//
// A line is
//
//	{"offset":42,"time":"2026-11-30T10:00:00.123456789Z","topic":"factory/m1/data","payload":{"temperature":21.5}}
//
// where offset is the WAL offset, time the instant the broker accepted the
// message (RFC 3339 with nanoseconds) and payload the message itself when it
// is valid JSON; any other payload is carried as "payload_base64" instead.
// Offsets keep the order the edge saw the records in, which decides which
// events were late (see pipeline/beam).
package walexport

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Record is one exported WAL record.
type Record struct {
	// Offset is the record's offset in the log.
	Offset uint64
	// Time is when the broker accepted the message.
	Time time.Time
	// Topic is the MQTT topic.
	Topic string
	// Payload is the message payload.
	Payload []byte
}

type line struct {
	Offset  uint64          `json:"offset"`
	Time    string          `json:"time"`
	Topic   string          `json:"topic"`
	Payload json.RawMessage `json:"payload,omitempty"`
	Base64  string          `json:"payload_base64,omitempty"`
}

// Append appends r as one line (with its newline) to b.
func Append(b []byte, r Record) ([]byte, error) {
	l := line{Offset: r.Offset, Time: r.Time.UTC().Format(time.RFC3339Nano), Topic: r.Topic}
	if p := bytes.TrimSpace(r.Payload); len(p) > 0 && json.Valid(p) {
		var c bytes.Buffer
		if err := json.Compact(&c, p); err != nil {
			return b, err
		}
		l.Payload = c.Bytes()
	} else {
		l.Base64 = base64.StdEncoding.EncodeToString(r.Payload)
	}
	out, err := json.Marshal(l)
	if err != nil {
		return b, fmt.Errorf("offset %d: %w", r.Offset, err)
	}
	return append(append(b, out...), '\n'), nil
}

// Write writes r as one line to w.
func Write(w io.Writer, r Record) error {
	b, err := Append(nil, r)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Parse reads one line. Errors say what is wrong and how the line should
// look.
func Parse(b []byte) (Record, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Record{}, fmt.Errorf("not an exported WAL record (%v); want {\"offset\":N,\"time\":\"RFC3339\",\"topic\":\"...\",\"payload\":{...}} as `eddy export` writes", err)
	}
	t, err := time.Parse(time.RFC3339Nano, l.Time)
	if err != nil {
		return Record{}, fmt.Errorf("offset %d: time %q is not RFC 3339", l.Offset, l.Time)
	}
	if l.Topic == "" {
		return Record{}, fmt.Errorf("offset %d: no topic", l.Offset)
	}
	r := Record{Offset: l.Offset, Time: t, Topic: l.Topic, Payload: l.Payload}
	if l.Base64 != "" {
		if len(l.Payload) > 0 {
			return Record{}, fmt.Errorf("offset %d: both payload and payload_base64; keep one", l.Offset)
		}
		if r.Payload, err = base64.StdEncoding.DecodeString(l.Base64); err != nil {
			return Record{}, fmt.Errorf("offset %d: payload_base64: %v", l.Offset, err)
		}
	}
	return r, nil
}
