package wal

// This file holds File's retention: consumers, and removing old segments
// by age and size within what consumers allow.

import (
	"context"
	"fmt"
	"sort"
)

// SetConsumer implements Log.
func (l *File) SetConsumer(name string, offset uint64) {
	l.mu.Lock()
	l.cons[name] = offset
	full := l.st.Full
	l.mu.Unlock()
	if full {
		l.kickRetention()
	}
}

// RemoveConsumer implements Log.
func (l *File) RemoveConsumer(name string) {
	l.mu.Lock()
	delete(l.cons, name)
	full := l.st.Full
	l.mu.Unlock()
	if full {
		l.kickRetention()
	}
}

func (l *File) kickRetention() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Retain implements Log. MaxAge is applied per record; MaxBytes removes
// whole segment files, oldest first (the tail segment is never removed).
func (l *File) Retain(ctx context.Context) (RetentionResult, error) {
	if err := ctx.Err(); err != nil {
		return RetentionResult{}, err
	}
	l.retainMu.Lock()
	defer l.retainMu.Unlock()
	now := l.opts.Clock.Now().UnixNano()

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return RetentionResult{}, ErrClosed
	}
	first, last := l.first, l.written
	segs := append([]segFile(nil), l.segs...)
	bytes := l.bytes
	l.mu.Unlock()

	target := first
	if l.opts.MaxAge > 0 && last >= first {
		cut := now - l.opts.MaxAge.Nanoseconds()
		k := sort.Search(int(last-first+1), func(k int) bool { return l.recordTime(first+uint64(k)) >= cut })
		target = max(target, first+uint64(k))
	}
	if l.opts.MaxBytes > 0 && bytes > l.opts.MaxBytes {
		for k := 0; k < len(segs)-1 && bytes > l.opts.MaxBytes; k++ {
			bytes -= segs[k].size
			target = max(target, segs[k+1].start)
		}
	}
	target = min(target, last+1)

	l.mu.Lock()
	allowed, blockedBy, overrun := l.cons.clamp(l.first, target, l.opts.Policy)
	res := RetentionResult{BlockedBy: blockedBy, Overrun: overrun}
	if allowed > l.first {
		res.Removed = allowed - l.first
		l.first = allowed // readers below this now get a GapError
		l.cache.dropBefore(allowed)
	}
	l.mu.Unlock()

	if res.Removed > 0 {
		l.twMu.Lock()
		err := l.tw.TruncateFront(allowed)
		segs, lerr := listSegments(l.dir)
		if lerr == nil {
			l.mu.Lock()
			l.setSegs(segs)
			l.mu.Unlock()
		}
		l.twMu.Unlock()
		if err != nil {
			err = fmt.Errorf("wal: retention could not remove offsets before %d from %s: %w", allowed, l.dir, err)
			l.mu.Lock()
			if l.failed == nil {
				l.failed = err
				l.st.WriteFailures++
				l.startHeal()
			}
			l.mu.Unlock()
			return res, err
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.RetentionRemoved += res.Removed
	l.st.RetentionOverrun += overrun
	if blockedBy != "" {
		l.st.RetentionBlocked++
	}
	l.st.Full = l.opts.Policy == Block && l.opts.MaxBytes > 0 && l.bytes > l.opts.MaxBytes
	res.First = l.first
	if blockedBy != "" {
		l.log.Warn("wal: retention limit exceeded but a consumer has not read the data; keeping it",
			"consumer", blockedBy, "consumer_offset", allowed, "would_remove_to", target,
			"bytes", l.bytes, "max_bytes", l.opts.MaxBytes, "full", l.st.Full)
	}
	if overrun > 0 {
		l.log.Warn("wal: retention removed records a consumer had not read", "records", overrun, "first", l.first)
	}
	return res, nil
}

// recordTime returns the arrival time of offset off, or 0 when it cannot
// be read (an unreadable record counts as old).
func (l *File) recordTime(off uint64) int64 {
	l.mu.Lock()
	if r := l.cache.get(off); r != nil {
		t := r.Time
		l.mu.Unlock()
		return t
	}
	l.mu.Unlock()
	l.twMu.RLock()
	var data []byte
	err := errHealing
	if l.tw != nil {
		data, err = l.tw.Read(off)
	}
	l.twMu.RUnlock()
	if err != nil {
		return 0
	}
	var r Record
	if decodeFrame(data, &r) != nil {
		return 0
	}
	return r.Time
}
