package twin

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// File names inside a FileStore directory.
const (
	snapshotFile = "twins.snapshot.json"
	logFile      = "twins.log"
)

// maxRecordBytes bounds one log record; anything larger in the log is
// treated as corruption.
const maxRecordBytes = 64 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// FileStoreOptions configure a FileStore. The zero value is durable.
type FileStoreOptions struct {
	// NoSync skips fsync after each Append (faster; a power cut may lose
	// the last changes, but never corrupts earlier ones).
	NoSync bool
	// Logger receives warnings about a repaired log tail. Nil discards.
	Logger *slog.Logger
}

// FileStore is a Store in a directory: a JSON snapshot (written to a
// temporary file, fsynced and renamed) plus an append log of records, each
// framed as 4-byte little-endian length, 4-byte CRC-32C of the payload, and
// the JSON payload. On load a torn or corrupt tail is cut off at the last
// good record (and logged).
type FileStore struct {
	dir  string
	opts FileStoreOptions
	log  *os.File
	w    *bufio.Writer
}

// OpenFileStore opens (creating if needed) a file store in dir.
func OpenFileStore(dir string, opts FileStoreOptions) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("twin: file store directory is empty; set a state directory such as /var/lib/eddy/twins")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("twin: create state directory %s: %w", dir, err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &FileStore{dir: dir, opts: opts}, nil
}

// Load reads the snapshot, replays the log and opens the log for appending.
func (s *FileStore) Load() ([]*DeviceRecord, error) {
	devs := map[string]*DeviceRecord{}
	snapPath := filepath.Join(s.dir, snapshotFile)
	if b, err := os.ReadFile(snapPath); err == nil {
		var list []*DeviceRecord
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("twin: snapshot %s is not valid JSON (%v); restore it from backup or move it away to start empty", snapPath, err)
		}
		for _, d := range list {
			if d.Twins == nil {
				d.Twins = map[string]*TwinRecord{}
			}
			devs[d.ID] = d
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("twin: read snapshot: %w", err)
	}

	logPath := filepath.Join(s.dir, logFile)
	f, err := os.OpenFile(logPath, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("twin: open log: %w", err)
	}
	good, n, err := replayLog(f, func(r Record) { applyRecord(devs, r) })
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("twin: read log %s: %w", logPath, err)
	}
	if st, err := f.Stat(); err == nil && st.Size() > good {
		s.opts.Logger.Warn("twin log has a torn or corrupt tail; cutting it off",
			"path", logPath, "good_bytes", good, "dropped_bytes", st.Size()-good, "records", n)
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, fmt.Errorf("twin: repair log: %w", err)
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("twin: seek log: %w", err)
	}
	if s.log != nil {
		s.log.Close()
	}
	s.log = f
	s.w = bufio.NewWriterSize(f, 64<<10)
	return sortedDevices(devs), nil
}

// replayLog calls fn for each good record and returns the offset after the
// last good one.
func replayLog(f *os.File, fn func(Record)) (good int64, n int, err error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, 0, err
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var hdr [8]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return good, n, nil // EOF or torn header
		}
		size := binary.LittleEndian.Uint32(hdr[0:4])
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		if size == 0 || size > maxRecordBytes {
			return good, n, nil
		}
		if cap(payload) < int(size) {
			payload = make([]byte, size)
		}
		payload = payload[:size]
		if _, err := io.ReadFull(r, payload); err != nil {
			return good, n, nil
		}
		if crc32.Checksum(payload, crcTable) != sum {
			return good, n, nil
		}
		var rec Record
		if err := json.Unmarshal(payload, &rec); err != nil {
			return good, n, nil
		}
		fn(rec)
		good += 8 + int64(size)
		n++
	}
}

// Append writes the records to the log and (unless NoSync) fsyncs it.
func (s *FileStore) Append(recs []Record) error {
	if s.log == nil {
		return errors.New("twin: file store used before Load")
	}
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("twin: encode log record: %w", err)
		}
		var hdr [8]byte
		binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(b)))
		binary.LittleEndian.PutUint32(hdr[4:8], crc32.Checksum(b, crcTable))
		s.w.Write(hdr[:])
		s.w.Write(b)
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("twin: write log: %w", err)
	}
	if !s.opts.NoSync {
		if err := s.log.Sync(); err != nil {
			return fmt.Errorf("twin: sync log: %w", err)
		}
	}
	return nil
}

// Compact writes a new snapshot atomically and empties the log. A crash
// between the two steps only replays records the snapshot already holds.
func (s *FileStore) Compact(devices []*DeviceRecord) error {
	b, err := json.Marshal(devices)
	if err != nil {
		return fmt.Errorf("twin: encode snapshot: %w", err)
	}
	tmp := filepath.Join(s.dir, snapshotFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("twin: write snapshot: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("twin: write snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("twin: sync snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("twin: close snapshot: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, snapshotFile)); err != nil {
		return fmt.Errorf("twin: install snapshot: %w", err)
	}
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	if s.log != nil {
		if err := s.w.Flush(); err != nil {
			return fmt.Errorf("twin: flush log: %w", err)
		}
		if err := s.log.Truncate(0); err != nil {
			return fmt.Errorf("twin: truncate log: %w", err)
		}
		if _, err := s.log.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("twin: seek log: %w", err)
		}
		s.w.Reset(s.log)
	}
	return nil
}

// Close flushes and closes the log.
func (s *FileStore) Close() error {
	if s.log == nil {
		return nil
	}
	err := s.w.Flush()
	if serr := s.log.Sync(); err == nil {
		err = serr
	}
	if cerr := s.log.Close(); err == nil {
		err = cerr
	}
	s.log = nil
	return err
}
