package wal

// This file holds File's write path: queueing appends, the single
// committer goroutine, group commit, fsync and sticky write failures.

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/eddy-edge/eddy/runner/wal/internal/twal"
)

type request struct {
	recs []*Record
	d    Durability
	done chan error  // AppendWith Durable/Buffered: the waiting caller
	cb   func(error) // AppendNotify: called by the committer
	own  bool        // recs are copies counted in asyncQueued
	// one holds the copy of a single owned record (the common case: one
	// publish), so that copying it takes one allocation with the request
	// instead of three.
	one    Record
	onePtr [1]*Record
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

// AppendOwned implements Log: one Async record whose payload the log keeps
// without copying it.
func (l *File) AppendOwned(ctx context.Context, rec Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := rec.validate(); err != nil {
		return err
	}
	if rec.Time == 0 {
		rec.Time = l.opts.Clock.Now().UnixNano()
	}
	req := l.newRequest()
	req.d, req.own, req.one = Async, true, rec
	req.onePtr[0] = &req.one
	req.recs = req.onePtr[:]
	return l.submit(req, nil)
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
	var now int64 // read from the clock only for a record without a time
	for _, r := range recs {
		if r.Time == 0 {
			now = l.opts.Clock.Now().UnixNano()
			break
		}
	}
	var req *request
	if d == Async && cb == nil {
		req = l.newRequest() // recycled by the committer
	} else {
		req = new(request)
	}
	req.recs, req.d, req.cb, req.own = recs, d, cb, d == Async || cb != nil
	switch {
	case req.own && len(recs) == 1:
		// The caller may reuse its record and payload once we return.
		req.one = *recs[0]
		req.one.Payload = clonePayload(recs[0].Payload)
		req.onePtr[0] = &req.one
		req.recs = req.onePtr[:]
	case req.own:
		own := make([]*Record, len(recs))
		copies := make([]Record, len(recs))
		for i, r := range recs {
			copies[i] = *r
			copies[i].Payload = clonePayload(r.Payload)
			own[i] = &copies[i]
		}
		req.recs = own
	default:
		req.done = make(chan error, 1)
	}
	for _, r := range req.recs {
		if r.Time == 0 {
			r.Time = now
		}
	}
	return l.submit(req, recs)
}

// submit queues req, whose records have their times; recs, when req holds
// copies of them, get the offsets (and times) assigned to the copies.
func (l *File) submit(req *request, recs []*Record) error {
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
	case len(req.recs) == 0:
		l.mu.Unlock()
		if req.cb != nil {
			req.cb(nil)
		}
		return nil
	}
	for _, r := range req.recs {
		r.Offset = l.next
		l.next++
	}
	if req.own {
		// Offsets were assigned to the copies; report them to the caller
		// (now: once queued, a fire-and-forget request may be committed
		// and recycled at any moment).
		for i, r := range recs {
			r.Offset = req.recs[i].Offset
			r.Time = req.recs[i].Time
		}
	}
	l.queue = append(l.queue, req)
	own, done := req.own, req.done
	if own {
		l.asyncQueued += len(req.recs)
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	if own {
		return nil // req may be recycled already
	}
	return <-done
}

// newRequest returns an empty request for a fire-and-forget append (Async,
// no callback): nobody refers to one once it is committed, so the
// committer recycles it (one allocation per QoS 0 publish fewer).
func (l *File) newRequest() *request {
	if q, ok := l.requests.Get().(*request); ok {
		return q
	}
	return new(request)
}

// recycle keeps a committed fire-and-forget request for newRequest.
func (l *File) recycle(q *request) {
	if q.d != Async || q.cb != nil || q.done != nil {
		return // a caller or callback may still look at it
	}
	*q = request{}
	l.requests.Put(q)
}

// clonePayload copies p; an empty payload becomes nil.
func clonePayload(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	return append(make([]byte, 0, len(p)), p...)
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
		reqs := l.take(c.reqs[:0], l.opts.MaxBatch, true)
		l.mu.Unlock()
		if l.opts.MaxDelay > 0 {
			reqs = l.linger(reqs)
		}
		c.reqs = reqs
		l.commit(c, reqs)
		for _, q := range reqs {
			l.recycle(q)
		}
		clear(c.reqs)
	}
}

// take moves requests from the head of the queue to dst while they fit in
// room records (the first one whatever its size when first is set), and
// frees the queue room of the async ones. The caller holds l.mu.
func (l *File) take(dst []*request, room int, first bool) []*request {
	k, n := 0, 0
	for k < len(l.queue) && ((first && k == 0) || n+len(l.queue[k].recs) <= room) {
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
		reqs = l.take(reqs, l.opts.MaxBatch-n, false)
		for _, r := range reqs[before:] {
			n += len(r.recs)
		}
		l.mu.Unlock()
	}
	return reqs
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
	cached   []Record // the batch's records for the tail cache (copied into it)
	sizes    []int    // their sizes on disk
	dirty    bool     // written but not fsynced
	dirDirty bool     // a segment file was created since the last dir fsync
}

func (l *File) commit(c *commitState, reqs []*request) {
	c.batch.Clear()
	// The tail cache keeps the payloads: owned records (async appends and
	// AppendNotify) were copied by enqueue and are the log's already; the
	// payloads of callers who wait are copied into one slab per batch.
	nrec, slabSize := 0, 0
	for _, q := range reqs {
		nrec += len(q.recs)
		if !q.own {
			for _, r := range q.recs {
				slabSize += len(r.Payload)
			}
		}
	}
	var slab []byte
	if slabSize > 0 {
		slab = make([]byte, 0, slabSize)
	}
	cached, sizes := c.cached[:0], c.sizes[:0]
	var lastOff uint64
	for _, q := range reqs {
		for _, r := range q.recs {
			c.frame = appendFrame(c.frame[:0], r)
			c.batch.Write(r.Offset, c.frame)
			sizes = append(sizes, uvarintLen(uint64(len(c.frame)))+len(c.frame))
			cr := *r
			if r.Payload != nil && !q.own {
				slab = append(slab, r.Payload...)
				cr.Payload = slab[len(slab)-len(r.Payload) : len(slab) : len(slab)]
			}
			cached = append(cached, cr)
			lastOff = r.Offset
		}
	}
	c.cached, c.sizes = cached, sizes
	defer clear(c.cached) // the cache has copies; drop references to payloads

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
		l.fail(reqs, fmt.Errorf("wal: writing %d records to %s failed: %w; the log refuses appends until a probe write succeeds again (check disk space and health)", nrec, l.dir, err))
		return
	}
	c.dirty = true
	c.dirDirty = c.dirDirty || cycled

	l.mu.Lock()
	l.written = lastOff
	l.lastW.Store(lastOff)
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
	start := l.opts.Clock.Now()
	defer func() {
		d := l.opts.Clock.Now().Sub(start)
		l.mu.Lock()
		l.st.FsyncTime += d
		l.mu.Unlock()
	}()
	if c.dirDirty {
		if err := syncDir(l.dir); err != nil {
			return fmt.Errorf("wal: fsync of directory %s failed: %w; the log refuses appends until a probe write succeeds again", l.dir, err)
		}
		c.dirDirty = false
	}
	l.twMu.RLock() // tidwall serializes Sync with its other calls itself
	err := l.tw.Sync()
	l.twMu.RUnlock()
	if err != nil {
		return fmt.Errorf("wal: fsync of %s failed: %w; the log refuses appends until a probe write succeeds again (check disk space and health)", l.dir, err)
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
		l.st.WriteFailures++
		l.startHeal()
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
