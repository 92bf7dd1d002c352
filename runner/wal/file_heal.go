package wal

// This file holds File's recovery from write failures (a full disk, an I/O
// error): the log refuses appends at once while it is failed, and heals
// itself when a probe write succeeds again, without a restart.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/eddy-edge/eddy/runner/wal/internal/twal"
)

// errHealing is returned by reads that reach the segment files while the
// log is being reopened after a write failure; retry shortly.
var errHealing = errors.New("wal: the log is being reopened after a write failure; retry")

// Heal backoff: the first probe comes soon after the failure, later ones
// at most every healMaxBackoff.
const (
	healMinBackoff = 100 * time.Millisecond
	healMaxBackoff = 5 * time.Second
)

func newClosedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

func (l *File) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// startHeal starts the heal goroutine unless one runs. The caller holds
// l.mu and has just set l.failed.
func (l *File) startHeal() {
	if l.healing || l.closed {
		return
	}
	l.healing = true
	l.healDone = make(chan struct{})
	go l.heal(l.healDone)
}

// heal probes the log directory with backoff until a write and fsync
// succeed there, then reopens the log: the tail a failed write may have
// torn is cut by the same recovery scan as at Open, offsets continue from
// the last record on disk, and appends are taken again. Records that were
// written but whose fsync failed, and that the disk kept, stay in the log
// (their appenders were told they failed, so a resend is a duplicate);
// records it lost are gone, and a reader whose cursor was past them gets
// an AheadError, as after a crash.
func (l *File) heal(done chan struct{}) {
	defer close(done)
	tick := l.opts.Clock.NewTicker(healMinBackoff)
	defer tick.Stop()
	backoff := healMinBackoff
	for attempt := 1; ; attempt++ {
		select {
		case <-l.stop:
			l.mu.Lock()
			l.healing = false
			l.mu.Unlock()
			return
		case <-tick.C():
		}
		// A probe as big as a quarter segment (at most 1 MiB), so that a
		// disk with just enough room for the probe does not flap.
		err := probeWrite(l.dir, min(l.opts.SegmentSize/4, 1<<20))
		if err == nil {
			err = l.reopen()
		}
		if err == nil {
			l.log.Info("wal: the log takes appends again after a write failure", "attempts", attempt)
			return
		}
		if attempt == 1 || backoff == healMaxBackoff {
			l.log.Warn("wal: still failing; appends are refused until a probe write succeeds", "err", err, "next_probe", backoff)
		}
		if backoff < healMaxBackoff {
			backoff = min(2*backoff, healMaxBackoff)
			tick.Stop()
			tick = l.opts.Clock.NewTicker(backoff)
		}
	}
}

// probeWrite writes size bytes to a file in dir, fsyncs and removes it.
func probeWrite(dir string, size int) error {
	p := filepath.Join(dir, ".probe")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(make([]byte, size))
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(p)
	return errors.Join(werr, serr, cerr, rerr)
}

// reopen closes and reopens the tidwall log after a failure and clears
// it. Readers wait on twMu meanwhile.
func (l *File) reopen() error {
	l.twMu.Lock()
	defer l.twMu.Unlock()
	if l.tw != nil {
		_ = l.tw.Close() // it may fail to flush what failed before; the scan below repairs the file
		l.tw = nil
	}
	rep, err := recoverTail(l.dir)
	if err != nil {
		return err
	}
	tw, err := twal.Open(l.dir, l.twOptions())
	if err != nil {
		return fmt.Errorf("wal: reopening %s: %w", l.dir, err)
	}
	first, _ := tw.FirstIndex()
	last, _ := tw.LastIndex()
	segs, err := listSegments(l.dir)
	if err != nil {
		tw.Close()
		return err
	}
	l.mu.Lock()
	l.tw = tw
	lost := uint64(0)
	if l.written > last {
		lost = l.written - last
	}
	l.written, l.next = last, last+1
	l.lastW.Store(last)
	l.first = max(l.first, first)
	l.cache.init(l.opts.CacheRecords, l.opts.CacheBytes, last+1)
	l.setSegs(segs)
	l.failed = nil
	l.healing = false
	l.st.Heals++
	l.st.TruncatedEntries += uint64(rep.EntriesDropped)
	l.st.TruncatedBytes += rep.BytesDropped
	l.asyncRoom.Broadcast()
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
	if rep.Truncated() || lost > 0 {
		l.log.Warn("wal: reopened after a write failure; cut a torn tail", "reason", rep.Reason,
			"entries_dropped", rep.EntriesDropped, "bytes_dropped", rep.BytesDropped, "unsynced_records_lost", lost, "last", last)
	}
	return nil
}
