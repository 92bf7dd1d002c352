package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"unsafe"
)

// Record is one message in the log.
type Record struct {
	// Offset is the record's position in the log, assigned by Append. The
	// first record of a log has offset 1; offsets are dense (no gaps).
	Offset uint64
	// Time is the arrival time in unix nanoseconds. Append fills it from
	// the log's clock when it is zero.
	Time int64
	// Topic is the MQTT topic the message was published to.
	Topic string
	// Payload is the message body. Records returned by Read share their
	// payload with the log's cache: callers must not modify it.
	Payload []byte
	// QoS is the MQTT quality of service (0, 1 or 2).
	QoS byte
	// Retain is the MQTT retain flag.
	Retain bool
	// Client is the id of the client that published the message.
	Client string
}

// Frame layout, all inside one tidwall/wal entry:
//
//	[0]     format version (1)
//	[1:5]   CRC-32C (Castagnoli), little endian, of bytes [5:]
//	[5]     flags: bits 0-1 QoS, bit 2 retain; other bits zero
//	uvarint offset
//	varint  time (unix ns)
//	uvarint len(topic), topic
//	uvarint len(client), client
//	payload (the rest)
const (
	frameVersion = 1
	frameHeader  = 6
	flagRetain   = 1 << 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errFrame is wrapped by every decode failure.
var errFrame = errors.New("wal: corrupt record frame")

// validate checks what Append must refuse.
func (r *Record) validate() error {
	if r == nil {
		return errors.New("wal: nil record passed to Append")
	}
	if r.QoS > 2 {
		return fmt.Errorf("wal: record for topic %q has QoS %d; MQTT QoS must be 0, 1 or 2", r.Topic, r.QoS)
	}
	return nil
}

// frameSize returns the encoded size of r.
func frameSize(r *Record) int {
	return frameHeader + uvarintLen(r.Offset) + varintLen(r.Time) +
		uvarintLen(uint64(len(r.Topic))) + len(r.Topic) +
		uvarintLen(uint64(len(r.Client))) + len(r.Client) + len(r.Payload)
}

// appendFrame appends the encoded frame of r to dst.
func appendFrame(dst []byte, r *Record) []byte {
	start := len(dst)
	flags := r.QoS & 3
	if r.Retain {
		flags |= flagRetain
	}
	dst = append(dst, frameVersion, 0, 0, 0, 0, flags)
	dst = binary.AppendUvarint(dst, r.Offset)
	dst = binary.AppendVarint(dst, r.Time)
	dst = binary.AppendUvarint(dst, uint64(len(r.Topic)))
	dst = append(dst, r.Topic...)
	dst = binary.AppendUvarint(dst, uint64(len(r.Client)))
	dst = append(dst, r.Client...)
	dst = append(dst, r.Payload...)
	binary.LittleEndian.PutUint32(dst[start+1:], crc32.Checksum(dst[start+5:], castagnoli))
	return dst
}

// decodeFrame decodes b into r. Topic, Client and Payload alias b, which must
// therefore never be modified afterwards.
func decodeFrame(b []byte, r *Record) error {
	if len(b) < frameHeader {
		return fmt.Errorf("%w: %d bytes is shorter than the %d byte header", errFrame, len(b), frameHeader)
	}
	if b[0] != frameVersion {
		return fmt.Errorf("%w: unknown format version %d", errFrame, b[0])
	}
	if want, got := binary.LittleEndian.Uint32(b[1:]), crc32.Checksum(b[5:], castagnoli); want != got {
		return fmt.Errorf("%w: checksum mismatch (stored %08x, computed %08x)", errFrame, want, got)
	}
	flags := b[5]
	if flags&^(3|flagRetain) != 0 || flags&3 == 3 {
		return fmt.Errorf("%w: invalid flags %#x", errFrame, flags)
	}
	p := b[frameHeader:]
	off, n := binary.Uvarint(p)
	if n <= 0 {
		return fmt.Errorf("%w: bad offset", errFrame)
	}
	p = p[n:]
	t, n := binary.Varint(p)
	if n <= 0 {
		return fmt.Errorf("%w: bad time", errFrame)
	}
	p = p[n:]
	topic, p, ok := lenPrefixed(p)
	if !ok {
		return fmt.Errorf("%w: bad topic length", errFrame)
	}
	client, p, ok := lenPrefixed(p)
	if !ok {
		return fmt.Errorf("%w: bad client length", errFrame)
	}
	*r = Record{
		Offset:  off,
		Time:    t,
		Topic:   unsafe.String(unsafe.SliceData(topic), len(topic)),
		Client:  unsafe.String(unsafe.SliceData(client), len(client)),
		Payload: p[:len(p):len(p)],
		QoS:     flags & 3,
		Retain:  flags&flagRetain != 0,
	}
	if len(p) == 0 {
		r.Payload = nil
	}
	return nil
}

func lenPrefixed(p []byte) (field, rest []byte, ok bool) {
	l, n := binary.Uvarint(p)
	if n <= 0 || l > uint64(len(p)-n) {
		return nil, nil, false
	}
	return p[n : n+int(l)], p[n+int(l):], true
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}
