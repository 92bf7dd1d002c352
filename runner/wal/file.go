package wal

// This file holds File's type, options, Open (recovery: recover.go) and
// Close; the write path is in file_append.go, reads in file_read.go and
// retention in file_retain.go, the way Prometheus splits its head.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddy-edge/eddy/clock"
	"github.com/eddy-edge/eddy/runner/wal/internal/twal"
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	RetentionOptions

	// Durability is what Append does; AppendWith overrides it per call.
	// Default Durable.
	Durability Durability
	// MaxBatch caps the records written and fsynced by one group commit.
	// Default 1000.
	MaxBatch int
	// MaxAsyncQueue bounds the records Async appends and AppendNotify
	// calls may have queued; further such appends wait for room.
	// Default 65536.
	MaxAsyncQueue int
	// MaxDelay lets the committer wait up to this long for more durable
	// appends before writing a batch smaller than MaxBatch. Default 0: no
	// lingering; batches form naturally from the appends that arrive while
	// the previous fsync runs, which measured best on this hardware (see
	// the benchmarks). Set it only when many writers trickle in slowly.
	MaxDelay time.Duration
	// SyncInterval bounds how long buffered records stay unsynced when no
	// durable append comes along. Default 100ms.
	SyncInterval time.Duration
	// SegmentSize is the target size of a segment file. Default 8 MiB.
	// Retention rewrites at most one segment per pass.
	SegmentSize int
	// SegmentCache is how many older segments are kept decoded in memory
	// for readers behind the tail cache (each up to SegmentSize), loaded
	// when such a reader reads them. Default 2.
	SegmentCache int
	// CacheRecords and CacheBytes bound the in-memory tail cache that
	// serves readers who keep up. Defaults 8192 records, 16 MiB.
	CacheRecords int
	CacheBytes   int64
	// Clock stamps records, drives the sync timer and retention.
	// Default clock.Real{}.
	Clock clock.Clock
	// Logger receives recovery reports, corruption and retention warnings.
	// Default: discard.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	o.RetentionOptions.defaults()
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1000
	}
	if o.MaxAsyncQueue <= 0 {
		o.MaxAsyncQueue = 65536
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = 100 * time.Millisecond
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = 8 << 20
	}
	if o.SegmentCache <= 0 {
		o.SegmentCache = 2
	}
	if o.CacheRecords <= 0 {
		o.CacheRecords = 8192
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 16 << 20
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
}

// twOptions are the tidwall/wal options of a log with these options.
func (o *Options) twOptions() *twal.Options {
	return &twal.Options{
		NoSync:           true, // the committer fsyncs
		SegmentSize:      o.SegmentSize,
		SegmentCacheSize: o.SegmentCache,
		AllowEmpty:       true,
		DirPerms:         0o750,
		FilePerms:        0o640,
	}
}

func (l *File) twOptions() *twal.Options { return l.opts.twOptions() }

// File is a Log stored in a directory of tidwall/wal segment files, with
// group commit, a tail cache and retention. Open it with Open.
type File struct {
	dir      string
	opts     Options
	log      *slog.Logger
	tw       *twal.Log
	recovery RecoveryReport

	mu          sync.Mutex
	next        uint64        // next offset to assign
	written     uint64        // last offset written; what readers see
	lastW       atomic.Uint64 // written, for Last without the lock (set with it held)
	first       uint64
	queue       []*request
	asyncQueued int        // copied records (Async, AppendNotify) still in queue
	asyncRoom   *sync.Cond // signalled when asyncQueued drops (uses mu)
	requests    sync.Pool  // committed fire-and-forget requests (newRequest)
	closed      bool
	failed      error // sticky write/fsync failure
	notify      chan struct{}
	cons        consumers
	st          Stats
	cache       tailCache
	corruptSeen map[uint64]struct{}
	segs        []segFile // mirror of the segment files (start, size)
	bytes       int64

	// twMu guards the tidwall log pointer (replaced when the log recovers
	// from a write failure, see file_heal.go): readers hold it shared,
	// writes, fsyncs, truncation and the swap hold it exclusively. It also
	// serializes tidwall writes + the segs mirror with truncation.
	twMu     sync.RWMutex
	healing  bool          // a heal goroutine runs (guarded by mu)
	healDone chan struct{} // closed when no heal goroutine runs
	retainMu sync.Mutex    // one retention pass at a time

	wake          chan struct{}
	kick          chan struct{}
	stop          chan struct{}
	committerDone chan struct{}
	retentionDone chan struct{}
}

var _ Log = (*File)(nil)

