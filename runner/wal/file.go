package wal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/eddy-edge/eddy/clock"
	twal "github.com/tidwall/wal"
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

// File is a Log stored in a directory of tidwall/wal segment files, with
// group commit, a tail cache and retention. Open it with Open.
type File struct {
	dir      string
	opts     Options
	log      *slog.Logger
	tw       *twal.Log
	recovery RecoveryReport

	mu          sync.Mutex
	next        uint64 // next offset to assign
	written     uint64 // last offset written; what readers see
	first       uint64
	queue       []*request
	asyncQueued int        // copied records (Async, AppendNotify) still in queue
	asyncRoom   *sync.Cond // signalled when asyncQueued drops (uses mu)
	closed      bool
	failed      error // sticky write/fsync failure
	notify      chan struct{}
	cons        consumers
	st          Stats
	cache       tailCache
	corruptSeen map[uint64]struct{}
	segs        []segFile // mirror of the segment files (start, size)
	bytes       int64

	twMu     sync.Mutex // serializes tidwall writes + segs mirror with truncation
	retainMu sync.Mutex // one retention pass at a time

	wake          chan struct{}
	kick          chan struct{}
	stop          chan struct{}
	committerDone chan struct{}
	retentionDone chan struct{}
}

var _ Log = (*File)(nil)

