package checkpoint

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// FileOptions configure NewFileStore. The zero value is ready to use.
type FileOptions struct {
	// Logger receives fallback warnings. Default: discard.
	Logger *slog.Logger
}

// FileStore keeps each pipeline's checkpoint in "<dir>/<escaped name>.ckpt"
// (and the previous generation in ".ckpt.prev"). Saves of different
// pipelines may run concurrently; saves of the same pipeline must not.
type FileStore struct {
	dir string
	log *slog.Logger
}

var _ Store = (*FileStore)(nil)

// NewFileStore creates dir if needed and returns a store in it.
func NewFileStore(dir string, opts FileOptions) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("checkpoint: NewFileStore needs a directory; use NewMemoryStore for checkpoints without files")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("checkpoint: creating directory: %w", err)
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &FileStore{dir: dir, log: lg}, nil
}

func (s *FileStore) path(pipeline string) string {
	return filepath.Join(s.dir, url.PathEscape(pipeline)+".ckpt")
}

// File layout: "EDCK" | version 1 | CRC-32C (LE) of the body | body, where
// body = uvarint len + pipeline | uvarint len + plan hash | uvarint offset |
// varint unix ns | state.
var magic = []byte("EDCK")

const version = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encode(cp Checkpoint) []byte {
	b := append([]byte(nil), magic...)
	b = append(b, version, 0, 0, 0, 0)
	b = binary.AppendUvarint(b, uint64(len(cp.Pipeline)))
	b = append(b, cp.Pipeline...)
	b = binary.AppendUvarint(b, uint64(len(cp.PlanHash)))
	b = append(b, cp.PlanHash...)
	b = binary.AppendUvarint(b, cp.Offset)
	var t int64
	if !cp.Time.IsZero() {
		t = cp.Time.UnixNano()
	}
	b = binary.AppendVarint(b, t)
	b = append(b, cp.State...)
	binary.LittleEndian.PutUint32(b[5:], crc32.Checksum(b[9:], castagnoli))
	return b
}

func decode(b []byte) (Checkpoint, error) {
	var cp Checkpoint
	if len(b) < 9 || !bytes.Equal(b[:4], magic) {
		return cp, errors.New("not a checkpoint file (bad magic or too short)")
	}
	if b[4] != version {
		return cp, fmt.Errorf("unknown format version %d", b[4])
	}
	if want, got := binary.LittleEndian.Uint32(b[5:]), crc32.Checksum(b[9:], castagnoli); want != got {
		return cp, fmt.Errorf("checksum mismatch (stored %08x, computed %08x): torn or damaged file", want, got)
	}
	p := b[9:]
	field := func() ([]byte, bool) {
		l, n := binary.Uvarint(p)
		if n <= 0 || l > uint64(len(p)-n) {
			return nil, false
		}
		f := p[n : n+int(l)]
		p = p[n+int(l):]
		return f, true
	}
	name, ok1 := field()
	hash, ok2 := field()
	if !ok1 || !ok2 {
		return cp, errors.New("bad field length")
	}
	off, n := binary.Uvarint(p)
	if n <= 0 {
		return cp, errors.New("bad offset")
	}
	p = p[n:]
	t, n := binary.Varint(p)
	if n <= 0 {
		return cp, errors.New("bad time")
	}
	p = p[n:]
	cp = Checkpoint{Pipeline: string(name), PlanHash: string(hash), Offset: off, State: append([]byte(nil), p...)}
	if t != 0 {
		cp.Time = time.Unix(0, t).UTC()
	}
	return cp, nil
}

// Save implements Store: temp file, fsync, current -> .prev, temp ->
// current, fsync of the directory.
func (s *FileStore) Save(ctx context.Context, cp Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkName(cp.Pipeline); err != nil {
		return err
	}
	path := s.path(cp.Pipeline)
	f, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("checkpoint: saving pipeline %q: %w", cp.Pipeline, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(encode(cp)); err != nil {
		f.Close()
		return fmt.Errorf("checkpoint: writing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("checkpoint: fsync of %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("checkpoint: closing %s: %w", tmp, err)
	}
	if err := os.Rename(path, path+".prev"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("checkpoint: keeping the previous checkpoint of %q: %w", cp.Pipeline, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("checkpoint: installing %s: %w", path, err)
	}
	return syncDir(s.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("checkpoint: fsync of directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("checkpoint: fsync of directory %s: %w", dir, err)
	}
	return nil
}

// Load implements Store, falling back to the previous generation when the
// current file is missing or damaged (see the package doc).
func (s *FileStore) Load(ctx context.Context, pipeline string) (Checkpoint, bool, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, false, err
	}
	if err := checkName(pipeline); err != nil {
		return Checkpoint{}, false, err
	}
	path := s.path(pipeline)
	cur, curErr := s.read(path, pipeline)
	if curErr == nil {
		return cur, true, nil
	}
	prev, prevErr := s.read(path+".prev", pipeline)
	switch {
	case errors.Is(curErr, fs.ErrNotExist) && errors.Is(prevErr, fs.ErrNotExist):
		return Checkpoint{}, false, nil
	case prevErr == nil:
		s.log.Error("checkpoint: current checkpoint unusable, falling back to the previous one; the pipeline replays more of the log",
			"pipeline", pipeline, "file", path, "err", curErr, "offset", prev.Offset)
		return prev, true, nil
	case errors.Is(prevErr, fs.ErrNotExist):
		return Checkpoint{}, false, corruptError(pipeline, fmt.Sprintf("%s: %v, and there is no previous checkpoint", path, curErr))
	default:
		return Checkpoint{}, false, corruptError(pipeline, fmt.Sprintf("%s: %v; %s.prev: %v", path, curErr, path, prevErr))
	}
}

func (s *FileStore) read(path, pipeline string) (Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Checkpoint{}, err
	}
	cp, err := decode(b)
	if err != nil {
		return Checkpoint{}, err
	}
	if cp.Pipeline != pipeline {
		return Checkpoint{}, fmt.Errorf("file belongs to pipeline %q", cp.Pipeline)
	}
	return cp, nil
}

// Delete implements Store.
func (s *FileStore) Delete(ctx context.Context, pipeline string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkName(pipeline); err != nil {
		return err
	}
	path := s.path(pipeline)
	for _, p := range []string{path, path + ".prev"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("checkpoint: deleting %s: %w", p, err)
		}
	}
	return syncDir(s.dir)
}
