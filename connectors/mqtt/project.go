package mqtt

import (
	"bytes"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Projection is the set of top-level JSON fields a pipeline reads. Decoding
// with a projection validates the whole payload but builds values only for
// these fields, so a filter on one field of a 20-field message allocates one
// value instead of twenty. The original bytes are kept in Decoded.Raw, so
// sinks still forward the whole message.
//
// A nil *Projection means every field.
type Projection struct {
	names map[string]string // name -> the same string, so map keys are never allocated
}

// NewProjection returns the projection onto names (duplicates are fine).
func NewProjection(names []string) *Projection {
	p := &Projection{names: make(map[string]string, len(names))}
	for _, n := range names {
		p.names[n] = n
	}
	return p
}

// Fields returns the number of fields in the projection.
func (p *Projection) Fields() int { return len(p.names) }

// Covers reports whether p decodes every field q does (nil is every field).
func (p *Projection) Covers(q *Projection) bool {
	if p == nil {
		return true
	}
	if q == nil {
		return false
	}
	for n := range q.names {
		if _, ok := p.names[n]; !ok {
			return false
		}
	}
	return true
}

// Decoder decodes payloads of one format, building only the fields of its
// projection (JSON only; the other formats always decode everything).
// The zero value decodes JSON completely.
type Decoder struct {
	// Format is the payload format; empty means JSON.
	Format Format
	// Fields restricts JSON decoding to these top-level fields; nil means all.
	Fields *Projection
	// Reuse makes a projected single-object payload's Fields the same map
	// every time, cleared and filled again (one allocation per message
	// fewer): emit's receiver must not keep the map after it returns
	// (pipeline.Event.Clone copies it). Only with Fields set: an expression
	// over the whole environment ($env) could return the map itself.
	Reuse bool

	m map[string]any // the reused map
}

// Decode turns one message into zero or more events, calling emit for each,
// exactly as the package-level Decode does except that JSON events carry
// only the projected fields. Errors (and the events emitted) are the same as
// Decode's for every payload: a payload the fast scanner rejects is handed
// to encoding/json, whose verdict and message are final.
func (d *Decoder) Decode(topic string, payload []byte, emit func(Decoded)) error {
	if d.Fields == nil || (d.Format != JSON && d.Format != "") {
		return Decode(d.Format, topic, payload, emit)
	}
	p := bytes.TrimSpace(payload)
	if len(p) > 0 && p[0] == '{' {
		s := scanner{data: p, want: d.Fields.names}
		if d.Reuse {
			if d.m == nil {
				d.m = make(map[string]any, len(d.Fields.names))
			}
			clear(d.m)
			s.into = d.m
		}
		if m, ok := s.object(); ok && s.end() {
			emit(Decoded{Fields: m, Raw: p})
			return nil
		}
	} else if len(p) > 0 && p[0] == '[' {
		s := scanner{data: p, want: d.Fields.names}
		if evs, ok := s.objects(); ok && s.end() {
			for _, e := range evs {
				emit(e)
			}
			return nil
		}
	}
	// Not valid, not an object or array, or something the scanner does not
	// decode the way encoding/json would: the reference path decides.
	return decodeJSON(payload, emit)
}

// scanner is a single-pass JSON validator that decodes the values of the
// wanted top-level fields into what encoding/json gives for an any
// (map[string]any, []any, float64, string, bool, nil). It reports only
// ok/not ok; the caller falls back to encoding/json for the error.
type scanner struct {
	data []byte
	pos  int
	want map[string]string // nil: decode everything (nested values)
	exp  bool              // the last number scanned had an exponent
	into map[string]any    // object fills this (empty) map instead of a new one; once
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// end reports whether only white space is left.
func (s *scanner) end() bool {
	s.ws()
	return s.pos == len(s.data)
}

// open consumes the opening bracket at s.pos and reports whether the
// container is empty, in which case its closing bracket is consumed too.
func (s *scanner) open(closing byte) (empty bool) {
	s.pos++
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == closing {
		s.pos++
		return true
	}
	return false
}

// next consumes what follows an element of a container: a comma (more
// is true: another element follows) or the closing bracket (more is
// false). Anything else is invalid JSON (ok is false).
func (s *scanner) next(closing byte) (more, ok bool) {
	s.ws()
	if s.pos >= len(s.data) {
		return false, false
	}
	switch s.data[s.pos] {
	case ',':
		s.pos++
		return true, true
	case closing:
		s.pos++
		return false, true
	}
	return false, false
}

// key scans an object member's key and the colon after it, leaving s.pos
// at the value.
func (s *scanner) key() (raw []byte, escaped, ok bool) {
	s.ws()
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return nil, false, false
	}
	raw, escaped, ok = s.stringSpan()
	if !ok {
		return nil, false, false
	}
	s.ws()
	if s.pos >= len(s.data) || s.data[s.pos] != ':' {
		return nil, false, false
	}
	s.pos++
	s.ws()
	return raw, escaped, true
}

// objects scans a top-level array whose elements must all be objects.
func (s *scanner) objects() ([]Decoded, bool) {
	var out []Decoded
	if s.open(']') {
		return out, true
	}
	for {
		s.ws()
		if s.pos >= len(s.data) || s.data[s.pos] != '{' {
			return nil, false
		}
		start := s.pos
		m, ok := s.object()
		if !ok {
			return nil, false
		}
		out = append(out, Decoded{Fields: m, Raw: s.data[start:s.pos]})
		if more, ok := s.next(']'); !more {
			return out, ok
		}
	}
}

// object scans an object at s.pos ('{'), keeping the wanted fields.
func (s *scanner) object() (map[string]any, bool) {
	m := s.into
	if m == nil {
		m = make(map[string]any, len(s.want))
	} else {
		s.into = nil // nested objects get their own
	}
	if s.open('}') {
		return m, true
	}
	for {
		raw, escaped, ok := s.key()
		if !ok {
			return nil, false
		}
		name, wanted := s.lookup(raw, escaped)
		if wanted {
			v, ok := s.value()
			if !ok {
				return nil, false
			}
			m[name] = v
		} else if !s.skip() {
			return nil, false
		}
		if more, ok := s.next('}'); !more {
			return m, ok
		}
	}
}

// lookup returns the key's name and whether its value is wanted. Keys with
// escapes or bytes outside ASCII are unescaped first, as encoding/json does.
func (s *scanner) lookup(raw []byte, escaped bool) (string, bool) {
	if escaped {
		k := unquote(raw)
		if s.want == nil {
			return k, true
		}
		n, ok := s.want[k]
		return n, ok
	}
	if s.want == nil {
		return string(raw), true
	}
	n, ok := s.want[string(raw)] // no allocation: a map index by converted bytes
	return n, ok
}

// stringSpan scans a string at s.pos and returns its contents without the
// quotes. escaped is true when it needs unquoting (escapes or non-ASCII
// bytes, which may be invalid UTF-8 and then become U+FFFD).
func (s *scanner) stringSpan() (raw []byte, escaped, ok bool) {
	s.pos++ // '"'
	start := s.pos
	d := s.data
	for {
		i := s.pos
		for i < len(d) && stringPlain[d[i]] {
			i++
		}
		s.pos = i
		if i >= len(d) {
			return nil, false, false
		}
		switch c := d[i]; {
		case c == '"':
			raw = d[start:i]
			s.pos++
			return raw, escaped, true
		case c == '\\':
			escaped = true
			s.pos++
			if s.pos >= len(d) {
				return nil, false, false
			}
			switch d[s.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos++
			case 'u':
				if s.pos+4 >= len(d) {
					return nil, false, false
				}
				for _, h := range d[s.pos+1 : s.pos+5] {
					if !isHex(h) {
						return nil, false, false
					}
				}
				s.pos += 5
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		default: // c >= utf8.RuneSelf
			escaped = true
			s.pos++
		}
	}
}

// stringPlain marks the bytes a JSON string holds as they are: printable
// ASCII other than the quote and the backslash. stringSpan skips runs of
// them with one table lookup per byte.
var stringPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// unquote decodes a validated string body as encoding/json does: escapes,
// surrogate pairs, and U+FFFD for invalid UTF-8 and lone surrogates.
func unquote(b []byte) string {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\':
			i++
			switch b[i] {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(b[i+1:])
				i += 4
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+6 < len(b)+0 && b[i+1] == '\\' && b[i+2] == 'u' {
						r2 = hex4(b[i+3:])
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						i += 6
						r = dec
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default: // '"', '\\', '/'
				out = append(out, b[i])
			}
			i++
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, b[i:i+size]...)
			}
			i += size
		}
	}
	return string(out)
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// value decodes the value at s.pos as encoding/json decodes into an any.
func (s *scanner) value() (any, bool) {
	if s.pos >= len(s.data) {
		return nil, false
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		raw, escaped, ok := s.stringSpan()
		if !ok {
			return nil, false
		}
		if escaped {
			return unquote(raw), true
		}
		return string(raw), true
	case c == '{':
		inner := scanner{data: s.data, pos: s.pos}
		m, ok := inner.object()
		s.pos = inner.pos
		return m, ok
	case c == '[':
		return s.array()
	case c == '-' || c >= '0' && c <= '9':
		start := s.pos
		if !s.number() {
			return nil, false
		}
		f, err := strconv.ParseFloat(string(s.data[start:s.pos]), 64)
		if err != nil {
			return nil, false // out of range: encoding/json reports it
		}
		return f, true
	case c == 't':
		return true, s.literal("true")
	case c == 'f':
		return false, s.literal("false")
	case c == 'n':
		return nil, s.literal("null")
	}
	return nil, false
}

