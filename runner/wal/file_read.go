package wal

// This file holds File's read path: the tail cache, segment reads and
// skipping of corrupt records.

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/eddy-edge/eddy/runner/wal/internal/twal"
)

// Read implements Log. Records that keep up are served from the tail
// cache; older ones are read from the segment files.
func (l *File) Read(ctx context.Context, from uint64, buf []Record) (int, error) {
	if from == 0 {
		from = 1
	}
	if len(buf) == 0 {
		return 0, nil
	}
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return 0, ErrClosed
		}
		switch {
		case from < l.first:
			err := &GapError{From: from, First: l.first}
			l.mu.Unlock()
			return 0, err
		case from > l.written+1:
			err := &AheadError{From: from, Last: l.written}
			l.mu.Unlock()
			return 0, err
		case from <= l.written:
			if n := l.cache.copyFrom(from, l.written, buf); n > 0 {
				l.st.CacheReads += uint64(n)
				l.mu.Unlock()
				return n, nil
			}
			hi := l.written
			if l.cache.n > 0 && l.cache.first > from {
				hi = min(hi, l.cache.first-1)
			}
			l.mu.Unlock()
			n, next, err := l.readDisk(from, hi, buf)
			if n > 0 || err != nil {
				return n, err
			}
			from = next
			continue
		}
		ch := l.notify
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// readDisk reads offsets from..hi from the segment files, skipping corrupt
// records. It returns the records read and the offset to continue from.
func (l *File) readDisk(from, hi uint64, buf []Record) (n int, next uint64, err error) {
	i := from
	var run diskRun
	for ; i <= hi && n < len(buf); i++ {
		if run.next >= run.n {
			run.fill(l, i, min(hi-i+1, uint64(len(buf)-n)))
		}
		data, rerr := run.data[run.next], run.errs[run.next]
		run.data[run.next] = nil
		run.next++
		switch {
		case rerr == nil:
		case errors.Is(rerr, twal.ErrNotFound):
			if first := l.First(); i < first {
				if n > 0 {
					return n, i, nil
				}
				return 0, i, &GapError{From: i, First: first}
			}
			return n, i, fmt.Errorf("wal: offset %d missing from %s: %w", i, l.dir, rerr)
		case errors.Is(rerr, twal.ErrCorrupt):
			run.n = 0 // i jumps: read on from where it lands
			l.twMu.RLock()
			_, ferr := l.tw.FirstIndex()
			l.twMu.RUnlock()
			if ferr != nil {
				return n, i, fmt.Errorf("wal: log %s is unusable after a failed truncation: %w; restart the runner", l.dir, ferr)
			}
			end := l.segmentEnd(i)
			l.corrupt(i, end-i, "segment framing unreadable; skipping the rest of the segment")
			i = end - 1
			continue
		case errors.Is(rerr, twal.ErrClosed) || errors.Is(rerr, errHealing):
			if l.isClosed() {
				return n, i, ErrClosed
			}
			if n > 0 {
				return n, i, nil
			}
			return 0, i, fmt.Errorf("wal: reading offset %d from %s: %w", i, l.dir, errHealing)
		default:
			return n, i, fmt.Errorf("wal: reading offset %d from %s: %w", i, l.dir, rerr)
		}
		var r Record
		derr := decodeFrame(data, &r)
		if derr == nil && r.Offset != i {
			derr = fmt.Errorf("%w: stored offset %d, expected %d", errFrame, r.Offset, i)
		}
		if derr != nil {
			l.corrupt(i, 1, derr.Error())
			continue
		}
		buf[n] = r
		n++
	}
	l.mu.Lock()
	l.st.DiskReads += uint64(n)
	l.mu.Unlock()
	return n, i, nil
}

// diskRunLen is how many records readDisk reads from the segment files
// per lock.
const diskRunLen = 32

// diskRun is a run of consecutive records read under one lock. Readers
// behind the tail cache used to take the lock per record, so readers in
// different segments alternated and each could load its segment from the
// file again and again (the segment cache holds one at the default
// budget); now each run loads its segment at most once.
type diskRun struct {
	data    [diskRunLen][]byte
	errs    [diskRunLen]error
	n, next int
}

// fill reads up to max records from off on, stopping after the first
// error (kept for the caller to classify).
func (r *diskRun) fill(l *File, off, max uint64) {
	r.n, r.next = 0, 0
	// Exclusive: tidwall/wal's Read loads segments into its LRU cache
	// and evicts others (their buffers set to nil) under a read lock,
	// so two concurrent Reads can index an evicted segment's buffer
	// (index out of range with length 0). Seen with 300 pipelines
	// reading old segments at once and one cached segment.
	l.twMu.Lock()
	defer l.twMu.Unlock()
	for k := uint64(0); k < max && r.n < diskRunLen; k++ {
		data, err := []byte(nil), errHealing
		if l.tw != nil {
			data, err = l.tw.Read(off + k)
		}
		r.data[r.n], r.errs[r.n] = data, err
		r.n++
		if err != nil {
			return
		}
	}
}

// segmentEnd returns the first offset after the segment holding off.
func (l *File) segmentEnd(off uint64) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := sort.Search(len(l.segs), func(k int) bool { return l.segs[k].start > off })
	if k < len(l.segs) {
		return l.segs[k].start
	}
	return l.written + 1
}

// corrupt counts and logs (once per offset) records that are skipped.
func (l *File) corrupt(off, count uint64, why string) {
	l.mu.Lock()
	_, seen := l.corruptSeen[off]
	if !seen {
		l.corruptSeen[off] = struct{}{}
		l.st.CorruptSkipped += count
	}
	l.mu.Unlock()
	if !seen {
		l.log.Error("wal: skipping corrupt records; they will not be delivered", "offset", off, "count", count, "reason", why)
	}
}