// Open opens (or creates) the log in dir, repairs its tail (see
// RecoveryReport) and starts the committer and retention goroutines.
func Open(ctx context.Context, dir string, opts Options) (*File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.Durability > Buffered {
		return nil, fmt.Errorf("wal: Options.Durability %d is unknown; use wal.Durable or wal.Buffered", opts.Durability)
	}
	opts.defaults()
	if dir == "" {
		return nil, errors.New("wal: Open needs a directory; use NewMemory for a log without files")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("wal: creating log directory: %w", err)
	}
	rep, err := recoverTail(dir)
	if err != nil {
		return nil, err
	}
	tw, err := twal.Open(dir, opts.twOptions())
	if err != nil {
		return nil, fmt.Errorf("wal: opening log in %s: %w (the directory holds damaged segment files; move it aside to start an empty log)", dir, err)
	}
	first, _ := tw.FirstIndex()
	last, _ := tw.LastIndex()
	segs, err := listSegments(dir)
	if err != nil {
		tw.Close()
		return nil, err
	}
	rep.First, rep.Last = first, last
	l := &File{
		dir:           dir,
		opts:          opts,
		log:           opts.Logger.With("wal", dir),
		tw:            tw,
		recovery:      rep,
		next:          last + 1,
		written:       last,
		first:         first,
		notify:        make(chan struct{}),
		cons:          consumers{},
		corruptSeen:   map[uint64]struct{}{},
		wake:          make(chan struct{}, 1),
		kick:          make(chan struct{}, 1),
		stop:          make(chan struct{}),
		committerDone: make(chan struct{}),
		retentionDone: make(chan struct{}),
		healDone:      newClosedChan(),
	}
	l.lastW.Store(last)
	l.asyncRoom = sync.NewCond(&l.mu)
	l.cache.init(opts.CacheRecords, opts.CacheBytes, last+1)
	l.setSegs(segs)
	l.st.RecoveredEntries = uint64(rep.EntriesKept)
	l.st.TruncatedEntries = uint64(rep.EntriesDropped)
	l.st.TruncatedBytes = rep.BytesDropped
	if rep.Truncated() {
		l.log.Warn("wal: recovered log: truncated damaged tail", "segment", rep.Segment, "reason", rep.Reason,
			"entries_kept", rep.EntriesKept, "entries_dropped", rep.EntriesDropped, "zero_bytes_dropped", rep.ZeroBytes, "bytes_dropped", rep.BytesDropped,
			"first", first, "last", last)
	} else {
		l.log.Info("wal: opened log", "first", first, "last", last, "segments", len(segs), "bytes", l.bytes)
	}
	if rep.CorruptKept > 0 {
		l.log.Error("wal: tail segment holds records with bad checksums; they will be skipped", "records", rep.CorruptKept)
	}
	go l.committer()
	if opts.MaxAge > 0 || opts.MaxBytes > 0 {
		go retentionLoop(l.Retain, opts.Clock, opts.Interval, l.kick, l.log, l.stop, l.retentionDone)
	} else {
		close(l.retentionDone)
	}
	return l, nil
}

// Recovery returns what the recovery scan did when the log was opened.
func (l *File) Recovery() RecoveryReport { return l.recovery }

// Dir returns the log directory.
func (l *File) Dir() string { return l.dir }

func (l *File) setSegs(segs []segFile) {
	l.segs = segs
	l.bytes = 0
	for _, s := range segs {
		l.bytes += s.size
	}
}

// First implements Log.
func (l *File) First() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

// Last implements Log.
// DropCache empties the in-memory tail cache, releasing the records it
// holds; readers then read the segment files until new appends fill it
// again. The runner calls it when traffic stops, so an idle process does
// not keep the last burst in memory.
func (l *File) DropCache() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cache.dropBefore(^uint64(0))
}

func (l *File) Last() uint64 { return l.lastW.Load() }

// Stats implements Log.
func (l *File) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.st
	s.First, s.Last = l.first, l.written
	s.Bytes = l.bytes
	s.Segments = len(l.segs)
	s.Consumers = l.cons.clone()
	if l.failed != nil {
		s.WriteError = l.failed.Error()
	}
	return s
}

// Close waits for queued appends to be committed, fsyncs and closes the
// files. Blocked readers return ErrClosed.
func (l *File) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.asyncRoom.Broadcast()
	close(l.notify)
	l.notify = make(chan struct{})
	close(l.stop)
	l.mu.Unlock()
	<-l.committerDone
	<-l.retentionDone
	l.retainMu.Lock() // a Retain call in flight finishes first
	defer l.retainMu.Unlock()
	<-l.healDone // a heal in flight finishes or gives up (it watches stop)
	l.twMu.Lock()
	defer l.twMu.Unlock()
	if l.tw == nil {
		return nil // a heal gave up between closing and reopening it
	}
	if err := l.tw.Close(); err != nil {
		return fmt.Errorf("wal: closing %s: %w", l.dir, err)
	}
	return nil
}