type request struct {
	recs []*Record
	d    Durability
	done chan error  // AppendWith Durable/Buffered: the waiting caller
	cb   func(error) // AppendNotify: called by the committer
	own  bool        // recs are copies counted in asyncQueued
}

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
	tw, err := twal.Open(dir, &twal.Options{
		NoSync:           true, // the committer fsyncs
		SegmentSize:      opts.SegmentSize,
		SegmentCacheSize: 2,
		AllowEmpty:       true,
		DirPerms:         0o750,
		FilePerms:        0o640,
	})
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
	}
	l.asyncRoom = sync.NewCond(&l.mu)
	l.cache.init(opts.CacheRecords, opts.CacheBytes, last+1)
	l.setSegs(segs)
	l.st.RecoveredEntries = uint64(rep.EntriesKept)
	l.st.TruncatedEntries = uint64(rep.EntriesDropped)
	l.st.TruncatedBytes = rep.BytesDropped
	if rep.Truncated() {
		l.log.Warn("wal: recovered log: truncated damaged tail", "segment", rep.Segment, "reason", rep.Reason,
			"entries_kept", rep.EntriesKept, "entries_dropped", rep.EntriesDropped, "bytes_dropped", rep.BytesDropped,
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

// Append implements Log with Options.Durability.
func (l *File) Append(ctx context.Context, recs ...*Record) error {
	return l.AppendWith(ctx, l.opts.Durability, recs...)
}

// AppendWith implements Log. The records (and their payloads) must not be
// modified until it returns; afterwards the log keeps no reference to them.
func (l *File) AppendWith(ctx context.Context, d Durability, recs ...*Record) error {
	return l.enqueue(ctx, d, nil, recs)
}

// AppendNotify implements Log. The records are copied before it returns, so
// the caller may reuse them and their payloads at once; their Offset and
// Time are set on return. done runs on the committer goroutine: it must
// hand off and return quickly (it delays every later commit while it runs)
// and must not call back into the log. Like Async appends, AppendNotify
// waits only while MaxAsyncQueue copied records are already queued.
func (l *File) AppendNotify(ctx context.Context, d Durability, done func(error), recs ...*Record) error {
	if done == nil {
		return errors.New("wal: AppendNotify needs a done callback; use AppendWith to wait for the commit instead")
	}
	return l.enqueue(ctx, d, done, recs)
}

// enqueue queues recs for the committer. Without cb, Durable and Buffered
// callers wait for their commit; Async callers and callers with cb do not,
// and their records are copied.
func (l *File) enqueue(ctx context.Context, d Durability, cb func(error), recs []*Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d > Async {
		return fmt.Errorf("wal: durability %d is unknown; use wal.Durable, wal.Buffered or wal.Async", d)
	}
	for _, r := range recs {
		if err := r.validate(); err != nil {
			return err
		}
	}
	now := l.opts.Clock.Now().UnixNano()
	req := &request{recs: recs, d: d, cb: cb, own: d == Async || cb != nil}
	if req.own {
		// The caller may reuse its records and payloads once we return.
		own := make([]*Record, len(recs))
		for i, r := range recs {
			c := *r
			c.Payload = append([]byte(nil), r.Payload...)
			own[i] = &c
		}
		req.recs = own
	} else {
		req.done = make(chan error, 1)
	}
	l.mu.Lock()
	for req.own && l.asyncQueued >= l.opts.MaxAsyncQueue && !l.closed && l.failed == nil {
		l.asyncRoom.Wait()
	}
	switch {
	case l.closed:
		l.mu.Unlock()
		return ErrClosed
	case l.failed != nil:
		err := l.failed
		l.mu.Unlock()
		return err
	case l.st.Full:
		l.st.FullRejects++
		err := l.fullError()
		l.mu.Unlock()
		return err
	case len(recs) == 0:
		l.mu.Unlock()
		if cb != nil {
			cb(nil)
		}
		return nil
	}
	for _, r := range req.recs {
		r.Offset = l.next
		l.next++
		if r.Time == 0 {
			r.Time = now
		}
	}
	l.queue = append(l.queue, req)
	if req.own {
		l.asyncQueued += len(req.recs)
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	if req.own {
		// Offsets were assigned to the copies; report them to the caller.
		for i, r := range recs {
			r.Offset = req.recs[i].Offset
			r.Time = req.recs[i].Time
		}
		return nil
	}
	return <-req.done
}

func (l *File) fullError() error {
	name, off, _ := l.cons.slowest()
	return fmt.Errorf("%w: %s holds %d bytes, over MaxBytes %d, and consumer %q (at offset %d) has not read the oldest records; let it catch up, remove it, raise MaxBytes or use policy %q",
		ErrFull, l.dir, l.bytes, l.opts.MaxBytes, name, off, DropOldest)
}

// committer is the single writer: it takes queued appends, writes them as
// one tidwall batch, wakes buffered callers and readers, fsyncs once and
// wakes durable callers.
func (l *File) committer() {
	defer close(l.committerDone)
	tick := l.opts.Clock.NewTicker(l.opts.SyncInterval)
	defer tick.Stop()
	c := &commitState{}
	for {
		l.mu.Lock()
		for len(l.queue) == 0 {
			if l.closed {
				l.mu.Unlock()
				l.syncIfDirty(c)
				return
			}
			l.mu.Unlock()
			select {
			case <-l.wake:
			case <-l.stop:
			case <-tick.C():
				l.syncIfDirty(c)
			}
			l.mu.Lock()
		}
		reqs := l.take(c.reqs[:0])
		l.mu.Unlock()
		if l.opts.MaxDelay > 0 {
			reqs = l.linger(reqs)
		}
		c.reqs = reqs
		l.commit(c, reqs)
		clear(c.reqs)
	}
}

// take moves up to MaxBatch records' worth of requests from the queue.
// The caller holds l.mu.
func (l *File) take(dst []*request) []*request {
	n, k := 0, 0
	for k < len(l.queue) && (k == 0 || n+len(l.queue[k].recs) <= l.opts.MaxBatch) {
		n += len(l.queue[k].recs)
		dst = append(dst, l.queue[k])
		k++
	}
	l.releaseAsync(dst[len(dst)-k:])
	rest := copy(l.queue, l.queue[k:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	return dst
}

// linger waits up to MaxDelay for more appends when the batch has durable
// callers and room left.
func (l *File) linger(reqs []*request) []*request {
	n, durable := 0, false
	for _, r := range reqs {
		n += len(r.recs)
		durable = durable || r.d == Durable
	}
	if !durable || n >= l.opts.MaxBatch {
		return reqs
	}
	t := l.opts.Clock.NewTicker(l.opts.MaxDelay)
	defer t.Stop()
	for n < l.opts.MaxBatch {
		select {
		case <-t.C():
			return reqs
		case <-l.stop:
			return reqs
		case <-l.wake:
		}
		l.mu.Lock()
		before := len(reqs)
		reqs = l.takeUpTo(reqs, l.opts.MaxBatch-n)
		for _, r := range reqs[before:] {
			n += len(r.recs)
		}
		l.mu.Unlock()
	}
	return reqs
}

func (l *File) takeUpTo(dst []*request, room int) []*request {
	k, n := 0, 0
	for k < len(l.queue) && n+len(l.queue[k].recs) <= room {
		n += len(l.queue[k].recs)
		dst = append(dst, l.queue[k])
		k++
	}
	l.releaseAsync(dst[len(dst)-k:])
	rest := copy(l.queue, l.queue[k:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	return dst
}

// releaseAsync frees queue room taken by async requests leaving the queue.
// The caller holds l.mu.
func (l *File) releaseAsync(taken []*request) {
	freed := 0
	for _, q := range taken {
		if q.own {
			freed += len(q.recs)
		}
	}
	if freed > 0 {
		l.asyncQueued -= freed
		l.asyncRoom.Broadcast()
	}
}

// commitState is the committer's reusable scratch space.
type commitState struct {
	batch    twal.Batch
	frame    []byte
	reqs     []*request
	dirty    bool // written but not fsynced
	dirDirty bool // a segment file was created since the last dir fsync
}

func (l *File) commit(c *commitState, reqs []*request) {
	c.batch.Clear()
	nrec, slabSize := 0, 0
	for _, q := range reqs {
		nrec += len(q.recs)
		for _, r := range q.recs {
			slabSize += len(r.Payload)
		}
	}
	slab := make([]byte, 0, slabSize)
	cached := make([]Record, 0, nrec)
	sizes := make([]int, 0, nrec)
	var lastOff uint64
	for _, q := range reqs {
		for _, r := range q.recs {
			c.frame = appendFrame(c.frame[:0], r)
			c.batch.Write(r.Offset, c.frame)
			sizes = append(sizes, uvarintLen(uint64(len(c.frame)))+len(c.frame))
			cr := *r
			if r.Payload != nil {
				slab = append(slab, r.Payload...)
				cr.Payload = slab[len(slab)-len(r.Payload) : len(slab) : len(slab)]
			}
			cached = append(cached, cr)
			lastOff = r.Offset
		}
	}

	l.twMu.Lock()
	err := l.tw.WriteBatch(&c.batch)
	cycled := false
	if err == nil {
		l.mu.Lock()
		cycled = l.mirrorWrite(cached[0].Offset, sizes)
		l.mu.Unlock()
	}
	l.twMu.Unlock()
	if err != nil {
		l.fail(reqs, fmt.Errorf("wal: writing %d records to %s failed: %w; the log refuses appends until the runner is restarted (check disk space and health)", nrec, l.dir, err))
		return
	}
	c.dirty = true
	c.dirDirty = c.dirDirty || cycled

	l.mu.Lock()
	l.written = lastOff
	for i := range cached {
		l.cache.push(cached[i])
	}
	l.st.Appends += uint64(nrec)
	l.st.AppendCalls += uint64(len(reqs))
	l.st.Batches++
	l.st.MaxBatchSeen = max(l.st.MaxBatchSeen, nrec)
	over := l.opts.MaxBytes > 0 && l.bytes > l.opts.MaxBytes
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
	if over {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}

	durable := false
	for _, q := range reqs {
		switch {
		case q.d == Durable:
			durable = true
		case q.d == Buffered && q.done != nil:
			q.done <- nil
		}
	}
	if durable {
		if err := l.sync(c); err != nil {
			l.fail(reqs, err)
			return
		}
	}
	// Wake durable waiters, and run AppendNotify callbacks in offset order
	// once the whole batch is as durable as its most demanding request
	// (a Buffered callback that shares a batch with a Durable request runs
	// after the fsync, so that callbacks never overtake each other).
	for _, q := range reqs {
		switch {
		case q.cb != nil:
			q.cb(nil)
		case q.d == Durable:
			q.done <- nil
		}
	}
}

// mirrorWrite updates the segment mirror after a batch of entries (sizes
// in bytes on disk) starting at offset first was written, following
// tidwall/wal v1.2.1's cycling rule. It reports whether a new segment file
// was created. The caller holds l.mu and l.twMu.
func (l *File) mirrorWrite(first uint64, sizes []int) (cycled bool) {
	seg := int64(l.opts.SegmentSize)
	if len(l.segs) == 0 {
		l.segs = append(l.segs, segFile{start: first, name: segmentName(first)})
	}
	tail := &l.segs[len(l.segs)-1]
	if tail.size > seg {
		l.segs = append(l.segs, segFile{start: first, name: segmentName(first)})
		tail, cycled = &l.segs[len(l.segs)-1], true
	}
	for i, sz := range sizes {
		tail.size += int64(sz)
		l.bytes += int64(sz)
		if tail.size >= seg {
			next := first + uint64(i) + 1
			l.segs = append(l.segs, segFile{start: next, name: segmentName(next)})
			tail, cycled = &l.segs[len(l.segs)-1], true
		}
	}
	return cycled
}

func segmentName(index uint64) string { return fmt.Sprintf("%020d", index) }

func (l *File) sync(c *commitState) error {
	if c.dirDirty {
		if err := syncDir(l.dir); err != nil {
			return fmt.Errorf("wal: fsync of directory %s failed: %w; the log refuses appends until the runner is restarted", l.dir, err)
		}
		c.dirDirty = false
	}
	if err := l.tw.Sync(); err != nil {
		return fmt.Errorf("wal: fsync of %s failed: %w; the log refuses appends until the runner is restarted (check the disk)", l.dir, err)
	}
	c.dirty = false
	l.mu.Lock()
	l.st.Fsyncs++
	l.mu.Unlock()
	return nil
}

func (l *File) syncIfDirty(c *commitState) {
	if !c.dirty && !c.dirDirty {
		return
	}
	if err := l.sync(c); err != nil {
		l.fail(nil, err)
	}
}

// fail makes err sticky and hands it to reqs and every queued request.
func (l *File) fail(reqs []*request, err error) {
	l.log.Error("wal: write failure", "err", err)
	l.mu.Lock()
	if l.failed == nil {
		l.failed = err
	}
	queued := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, q := range reqs {
		switch {
		case q.cb != nil:
			q.cb(err) // callbacks only run after a successful commit
		case q.done == nil: // async: nobody waits
		default:
			select {
			case q.done <- err:
			default: // buffered request already answered
			}
		}
	}
	for _, q := range queued {
		switch {
		case q.cb != nil:
			q.cb(err)
		case q.done != nil:
			q.done <- err
		}
	}
	l.mu.Lock()
	l.asyncRoom.Broadcast()
	l.mu.Unlock()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

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
	for ; i <= hi && n < len(buf); i++ {
		data, rerr := l.tw.Read(i)
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
			if _, ferr := l.tw.FirstIndex(); ferr != nil {
				return n, i, fmt.Errorf("wal: log %s is unusable after a failed truncation: %w; restart the runner", l.dir, ferr)
			}
			end := l.segmentEnd(i)
			l.corrupt(i, end-i, "segment framing unreadable; skipping the rest of the segment")
			i = end - 1
			continue
		case errors.Is(rerr, twal.ErrClosed):
			return n, i, ErrClosed
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

// First implements Log.
func (l *File) First() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

// Last implements Log.
func (l *File) Last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written
}

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
	data, err := l.tw.Read(off)
	if err != nil {
		return 0
	}
	var r Record
	if decodeFrame(data, &r) != nil {
		return 0
	}
	return r.Time
}

// Stats implements Log.
func (l *File) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.st
	s.First, s.Last = l.first, l.written
	s.Bytes = l.bytes
	s.Segments = len(l.segs)
	s.Consumers = l.cons.clone()
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
	if err := l.tw.Close(); err != nil {
		return fmt.Errorf("wal: closing %s: %w", l.dir, err)
	}
	return nil
}
