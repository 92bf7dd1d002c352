package wal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/eddy-edge/eddy/clock"
)

// Log is an append-only sequence of records with dense offsets starting at 1.
// [Memory] and [File] implement it with the same semantics.
type Log interface {
	// Append assigns offsets to recs (in order, contiguous) and appends them
	// with the log's default durability. On return without error each
	// record's Offset is set and the records are as durable as the mode
	// promises (see the package doc).
	Append(ctx context.Context, recs ...*Record) error
	// AppendWith is Append with an explicit durability for this call.
	AppendWith(ctx context.Context, d Durability, recs ...*Record) error
	// AppendNotify queues recs (copied: the caller may reuse them at once)
	// and returns without waiting for the commit; done is called exactly
	// once, with nil when the records are as durable as d promises or with
	// the error that failed them. Offsets are assigned in call order and
	// done callbacks run in offset order, possibly before AppendNotify
	// returns. done must be quick (hand the result off; it may run on the
	// log's committer, holding up later commits) and must not append to
	// the log. When AppendNotify itself returns an error the records were
	// not queued and done is never called. This is how a caller keeps many
	// appends in flight without a goroutine per append (the broker uses it
	// to acknowledge MQTT publishes after the group commit).
	AppendNotify(ctx context.Context, d Durability, done func(error), recs ...*Record) error
	// AppendOwned appends one record Async (queued for the next group
	// commit, like AppendWith(ctx, Async, &rec)), taking its payload: the
	// log may keep rec.Payload without copying it, so the caller must
	// never modify it afterwards, whatever AppendOwned returns (a network
	// publish's own packet buffer, which the broker never reuses).
	AppendOwned(ctx context.Context, rec Record) error
	// Read copies records with Offset >= from into buf and returns how many.
	// It blocks until at least one record is available or ctx is done.
	// from 0 means 1. If records from `from` on were removed by retention it
	// returns a *[GapError] telling how many were lost and where to go on;
	// if from is beyond the end of the log it returns an *[AheadError].
	Read(ctx context.Context, from uint64, buf []Record) (int, error)
	// Wait returns a channel that is closed once Read(from) would not
	// block: a record at or after from was appended (or retention removed
	// from, or the log was closed). A reader that also waits on a ticker
	// or a stop signal selects on it instead of cancelling a Read.
	Wait(from uint64) <-chan struct{}
	// First returns the offset of the oldest record kept (Last()+1 when the
	// log is empty).
	First() uint64
	// Last returns the offset of the newest record readers can see (0 when
	// nothing was ever appended).
	Last() uint64
	// SetConsumer registers or moves the cursor of a named consumer: offset
	// is the next offset it will read, so everything before it is done.
	// Retention never removes records at or after the slowest consumer's
	// offset unless the policy is [DropOldest].
	SetConsumer(name string, offset uint64)
	// RemoveConsumer forgets a consumer.
	RemoveConsumer(name string)
	// Retain runs one retention pass now (it also runs on a ticker).
	Retain(ctx context.Context) (RetentionResult, error)
	// Stats returns counters for the dashboard and Prometheus.
	Stats() Stats
	// Close stops background work and releases files. Readers blocked in
	// Read return ErrClosed.
	Close() error
}

// Durability says when Append returns. See the package doc for the exact
// guarantee of each mode.
type Durability uint8

const (
	// Durable returns after the records are written and fsynced.
	Durable Durability = iota
	// Buffered returns after the records are written, before fsync.
	Buffered
	// Async returns once the records are queued (copied) for the next
	// group commit, before they are written: the caller never waits for a
	// syscall. A crash can lose what was queued but not yet written (a few
	// milliseconds' worth); use it only where at-most-once is the contract
	// (MQTT QoS 0). Async callers wait only when MaxAsyncQueue records are
	// already queued, which bounds memory.
	Async
)

// String returns "durable" or "buffered".
func (d Durability) String() string {
	switch d {
	case Durable:
		return "durable"
	case Buffered:
		return "buffered"
	case Async:
		return "async"
	}
	return fmt.Sprintf("Durability(%d)", uint8(d))
}

// Policy decides what retention does when a limit is exceeded but a
// consumer has not read the data yet.
type Policy string

const (
	// Block (the default) keeps data a consumer still needs. Retention
	// logs a warning and counts Stats.RetentionBlocked; once the log is over
	// MaxBytes, Append returns an error wrapping ErrFull until consumers
	// move on and retention frees space.
	Block Policy = "block"
	// DropOldest removes data over the limits even if a consumer has not
	// read it; that consumer's next Read returns a *GapError with the
	// exact number of records it lost.
	DropOldest Policy = "drop-oldest"
)

var (
	// ErrClosed is returned by operations on a closed log.
	ErrClosed = errors.New("wal: log is closed")
	// ErrFull is wrapped by Append's error when the log is over MaxBytes
	// under the Block policy.
	ErrFull = errors.New("wal: log is full")
	// ErrTruncated is matched (errors.Is) by every *GapError.
	ErrTruncated = errors.New("wal: records were removed by retention")
)

// GapError reports that a reader asked for records that retention removed.
type GapError struct {
	// From is the offset the reader asked for.
	From uint64
	// First is the oldest offset still in the log; continue from here.
	First uint64
}

// Lost is the number of records the reader will never see.
func (e *GapError) Lost() uint64 { return e.First - e.From }

