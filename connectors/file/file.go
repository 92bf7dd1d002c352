// Package file implements the file sink: each event appended to a file as
// one JSON line. Writes are buffered; Flush (called by the engine at each
// checkpoint) writes the buffer and fsyncs, so everything before a
// checkpoint survives a crash. A failed write (a full disk) is retryable:
// the file is cut back to its last whole line and every line not yet
// written stays buffered, so once space is freed the retry writes them
// all, none lost and none twice.
package file

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/eddy-edge/eddy/pipeline"
)

// Sink appends JSON Lines to a file.
type Sink struct {
	f       *os.File
	pending []byte // whole lines not written to the file yet
	size    int64  // bytes the file holds: everything written so far
	buf     bytes.Buffer
}

// bufferSize is how much is buffered before a write to the file.
const bufferSize = 64 << 10

// Open opens (creating it and its directories if needed) the file at path
// for appending.
func Open(path string) (*Sink, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("file sink: creating the directory of %s: %w", path, err)
	}
	if err := trimTornLine(path); err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file sink: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file sink: %w", err)
	}
	return &Sink{f: f, size: st.Size(), pending: make([]byte, 0, bufferSize)}, nil
}

// trimTornLine cuts a partial last line left by a crash in the middle of a
// write. Lines after the last checkpoint are written again on replay, so
// nothing is lost by removing it, and the file stays valid JSON Lines.
func trimTornLine(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	// Scan back in chunks for the last newline.
	buf := make([]byte, 64<<10)
	end := st.Size()
	for pos := end; pos > 0; {
		n := int64(len(buf))
		if pos < n {
			n = pos
		}
		pos -= n
		if _, err := f.ReadAt(buf[:n], pos); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			cut := pos + int64(i) + 1
			if cut == end {
				return nil
			}
			if err := f.Truncate(cut); err != nil {
				return err
			}
			return f.Sync()
		}
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	return f.Sync()
}

// Write appends ev as one line of JSON. An event that cannot be encoded is
// a permanent error (pipeline.PermanentError); a failed write to the file
// is retryable, and leaves ev out of the buffer so that the retry adds it
// once.
func (s *Sink) Write(_ context.Context, ev *pipeline.Event) error {
	mark := len(s.pending)
	if ev.Raw != nil {
		s.buf.Reset()
		if err := json.Compact(&s.buf, ev.Raw); err != nil {
			return pipeline.Permanentf("file sink: raw payload is not JSON: %w", err)
		}
		s.pending = append(s.pending, s.buf.Bytes()...)
	} else {
		b, err := json.Marshal(ev.Fields)
		if err != nil {
			return pipeline.Permanentf("file sink: encoding event as JSON: %w", err)
		}
		s.pending = append(s.pending, b...)
	}
	s.pending = append(s.pending, '\n')
	if len(s.pending) >= bufferSize {
		if err := s.writePending(); err != nil {
			s.pending = s.pending[:mark]
			return err
		}
	}
	return nil
}

// writePending writes the buffered lines. On error the file is cut back
// to what it held before, so it never ends in a partial line, and the
// lines stay buffered for the next try.
func (s *Sink) writePending() error {
	if len(s.pending) == 0 {
		return nil
	}
	n, err := s.f.Write(s.pending)
	if err != nil {
		if n > 0 {
			if terr := s.f.Truncate(s.size); terr != nil {
				return fmt.Errorf("file sink: writing %s: %w (cutting the partial write failed too: %v)", s.f.Name(), err, terr)
			}
		}
		return fmt.Errorf("file sink: writing %s: %w", s.f.Name(), err)
	}
	s.size += int64(n)
	s.pending = s.pending[:0]
	return nil
}

// Flush writes buffered lines and fsyncs the file.
func (s *Sink) Flush(context.Context) error {
	if err := s.writePending(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("file sink: fsync %s: %w", s.f.Name(), err)
	}
	return nil
}

// Close flushes and closes the file.
func (s *Sink) Close() error {
	ferr := s.Flush(context.Background())
	cerr := s.f.Close()
	if ferr != nil {
		return ferr
	}
	return cerr
}
