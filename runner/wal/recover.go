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
	// from the end of the tail segment, counted from their framing. Records
	// lost in a zero-filled tail cannot be counted: see ZeroBytes.
	EntriesDropped int
	// ZeroBytes is the length of a zero-filled tail that was removed: what
	// a crash leaves when the file grew but its data never reached the disk.
	// How many records it held is unknowable (they were never fsynced, so
	// never acknowledged).
	ZeroBytes int64
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
	cut, kept, corrupt, dropped, zeros, reason := scanSegment(data, tail.start)
	rep.EntriesKept, rep.CorruptKept, rep.EntriesDropped, rep.ZeroBytes = kept, corrupt, dropped, zeros
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
// many of those are corrupt, how many entries are dropped and why (see
// countDropped for what can be counted).
func scanSegment(data []byte, start uint64) (cut, kept, corrupt, dropped int, zeroBytes int64, reason string) {
	var (
		pos, entries, bad int
		torn              string
		firstBad          string
		r                 Record
	)
	for idx := start; pos < len(data); idx++ {
		size, n := binary.Uvarint(data[pos:])
		if n <= 0 || size > uint64(len(data)-pos-n) {
			torn = fmt.Sprintf("torn write: entry at byte %d is cut off (%d bytes left)", pos, len(data)-pos)
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
			firstBad = ""
			continue
		}
		bad++
		if firstBad == "" && size != 0 {
			firstBad = fmt.Sprintf("offset %d: %v", idx, err)
		}
	}
	if cut == len(data) {
		return cut, kept, corrupt, 0, 0, ""
	}
	dropped, zeroBytes = countDropped(data[cut:])
	var parts []string
	if dropped > 0 {
		what := "a torn write"
		if firstBad != "" {
			what = "invalid entries (first at " + firstBad + ")"
			if torn != "" {
				what += ", then " + torn
			}
		} else if torn != "" {
			what = torn
		}
		parts = append(parts, fmt.Sprintf("%d entries after the last valid one dropped: %s", dropped, what))
	}
	if zeroBytes > 0 {
		parts = append(parts, fmt.Sprintf("zero-filled tail: %d zero bytes (how many records they held cannot be known; such records were never fsynced, so never acknowledged)", zeroBytes))
	}
	return cut, kept, corrupt, dropped, zeroBytes, strings.Join(parts, "; ")
}

// countDropped counts what recovery removes after the last valid entry.
// A zero-filled tail (a file extended by a crash before its data blocks
// were written) holds no countable entries: it is reported as zeroBytes,
// never counted as one entry per zero byte. Before it, each framed entry
// with content counts once, including one cut off by the end of the data
// or by the zero fill; zero bytes between entries are skipped (Eddy never
// writes an empty entry).
func countDropped(tail []byte) (entries int, zeroBytes int64) {
	end := len(tail)
	for end > 0 && tail[end-1] == 0 {
		end--
	}
	zeroBytes = int64(len(tail) - end)
	for pos := 0; pos < end; {
		if tail[pos] == 0 {
			pos++
			continue
		}
		entries++
		size, n := binary.Uvarint(tail[pos:end])
		if n <= 0 || size > uint64(end-pos-n) {
			break // cut off: the rest is this entry's
		}
		pos += n + int(size)
	}
	return entries, zeroBytes
}
