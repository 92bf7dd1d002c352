package wal

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

var recordCases = []Record{
	{Offset: 1, Time: 1, Topic: "a", Payload: []byte("x")},
	{Offset: 1 << 40, Time: -5, Topic: "$ke/events/device/default/thermo-1/data/update", Payload: []byte(`{"t":21.5}`), QoS: 1, Retain: true, Client: "thermo-1"},
	{Offset: 7, Time: 1700000000000000000, Topic: "", Payload: nil, QoS: 2},
	{Offset: 9, Time: 0, Topic: "t", Payload: bytes.Repeat([]byte{0xff}, 70000), Client: strings.Repeat("c", 300)},
}

func TestFrameRoundTrip(t *testing.T) {
	for _, want := range recordCases {
		b := appendFrame(nil, &want)
		if len(b) != frameSize(&want) {
			t.Errorf("frameSize = %d, encoded %d", frameSize(&want), len(b))
		}
		var got Record
		if err := decodeFrame(b, &got); err != nil {
			t.Fatalf("decode %+v: %v", want.Offset, err)
		}
		if got.Offset != want.Offset || got.Time != want.Time || got.Topic != want.Topic || got.Client != want.Client ||
			got.QoS != want.QoS || got.Retain != want.Retain || !bytes.Equal(got.Payload, want.Payload) {
			t.Errorf("round trip: got %+v, want %+v", got, want)
		}
	}
}

func TestFrameDetectsDamage(t *testing.T) {
	good := appendFrame(nil, &recordCases[1])
	tests := []struct {
		name string
		mut  func([]byte) []byte
	}{
		{"empty", func(b []byte) []byte { return nil }},
		{"short", func(b []byte) []byte { return b[:4] }},
		{"zeros", func(b []byte) []byte { return make([]byte, len(b)) }},
		{"version", func(b []byte) []byte { b[0] = 9; return b }},
		{"flipped payload bit", func(b []byte) []byte { b[len(b)-1] ^= 0x10; return b }},
		{"flipped topic bit", func(b []byte) []byte { b[12] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"extended", func(b []byte) []byte { return append(b, 0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mut(append([]byte(nil), good...))
			var r Record
			if err := decodeFrame(b, &r); !errors.Is(err, errFrame) {
				t.Fatalf("decode of damaged frame: err = %v, want errFrame", err)
			}
		})
	}
}

func TestValidateRejectsBadQoS(t *testing.T) {
	r := &Record{Topic: "x", QoS: 3}
	if err := r.validate(); err == nil || !strings.Contains(err.Error(), "QoS 3") {
		t.Fatalf("validate QoS 3: %v", err)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	for _, r := range recordCases {
		f.Add(appendFrame(nil, &r))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append([]byte(nil), b...)
		var r Record
		if err := decodeFrame(in, &r); err != nil {
			return
		}
		if r.QoS > 2 {
			t.Fatalf("decoded QoS %d", r.QoS)
		}
		if again := appendFrame(nil, &r); !bytes.Equal(again, b) {
			t.Fatalf("accepted frame does not re-encode to itself:\n in  %x\n out %x", b, again)
		}
	})
}