func (s *scanner) array() (any, bool) {
	out := []any{}
	if s.open(']') {
		return out, true
	}
	for {
		s.ws()
		v, ok := s.value()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if more, ok := s.next(']'); !more {
			return out, ok
		}
	}
}

// skip validates the value at s.pos without building it. Numbers that
// could be out of float64's range are parsed, because encoding/json rejects
// the whole payload for them.
func (s *scanner) skip() bool {
	if s.pos >= len(s.data) {
		return false
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		_, _, ok := s.stringSpan()
		return ok
	case c == '{':
		if s.open('}') {
			return true
		}
		for {
			if _, _, ok := s.key(); !ok || !s.skip() {
				return false
			}
			if more, ok := s.next('}'); !more {
				return ok
			}
		}
	case c == '[':
		if s.open(']') {
			return true
		}
		for {
			s.ws()
			if !s.skip() {
				return false
			}
			if more, ok := s.next(']'); !more {
				return ok
			}
		}
	case c == '-' || c >= '0' && c <= '9':
		start := s.pos
		if !s.number() {
			return false
		}
		if num := s.data[start:s.pos]; len(num) > 15 || s.exp {
			f, err := strconv.ParseFloat(string(num), 64)
			return err == nil && !math.IsInf(f, 0)
		}
		return true
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

// number scans a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	d := s.data
	s.exp = false
	if s.pos < len(d) && d[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
	case s.pos < len(d) && d[s.pos] >= '1' && d[s.pos] <= '9':
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
	default:
		return false
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if !s.digits() {
			return false
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.exp = true
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

func (s *scanner) digits() bool {
	start := s.pos
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos > start
}

func (s *scanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return false
	}
	s.pos += len(lit)
	return true
}
