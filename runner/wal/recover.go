package wal

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// RecoveryReport describes what the recovery scan of the tail segment found
// when a File was opened.
type RecoveryReport struct {
	// Segment is the tail segment file that was scanned ("" for a new log).
	Segment string
	// EntriesKept is the number of entries left in the tail segment.
	EntriesKept int
	// CorruptKept counts kept entries whose checksum failed (they lie before
	// the last good entry; Read skips them).
	CorruptKept int
	// EntriesDropped is the number of entries (or partial entries) removed
	// from the end of the tail segment.
	EntriesDropped int
	// BytesDropped is the number of bytes removed from the tail segment.
	BytesDropped int64
	// Reason says why bytes were dropped; "" when the tail was clean.
	Reason string
	// First and Last are the log's offsets after recovery.
	First, Last uint64
}

// Truncated reports whether recovery dropped anything.
func (r RecoveryReport) Truncated() bool { return r.BytesDropped > 0 }

// segFile is one segment file of the log directory.
type segFile struct {
	name  string
	start uint64
	size  int64
}

// listSegments returns the segment files of dir sorted by name, the way
// tidwall/wal finds them (20 digit first index, optional .START/.END).
func listSegments(dir string) ([]segFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segFile
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || len(name) < 20 {
			continue
		}
		idx, err := strconv.ParseUint(name[:20], 10, 64)
		if err != nil || idx == 0 {
			continue
		}
		if len(name) != 20 && !(len(name) == 26 && strings.HasSuffix(name, ".START")) &&
			!(len(name) == 24 && strings.HasSuffix(name, ".END")) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		segs = append(segs, segFile{name: name, start: idx, size: info.Size()})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].name < segs[j].name })
	return segs, nil
}

// tailSegment picks the file tidwall/wal will append to after it cleaned
// up an interrupted truncation.
func tailSegment(segs []segFile) (segFile, bool) {
	for _, s := range segs {
		if strings.HasSuffix(s.name, ".END") {
			return s, true
		}
	}
	if len(segs) == 0 {
		return segFile{}, false
	}
	return segs[len(segs)-1], true
}

// recoverTail scans the tail segment of dir and truncates it after the last
// entry whose frame and checksum are valid.
func recoverTail(dir string) (RecoveryReport, error) {
	var rep RecoveryReport
	segs, err := listSegments(dir)
	if err != nil {
		return rep, err
	}
	tail, ok := tailSegment(segs)
	if !ok {
		return rep, nil
	}
	path := filepath.Join(dir, tail.name)
	rep.Segment = path
	data, err := os.ReadFile(path)
	if err != nil {
		return rep, fmt.Errorf("wal: recovery: reading tail segment: %w", err)
	}
	cut, kept, corrupt, dropped, reason := scanSegment(data, tail.start)
	rep.EntriesKept, rep.CorruptKept, rep.EntriesDropped = kept, corrupt, dropped
	if cut == len(data) {
		return rep, nil
	}
	rep.BytesDropped = int64(len(data) - cut)
	rep.Reason = reason
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return rep, fmt.Errorf("wal: recovery: opening %s to truncate its damaged tail: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(int64(cut)); err != nil {
		return rep, fmt.Errorf("wal: recovery: truncating %s to %d bytes: %w", path, cut, err)
	}
	if err := f.Sync(); err != nil {
		return rep, fmt.Errorf("wal: recovery: fsync of %s: %w", path, err)
	}
	return rep, f.Close()
}

// scanSegment walks the tidwall binary entries (uvarint length + data) of a
// segment whose first entry has offset start. It returns the byte length to
// keep (the end of the last valid entry), the number of entries kept, how
// many of those are corrupt, how many entries are dropped and why.
func scanSegment(data []byte, start uint64) (cut, kept, corrupt, dropped int, reason string) {
	var (
		pos, entries, bad int
		torn              string
		zeroOnly          = true
		firstBad          string
		r                 Record
	)
	for idx := start; pos < len(data); idx++ {
		size, n := binary.Uvarint(data[pos:])
		if n <= 0 || size > uint64(len(data)-pos-n) {
			torn = fmt.Sprintf("torn write: entry at byte %d is cut off (%d bytes left)", pos, len(data)-pos)
			for _, b := range data[pos:] {
				if b != 0 {
					zeroOnly = false
					break
				}
			}
			break
		}
		entry := data[pos+n : pos+n+int(size)]
		pos += n + int(size)
		entries++
		err := decodeFrame(entry, &r)
		if err == nil && r.Offset != idx {
			err = fmt.Errorf("%w: stored offset %d, expected %d", errFrame, r.Offset, idx)
		}
		if err == nil {
			cut, kept, corrupt = pos, entries, bad
			zeroOnly, firstBad = true, ""
			continue
		}
		bad++
		if size != 0 {
			zeroOnly = false
		}
		if firstBad == "" {
			firstBad = fmt.Sprintf("offset %d: %v", idx, err)
		}
	}
	dropped = entries - kept
	if torn != "" {
		dropped++
	}
	if zeroOnly {
		dropped = 0 // zero bytes are padding, not entries
	}
	switch {
	case cut == len(data):
		return cut, kept, corrupt, 0, ""
	case zeroOnly:
		reason = fmt.Sprintf("zero-filled tail: %d zero bytes after the last valid entry", len(data)-cut)
	case torn != "" && firstBad == "":
		reason = torn
	case torn != "":
		reason = fmt.Sprintf("invalid entries after the last valid one (first at %s), then %s", firstBad, torn)
	default:
		reason = fmt.Sprintf("invalid entries after the last valid one (first at %s)", firstBad)
	}
	return cut, kept, corrupt, dropped, reason
}