// Error describes the gap and how to continue.
func (e *GapError) Error() string {
	return fmt.Sprintf("wal: offsets %d..%d were removed by retention before they were read (%d records lost); continue reading from offset %d",
		e.From, e.First-1, e.Lost(), e.First)
}

// Is makes errors.Is(err, ErrTruncated) true.
func (e *GapError) Is(target error) bool { return target == ErrTruncated }

// AheadError reports a read beyond the end of the log: the cursor was saved
// for records that no longer exist (buffered records lost in a power
// failure, or a cursor that belongs to another log).
type AheadError struct {
	// From is the offset the reader asked for.
	From uint64
	// Last is the newest offset in the log.
	Last uint64
}

// Error describes the problem and how to fix it.
func (e *AheadError) Error() string {
	return fmt.Sprintf("wal: offset %d is beyond the end of the log (last offset is %d): records were lost in a crash before they were fsynced, or the cursor belongs to another log; restart the cursor at offset %d",
		e.From, e.Last, e.Last+1)
}

// RetentionOptions are the retention settings shared by Memory and File.
// The zero value keeps everything forever.
type RetentionOptions struct {
	// MaxAge removes records whose Time is older than now-MaxAge. 0 = no limit.
	MaxAge time.Duration
	// MaxBytes bounds the log size (bytes on disk for File, encoded record
	// bytes for Memory). 0 = no limit.
	MaxBytes int64
	// Policy is Block (the default, "") or DropOldest.
	Policy Policy
	// Interval between retention passes. Default 10s.
	Interval time.Duration
}

// MemoryOptions configure NewMemory. The zero value is ready to use.
type MemoryOptions struct {
	RetentionOptions
	// Clock stamps records and drives retention. Default clock.Real{}.
	Clock clock.Clock
	// Logger receives warnings. Default: discard.
	Logger *slog.Logger
}

// RetentionResult tells what one retention pass did.
type RetentionResult struct {
	// Removed is the number of records removed.
	Removed uint64
	// First is the oldest offset kept afterwards.
	First uint64
	// BlockedBy names the consumer that kept retention from removing more
	// (Block policy), or "".
	BlockedBy string
	// Overrun is the number of records removed that a registered consumer
	// had not read yet (DropOldest policy).
	Overrun uint64
}

// Stats are a log's counters. All counts are since the log was opened.
type Stats struct {
	First, Last uint64 // offsets, as First() and Last()
	Bytes       int64  // bytes on disk (File) or encoded record bytes (Memory)
	Segments    int    // segment files (File)

	Appends     uint64 // records appended
	AppendCalls uint64 // Append/AppendWith calls that succeeded
	Batches     uint64 // group commits (writes)
	Fsyncs      uint64 // fsync calls
	// FsyncTime is the time spent in them: a goroutine in fsync holds
	// its core (GOMAXPROCS), so the load governor counts it as busy.
	FsyncTime    time.Duration
	MaxBatchSeen int // largest group commit, in records

	CacheReads uint64 // records served from the in-memory tail cache
	DiskReads  uint64 // records read from segment files

	RecoveredEntries uint64 // entries kept by the recovery scan of the tail segment
	TruncatedEntries uint64 // entries dropped by the recovery scan
	TruncatedBytes   int64  // bytes dropped by the recovery scan
	CorruptSkipped   uint64 // records never delivered because their checksum failed

	RetentionRemoved uint64 // records removed by retention
	RetentionBlocked uint64 // passes that kept data because of a consumer (Block)
	RetentionOverrun uint64 // records removed before a consumer read them (DropOldest)
	FullRejects      uint64 // Append calls refused with ErrFull
	Full             bool   // Append currently returns ErrFull

	WriteFailures uint64 // write, fsync or truncation failures (each makes the log refuse appends until it heals)
	Heals         uint64 // times the log took appends again after a failure
	WriteError    string // the failure appends are refused with now, or ""

	Consumers map[string]uint64 // registered consumers and their offsets
}

func (o *RetentionOptions) defaults() {
	if o.Policy == "" {
		o.Policy = Block
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
}

func (o *RetentionOptions) check() error {
	switch o.Policy {
	case "", Block, DropOldest:
	default:
		return fmt.Errorf("wal: retention policy %q is unknown; use %q or %q", o.Policy, Block, DropOldest)
	}
	if o.MaxAge < 0 || o.MaxBytes < 0 {
		return fmt.Errorf("wal: retention MaxAge (%s) and MaxBytes (%d) must not be negative; use 0 for no limit", o.MaxAge, o.MaxBytes)
	}
	return nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// consumers tracks registered cursors. Callers hold the log's lock.
type consumers map[string]uint64

// slowest returns the consumer with the smallest offset.
func (c consumers) slowest() (name string, off uint64, ok bool) {
	for n, o := range c {
		if !ok || o < off || (o == off && n < name) {
			name, off, ok = n, o, true
		}
	}
	return
}

func (c consumers) clone() map[string]uint64 {
	m := make(map[string]uint64, len(c))
	for k, v := range c {
		m[k] = v
	}
	return m
}

// clamp applies the policy to a retention target: the new first offset.
// It returns the allowed target, the consumer that blocked it (Block) and
// how many records are removed that some consumer still needed (DropOldest).
func (c consumers) clamp(first, target uint64, p Policy) (allowed uint64, blockedBy string, overrun uint64) {
	name, off, ok := c.slowest()
	if !ok || off >= target {
		return target, "", 0
	}
	if p == DropOldest {
		return target, "", target - max(off, first)
	}
	if off < first {
		off = first
	}
	return off, name, 0
}
